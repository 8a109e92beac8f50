'use strict'

// Conformance with the peers' three-server suites (node-redlock's `multi.test.ts`), written
// anew from what they observe: a quorum of three servers given as ioredis clients (in a
// Set, as node-redlock v5 allows), one or two of them holding the key for somebody else.

const IORedis = require('ioredis')
const Redlock = require('../..')
const { ExecutionError, ResourceLockedError } = Redlock
const { sharedUrls, uniqueKey } = require('../support/shared')
const { track, place, closeAll } = require('./targets')
const { until } = require('../support/servers')

const DURATION = Math.floor(Number.MAX_SAFE_INTEGER / 10)
/**
 * Whether a key's PTTL says it was set to expire `duration` ms after it was written: never more,
 * and less only by the time since (a generous bound: the machine is shared and busy, while a
 * wrong TTL at these magnitudes would be off by far more).
 */
const setFor = (pttl, duration) => pttl <= duration && pttl > duration - 5000

const urls = sharedUrls().slice(0, 3)
let viewers
let key

beforeAll(() => {
  viewers = urls.map((u) => track(new IORedis(place(u))))
})

afterAll(closeAll)

beforeEach(() => {
  key = `{${uniqueKey('conformance-multi')}}b`
})

/**
 * Waits until `check(viewer)` holds on each of `which` servers: the library answers at
 * quorum, and the last server's write may land a moment later.
 */
function onEach(which, check, message) {
  return until(async () => (await Promise.all(which.map(check))).every(Boolean), { timeout: 3000, message })
}

const redlockOnAll = () => new Redlock(new Set(urls.map((u) => track(new IORedis(place(u))))))

test('a lock is set, extended and released on all three servers', async () => {
  const redlock = redlockOnAll()
  let lock = await redlock.acquire([key], DURATION)
  await onEach(viewers, async (v) => (await v.get(key)) === lock.value, 'the lock on every server')
  for (const v of viewers) expect(setFor(await v.pttl(key), DURATION)).toBe(true)
  lock = await lock.extend(3 * DURATION)
  await onEach(viewers, async (v) => setFor(await v.pttl(key), 3 * DURATION), 'extended on every server')
  await lock.release()
  await onEach(viewers, async (v) => (await v.get(key)) === null, 'released on every server')
  await redlock.quit()
})

test('a minority holding the key for another does not stop the lock, and is left untouched', async () => {
  const [a, b, c] = viewers
  await c.set(key, 'other')
  const redlock = redlockOnAll()
  let lock = await redlock.acquire([key], DURATION)
  expect(await a.get(key)).toBe(lock.value)
  expect(await b.get(key)).toBe(lock.value)
  expect(await c.get(key)).toBe('other')
  expect(await c.pttl(key)).toBe(-1)
  lock = await lock.extend(3 * DURATION)
  await onEach([a, b], async (v) => setFor(await v.pttl(key), 3 * DURATION), 'extended on a and b')
  expect(await c.get(key)).toBe('other')
  expect(await c.pttl(key)).toBe(-1)
  await lock.release()
  await onEach([a, b], async (v) => (await v.get(key)) === null, 'released on a and b')
  expect(await c.get(key)).toBe('other')
  await c.del(key)
  await redlock.quit()
})

test('a majority held by two other holders fails after 11 attempts and leaves no key behind', async () => {
  const [a, b, c] = viewers
  await b.set(key, 'other1')
  await c.set(key, 'other2')
  const redlock = redlockOnAll()
  const error = await redlock.acquire([key], DURATION).then(
    () => {
      throw new Error('expected a rejection')
    },
    (e) => e,
  )
  expect(error).toBeInstanceOf(ExecutionError)
  expect(error).toBeInstanceOf(ResourceLockedError)
  expect(error.attempts).toHaveLength(11)
  // The last attempt's undo may still be on its way to a.
  await onEach([a], async (v) => (await v.get(key)) === null, 'nothing left on a')
  expect(await b.get(key)).toBe('other1')
  expect(await c.get(key)).toBe('other2')
  for (const attempt of error.attempts) {
    expect(attempt.membershipSize).toBe(3)
    expect(attempt.quorumSize).toBe(2)
    for (const vote of attempt.votesAgainst.values()) {
      expect(vote).toBeInstanceOf(ResourceLockedError)
      expect(vote.message).toBe('The operation was applied to: 0 of the 1 requested resources.')
    }
  }
  await Promise.all([b.del(key), c.del(key)])
  await redlock.quit()
})
