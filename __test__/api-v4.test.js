'use strict'

// node-redlock v4's API shape: lock/unlock/extend with callbacks, string resources,
// Redlock.LockError, the 'clientError' event.

const Redlock = require('..')
const { default: Redlock2 } = require('..')
const { freePort, until, valuesOnAll, pttlsOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey, goneEverywhere, heldEverywhere } = require('./support/shared')

const urls = sharedUrls()
const FAST = { retryCount: 2, retryDelay: 20, retryJitter: 5 }

let redlock
beforeAll(() => {
  redlock = new Redlock(urls, FAST)
})
afterAll(async () => {
  await redlock.quit()
})

/** Calls `fn(cb)` and resolves with the callback's (err, value) pair. */
function viaCallback(fn) {
  return new Promise((resolve) => {
    fn((err, value) => resolve({ err, value }))
  })
}

describe('construction', () => {
  test('require(pkg) and require(pkg).default both construct', async () => {
    expect(Redlock2).toBe(Redlock)
    const a = new Redlock(urls)
    const b = new Redlock2(urls)
    expect(a).toBeInstanceOf(Redlock)
    expect(b).toBeInstanceOf(Redlock)
    const key = uniqueKey('v4-construct')
    const lock = await b.lock(key, 2000)
    await lock.unlock()
    await a.quit()
    await b.quit()
  })

  test('Redlock.LockError is exported and is an Error class', () => {
    expect(typeof Redlock.LockError).toBe('function')
    expect(Redlock.LockError.prototype).toBeInstanceOf(Error)
  })
})

