'use strict'

// Cancelling an acquisition (issue 3): `signal` and `acquireTimeout` in acquire's settings.
// An abort rejects AbortError (cause = signal.reason), an already-aborted signal rejects at
// once without touching Redis, acquireTimeout rejects AcquireTimeoutError; either way no key
// of ours is left on any node, an attempt in flight included. Bad values are refused.

const { spawnSync } = require('node:child_process')
const { getEventListeners } = require('node:events')
const path = require('node:path')
const Redlock = require('..')
const { AbortError, AcquireTimeoutError, ExecutionError, ResourceLockedError } = require('..')
const { command, freePort, startServers, stopServers, until, valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey } = require('./support/shared')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const urls = sharedUrls()
const PKG = path.resolve(__dirname, '..')

// Jest 30 already fails a test on an unhandled rejection; this records any that reach the
// process too (the child-process test below checks the same outside Jest).
const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)
process.on('unhandledRejection', onUnhandled)

const made = []
function redlockWith(settings, clients = urls) {
  const r = new Redlock(clients, settings)
  made.push(r)
  return r
}

let holder
beforeAll(() => {
  holder = redlockWith()
})
afterAll(async () => {
  await Promise.all(made.map((r) => r.quit()))
  process.removeListener('unhandledRejection', onUnhandled)
  expect(unhandled).toEqual([])
})

/** Every node's value for `key` is `expected` (null: absent), within 3 s. */
function settlesTo(key, expected, clients = urls) {
  return until(async () => (await valuesOnAll(clients, key)).every((v) => v === expected), {
    timeout: 3000,
    message: `${key} = ${expected} on every node`,
  })
}

/** The error of a call that may throw synchronously or reject. */
async function failureOf(fn) {
  try {
    await fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a failure')
}

function expectAbortError(error, signal) {
  expect(error).toBeInstanceOf(AbortError)
  expect(error).toBeInstanceOf(Error)
  expect(error).not.toBeInstanceOf(ExecutionError)
  expect(error.name).toBe('AbortError')
  expect(error.code).toBe('ABORT_ERR')
  expect(error.cause).toBe(signal.reason)
}

describe('signal', () => {
  test('an already-aborted signal rejects AbortError at once and writes nothing (array and string resources)', async () => {
    const redlock = redlockWith()
    for (const shape of ['array', 'string']) {
      const key = uniqueKey(`cancel-pre-${shape}`)
      const controller = new AbortController()
      const reason = new Error('changed my mind')
      controller.abort(reason)
      const t0 = Date.now()
      const error = await redlock
        .acquire(shape === 'array' ? [key] : key, 5000, { signal: controller.signal })
        .catch((e) => e)
      expect(Date.now() - t0).toBeLessThan(1000)
      expectAbortError(error, controller.signal)
      expect(error.cause).toBe(reason)
      await sleep(100)
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
    }
  })

  test('an already-aborted signal does not touch Redis: no connection, no node error, even with no server at all', async () => {
    const nowhere = [`redis://127.0.0.1:${await freePort()}`]
    const redlock = redlockWith({ requestTimeout: 200 }, nowhere)
    const nodeErrors = []
    redlock.on('error', (e) => nodeErrors.push(e))
    const signal = AbortSignal.abort()
    const t0 = Date.now()
    const error = await redlock.acquire(['anything'], 5000, { signal }).catch((e) => e)
    expect(Date.now() - t0).toBeLessThan(150)
    expectAbortError(error, signal)
    expect(signal.reason.name).toBe('AbortError') // the default reason, a DOMException
    await sleep(300)
    expect(nodeErrors).toEqual([])
  })

  for (const wakeOnRelease of [true, false]) {
    test(`abort while waiting for a held lock rejects promptly and leaves no key of ours (wakeOnRelease ${wakeOnRelease})`, async () => {
      const key = uniqueKey(`cancel-wait-${wakeOnRelease}`)
      const waiter = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: 5, wakeOnRelease })
      const first = await holder.acquire([key], 20000)
      const controller = new AbortController()
      const waiting = waiter.acquire([key], 20000, { signal: controller.signal }).catch((e) => e)
      await sleep(300)
      const t0 = Date.now()
      controller.abort('stop waiting')
      const error = await waiting
      expect(Date.now() - t0).toBeLessThan(2000)
      expectAbortError(error, controller.signal)
      expect(error.cause).toBe('stop waiting')
      expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
      // Only the holder's value, everywhere (the holder's last nodes may land after its quorum).
      await settlesTo(key, first.value)
      await first.release()
      await settlesTo(key, null)
    })
  }

  test('abort of an acquirer waiting in the line behind another: it leaves, and the line still moves', async () => {
    const key = uniqueKey('cancel-line')
    const head = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: -1 })
    const behind = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: -1 })
    const first = await holder.acquire([key], 20000)
    const headWaiting = head.acquire([key], 20000)
    await sleep(200)
    const controller = new AbortController()
    const behindWaiting = behind.acquire([key], 20000, { signal: controller.signal }).catch((e) => e)
    await sleep(200)
    const t0 = Date.now()
    controller.abort()
    const error = await behindWaiting
    expect(Date.now() - t0).toBeLessThan(2000)
    expectAbortError(error, controller.signal)
    const released = Date.now()
    await first.release()
    const lock = await headWaiting
    expect(Date.now() - released).toBeLessThan(3000)
    await lock.release()
    await settlesTo(key, null)
  })

  test('an abort after the lock was granted changes nothing', async () => {
    const key = uniqueKey('cancel-late')
    const redlock = redlockWith()
    const controller = new AbortController()
    const lock = await redlock.acquire([key], 5000, { signal: controller.signal })
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0)
    controller.abort()
    await sleep(100)
    expect(lock.valid).toBe(true)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
    await lock.release()
  })
})

