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

module.exports = Redlock
Object.assign(module.exports, Main)
module.exports.default = Redlock
module.exports.Redlock = Redlock