describe('lock', () => {
  test('lock(resource, ttl) promise form: a string resource, held on every node', async () => {
    const key = uniqueKey('v4-lock-promise')
    const lock = await redlock.lock(key, 5000)
    expect(lock.resource).toBe(key)
    expect(lock.value).toMatch(/^[0-9a-f]{32}$/)
    expect(lock.expiration).toBeGreaterThan(Date.now())
    await heldEverywhere(key, lock.value)
    await lock.unlock()
    await goneEverywhere(key)
  })

  test('lock(resource, ttl, cb) callback form', async () => {
    const key = uniqueKey('v4-lock-cb')
    const { err, value: lock } = await viaCallback((cb) => redlock.lock(key, 5000, cb))
    expect(err).toBeNull()
    expect(lock.resource).toBe(key)
    await heldEverywhere(key, lock.value)
    const unlocked = await viaCallback((cb) => lock.unlock(cb))
    expect(unlocked.err).toBeNull()
    await goneEverywhere(key)
  })

  test('lock(resources[], ttl): lock.resource is the array as passed', async () => {
    const keys = [uniqueKey('v4-lock-arr-a'), uniqueKey('v4-lock-arr-b')]
    const lock = await redlock.lock(keys, 5000)
    expect(lock.resource).toEqual(keys)
    for (const k of keys) await heldEverywhere(k, lock.value)
    await lock.unlock()
    for (const k of keys) await goneEverywhere(k)
  })

  test('acquire("single-string", ttl) works', async () => {
    const key = uniqueKey('v4-acquire-string')
    const lock = await redlock.acquire(key, 5000)
    expect(lock.resource).toBe(key)
    expect(lock.resources).toEqual([key])
    await heldEverywhere(key, lock.value)
    await redlock.unlock(lock)
    await goneEverywhere(key)
  })

  test('acquire(resource, ttl, cb) callback form', async () => {
    const key = uniqueKey('v4-acquire-cb')
    const { err, value: lock } = await viaCallback((cb) => redlock.acquire(key, 5000, cb))
    expect(err).toBeNull()
    expect(lock.resource).toBe(key)
    await lock.unlock()
  })

  test('a held resource fails the callback with an error instanceof Redlock.LockError', async () => {
    const key = uniqueKey('v4-held')
    const lock = await redlock.lock(key, 5000)
    const { err, value } = await viaCallback((cb) => redlock.lock(key, 5000, cb))
    expect(value).toBeUndefined()
    expect(err).toBeInstanceOf(Redlock.LockError)
    expect(err).toBeInstanceOf(Error)
    expect(typeof err.message).toBe('string')
    expect(err.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
    // and the promise form rejects the same way
    await expect(redlock.lock(key, 5000)).rejects.toThrow(Redlock.LockError)
    // the holder's value was not disturbed
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
    await lock.unlock()
  })

  test('the callback form also returns a promise', async () => {
    const key = uniqueKey('v4-cb-returns')
    // the returned promise still resolves with the lock in callback form
    const { value: lock } = await viaCallback((cb) => {
      const p = redlock.lock(key, 5000, cb)
      expect(typeof p.then).toBe('function')
    })
    await lock.unlock()
  })
})

test('a failing callback-form call leaves no unhandled rejection behind', async () => {
  const key = uniqueKey('v4-no-unhandled')
  const lock = await redlock.lock(key, 5000)
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(reason)
  process.on('unhandledRejection', onUnhandled)
  try {
    const { err } = await viaCallback((cb) => {
      redlock.lock(key, 5000, cb) // the returned promise is ignored, as v4 callers do
    })
    expect(err).toBeInstanceOf(Redlock.LockError)
    await new Promise((r) => setTimeout(r, 50))
    expect(unhandled).toEqual([])
  } finally {
    process.off('unhandledRejection', onUnhandled)
    await lock.unlock()
  }
})

describe('unlock', () => {
  test('redlock.unlock(lock, cb)', async () => {
    const key = uniqueKey('v4-unlock-cb')
    const lock = await redlock.lock(key, 5000)
    await heldEverywhere(key, lock.value)
    const { err } = await viaCallback((cb) => redlock.unlock(lock, cb))
    expect(err).toBeNull()
    await goneEverywhere(key)
  })

  test('lock.unlock() promise form', async () => {
    const key = uniqueKey('v4-unlock-promise')
    const lock = await redlock.lock(key, 5000)
    await heldEverywhere(key, lock.value)
    await expect(lock.unlock()).resolves.toBeDefined()
    await goneEverywhere(key)
  })
})

describe('extend', () => {
  test('redlock.extend(lock, ttl, cb): same object, new expiration, PTTLs grow', async () => {
    const key = uniqueKey('v4-extend-cb')
    const lock = await redlock.lock(key, 2000)
    await heldEverywhere(key, lock.value)
    const oldExpiration = lock.expiration
    const { err, value } = await viaCallback((cb) => redlock.extend(lock, 10000, cb))
    expect(err).toBeNull()
    expect(value).toBe(lock)
    expect(lock.expiration).toBeGreaterThan(oldExpiration + 5000)
    await until(async () => (await pttlsOnAll(urls, key)).every((p) => p > 8000), { timeout: 2000 })
    await lock.unlock()
  })

  test('lock.extend(ttl): v4 code keeps using the same object', async () => {
    const key = uniqueKey('v4-extend-keep')
    const lock = await redlock.lock(key, 2000)
    const before = lock.expiration
    const returned = await lock.extend(8000)
    expect(returned).toBe(lock)
    expect(lock.expiration).toBeGreaterThan(before + 4000)
    expect(lock.expiration).toBeGreaterThan(Date.now() + 6000)
    // the old reference still unlocks
    await lock.unlock()
    await goneEverywhere(key)
  })

  test('extending an unlocked lock fails the callback with a LockError', async () => {
    const key = uniqueKey('v4-extend-unlocked')
    const lock = await redlock.lock(key, 5000)
    await lock.unlock()
    const { err } = await viaCallback((cb) => redlock.extend(lock, 5000, cb))
    expect(err).toBeInstanceOf(Redlock.LockError)
    expect(err.code).toBe('ERR_REDLOCK_LOCK_EXPIRED')
  })
})

describe("'clientError' event", () => {
  let deadUrl
  beforeAll(async () => {
    deadUrl = `redis://127.0.0.1:${await freePort()}`
  })

  test('a dead node among live ones: acquisition succeeds and clientError is emitted', async () => {
    const own = new Redlock([...urls.slice(0, 3), deadUrl], { ...FAST, retryCount: 0 })
    const errors = []
    own.on('clientError', (e) => errors.push(e))
    try {
      const key = uniqueKey('v4-client-error')
      const lock = await own.lock(key, 5000)
      expect(lock.attempts[0].membershipSize).toBe(4)
      expect(lock.attempts[0].quorumSize).toBe(3)
      await until(() => errors.length > 0, { timeout: 3000, message: 'a clientError event' })
      const [error] = errors
      expect(error).toBeInstanceOf(Error)
      expect(error.code).toMatch(/^ERR_REDLOCK_NODE_/)
      expect(error.message).toContain(deadUrl.replace('redis://', ''))
      await lock.unlock()
      const values = await valuesOnAll(urls.slice(0, 3), key)
      expect(values).toEqual([null, null, null])
    } finally {
      await own.quit()
    }
  })

  test('with no listener attached nothing crashes', async () => {
    const own = new Redlock([...urls.slice(0, 3), deadUrl], { ...FAST, retryCount: 0 })
    try {
      expect(own.listenerCount('clientError')).toBe(0)
      expect(own.listenerCount('error')).toBe(0)
      const key = uniqueKey('v4-client-error-nolistener')
      const lock = await own.lock(key, 5000)
      await lock.extend(5000)
      await lock.unlock()
      // give stragglers time to report
      await new Promise((r) => setTimeout(r, 100))
    } finally {
      await own.quit()
    }
  })
})
