'use strict'

// Semaphores against real servers: at most K valid holders however the nodes are split,
// several permits at once all or none, the Lock semantics of a mutex, and bad input refused
// before anything is sent.

const IORedis = require('ioredis')
const { RedlockSemaphore } = require('redis-semaphore')
const Redlock = require('..')
const { ExecutionError, ResourceLockedError, Lock, Semaphore } = Redlock
const { command, until, valuesOnAll } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey } = require('./support/shared')

const TTL = 10000
// For steps right after nodes are let back in: a failed connect is not retried for 100 ms.
const RETRIES = { retryCount: 40, retryDelay: 50, retryJitter: 0 }

let fleet = []
let urls = []
let direct = []
const redlocks = []

function redlock(settings) {
  const rl = new Redlock(urls, { retryCount: 0, requestTimeout: 300, ...settings })
  redlocks.push(rl)
  return rl
}

/** Cuts nodes `which` off through their proxies: open connections dropped, new ones refused. */
function cut(...which) {
  for (const i of which) {
    fleet[i].proxy.refuse()
    fleet[i].proxy.drop()
  }
}

function heal(...which) {
  for (const i of which) fleet[i].proxy.refuse(false)
}

/** The slots of semaphore `key` with `permits` permits, as the servers name them. */
const slots = (key, permits) => Array.from({ length: permits }, (_, i) => `{${key}}:permit:${i + 1}`)

/** On which nodes each value holds a slot of `key`: value -> sorted node indexes. */
async function holders(key, permits) {
  const seen = new Map()
  for (const slot of slots(key, permits)) {
    const values = await valuesOnAll(direct, slot)
    values.forEach((value, node) => {
      if (value === null) return
      seen.set(value, [...(seen.get(value) ?? []), node])
    })
  }
  return seen
}

beforeAll(async () => {
  fleet = await startFleet(5, { proxied: true, persistent: false })
  urls = fleet.map((n) => n.url)
  direct = fleet.map((n) => n.directUrl)
}, 30000)

afterEach(async () => {
  await Promise.all(redlocks.splice(0).map((rl) => rl.quit()))
  for (const node of fleet) await node.heal()
  heal(0, 1, 2, 3, 4)
})

afterAll(async () => {
  await stopFleet(fleet)
})

describe('never more than K holders', () => {
  // With 5 nodes and 2 permits: A on {1,2,3}, B on {1,4,5}, C on {2,3,4}. No node has more
  // than two holders, yet each of the three holds a majority (nodes numbered from 1 here,
  // indexes from 0 below).
  test('the A/B/C split leaves the third client refused', async () => {
    const key = uniqueKey('sem-abc')
    const clients = [redlock(RETRIES), redlock(RETRIES), redlock({ ...RETRIES, retryCount: 5 })]
    const [a, b, c] = clients.map((rl) => rl.semaphore(key, 2))

    cut(3, 4)
    const lockA = await a.acquire(TTL)
    heal(3, 4)
    cut(1, 2)
    const lockB = await b.acquire(TTL)
    heal(1, 2)
    cut(0, 4)
    const third = c.acquire(TTL)
    await expect(third).rejects.toThrow(ExecutionError)
    heal(0, 4)

    const seen = await holders(key, 2)
    expect(seen.get(lockA.value)).toEqual([0, 1, 2])
    expect(seen.get(lockB.value)).toEqual([0, 3, 4])
    expect(lockA.resources).not.toEqual(lockB.resources)
    // C holds nothing anywhere: its attempts were undone.
    expect(seen.size).toBe(2)
    expect(lockA.valid && lockB.valid).toBe(true)
  }, 30000)

  test("the same split gives redis-semaphore's RedlockSemaphore a third holder", async () => {
    const key = uniqueKey('sem-abc-peer')
    const clients = []
    // Each client of a phase connects once: commands to a cut node fail at once instead of
    // waiting to run when it is back, and nothing reconnects after the phase.
    async function semaphoreOver(reachable) {
      const group = urls.map((url) => {
        const client = new IORedis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => null })
        client.on('error', () => {}) // a cut node's connection errors, expected here
        clients.push(client)
        return client
      })
      await until(() => reachable.every((i) => group[i].status === 'ready'), { timeout: 5000 })
      return new RedlockSemaphore(group, key, 2, { lockTimeout: TTL, refreshInterval: 0, acquireAttemptsLimit: 1, acquireTimeout: 500 })
    }
    try {
      cut(3, 4)
      const a = await semaphoreOver([0, 1, 2])
      expect(await a.tryAcquire()).toBe(true)
      heal(3, 4)
      cut(1, 2)
      const b = await semaphoreOver([0, 3, 4])
      expect(await b.tryAcquire()).toBe(true)
      heal(1, 2)
      cut(0, 4)
      const c = await semaphoreOver([1, 2, 3])
      // The third holder of a 2-permit semaphore: the scheme does not exclude it.
      expect(await c.tryAcquire()).toBe(true)
    } finally {
      heal(0, 1, 2, 3, 4)
      // (A client that lost its connection to a cut node keeps a 2 s timer of ioredis's own.)
      for (const client of clients) client.disconnect()

    }
  }, 30000)

  test('with a minority of nodes down, permits are still granted, up to K', async () => {
    const key = uniqueKey('sem-minority')
    const rl = redlock()
    const sem = rl.semaphore(key, 3)
    cut(1, 3)
    const held = [await sem.acquire(TTL), await sem.acquire(TTL), await sem.acquire(TTL)]
    // Refused: the three nodes that answer have every slot held.
    const refused = await sem.acquire(TTL).catch((e) => e)
    expect(refused).toBeInstanceOf(ExecutionError)
    const votes = refused.attempts[0].votesAgainst
    expect([...votes.values()].map((e) => e.code)).toContain('ERR_REDLOCK_RESOURCE_LOCKED')
    expect(new Set(held.map((l) => l.resources[0])).size).toBe(3)
    heal(1, 3)
    await held[1].release()
    const again = await rl.semaphore(key, 3).acquire(TTL, RETRIES)
    expect(again.resources).toEqual(held[1].resources)
  }, 30000)
})

