'use strict'

// node-redlock v5's API shape (also @sesamecare-oss/redlock) against the 5 shared servers.

const Redlock = require('..')
const {
  Lock,
  ExecutionError,
  ResourceLockedError,
  LockExpiredError,
  RedlockClosedError,
  LockError,
} = require('..')
const { Conn, command, until, valuesOnAll, pttlsOnAll } = require('./support/servers')
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

describe('exports', () => {
  test('require() is the Redlock class, with default and named exports', () => {
    expect(typeof Redlock).toBe('function')
    expect(Redlock.default).toBe(Redlock)
    expect(Redlock.Redlock).toBe(Redlock)
    for (const C of [Lock, ExecutionError, ResourceLockedError, LockExpiredError, RedlockClosedError, LockError]) {
      expect(typeof C).toBe('function')
    }
    expect(ResourceLockedError.prototype).toBeInstanceOf(ExecutionError)
    expect(LockExpiredError.prototype).toBeInstanceOf(ExecutionError)
    expect(RedlockClosedError.prototype).toBeInstanceOf(ExecutionError)
    expect(ExecutionError.prototype).toBeInstanceOf(Error)
    expect(new Redlock(urls)).toBeInstanceOf(Redlock)
  })

  test('Lock cannot be constructed by hand', () => {
    expect(() => new Lock()).toThrow(TypeError)
  })
})