describe('an attempt in flight is undone (own servers, 3 of 5 paused)', () => {
  let servers
  let ownUrls
  let redlock
  beforeAll(async () => {
    servers = await startServers(5)
    ownUrls = servers.map((s) => s.url)
    redlock = redlockWith({ requestTimeout: 1000, retryCount: 0 }, ownUrls)
    redlock.on('error', () => {})
  }, 30000)
  afterAll(async () => {
    for (const s of servers || []) s.resume()
    await stopServers(servers)
  })

  /** Opens the connections and loads the scripts on every node, so a paused node gets EVALSHA. */
  async function warmUp() {
    const lock = await redlock.acquire([uniqueKey('cancel-warm')], 1000)
    await lock.release()
  }

  test('abort 100 ms into an attempt that hangs on paused nodes: AbortError quickly, no key of ours anywhere after resume', async () => {
    await warmUp()
    const key = uniqueKey('cancel-inflight')
    const paused = servers.slice(0, 3)
    const live = ownUrls.slice(3)
    for (const s of paused) s.pause()
    let error
    try {
      const controller = new AbortController()
      const attempt = redlock.acquire([key], 10000, { signal: controller.signal }).catch((e) => e)
      // The live nodes took the key: the attempt is truly in flight.
      await until(async () => (await valuesOnAll(live, key)).every((v) => v !== null), {
        timeout: 2000,
        message: 'the attempt reached the live nodes',
      })
      await sleep(100)
      const t0 = Date.now()
      controller.abort()
      error = await attempt
      expect(Date.now() - t0).toBeLessThan(3000)
      expectAbortError(error, controller.signal)
    } finally {
      for (const s of paused) s.resume()
    }
    // The paused nodes run the queued SET and then its undo, in order.
    await settlesTo(key, null, ownUrls)
    await sleep(300)
    expect(await valuesOnAll(ownUrls, key)).toEqual(ownUrls.map(() => null))
  }, 20000)

  test('acquireTimeout 150 on an attempt that hangs on paused nodes: AcquireTimeoutError, no key of ours after resume', async () => {
    await warmUp()
    const key = uniqueKey('cancel-inflight-timeout')
    const paused = servers.slice(1, 4)
    for (const s of paused) s.pause()
    let error
    try {
      const t0 = Date.now()
      error = await redlock.acquire([key], 10000, { acquireTimeout: 150 }).catch((e) => e)
      expect(Date.now() - t0).toBeLessThan(3000)
    } finally {
      for (const s of paused) s.resume()
    }
    expect(error).toBeInstanceOf(AcquireTimeoutError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_ACQUIRE_TIMEOUT')
    await settlesTo(key, null, ownUrls)
    await sleep(300)
    expect(await valuesOnAll(ownUrls, key)).toEqual(ownUrls.map(() => null))
  }, 20000)
})

describe('acquireTimeout', () => {
  test('acquireTimeout 300 on a held resource rejects AcquireTimeoutError (an ExecutionError) and leaves no key of ours', async () => {
    const key = uniqueKey('cancel-timeout')
    const waiter = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: 5 })
    const first = await holder.acquire([key], 20000)
    const t0 = Date.now()
    const error = await waiter.acquire([key], 20000, { acquireTimeout: 300 }).catch((e) => e)
    const took = Date.now() - t0
    expect(error).toBeInstanceOf(AcquireTimeoutError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error).not.toBeInstanceOf(ResourceLockedError)
    expect(error.name).toBe('AcquireTimeoutError')
    expect(error.code).toBe('ERR_REDLOCK_ACQUIRE_TIMEOUT')
    expect(Array.isArray(error.attempts)).toBe(true)
    expect(took).toBeGreaterThanOrEqual(250)
    expect(took).toBeLessThan(2500)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => first.value))
    await first.release()
  })

  test('acquireTimeout also bounds the wait in the line behind another acquirer of this process', async () => {
    const key = uniqueKey('cancel-timeout-line')
    const head = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: -1 })
    const behind = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: -1 })
    const first = await holder.acquire([key], 20000)
    const headWaiting = head.acquire([key], 20000)
    await sleep(200)
    const t0 = Date.now()
    const error = await behind.acquire([key], 20000, { acquireTimeout: 400 }).catch((e) => e)
    expect(error).toBeInstanceOf(AcquireTimeoutError)
    expect(Date.now() - t0).toBeLessThan(2500)
    await first.release()
    const lock = await headWaiting
    await lock.release()
    await settlesTo(key, null)
  })

  test('a generous acquireTimeout does not get in the way of a free resource, nor fire later', async () => {
    const key = uniqueKey('cancel-timeout-free')
    const redlock = redlockWith()
    const lock = await redlock.acquire([key], 5000, { acquireTimeout: 400 })
    await sleep(600)
    expect(lock.valid).toBe(true)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
    await lock.release()
  })

  test('abort and acquireTimeout together: whichever comes first decides', async () => {
    const key = uniqueKey('cancel-both')
    const waiter = redlockWith({ retryDelay: 5000, retryJitter: 0, retryCount: 5 })
    const first = await holder.acquire([key], 20000)
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 100)
    const aborted = await waiter
      .acquire([key], 20000, { signal: controller.signal, acquireTimeout: 5000 })
      .catch((e) => e)
    expectAbortError(aborted, controller.signal)
    const timedOut = await waiter
      .acquire([key], 20000, { signal: new AbortController().signal, acquireTimeout: 200 })
      .catch((e) => e)
    expect(timedOut).toBeInstanceOf(AcquireTimeoutError)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => first.value))
    await first.release()
  })
})

