'use strict'

// The original design's API: acquireLock(resource, ttl), renewLock(resource, id, ttl),
// releaseLock(resource, id).

const Redlock = require('..')
const { ExecutionError, LockExpiredError } = require('..')
const { until, valuesOnAll, pttlsOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey, goneEverywhere, heldEverywhere, sleep } = require('./support/shared')

const urls = sharedUrls()
const FAST = { retryCount: 2, retryDelay: 20, retryJitter: 5 }

let redlock
beforeAll(() => {
  redlock = new Redlock(urls, FAST)
})
afterAll(async () => {
  await redlock.quit()
})

test('acquireLock(resource, ttl) returns a lock with resource and id, set on every node', async () => {
  const key = uniqueKey('orig-acquire')
  const lock = await redlock.acquireLock(key, 5000)
  expect(lock.resource).toBe(key)
  expect(typeof lock.id).toBe('string')
  expect(lock.id).toMatch(/^[0-9a-f]{32}$/)
  expect(lock.expiration).toBeGreaterThan(Date.now())
  await heldEverywhere(key, lock.id)
  await redlock.releaseLock(key, lock.id)
})

test('renewLock(resource, id, ttl) extends on every node and returns a later expiration', async () => {
  const key = uniqueKey('orig-renew')
  const lock = await redlock.acquireLock(key, 2000)
  await heldEverywhere(key, lock.id)
  const before = await pttlsOnAll(urls, key)
  const expirationBefore = lock.expiration
  const renewed = await redlock.renewLock(key, lock.id, 10000)
  expect(renewed.resource).toBe(key)
  expect(renewed.id).toBe(lock.id)
  expect(Number.isFinite(renewed.expiration)).toBe(true)
  expect(renewed.expiration).toBeGreaterThan(expirationBefore)
  // Named by its id, it is the same lock: the lock acquireLock returned sees the renewal.
  expect(lock.expiration).toBe(renewed.expiration)
  expect(renewed.expiration).toBeGreaterThan(Date.now() + 8000)
  await until(async () => (await pttlsOnAll(urls, key)).every((p) => p > 8000), {
    timeout: 2000,
    message: 'PTTL > 8000 on every node',
  })
  const after = await pttlsOnAll(urls, key)
  after.forEach((p, i) => expect(p).toBeGreaterThan(before[i]))
  expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.id))
  await redlock.releaseLock(key, lock.id)
  await goneEverywhere(key)
})

test('releaseLock(resource, id) removes the key everywhere', async () => {
  const key = uniqueKey('orig-release')
  const lock = await redlock.acquireLock(key, 5000)
  await heldEverywhere(key, lock.id)
  const result = await redlock.releaseLock(key, lock.id)
  expect(result.nodesHeld).toBeGreaterThanOrEqual(3)
  await goneEverywhere(key)
})

test('round trip acquire → renew → release, then the resource is free again', async () => {
  const key = uniqueKey('orig-roundtrip')
  const lock = await redlock.acquireLock(key, 3000)
  await heldEverywhere(key, lock.id)
  const renewed = await redlock.renewLock(key, lock.id, 6000)
  expect(renewed.id).toBe(lock.id)
  await redlock.releaseLock(key, renewed.id)
  await goneEverywhere(key)
  const again = await redlock.acquireLock(key, 3000)
  expect(again.id).not.toBe(lock.id)
  await redlock.releaseLock(key, again.id)
})

test('the lock object from acquireLock can be renewed and released with only its id', async () => {
  // a different Redlock (another process) names the lock by resource and id only
  const other = new Redlock(urls, FAST)
  try {
    const key = uniqueKey('orig-other-process')
    const lock = await redlock.acquireLock(key, 2000)
    await heldEverywhere(key, lock.id)
    await other.renewLock(key, lock.id, 8000)
    await until(async () => (await pttlsOnAll(urls, key)).every((p) => p > 6000), { timeout: 2000 })
    await other.releaseLock(key, lock.id)
    await goneEverywhere(key)
  } finally {
    await other.quit()
  }
})

describe('a wrong id changes nothing', () => {
  test('releaseLock with a wrong id resolves with nodesHeld 0 and leaves value and PTTL', async () => {
    const key = uniqueKey('orig-wrong-release')
    const lock = await redlock.acquireLock(key, 10000)
    await heldEverywhere(key, lock.id)
    const wrong = 'f'.repeat(32) === lock.id ? 'e'.repeat(32) : 'f'.repeat(32)
    const result = await redlock.releaseLock(key, wrong)
    expect(result.nodesHeld).toBe(0)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.id))
    const pttls = await pttlsOnAll(urls, key)
    for (const p of pttls) {
      expect(p).toBeGreaterThan(5000)
      expect(p).toBeLessThanOrEqual(10000)
    }
    await redlock.releaseLock(key, lock.id)
  })

  test('renewLock with a wrong id rejects with LockExpiredError and leaves value and PTTL', async () => {
    const key = uniqueKey('orig-wrong-renew')
    const lock = await redlock.acquireLock(key, 3000)
    await heldEverywhere(key, lock.id)
    const wrong = '0'.repeat(32) === lock.id ? '1'.repeat(32) : '0'.repeat(32)
    const error = await redlock.renewLock(key, wrong, 60000).catch((e) => e)
    expect(error).toBeInstanceOf(LockExpiredError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_LOCK_EXPIRED')
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.id))
    const pttls = await pttlsOnAll(urls, key)
    // not extended to 60 s
    for (const p of pttls) expect(p).toBeLessThanOrEqual(3000)
    await redlock.releaseLock(key, lock.id)
  })
})

test('renewLock after the lock expired rejects and sets nothing', async () => {
  const key = uniqueKey('orig-renew-expired')
  const lock = await redlock.acquireLock(key, 150)
  await sleep(300)
  await expect(redlock.renewLock(key, lock.id, 5000)).rejects.toThrow(ExecutionError)
  await expect(redlock.renewLock(key, lock.id, 5000)).rejects.toBeInstanceOf(LockExpiredError)
  expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
})

test('bad arguments reject with TypeError / RangeError of this realm', async () => {
  const key = uniqueKey('orig-bad-args')
  await expect(redlock.acquireLock(key, -1)).rejects.toThrow(RangeError)
  await expect(redlock.acquireLock('', 1000)).rejects.toBeInstanceOf(Error)
  await expect(redlock.releaseLock(key, '')).rejects.toBeInstanceOf(Error)
  await expect(redlock.renewLock(key, 42, 1000)).rejects.toThrow(TypeError)
  expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
})