describe('Jest-realm errors (SPEC §4)', () => {
  test('new Redlock([]) throws a TypeError of this realm', () => {
    expect(() => new Redlock([])).toThrow(TypeError)
    let caught
    try {
      new Redlock([])
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(TypeError)
    expect(caught).toBeInstanceOf(Error)
    expect(typeof caught.code).toBe('string')
  })

  test('a bad duration is a RangeError of this realm, and nothing is written', async () => {
    const key = uniqueKey('v5-bad-duration')
    const error = await redlock.acquire([key], -5).catch((e) => e)
    expect(error instanceof RangeError).toBe(true)
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('ERR_OUT_OF_RANGE')
    await expect(redlock.acquire([key], 0)).rejects.toBeInstanceOf(RangeError)
    await expect(redlock.acquire([key], 'abc')).rejects.toThrow(TypeError)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
  })

  test('ResourceLockedError passes rejects.toThrow(ExecutionError) and rejects.toBeInstanceOf(Error)', async () => {
    const key = uniqueKey('v5-realm')
    const lock = await redlock.acquire([key], 5000)
    try {
      await expect(redlock.acquire([key], 5000)).rejects.toThrow(ExecutionError)
      await expect(redlock.acquire([key], 5000)).rejects.toThrow(ResourceLockedError)
      await expect(redlock.acquire([key], 5000)).rejects.toBeInstanceOf(Error)
      await expect(redlock.acquire([key], 5000)).rejects.toMatchObject({
        code: 'ERR_REDLOCK_RESOURCE_LOCKED',
      })
    } finally {
      await lock.release()
    }
  })
})

describe('acquire', () => {
  test('returns a Lock with resources, value, expiration and attempts; every node holds it', async () => {
    const key = uniqueKey('v5-acquire')
    const ttl = 10000
    const before = Date.now()
    const lock = await redlock.acquire([key], ttl)
    const after = Date.now()
    try {
      expect(lock).toBeInstanceOf(Lock)
      expect(lock.resources).toEqual([key])
      expect(lock.value).toMatch(/^[0-9a-f]{32}$/)
      // Validity = ttl − elapsed − drift (ttl·0.01 + 2 ms), as a wall-clock instant.
      expect(lock.expiration).toBeGreaterThan(after)
      expect(lock.expiration).toBeLessThanOrEqual(before + ttl - ttl * 0.01 + 5)
      expect(lock.expiration).toBeGreaterThanOrEqual(before + ttl - ttl * 0.01 - 2 - (after - before) - 50)

      expect(Array.isArray(lock.attempts)).toBe(true)
      expect(lock.attempts.length).toBe(1)
      const [attempt] = lock.attempts
      expect(attempt.membershipSize).toBe(5)
      expect(attempt.quorumSize).toBe(3)
      expect(attempt.votesFor).toBeInstanceOf(Set)
      expect(attempt.votesAgainst).toBeInstanceOf(Map)
      expect(attempt.votesFor.size).toBeGreaterThanOrEqual(3)
      expect(attempt.votesAgainst.size).toBe(0)

      await heldEverywhere(key, lock.value)
      const pttls = await pttlsOnAll(urls, key)
      for (const p of pttls) {
        expect(p).toBeGreaterThan(ttl - 2000)
        expect(p).toBeLessThanOrEqual(ttl)
      }
    } finally {
      await lock.release()
    }
  })

  test('two locks get different values', async () => {
    const [a, b] = await Promise.all([
      redlock.acquire([uniqueKey('v5-value-a')], 5000),
      redlock.acquire([uniqueKey('v5-value-b')], 5000),
    ])
    expect(a.value).not.toBe(b.value)
    await Promise.all([a.release(), b.release()])
  })

  test('a multi-resource lock sets every key on every node', async () => {
    const keys = [uniqueKey('v5-multi-a'), uniqueKey('v5-multi-b'), uniqueKey('v5-multi-c')]
    const lock = await redlock.acquire(keys, 5000)
    expect(lock.resources).toEqual(keys)
    for (const key of keys) await heldEverywhere(key, lock.value)
    const conn = new Conn(urls[2])
    try {
      const ttls = await Promise.all(keys.map((k) => conn.send('PTTL', k)))
      for (const t of ttls) expect(t).toBeGreaterThan(3000)
    } finally {
      conn.close()
    }
    await lock.release()
    for (const key of keys) await goneEverywhere(key)
  })
})

describe('extend', () => {
  test('lock.extend(d) returns the same Lock, later expiration, longer PTTLs on every node', async () => {
    const key = uniqueKey('v5-extend')
    const lock = await redlock.acquire([key], 2000)
    await heldEverywhere(key, lock.value)
    const before = await pttlsOnAll(urls, key)
    const oldExpiration = lock.expiration
    await sleep(50)
    const extended = await lock.extend(10000)
    expect(extended).toBe(lock)
    expect(lock.expiration).toBeGreaterThan(oldExpiration + 5000)
    expect(lock.expiration).toBeGreaterThan(Date.now() + 8000)
    expect(lock.attempts.length).toBeGreaterThanOrEqual(1)
    expect(lock.attempts[0].votesFor).toBeInstanceOf(Set)
    await until(
      async () => (await pttlsOnAll(urls, key)).every((p) => p > 8000),
      { timeout: 2000, message: 'PTTL > 8000 on every node' },
    )
    const after = await pttlsOnAll(urls, key)
    after.forEach((p, i) => expect(p).toBeGreaterThan(before[i]))
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
    await lock.release()
  })

  test("a lock's attempts are read once and stay the same object until an extension replaces them", async () => {
    const key = uniqueKey('v5-attempts')
    const lock = await redlock.acquire([key], 5000)
    const acquired = lock.attempts
    expect(lock.attempts).toBe(acquired)
    expect(acquired[0].votesFor.size).toBeGreaterThanOrEqual(3)
    await lock.extend(5000)
    expect(lock.attempts).not.toBe(acquired)
    expect(lock.attempts[0].votesFor.size).toBeGreaterThanOrEqual(3)
    const released = await lock.release()
    expect(Object.keys(released).sort()).toEqual(['attempts', 'nodesHeld'])
    expect(released.attempts).toBe(released.attempts)
    expect(JSON.parse(JSON.stringify(released)).attempts).toHaveLength(1)
  })

  test("attempts first read long after the operation are still that operation's votes", async () => {
    const key = uniqueKey('v5-attempts-late')
    const lock = await redlock.acquire([key], 5000)
    const released = await lock.release()
    // Nothing was read until now: the acquisition's and the release's votes are both kept.
    // (Each is decided at quorum, so a node that answered later may be in neither list.)
    const nodes = urls.map((u) => u.replace('redis://', '') + '/0')
    for (const { attempts } of [lock, released]) {
      expect(attempts).toHaveLength(1)
      expect(attempts[0]).toMatchObject({ membershipSize: 5, quorumSize: 3 })
      expect(attempts[0].votesFor.size).toBeGreaterThanOrEqual(3)
      expect(nodes).toEqual(expect.arrayContaining([...attempts[0].votesFor]))
      expect(attempts[0].votesAgainst.size).toBe(0)
    }
    expect(released.nodesHeld).toBeGreaterThanOrEqual(3)
    // Both stay assignable, as plain data properties would be.
    lock.attempts = []
    released.attempts = []
    expect(lock.attempts).toEqual([])
    expect(released.attempts).toEqual([])
  })

  test("a granted lock's attempts keep the votes against of an earlier attempt", async () => {
    const key = uniqueKey('v5-attempts-against')
    // Another holder on 3 of 5 nodes, for 100 ms: the first attempt is refused, a retry gets in.
    await Promise.all(urls.slice(0, 3).map((u) => command(u, 'SET', key, 'someone-else', 'PX', '100')))
    const lock = await redlock.acquire([key], 5000, { retryCount: 20, retryDelay: 50, retryJitter: 0 })
    expect(lock.attempts.length).toBeGreaterThanOrEqual(2)
    const [first] = lock.attempts
    expect(first.votesAgainst.size).toBeGreaterThanOrEqual(3)
    for (const [node, error] of first.votesAgainst) {
      expect(error).toBeInstanceOf(ResourceLockedError)
      expect(error.node).toBe(node)
    }
    const last = lock.attempts[lock.attempts.length - 1]
    expect(last.votesFor.size).toBeGreaterThanOrEqual(3)
    await lock.release()
  })

  test('attempts read after an extension are that extension’s', async () => {
    const key = uniqueKey('v5-attempts-extended')
    const lock = await redlock.acquire([key], 5000)
    await lock.extend(5000)
    expect(lock.attempts).toHaveLength(1)
    expect(lock.attempts[0].votesFor.size).toBeGreaterThanOrEqual(3)
    await lock.release()
  })

  test('redlock.extend(lock, d) updates in place too', async () => {
    const key = uniqueKey('v5-extend-redlock')
    const lock = await redlock.acquire([key], 2000)
    const result = await redlock.extend(lock, 6000)
    expect(result).toBe(lock)
    expect(lock.expiration).toBeGreaterThan(Date.now() + 4000)
    await lock.release()
  })

  test('extending a released lock rejects with LockExpiredError', async () => {
    const key = uniqueKey('v5-extend-released')
    const lock = await redlock.acquire([key], 5000)
    await lock.release()
    const error = await lock.extend(5000).catch((e) => e)
    expect(error).toBeInstanceOf(LockExpiredError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error).toBeInstanceOf(Error)
    expect(error.code).toBe('ERR_REDLOCK_LOCK_EXPIRED')
    await expect(redlock.extend(lock, 5000)).rejects.toThrow(LockExpiredError)
    // nothing came back
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
  })

  test('extending an expired lock rejects with LockExpiredError and sets nothing', async () => {
    const key = uniqueKey('v5-extend-expired')
    const lock = await redlock.acquire([key], 150)
    await sleep(300)
    await expect(lock.extend(5000)).rejects.toThrow(LockExpiredError)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
  })
})

describe('release', () => {
  test('lock.release() resolves { nodesHeld, attempts } and removes the key everywhere', async () => {
    const key = uniqueKey('v5-release')
    const lock = await redlock.acquire([key], 5000)
    await heldEverywhere(key, lock.value)
    const result = await lock.release()
    expect(result.nodesHeld).toBeGreaterThanOrEqual(3)
    expect(result.nodesHeld).toBeLessThanOrEqual(5)
    expect(Array.isArray(result.attempts)).toBe(true)
    expect(result.attempts[0].membershipSize).toBe(5)
    expect(result.attempts[0].votesFor).toBeInstanceOf(Set)
    expect(result.attempts[0].votesAgainst).toBeInstanceOf(Map)
    await goneEverywhere(key)
  })

  test('redlock.release(lock) works; releasing again resolves with nodesHeld 0', async () => {
    const key = uniqueKey('v5-release-twice')
    const lock = await redlock.acquire([key], 5000)
    await heldEverywhere(key, lock.value)
    const first = await redlock.release(lock)
    expect(first.nodesHeld).toBeGreaterThanOrEqual(3)
    await goneEverywhere(key)
    const second = await redlock.release(lock)
    expect(second.nodesHeld).toBe(0)
    expect(Array.isArray(second.attempts)).toBe(true)
  })

  test('releasing an expired lock resolves', async () => {
    const key = uniqueKey('v5-release-expired')
    const lock = await redlock.acquire([key], 100)
    await sleep(250)
    const result = await lock.release()
    expect(result.nodesHeld).toBe(0)
  })

  test('release does not delete a key that now holds another value', async () => {
    const key = uniqueKey('v5-release-foreign')
    const lock = await redlock.acquire([key], 100)
    await sleep(250)
    const other = await redlock.acquire([key], 5000)
    await heldEverywhere(key, other.value)
    await lock.release()
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => other.value))
    await other.release()
  })

  test('lock[Symbol.asyncDispose]() releases', async () => {
    const key = uniqueKey('v5-dispose')
    const lock = await redlock.acquire([key], 5000)
    expect(typeof lock[Symbol.asyncDispose]).toBe('function')
    await heldEverywhere(key, lock.value)
    await lock[Symbol.asyncDispose]()
    await goneEverywhere(key)
  })
})

