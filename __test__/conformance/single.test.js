'use strict'

// Conformance with the peers' single-server suites (node-redlock's `single.test.ts`,
// sesame's `system.spec.ts`), written anew from what they observe: one Redis server or one
// Redis Cluster, ioredis client objects, default settings. What a migrated user's own tests
// see: key values and PTTLs, attempt counts, error classes and node-redlock's messages.

const Redlock = require('../..')
const { ExecutionError, ResourceLockedError } = Redlock
const { sharedUrls, uniqueKey, sleep } = require('../support/shared')
const { startServers, stopServers } = require('../support/servers')
const { instance, cluster, unreachable, closeAll } = require('./targets')

const DURATION = Math.floor(Number.MAX_SAFE_INTEGER / 10)
const NOT_INTEGER = 'Duration must be an integer value in milliseconds.'
const APPLIED_TO_NONE = (n) => `The operation was applied to: 0 of the ${n} requested resources.`

/** PTTLs compared as the peers compare them: equal to within the same 200 ms step. */
/**
 * Whether a key's PTTL says it was set to expire `duration` ms after it was written: never more,
 * and less only by the time since (a generous bound: the machine is shared and busy, while a
 * wrong TTL at these magnitudes would be off by far more).
 */
const setFor = (pttl, duration) => pttl <= duration && pttl > duration - 5000

/** The rejection of `promise`, which must reject. */
async function rejection(promise) {
  return promise.then(
    () => {
      throw new Error('expected a rejection')
    },
    (error) => error,
  )
}

afterAll(closeAll)

const url = sharedUrls()[0]