describe('permits behave as locks', () => {
  test('a permit is a Lock on one slot, on every node, with the TTL; release frees it', async () => {
    const key = uniqueKey('sem-lock')
    const sem = redlock().semaphore(key, 4)
    expect(sem).toBeInstanceOf(Semaphore)
    expect([sem.resource, sem.permits]).toEqual([key, 4])
    const lock = await sem.acquire(TTL)
    expect(lock).toBeInstanceOf(Lock)
    expect(lock.resources).toHaveLength(1)
    expect(slots(key, 4)).toContain(lock.resources[0])
    // Granted at quorum: the other nodes' writes may land a moment later.
    await until(async () => (await valuesOnAll(direct, lock.resources[0])).every((v) => v === lock.value))
    await lock.extend(TTL * 2)
    const pttl = await command(direct[0], 'PTTL', lock.resources[0])
    expect(pttl).toBeGreaterThan(TTL)
    await lock.release()
    expect(await valuesOnAll(direct, lock.resources[0])).toEqual(Array(5).fill(null))
  })

  test('count takes several permits at once, all or none; a partial grant is undone everywhere', async () => {
    const key = uniqueKey('sem-count')
    const rl = redlock()
    const sem = rl.semaphore(key, 3)
    const two = await sem.acquire(TTL, { count: 2 })
    expect(two.resources).toHaveLength(2)
    // Its extensions reuse the acquisition's settings, but not its count.
    await two.extend(TTL)
    // One permit is left: asking for two is refused, and nothing of the refused ask remains.
    await expect(sem.acquire(TTL, { count: 2 })).rejects.toThrow(ResourceLockedError)
    const seen = await holders(key, 3)
    expect([...seen.keys()]).toEqual([two.value])
    const one = await sem.acquire(TTL)
    expect(two.resources).not.toContain(one.resources[0])
    await Promise.all([two.release(), one.release()])
    // Released at quorum: the other nodes' deletions may land a moment later.
    await until(async () => (await holders(key, 3)).size === 0)
  })

  test('a multi-permit grant that reached only a minority of nodes is undone there', async () => {
    const key = uniqueKey('sem-partial')
    // Slot 1 is held by another holder on nodes 0-2: only nodes 3 and 4 can give both slots.
    for (const url of direct.slice(0, 3)) await command(url, 'SET', slots(key, 2)[0], 'theirs', 'PX', TTL)
    const refused = await redlock().semaphore(key, 2).acquire(TTL, { count: 2 }).catch((e) => e)
    expect(refused).toBeInstanceOf(ExecutionError)
    // The attempt took both slots on nodes 3 and 4, and its undo cleared them before it failed.
    expect(await valuesOnAll(direct, slots(key, 2)[0])).toEqual(['theirs', 'theirs', 'theirs', null, null])
    expect(await valuesOnAll(direct, slots(key, 2)[1])).toEqual(Array(5).fill(null))
  })

  test('a waiter gets the permit released by a holder (wake-on-release)', async () => {
    const key = uniqueKey('sem-wake')
    const rl = redlock()
    const sem = rl.semaphore(key, 1)
    const first = await sem.acquire(TTL)
    const second = sem.acquire(TTL, { retryCount: -1, retryDelay: 5000 })
    await new Promise((r) => setTimeout(r, 100))
    await first.release()
    const lock = await second
    expect(lock.resources).toEqual(first.resources)
    await until(async () => (await valuesOnAll(direct, lock.resources[0])).every((v) => v === lock.value))
  }, 20000)

  test('using holds a permit while the routine runs and releases it after', async () => {
    const key = uniqueKey('sem-using')
    const sem = redlock().semaphore(key, 2)
    let inside = null
    const result = await sem.using(TTL, async (signal, { lock }) => {
      inside = await holders(key, 2)
      expect(signal.aborted).toBe(false)
      return lock.resources
    })
    expect(inside.size).toBe(1)
    expect(result).toHaveLength(1)
    const both = await sem.using(TTL, { count: 2, retryCount: 3 }, async (_, { lock }) => lock.resources)
    expect(both).toEqual(slots(key, 2))
    expect((await holders(key, 2)).size).toBe(0)
  })

  test('fencing tokens of one semaphore increase with every grant', async () => {
    const key = uniqueKey('sem-fence')
    const sem = redlock({ fencing: true }).semaphore(key, 2)
    const a = await sem.acquire(TTL)
    const b = await sem.acquire(TTL)
    await a.release()
    const c = await sem.acquire(TTL)
    expect(typeof a.fencingToken).toBe('bigint')
    expect(b.fencingToken).toBeGreaterThan(a.fencingToken)
    expect(c.fencingToken).toBeGreaterThan(b.fencingToken)
  })

  test('an aborted acquisition rejects with AbortError and leaves no slot taken', async () => {
    const key = uniqueKey('sem-abort')
    const sem = redlock().semaphore(key, 1)
    const held = await sem.acquire(TTL)
    const controller = new AbortController()
    const waiting = sem.acquire(TTL, { retryCount: -1, signal: controller.signal })
    setTimeout(() => controller.abort(), 100)
    await expect(waiting).rejects.toThrow(Redlock.AbortError)
    expect([...(await holders(key, 1)).keys()]).toEqual([held.value])
  })
})

