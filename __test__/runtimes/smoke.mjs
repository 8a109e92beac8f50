// The runtime smoke test: run by Bun and by Deno (never by Jest itself) from a consumer
// project in which redlock-rs is installed under node_modules, against real redis-servers.
//
//   bun smoke.mjs <redis-url,...> <key prefix>
//   deno run --allow-ffi --allow-env --allow-read smoke.mjs <redis-url,...> <key prefix>
//
// It talks to the Jest test that started it in JSON lines: on stdout a step and what it did
// (the lock's key and value), and before going on it waits for a line on stdin, sent once the
// test has looked at the servers itself with its own client. So this script needs no network
// permission of its own: the only connections are the addon's. It never calls process.exit:
// after quit() the process must end on its own.

import Redlock, {
  ExecutionError,
  Lock,
  RedlockClosedError,
  ResourceLockedError,
} from 'redlock-rs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const [urlList, prefix] = process.argv.slice(2)
const urls = urlList.split(',')

function send(step, fields = {}) {
  process.stdout.write(`${JSON.stringify({ step, ...fields })}\n`)
}

// Lines from the test, one per step that waits for it.
const lines = []
const waiters = []
let buffered = ''
process.stdin.setEncoding('utf8')
process.stdin.on('data', (chunk) => {
  buffered += chunk
  let newline
  while ((newline = buffered.indexOf('\n')) !== -1) {
    const line = buffered.slice(0, newline)
    buffered = buffered.slice(newline + 1)
    if (waiters.length) waiters.shift()(line)
    else lines.push(line)
  }
})

/** Tells the test what is held, and waits until it has checked the servers. */
function checkpoint(step, fields) {
  send(step, fields)
  return new Promise((resolve) => {
    if (lines.length) resolve(lines.shift())
    else waiters.push(resolve)
  })
}

function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`)
}

async function rejection(promise) {
  try {
    await promise
  } catch (error) {
    return error
  }
  throw new Error('assertion failed: the promise resolved')
}

const runtime =
  typeof Bun !== 'undefined' ? `bun ${Bun.version}` : typeof Deno !== 'undefined' ? `deno ${Deno.version.deno}` : 'node'

async function main() {
  // require() and import give the same package.
  const required = require('redlock-rs')
  assert(required === Redlock, 'require("redlock-rs") is the default import')
  assert(required.default === Redlock && required.Redlock === Redlock, 'default and named Redlock exports')
  assert(required.ResourceLockedError === ResourceLockedError, 'named error export')

  const redlock = new Redlock(urls, { retryCount: 3, retryDelay: 50, retryJitter: 10 })
  const key = `${prefix}:acquire`

  const lock = await redlock.acquire([key], 10000)
  assert(lock instanceof Lock, 'acquire resolves a Lock')
  assert(typeof lock.value === 'string' && lock.value.length >= 22, 'the lock has a random value')
  assert(lock.expiration > Date.now(), 'the lock expires in the future')
  await checkpoint('acquired', { key, value: lock.value })

  const locked = await rejection(redlock.acquire([key], 10000, { retryCount: 0 }))
  assert(locked instanceof ResourceLockedError, `a held resource: ResourceLockedError, got ${locked && locked.name}`)
  assert(locked instanceof ExecutionError && locked instanceof Error, 'ResourceLockedError is an ExecutionError')
  assert(locked.code === 'ERR_REDLOCK_RESOURCE_LOCKED', `code ${locked.code}`)
  assert(locked.attempts.length === 1, `retryCount 0 is one attempt, got ${locked.attempts.length}`)
  send('refused', { name: locked.name, code: locked.code, attempts: locked.attempts.length })

  const before = lock.expiration
  const extended = await lock.extend(30000)
  assert(extended === lock, 'extend resolves the same Lock')
  assert(lock.expiration > before + 10000, 'extend moves the expiration')
  await checkpoint('extended', { key, value: lock.value })

  const released = await lock.release()
  assert(released.nodesHeld === undefined || typeof released.nodesHeld === 'number', 'release result')
  await checkpoint('released', { key })

  const usingKey = `${prefix}:using`
  const result = await redlock.using([usingKey], 5000, async (signal, context) => {
    assert(signal && signal.aborted === false, 'using passes a live signal')
    // The routine's second argument: sesame's `{ lock, extensions }`, or the lock itself.
    const held = context instanceof Lock ? context : context.lock
    assert(held instanceof Lock, 'using passes the lock')
    await checkpoint('using', { key: usingKey, value: held.value })
    return 'routine result'
  })
  assert(result === 'routine result', 'using resolves with the routine result')
  await checkpoint('used', { key: usingKey })

  const disposedKey = `${prefix}:await-using`
  {
    await using disposable = await redlock.acquire([disposedKey], 5000)
    await checkpoint('await-using', { key: disposedKey, value: disposable.value })
  }
  await checkpoint('disposed', { key: disposedKey })
  // No more lines from the test: stdin must not keep the process alive.
  process.stdin.removeAllListeners('data')
  process.stdin.pause()
  process.stdin.destroy()

  await redlock.quit()
  const closed = await rejection(redlock.acquire([`${prefix}:after-quit`], 1000))
  assert(closed instanceof RedlockClosedError, `after quit: RedlockClosedError, got ${closed && closed.name}`)
  send('done', { runtime })
}

main().catch((error) => {
  send('error', { message: String(error && error.stack ? error.stack : error) })
  process.exitCode = 1
})