describe('using', () => {
  test('using(resources, duration, settings, routine): result returned, held during, released after', async () => {
    const key = uniqueKey('v5-using')
    let seenSignal
    const result = await redlock.using([key], 5000, { retryCount: 1 }, async (signal) => {
      seenSignal = signal
      const values = await valuesOnAll(urls, key)
      expect(values.filter((v) => v !== null).length).toBeGreaterThanOrEqual(3)
      expect(values.every((v) => v === null || /^[0-9a-f]{32}$/.test(v))).toBe(true)
      return 'the result'
    })
    expect(result).toBe('the result')
    expect(seenSignal).toBeInstanceOf(AbortSignal)
    expect(seenSignal.aborted).toBe(false)
    await goneEverywhere(key)
  })

  test('using(resources, duration, routine) without settings', async () => {
    const key = uniqueKey('v5-using-nosettings')
    const result = await redlock.using([key], 5000, async () => {
      await until(async () => (await command(urls[0], 'EXISTS', key)) === 1, { timeout: 2000 })
      return 42
    })
    expect(result).toBe(42)
    await goneEverywhere(key)
  })

  test('the lock is extended automatically while the routine outlives the duration', async () => {
    const key = uniqueKey('v5-using-extend')
    let missing = 0
    let samples = 0
    const result = await redlock.using([key], 1000, async (signal) => {
      await heldEverywhere(key, (await valuesOnAll(urls, key)).find((v) => v !== null))
      const end = Date.now() + 1600
      while (Date.now() < end) {
        samples += 1
        const counts = await Promise.all(urls.map((u) => command(u, 'EXISTS', key)))
        if (counts.some((c) => c !== 1)) missing += 1
        await sleep(50)
      }
      return signal.aborted
    })
    expect(result).toBe(false)
    expect(samples).toBeGreaterThan(5)
    // the key existed on every node throughout (it would have expired after 1000 ms)
    expect(missing).toBe(0)
    await goneEverywhere(key)
  })

  test("the routine's error propagates unchanged and the lock is still released", async () => {
    const key = uniqueKey('v5-using-throw')
    class Mine extends Error {}
    const mine = new Mine('boom')
    const error = await redlock
      .using([key], 5000, async () => {
        await heldSomewhere(key)
        throw mine
      })
      .catch((e) => e)
    expect(error).toBe(mine)
    await goneEverywhere(key)
  })

  test('a held resource makes using reject with ResourceLockedError without running the routine', async () => {
    const key = uniqueKey('v5-using-held')
    const lock = await redlock.acquire([key], 5000)
    const routine = jest.fn()
    await expect(redlock.using([key], 5000, routine)).rejects.toThrow(ResourceLockedError)
    expect(routine).not.toHaveBeenCalled()
    await lock.release()
  })

  test('automaticExtensionThreshold too close to the duration rejects with RangeError', async () => {
    const key = uniqueKey('v5-using-threshold')
    const routine = jest.fn()
    await expect(
      redlock.using([key], 1000, { automaticExtensionThreshold: 950 }, routine),
    ).rejects.toThrow(RangeError)
    await expect(
      redlock.using([key], 500, { automaticExtensionThreshold: 500 }, routine),
    ).rejects.toBeInstanceOf(RangeError)
    // default threshold 500 with duration 550
    await expect(redlock.using([key], 550, routine)).rejects.toThrow(RangeError)
    expect(routine).not.toHaveBeenCalled()
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
  })
})

async function heldSomewhere(key) {
  return until(async () => (await command(urls[0], 'EXISTS', key)) === 1, { timeout: 2000 })
}

describe('quit', () => {
  test('quit() resolves and afterwards acquire rejects with RedlockClosedError', async () => {
    const own = new Redlock(urls, FAST)
    const key = uniqueKey('v5-quit')
    const lock = await own.acquire([key], 5000)
    await lock.release()
    await expect(own.quit()).resolves.toBeUndefined()
    const error = await own.acquire([uniqueKey('v5-quit-after')], 5000).catch((e) => e)
    expect(error).toBeInstanceOf(RedlockClosedError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_CLOSED')
    await expect(own.acquire([key], 5000)).rejects.toThrow(RedlockClosedError)
  })

  test('quit() on a Redlock that never connected resolves', async () => {
    const own = new Redlock(urls)
    await expect(own.quit()).resolves.toBeUndefined()
  })
})
