'use strict'
// `redlock-rs/sesame`: the entry point for code migrating from `@sesamecare-oss/redlock`.
// Everything is the main entry's, except that `Redlock`'s `db` setting defaults to 0, as
// sesame's does: sesame's scripts put the lock keys in `settings.db` (0 unless given),
// whatever database the client is on, so a fleet that mixes sesame processes and
// redlock-rs processes must use the same database to exclude itself.

const Main = require('./index.js')

/** A Redlock whose lock keys live in database `settings.db`, 0 unless given. */
class Redlock extends Main.Redlock {
  constructor(clients, settings) {
    super(clients, { db: 0, ...(settings == null ? {} : settings) })
  }
}

// Written out one by one, so that Node's ES module loader sees every named export.
module.exports = Redlock
module.exports.default = Redlock
module.exports.Redlock = Redlock
module.exports.Lock = Main.Lock
module.exports.Semaphore = Main.Semaphore
module.exports.ReadWriteLock = Main.ReadWriteLock
module.exports.ExecutionError = Main.ExecutionError
module.exports.ResourceLockedError = Main.ResourceLockedError
module.exports.LockExpiredError = Main.LockExpiredError
module.exports.RedlockClosedError = Main.RedlockClosedError
module.exports.AcquireTimeoutError = Main.AcquireTimeoutError
module.exports.MaxHoldError = Main.MaxHoldError
module.exports.AbortError = Main.AbortError
module.exports.LockError = Main.LockError