describe('bad input is refused before anything is sent', () => {
  test.each([
    ['permits 0', (rl) => rl.semaphore('s', 0), RangeError, 'permits'],
    ['negative permits', (rl) => rl.semaphore('s', -2), RangeError, 'permits'],
    ['fractional permits', (rl) => rl.semaphore('s', 1.5), RangeError, 'permits'],
    ['huge permits', (rl) => rl.semaphore('s', 1e9), RangeError, 'permits'],
    ['permits not a number', (rl) => rl.semaphore('s', '2'), TypeError, 'permits'],
    ['an empty resource', (rl) => rl.semaphore('', 2), TypeError, 'resource'],
    ['a resource not a string', (rl) => rl.semaphore(['a'], 2), TypeError, 'resource'],
  ])('%s throws, naming the argument', (_, make, type, name) => {
    const rl = redlock()
    expect(() => make(rl)).toThrow(type)
    expect(() => make(rl)).toThrow(name)
  })

  test.each([
    ['count above permits', { count: 3 }, RangeError, 'settings.count'],
    ['count 0', { count: 0 }, RangeError, 'settings.count'],
    ['count fractional', { count: 1.5 }, RangeError, 'settings.count'],
  ])('%s rejects, naming it, and nothing reaches the servers', async (_, settings, type, name) => {
    const key = uniqueKey('sem-bad')
    const rl = redlock()
    const acquired = rl.semaphore(key, 2).acquire(TTL, settings)
    await expect(acquired).rejects.toThrow(type)
    await expect(acquired).rejects.toThrow(name)
    expect(rl.stats().nodes.every((n) => n.requests === 0)).toBe(true)
  })
})