describe('other API shapes are unaffected', () => {
  test('v4 lock(resource, ttl, callback) and unlock still work', async () => {
    const redlock = redlockWith()
    const key = uniqueKey('cancel-v4')
    const lock = await new Promise((resolve, reject) =>
      redlock.lock(key, 2000, (err, l) => (err ? reject(err) : resolve(l))),
    )
    expect(lock.resource).toBe(key)
    await settlesTo(key, lock.value)
    await new Promise((resolve, reject) => lock.unlock((err) => (err ? reject(err) : resolve())))
    await settlesTo(key, null)
  })

  test('v4 acquire(resource, ttl, callback) still works', async () => {
    const redlock = redlockWith()
    const key = uniqueKey('cancel-v4-acquire')
    const lock = await new Promise((resolve, reject) =>
      redlock.acquire(key, 2000, (err, l) => (err ? reject(err) : resolve(l))),
    )
    expect(lock.valid).toBe(true)
    await lock.release()
  })

  test('original acquireLock / releaseLock still work', async () => {
    const redlock = redlockWith()
    const key = uniqueKey('cancel-original')
    const lock = await redlock.acquireLock(key, 2000)
    expect(lock.resource).toBe(key)
    expect(typeof lock.id).toBe('string')
    await settlesTo(key, lock.id)
    await redlock.releaseLock(key, lock.id)
    await settlesTo(key, null)
  })
})

