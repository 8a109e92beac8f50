'use strict'

// Mutual exclusion: held resources are refused, multi-resource locks are all-or-nothing,
// locks expire by themselves, retries never block on their own key, and separate Redlock
// instances exclude each other.

const Redlock = require('..')
const { ExecutionError, ResourceLockedError } = require('..')
const { command, until, valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey, goneEverywhere, heldEverywhere, sleep } = require('./support/shared')

const urls = sharedUrls()
const FAST = { retryCount: 2, retryDelay: 20, retryJitter: 0 }

let redlock
let other
beforeAll(() => {
  redlock = new Redlock(urls, FAST)
  other = new Redlock(urls, FAST)
})
afterAll(async () => {
  await redlock.quit()
  await other.quit()
})

test('a second acquire of a held resource rejects ResourceLockedError after retryCount+1 attempts', async () => {
  const key = uniqueKey('excl-held')
  const lock = await redlock.acquire([key], 10000)
  await heldEverywhere(key, lock.value)
  const t0 = Date.now()
  const error = await redlock
    .acquire([key], 10000, { retryCount: 2, retryDelay: 20, retryJitter: 0 })
    .catch((e) => e)
  expect(Date.now() - t0).toBeLessThan(5000)
  expect(error).toBeInstanceOf(ResourceLockedError)
  expect(error).toBeInstanceOf(ExecutionError)
  expect(error.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
  // The first attempt and retryCount retries (node-redlock's meaning), the look that
  // subscribing to release notices might add included.
  expect(error.attempts.length).toBe(3)
  for (const attempt of error.attempts) {
    expect(attempt.membershipSize).toBe(5)
    expect(attempt.quorumSize).toBe(3)
    expect(attempt.votesAgainst).toBeInstanceOf(Map)
    expect(attempt.votesAgainst.size).toBeGreaterThanOrEqual(3)
    for (const vote of attempt.votesAgainst.values()) {
      expect(vote).toBeInstanceOf(Error)
      expect(vote.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
    }
  }
  // the holder is undisturbed
  expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
  await lock.release()
})

test('retryCount 0 makes exactly one attempt', async () => {
  const key = uniqueKey('excl-once')
  const lock = await redlock.acquire([key], 10000)
  const error = await redlock.acquire([key], 10000, { retryCount: 0 }).catch((e) => e)
  expect(error).toBeInstanceOf(ResourceLockedError)
  expect(error.attempts.length).toBe(1)
  await lock.release()
})

test('overlapping multi-resource locks are exclusive and leave no partial key behind', async () => {
  const a = uniqueKey('excl-a')
  const b = uniqueKey('excl-b')
  const c = uniqueKey('excl-c')
  const ab = await redlock.acquire([a, b], 10000)
  await heldEverywhere(a, ab.value)
  await heldEverywhere(b, ab.value)
  await expect(other.acquire([b, c], 10000)).rejects.toThrow(ResourceLockedError)
  // all-or-nothing on each node: 'c' was never set (or was undone) anywhere
  await sleep(50)
  expect(await valuesOnAll(urls, c)).toEqual(urls.map(() => null))
  expect(await valuesOnAll(urls, b)).toEqual(urls.map(() => ab.value))
  // a disjoint lock on c alone is fine
  const conly = await other.acquire([c], 5000)
  await conly.release()
  await ab.release()
  // once the release has reached every node (it answers at quorum, and another client's
  // acquire racing its stragglers may find the old value on a node), [b, c] can be taken
  await goneEverywhere(b)
  const bc = await other.acquire([b, c], 5000)
  await heldEverywhere(b, bc.value)
  await heldEverywhere(c, bc.value)
  await bc.release()
  await goneEverywhere(b)
  await goneEverywhere(c)
})

test('locks expire by themselves', async () => {
  const key = uniqueKey('excl-expire')
  const lock = await redlock.acquire([key], 300)
  await expect(other.acquire([key], 5000, { retryCount: 0 })).rejects.toThrow(ResourceLockedError)
  await sleep(400)
  const next = await other.acquire([key], 5000)
  expect(next.value).not.toBe(lock.value)
  await heldEverywhere(key, next.value)
  await next.release()
})

test('a lock is never returned already expired', async () => {
  const key = uniqueKey('excl-never-expired')
  // the competitor holds it for slightly less than one retry pause
  const held = await other.acquire([key], 250)
  const outcome = await redlock
    .acquire([key], 100, { retryCount: 3, retryDelay: 300, retryJitter: 0 })
    .then(
      (lock) => ({ lock, at: Date.now() }),
      (error) => ({ error }),
    )
  if (outcome.lock) {
    expect(outcome.lock.expiration).toBeGreaterThan(outcome.at)
    await outcome.lock.release()
  } else {
    expect(outcome.error).toBeInstanceOf(ExecutionError)
  }
  await held.release()
})

test('a short-lived lock resolves with a future expiration, many times over', async () => {
  for (let i = 0; i < 20; i += 1) {
    const key = uniqueKey('excl-short')
    const lock = await redlock.acquire([key], 50)
    expect(lock.expiration).toBeGreaterThan(Date.now())
    await lock.release()
  }
})

test('a retry does not block on its own key; a foreign value set by hand does block until it lapses', async () => {
  const key = uniqueKey('excl-foreign')
  // someone else's value on a quorum of nodes, expiring in 150 ms
  await Promise.all(urls.slice(0, 3).map((u) => command(u, 'SET', key, 'someone-else', 'PX', 150)))
  const t0 = Date.now()
  const lock = await redlock.acquire([key], 5000, { retryCount: 10, retryDelay: 50, retryJitter: 0 })
  expect(Date.now() - t0).toBeLessThan(5000)
  // at least one attempt failed, and this one then succeeded despite its own
  // earlier writes on nodes 4 and 5
  expect(lock.attempts.length).toBeGreaterThan(1)
  expect(lock.expiration).toBeGreaterThan(Date.now())
  await heldEverywhere(key, lock.value)
  await lock.release()
  await goneEverywhere(key)
})

test('a failed attempt leaves none of its keys behind', async () => {
  const key = uniqueKey('excl-undo')
  // held on 3 nodes by someone else, free on 2: the attempt writes on 2 and must undo them
  await Promise.all(urls.slice(0, 3).map((u) => command(u, 'SET', key, 'someone-else', 'PX', 10000)))
  await expect(redlock.acquire([key], 10000, { retryCount: 1 })).rejects.toThrow(ResourceLockedError)
  await until(
    async () => {
      const values = await valuesOnAll(urls, key)
      return values.slice(3).every((v) => v === null)
    },
    { timeout: 2000, message: 'the failed attempt undone on nodes 4 and 5' },
  )
  expect((await valuesOnAll(urls, key)).slice(0, 3)).toEqual(['someone-else', 'someone-else', 'someone-else'])
  await Promise.all(urls.map((u) => command(u, 'DEL', key)))
})

test('two Redlock instances on the same servers exclude each other', async () => {
  const key = uniqueKey('excl-two')
  const first = await redlock.acquire([key], 10000)
  await expect(other.acquire([key], 10000)).rejects.toThrow(ResourceLockedError)
  await first.release()
  const second = await other.acquire([key], 10000)
  await expect(redlock.acquire([key], 10000)).rejects.toThrow(ResourceLockedError)
  await second.release()
  await goneEverywhere(key)
})

test('concurrent acquires of one resource: at most one wins', async () => {
  const key = uniqueKey('excl-race')
  const contenders = [redlock, other, redlock, other, redlock, other]
  const results = await Promise.allSettled(
    contenders.map((r) => r.acquire([key], 10000, { retryCount: 0 })),
  )
  const winners = results.filter((r) => r.status === 'fulfilled')
  expect(winners.length).toBeLessThanOrEqual(1)
  for (const r of results) {
    if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ExecutionError)
  }
  for (const w of winners) await w.value.release()
  await goneEverywhere(key)
})

test('the exponential retry strategy retries and then acquires', async () => {
  const key = uniqueKey('excl-exponential')
  const settings = { retryStrategy: 'exponential', retryDelay: 10, maxRetryDelay: 40, retryJitter: 0 }
  const held = await other.acquire([key], 10000)
  const t0 = Date.now()
  const error = await redlock.acquire([key], 5000, { ...settings, retryCount: 4 }).catch((e) => e)
  const elapsed = Date.now() - t0
  expect(error).toBeInstanceOf(ResourceLockedError)
  // 1 + 4 retries
  expect(error.attempts.length).toBe(5)
  // pauses 10 + 20 + 40 + 40 (capped): no hang
  expect(elapsed).toBeLessThan(3000)

  // released while the exponential retries run: the waiter gets it
  setTimeout(() => held.release(), 100)
  const lock = await redlock.acquire([key], 5000, { ...settings, retryCount: 20 })
  expect(lock.attempts.length).toBeGreaterThan(1)
  await heldEverywhere(key, lock.value)
  await lock.release()
})