describe.each([instance(url, 0), instance(url, 2), cluster()])('$name', (target) => {
  let viewer
  let tag
  const key = (name) => `{${tag}}${name}`

  beforeAll(async () => {
    await target.start()
    viewer = target.viewer()
  }, 60000)

  afterAll(() => target.stop())

  beforeEach(() => {
    tag = uniqueKey('conformance')
  })

  test('a non-integer duration is refused in node-redlock words, and nothing is written', async () => {
    const redlock = target.redlock()
    for (const duration of [Number.MAX_SAFE_INTEGER / 10, 1.5, NaN]) {
      const error = await rejection(redlock.acquire([key('float')], duration))
      expect(error).toBeInstanceOf(RangeError)
      expect(error).toBeInstanceOf(Error)
      expect(error.message).toBe(NOT_INTEGER)
    }
    const error = await rejection(redlock.using([key('float')], 1.5, async () => {}))
    expect(error.message).toBe(NOT_INTEGER)
    expect(await viewer.get(key('float'))).toBeNull()
    await redlock.quit()
  })

  test('a lock of MAX_SAFE_INTEGER / 10 ms is set, extended threefold and released', async () => {
    const redlock = target.redlock()
    let lock = await redlock.acquire([key('a')], DURATION)
    expect(await viewer.get(key('a'))).toBe(lock.value)
    expect(setFor(await viewer.pttl(key('a')), DURATION)).toBe(true)
    expect(lock.expiration).toBeGreaterThan(Date.now() + DURATION / 2)

    const extended = await lock.extend(3 * DURATION)
    expect(extended).toBe(lock)
    lock = extended
    expect(await viewer.get(key('a'))).toBe(lock.value)
    expect(setFor(await viewer.pttl(key('a')), 3 * DURATION)).toBe(true)

    await lock.release()
    expect(await viewer.get(key('a'))).toBeNull()
    await redlock.quit()
  })

  test('a multi-resource lock is set, extended and released on every key', async () => {
    const redlock = target.redlock()
    const keys = [key('a1'), key('a2')]
    let lock = await redlock.acquire(keys, DURATION)
    for (const k of keys) {
      expect(await viewer.get(k)).toBe(lock.value)
      expect(setFor(await viewer.pttl(k), DURATION)).toBe(true)
    }
    lock = await lock.extend(3 * DURATION)
    for (const k of keys) {
      expect(await viewer.get(k)).toBe(lock.value)
      expect(setFor(await viewer.pttl(k), 3 * DURATION)).toBe(true)
    }
    await lock.release()
    for (const k of keys) expect(await viewer.get(k)).toBeNull()
    await redlock.quit()
  })

  test('with the server unreachable, acquisition fails after retryCount + 1 = 11 attempts', async () => {
    const redlock = new Redlock([await unreachable(target.name === 'cluster' ? 'cluster' : 'instance')])
    const error = await rejection(redlock.acquire([key('b')], DURATION))
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error).not.toBeInstanceOf(ResourceLockedError)
    expect(error.attempts).toHaveLength(11)
    for (const attempt of await Promise.all(error.attempts)) {
      expect(attempt.votesFor.size).toBe(0)
      expect(attempt.votesAgainst.size).toBe(1)
      for (const vote of attempt.votesAgainst.values()) {
        expect(vote).toBeInstanceOf(Error)
        expect(vote).not.toBeInstanceOf(ResourceLockedError)
        // node-redlock shows its client's words here ("Connection is closed."); ours say
        // the connection was refused.
        expect(vote.message).toMatch(/refused|connect/i)
      }
    }
    await redlock.quit()
  })

  test('a lock expires on its own, and the resource can be locked again', async () => {
    const redlock = target.redlock()
    const lock = await redlock.acquire([key('d')], 200)
    expect(await viewer.get(key('d'))).toBe(lock.value)
    await sleep(300)
    const again = await redlock.acquire([key('d')], 200)
    expect(await viewer.get(key('d'))).toBe(again.value)
    await again.release()
    expect(await viewer.get(key('d'))).toBeNull()
    await redlock.quit()
  })

  test('a held resource is refused after 11 attempts, each vote a ResourceLockedError in node-redlock words', async () => {
    const redlock = target.redlock()
    const lock = await redlock.acquire([key('c')], DURATION)
    const error = await rejection(redlock.acquire([key('c')], DURATION))
    expect(error).toBeInstanceOf(ResourceLockedError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.attempts).toHaveLength(11)
    for (const attempt of error.attempts) {
      expect(attempt.votesAgainst.size).toBe(1)
      for (const vote of attempt.votesAgainst.values()) {
        expect(vote).toBeInstanceOf(ResourceLockedError)
        expect(vote.message).toBe(APPLIED_TO_NONE(1))
      }
    }
    expect(await viewer.get(key('c'))).toBe(lock.value)
    await lock.release()
    expect(await viewer.get(key('c'))).toBeNull()
    await redlock.quit()
  })

  test('overlapping multi-resource locks exclude each other, and the refused one sets nothing', async () => {
    const redlock = target.redlock()
    const lock = await redlock.acquire([key('c1'), key('c2')], DURATION)
    const error = await rejection(redlock.acquire([key('c2'), key('c3')], DURATION))
    expect(error).toBeInstanceOf(ResourceLockedError)
    expect(await viewer.get(key('c1'))).toBe(lock.value)
    expect(await viewer.get(key('c2'))).toBe(lock.value)
    expect(await viewer.get(key('c3'))).toBeNull()
    expect(error.attempts).toHaveLength(11)
    for (const attempt of error.attempts) {
      for (const vote of attempt.votesAgainst.values()) {
        expect(vote).toBeInstanceOf(ResourceLockedError)
        expect(vote.message).toBe(APPLIED_TO_NONE(2))
      }
    }
    await lock.release()
    for (const k of ['c1', 'c2', 'c3']) expect(await viewer.get(key(k))).toBeNull()
    await redlock.quit()
  })

  test('using() acquires, extends while the routine runs past the duration, and releases', async () => {
    const redlock = target.redlock()
    let seen
    const value = await redlock.using([key('x')], 500, { automaticExtensionThreshold: 200 }, async (signal, context) => {
      const held = await viewer.get(key('x'))
      expect(typeof held).toBe('string')
      await sleep(700)
      expect(signal.aborted).toBe(false)
      expect(signal.error).toBeUndefined()
      expect(await viewer.get(key('x'))).toBe(held)
      // sesame's context: the lock, and how many times it was extended.
      seen = { value: context.lock.value, extensions: context.extensions }
      return held
    })
    expect(seen.value).toBe(value)
    expect(seen.extensions).toBeGreaterThanOrEqual(1)
    expect(await viewer.get(key('x'))).toBeNull()
    await redlock.quit()
  })

  test('using() is exclusive: concurrent routines on one resource never overlap', async () => {
    const redlock = target.redlock()
    let inside = 0
    let most = 0
    const routine = async () => {
      inside += 1
      most = Math.max(most, inside)
      const held = await viewer.get(key('y'))
      await sleep(300)
      expect(await viewer.get(key('y'))).toBe(held)
      inside -= 1
      return held
    }
    const settings = { automaticExtensionThreshold: 200, retryDelay: 100 }
    const values = await Promise.all([
      redlock.using([key('y')], 500, settings, routine),
      redlock.using([key('y')], 500, settings, routine),
    ])
    expect(most).toBe(1)
    expect(values[0]).not.toBe(values[1])
    expect(await viewer.get(key('y'))).toBeNull()
    await redlock.quit()
  })

  test('retryCount n means n + 1 attempts, also when release notices keep waking the waiter', async () => {
    const holder = target.redlock()
    const waiter = target.redlock()
    const lock = await holder.acquire([key('r')], 30000)
    // Release notices for the held key, as another process's releases would send them: each
    // wakes the waiter, which finds the key still held. None of them may add an attempt.
    const noise = setInterval(() => viewer.publish(`redlock-rs:released:${key('r')}`, 'another-lock').catch(() => {}), 10)
    try {
      for (const retryCount of [0, 1, 3]) {
        const error = await rejection(waiter.acquire([key('r')], 1000, { retryCount, retryDelay: 150, retryJitter: 0 }))
        expect(error).toBeInstanceOf(ResourceLockedError)
        expect(error.attempts).toHaveLength(retryCount + 1)
      }
    } finally {
      clearInterval(noise)
    }
    expect(await viewer.get(key('r'))).toBe(lock.value)
    await lock.release()
    await Promise.all([holder.quit(), waiter.quit()])
  })
})

describe('settings an acquisition was given', () => {
  test("lock.extend() reuses them, as sesame's Lock does", async () => {
    const servers = await startServers(3)
    const redlock = new Redlock(servers.map((server) => server.url))
    try {
      const key = uniqueKey('conformance-extend')
      const lock = await redlock.acquire([key], 30000, { retryCount: 1, retryDelay: 10, retryJitter: 0 })
      // Two of three nodes gone: the extension cannot reach a quorum, and gives up after the
      // acquisition's one retry (2 attempts), not the constructor's ten (11).
      await Promise.all(servers.slice(1).map((server) => server.kill()))
      const error = await rejection(lock.extend(30000))
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.code).toBe('ERR_REDLOCK_QUORUM')
      expect(error.attempts).toHaveLength(2)
      // Given settings still win.
      const again = await rejection(lock.extend(30000, { retryCount: 0 }))
      expect(again.attempts).toHaveLength(1)
    } finally {
      await redlock.quit()
      await stopServers(servers)
    }
  })
})