describe('bad input', () => {
  for (const [label, signal] of [
    ['{}', {}],
    ["'x'", 'x'],
    ['42', 42],
    ['null', null],
  ]) {
    test(`signal ${label} is refused with TypeError ERR_INVALID_ARG_TYPE naming settings.signal, nothing written`, async () => {
      const redlock = redlockWith()
      const key = uniqueKey('cancel-bad-signal')
      const error = await failureOf(() => redlock.acquire([key], 2000, { signal }))
      expect(error).toBeInstanceOf(TypeError)
      expect(error.code).toBe('ERR_INVALID_ARG_TYPE')
      expect(error.message).toContain('settings.signal')
      await sleep(50)
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
    })
  }

  test.each([[-1], [0]])('acquireTimeout %d is refused with RangeError naming acquireTimeout, nothing written', async (timeout) => {
    const redlock = redlockWith()
    const key = uniqueKey('cancel-bad-timeout')
    const error = await failureOf(() => redlock.acquire([key], 2000, { acquireTimeout: timeout }))
    expect(error).toBeInstanceOf(RangeError)
    expect(error.code).toBe('ERR_OUT_OF_RANGE')
    expect(error.message).toContain('acquireTimeout')
    await sleep(50)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
  })

  test("acquireTimeout 'soon' is refused with TypeError", async () => {
    const redlock = redlockWith()
    const error = await failureOf(() => redlock.acquire([uniqueKey('cancel-bad-timeout2')], 2000, { acquireTimeout: 'soon' }))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toContain('acquireTimeout')
  })

  test('wakeOnRelease must be a boolean', async () => {
    const error = await failureOf(() => redlockWith({ wakeOnRelease: 'yes' }).acquire([uniqueKey('x')], 1000))
    expect(error).toBeInstanceOf(TypeError)
    expect(error.message).toContain('wakeOnRelease')
  })
})

describe('process lifetime', () => {
  test('a child that aborts a waiting acquire (and times another out) and then does nothing exits by itself, code 0', () => {
    const result = spawnSync(
      process.execPath,
      [
        '-e',
        `
        const Redlock = require(process.env.REDLOCK_PKG)
        process.on('unhandledRejection', (r) => { console.log('UNHANDLED ' + r); process.exitCode = 3 })
        const urls = process.env.REDLOCK_URLS.split(',')
        const holder = new Redlock(urls)
        const waiter = new Redlock(urls, { retryDelay: 5000, retryJitter: 0 })
        const key = process.env.KEY
        holder.acquire([key], 10000).then(async (lock) => {
          const controller = new AbortController()
          setTimeout(() => controller.abort(), 200)
          const a = await waiter.acquire([key], 10000, { signal: controller.signal }).catch((e) => e.name)
          const b = await waiter.acquire([key], 10000, { acquireTimeout: 200 }).catch((e) => e.name)
          await lock.release()
          console.log('outcomes ' + a + ' ' + b)
        })
      `,
      ],
      {
        env: { ...process.env, REDLOCK_PKG: PKG, REDLOCK_URLS: urls.join(','), KEY: uniqueKey('cancel-child') },
        timeout: 20000,
        encoding: 'utf8',
      },
    )
    const info = `status ${result.status} signal ${result.signal}\n${result.stdout}\n${result.stderr}`
    expect({ status: result.status, signal: result.signal, info }).toEqual({ status: 0, signal: null, info })
    expect(result.stdout).toContain('outcomes AbortError AcquireTimeoutError')
    expect(result.stdout).not.toContain('UNHANDLED')
  }, 30000)
})
