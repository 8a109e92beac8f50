// Plain JavaScript (checkJs): `require('redlock-rs')` is the class, with its exports as
// properties, as node-redlock v4 code and `const { default: Redlock } = require(…)` expect.
const Redlock = require('redlock-rs')
const { default: Default, Lock, ExecutionError, ResourceLockedError } = require('redlock-rs')
const Sesame = require('redlock-rs/sesame')

/** @type {import('redlock-rs').Settings} */
const settings = { retryCount: 3, retryDelay: 100 }
const redlock = new Redlock(['redis://127.0.0.1:6379'], settings)
/** @type {Redlock} */
const same = new Default(['redis://127.0.0.1:6379'])
/** @type {Redlock} */
const sesame = new Sesame(['redis://127.0.0.1:6379'], { db: 0 })

/** @param {unknown} error */
function describe(error) {
  if (error instanceof ResourceLockedError) return error.code
  if (error instanceof ExecutionError) return error.attempts.length
  return String(error)
}

redlock.lock('a', 1000, (error, lock) => {
  if (error) return console.log(describe(error))
  if (lock instanceof Lock) lock.unlock()
})

// @ts-expect-error: an unknown setting
new Redlock(['redis://127.0.0.1:6379'], { retryCont: 3 })

module.exports = { redlock, same, sesame }
