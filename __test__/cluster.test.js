'use strict'

// A Redis Cluster as one member of the quorum, against real clusters started here
// (support/cluster.js): a 3-master cluster with a replica per master beside two plain
// masters, and three independent 3-master clusters as the whole quorum. Every way of naming
// a cluster (URL list, options, ioredis Cluster, node-redis cluster) is used; keys are read
// back from the master that serves their slot; a multi-resource lock across slots is refused
// before anything is sent; and the mutual-exclusion check of the chaos suite (separate OS
// processes, sections stamped by INCR on a fault-free server) runs through a slot migration
// and a failover.

const IORedis = require('ioredis')
const { createCluster } = require('redis')

const Redlock = require('..')
const { ExecutionError } = require('..')
const { startCluster, startClusters, slotOf } = require('./support/cluster')
const { startServers, stopServers, command, until } = require('./support/servers')
const { contend } = require('./support/chaos')
const { wokenByRelease } = require('./support/shared')
const { visible } = require('./support/deploy')
const { FaultProxy } = require('./support/faults')

jest.setTimeout(60000)

let unique = 0
/** A resource name of its own for each test. */
const name = (base) => `${base}:${process.pid}:${++unique}`

/** The EVAL/EVALSHA calls every server in `urls` has answered so far. */
async function scriptCalls(urls) {
  let total = 0
  for (const url of urls) {
    const stats = await command(url, 'INFO', 'commandstats')
    for (const m of String(stats).matchAll(/^cmdstat_(?:evalsha|eval):calls=(\d+)/gm)) total += Number(m[1])
  }
  return total
}

/** Waits until every request `redlock` sent has been answered (the quorum decides earlier). */
const settled = (redlock) => until(() => redlock.inFlight === 0, { message: 'requests settled' })

/** An ioredis Cluster and a node-redis cluster over `seeds`, without connecting them. */
function clusterClients(seeds, options = {}) {
  const nodes = seeds.map((u) => new URL(u)).map((u) => ({ host: u.hostname, port: Number(u.port) }))
  return {
    io: new IORedis.Cluster(nodes, { lazyConnect: true, ...options.io }),
    nodeRedis: createCluster({ rootNodes: seeds.map((url) => ({ url })), ...options.nodeRedis }),
  }
}

describe('a Redis Cluster beside plain masters', () => {
  let cluster
  let plain = []
  let clock
  beforeAll(async () => {
    ;[cluster, plain, [clock]] = await Promise.all([
      startCluster({ masters: 3, replicas: 1 }),
      startServers(2),
      startServers(1),
    ])
  }, 60000)
  afterAll(async () => {
    await Promise.all([cluster && cluster.stop(), stopServers(plain), stopServers(clock ? [clock] : [])])
  })

  const members = () => [plain[0].url, plain[1].url, cluster.seeds]

  test('the cluster is one vote: the lock is on the master of its slot and on the plain nodes, then gone from all', async () => {
    const redlock = new Redlock(members())
    try {
      expect(redlock.nodes).toEqual([
        `127.0.0.1:${plain[0].port}/0`,
        `127.0.0.1:${plain[1].port}/0`,
        `cluster[${cluster.seeds.map((u) => u.slice('redis://'.length)).join(',')}]`,
      ])
      const key = name('orders')
      const lock = await redlock.acquire([key], 10000)
      await settled(redlock)
      const [attempt] = lock.attempts
      expect(attempt.membershipSize).toBe(3)
      expect(attempt.quorumSize).toBe(2)
      expect(await cluster.command(key, 'GET', key)).toBe(lock.value)
      expect(await cluster.command(key, 'PTTL', key)).toBeGreaterThan(8000)
      for (const s of plain) expect(await command(s.url, 'GET', key)).toBe(lock.value)
      // The key is on the master of its slot and nowhere else in the cluster.
      expect(await cluster.keysEverywhere(key)).toEqual([key])
      await lock.extend(20000)
      await settled(redlock)
      expect(await cluster.command(key, 'PTTL', key)).toBeGreaterThan(15000)
      await lock.release()
      await settled(redlock)
      expect(await cluster.command(key, 'EXISTS', key)).toBe(0)
      for (const s of plain) expect(await command(s.url, 'EXISTS', key)).toBe(0)
    } finally {
      await redlock.quit()
    }
  })

  test('inspect reads a cluster member on the master of each resource\'s slot, one vote like the others', async () => {
    const redlock = new Redlock(members(), { fencing: true })
    try {
      const [held, free] = [name('inspect-held'), 'inspect-free-{elsewhere}']
      const lock = await redlock.acquire([held], 10000)
      await settled(redlock)
      const reports = await redlock.inspect([held, free])
      expect(reports[0]).toMatchObject({ resource: held, verdict: 'held', value: lock.value, quorum: 2 })
      const member = reports[0].nodes[2]
      expect(member.node).toMatch(/^cluster\[/)
      expect(member).toMatchObject({ reachable: true, value: lock.value, fencingCounter: lock.fencingToken })
      expect(member.ttlMs).toBeGreaterThan(8000)
      expect(reports[1].verdict).toBe('free')
      expect(reports[1].nodes[2]).toMatchObject({ reachable: true, value: null })
      await lock.release()
      expect(await redlock.isLocked(held)).toBe(false)
    } finally {
      await redlock.quit()
    }
  })

  test.each([
    ['a list of URLs', (seeds) => [seeds]],
    ['options with cluster: true and one host', (seeds) => [{ cluster: true, host: '127.0.0.1', port: Number(new URL(seeds[1]).port) }]],
    ['options with cluster: { nodes }', (seeds) => [{ cluster: { nodes: seeds.map((u) => u.slice('redis://'.length)) } }]],
    ['options with cluster: true and startupNodes', (seeds) => [{ cluster: true, startupNodes: seeds.map((u) => Number(new URL(u).port)) }]],
    ['node-redis cluster options', (seeds) => [{ rootNodes: seeds.map((url) => ({ url })) }]],
  ])('a cluster given as %s takes, extends and releases locks', async (_, shape) => {
    const [entry] = shape(cluster.seeds)
    const redlock = new Redlock([plain[0].url, entry, plain[1].url])
    try {
      expect(redlock.nodes[1]).toMatch(/^cluster\[127\.0\.0\.1:\d+/)
      const key = name('shape')
      const lock = await redlock.acquire([key], 10000)
      await settled(redlock)
      expect(await cluster.command(key, 'GET', key)).toBe(lock.value)
      await lock.extend(10000)
      const released = await redlock.release(lock)
      expect(released.attempts[0].votesFor.size).toBeGreaterThanOrEqual(2)
      await settled(redlock)
      expect(await cluster.command(key, 'EXISTS', key)).toBe(0)
    } finally {
      await redlock.quit()
    }
  })

  test('an ioredis Cluster and a node-redis cluster are read for their nodes and options (keyPrefix included)', async () => {
    const { io, nodeRedis } = clusterClients(cluster.seeds, { io: { keyPrefix: 'app:' } })
    try {
      for (const [entry, prefix] of [[io, 'app:'], [nodeRedis, '']]) {
        const redlock = new Redlock([plain[0].url, entry, plain[1].url])
        try {
          expect(redlock.nodes[1]).toBe(`cluster[${cluster.seeds.map((u) => u.slice('redis://'.length)).join(',')}]`)
          const key = name('{client}:job')
          const lock = await redlock.acquire([key], 10000)
          await settled(redlock)
          expect(await cluster.command(prefix + key, 'GET', prefix + key)).toBe(lock.value)
          expect(await command(plain[0].url, 'GET', key)).toBe(lock.value)
          await lock.release()
          await settled(redlock)
          expect(await cluster.command(prefix + key, 'EXISTS', prefix + key)).toBe(0)
        } finally {
          await redlock.quit()
        }
      }
    } finally {
      io.disconnect()
    }
    // node-redis keeps its client's options in `defaults`: a password there is used.
    const guarded = createCluster({ rootNodes: [{ url: cluster.seeds[0] }], defaults: { password: 'nope' } })
    const refused = new Redlock([guarded], { retryCount: 0 })
    try {
      const error = await refused.acquire([name('x')], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      // The cluster has no password set: AUTH with one is refused, so the password was read.
      expect(error.message).toMatch(/authentication failed|AUTH|password/i)
      expect(visible(error)).not.toContain('nope')
    } finally {
      await refused.quit()
    }
  })

  test('a cluster node given as a plain server, and a plain server given as a cluster, fail saying so', async () => {
    const asPlain = new Redlock([cluster.seeds[0]], { retryCount: 0 })
    try {
      // A key whose slot another master serves is answered MOVED: the error says what to do.
      let key = name('moved')
      while ((await cluster.masterFor(key)).port === cluster.nodes[0].port) key = name('moved')
      const error = await asPlain.acquire([key], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toContain('this server is a node of a Redis Cluster: give the cluster as one entry')
    } finally {
      await asPlain.quit()
    }
    const asCluster = new Redlock([[plain[0].url]], { retryCount: 0 })
    try {
      const error = await asCluster.acquire([name('x')], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toContain('cluster support disabled')
    } finally {
      await asCluster.quit()
    }
  })

  test("ioredis's natMap and node-redis's nodeAddressMap say where to reach the masters the cluster announces", async () => {
    // Each master behind a proxy of its own; the maps send the engine to the proxies. The
    // startup node is a replica, so the masters are reached by the map alone.
    const masters = await cluster.masters()
    const [seed] = await cluster.replicas()
    const proxies = await Promise.all(masters.map((m) => new FaultProxy({ targetPort: m.port }).start()))
    const map = Object.fromEntries(masters.map((m, i) => [`127.0.0.1:${m.port}`, { host: '127.0.0.1', port: proxies[i].port }]))
    const io = new IORedis.Cluster([{ host: '127.0.0.1', port: seed.port }], { lazyConnect: true, natMap: map })
    try {
      for (const entry of [io, { rootNodes: [{ url: seed.url }], nodeAddressMap: map }, { cluster: true, nodes: [seed.url], natMap: map }]) {
        const redlock = new Redlock([entry], { retryCount: 0, requestTimeout: 300 })
        try {
          const key = name('nat')
          const holder = await cluster.masterFor(key)
          const through = proxies[masters.findIndex((m) => m.port === holder.port)]
          const before = through.accepted
          const lock = await redlock.acquire([key], 5000)
          expect(await cluster.command(key, 'GET', key)).toBe(lock.value)
          expect(through.accepted).toBeGreaterThan(before)
          await lock.release()
          // With that proxy silent, the master of the key cannot be reached any more.
          through.blackhole()
          const error = await redlock.acquire([key], 5000).catch((e) => e)
          through.heal()
          expect(error).toBeInstanceOf(ExecutionError)
          expect(error.message).toContain('no answer within the request timeout')
        } finally {
          await redlock.quit()
        }
      }
      // A function cannot be read by the native engine: refused, naming it.
      const fn = new IORedis.Cluster([{ host: '127.0.0.1', port: seed.port }], { lazyConnect: true, natMap: (key) => key })
      expect(() => new Redlock([fn])).toThrow(/'clients\[0\]\.options\.natMap' is invalid: a function cannot run in the native engine/)
      fn.disconnect()
    } finally {
      io.disconnect()
      await Promise.all(proxies.map((p) => p.stop()))
    }
  })

  test('a multi-resource lock takes keys of one hash tag together', async () => {
    const redlock = new Redlock(members())
    try {
      const tag = name('cart')
      const keys = [`{${tag}}:items`, `{${tag}}:payment`, `{${tag}}:invoice`]
      expect(new Set(keys.map(slotOf)).size).toBe(1)
      const lock = await redlock.acquire(keys, 10000)
      await settled(redlock)
      for (const key of keys) expect(await cluster.command(key, 'GET', key)).toBe(lock.value)
      // All or nothing: one of the keys held by another lock refuses the whole set.
      const other = await redlock.acquire([keys[1]], 10000, { retryCount: 0 }).catch((e) => e)
      expect(other).toBeInstanceOf(ExecutionError)
      expect(other.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
      await lock.release()
      await settled(redlock)
      for (const key of keys) expect(await cluster.command(key, 'EXISTS', key)).toBe(0)
    } finally {
      await redlock.quit()
    }
  })

  test('keys in different slots are refused with a RangeError that explains hash tags, before anything is sent', async () => {
    const redlock = new Redlock(members())
    const everyServer = [...plain.map((s) => s.url), ...cluster.nodes.map((n) => n.url)]
    try {
      const a = name('payment')
      let b = name('invoice')
      while (slotOf(b) === slotOf(a)) b = name('invoice')
      const before = await scriptCalls(everyServer)
      const v5 = redlock.acquire([a, b], 5000)
      await expect(v5).rejects.toThrow(RangeError)
      const error = await v5.catch((e) => e)
      expect(error).toBeInstanceOf(Error)
      expect(error.code).toBe('ERR_REDLOCK_CROSS_SLOT')
      expect(error.message).toContain("'resources'")
      expect(error.message).toContain('clients[2]')
      expect(error.message).toContain(`"${a}"`)
      expect(error.message).toContain(`"${b}"`)
      expect(error.message).toMatch(/hash tag/)
      // The same through using, the v4 API and the original design's API.
      await expect(redlock.using([a, b], 5000, async () => {})).rejects.toThrow(RangeError)
      await expect(redlock.lock([a, b], 5000)).rejects.toThrow(RangeError)
      await expect(redlock.acquireLock([a, b], 5000)).rejects.toThrow(RangeError)
      // With fencing, a key whose counter cannot share its slot ('}' without a tag).
      const odd = name('odd}key')
      const fenced = await redlock.acquire([odd], 5000, { fencing: true }).catch((e) => e)
      expect(fenced).toBeInstanceOf(RangeError)
      expect(fenced.message).toContain('counter')
      expect(await scriptCalls(everyServer)).toBe(before)
      // The same names are fine on plain masters alone.
      const plainOnly = new Redlock(plain.map((s) => s.url))
      const lock = await plainOnly.acquire([a, b], 5000)
      await lock.release()
      await plainOnly.quit()
    } finally {
      await redlock.quit()
    }
  })

  test('fencing tokens grow on a cluster member, and the counter sits in the lock key slot', async () => {
    const redlock = new Redlock([cluster.seeds], { fencing: true })
    try {
      const key = name('ledger')
      let last = 0n
      for (let i = 0; i < 4; i++) {
        const lock = await redlock.acquire([key], 5000)
        expect(lock.fencingToken).toBeGreaterThan(last)
        last = lock.fencingToken
        await lock.release()
      }
      const counter = `redlock-rs:fence:{${key}}`
      expect(slotOf(counter)).toBe(slotOf(key))
      expect(BigInt(await cluster.command(counter, 'GET', counter))).toBe(last)
    } finally {
      await redlock.quit()
    }
  })

  test('a waiter is woken by the release through the cluster, long before its retry delay', async () => {
    const key = name('report')
    // The waiter listens on one node of the cluster (and on each plain master).
    const subscribed = async () => (await cluster.subscribers(`redlock-rs:released:{${key}}`)) >= 1
    const whileHeld = async (next) => expect(await cluster.command(key, 'GET', key)).toBe(next.value)
    const waited = await wokenByRelease(Redlock, members(), key, { subscribed, whileHeld })
    // Without the notice it would have slept 60 s; this bound only proves it did not.
    expect(waited).toBeLessThan(30000)
  })

  test("with a plain master down, the cluster's vote makes the quorum; with the key's cluster master paused, it fails that vote only", async () => {
    const redlock = new Redlock(members(), { retryCount: 0, requestTimeout: 300 })
    try {
      await plain[0].kill()
      const key = name('vote')
      const lock = await redlock.acquire([key], 10000)
      const [attempt] = lock.attempts
      expect([...attempt.votesFor].sort()).toEqual([redlock.nodes[1], redlock.nodes[2]].sort())
      await lock.release()

      // The cluster's master for another key is paused: that vote times out, the plain masters
      // make the quorum. (A node that refused a connect is not dialled again for 100 ms.)
      await plain[0].start()
      await new Promise((r) => setTimeout(r, 150))
      const paused = name('vote')
      const master = await cluster.masterFor(paused)
      cluster.pause(master.port)
      try {
        const granted = await redlock.acquire([paused], 10000, { retryCount: 3 })
        const votes = granted.attempts[granted.attempts.length - 1]
        expect(votes.votesFor.has(redlock.nodes[2])).toBe(false)
        await granted.release()
      } finally {
        cluster.resume(master.port)
      }
    } finally {
      if (!plain[0].running) await plain[0].start()
      await redlock.quit()
    }
  })

  test('a failover of the key master during contention: no two holders at once, and locks keep being granted', async () => {
    // A plain master is down for the whole run, so that no lock is granted without the
    // cluster's vote.
    const resources = ['{failover}:a', '{failover}:b']
    const master = await cluster.masterFor(resources[0])
    const replica = (await cluster.replicas()).find((r) => r.masterPort === master.port)
    await plain[1].kill()
    let report
    try {
      report = await contend({
        clients: members(),
        clockUrl: clock.url,
        seconds: 8,
        resources,
        during: async () => {
          await new Promise((r) => setTimeout(r, 2500))
          await cluster.failover(replica.port)
        },
      })
    } finally {
      await plain[1].start()
    }
    expect(report.problems).toEqual([])
    expect(report.violations).toEqual([])
    expect(report.granted).toBeGreaterThan(20)
    expect((await cluster.masterFor(resources[0])).port).toBe(replica.port)
    // After the failover, the new master takes locks.
    const redlock = new Redlock(members())
    try {
      const lock = await redlock.acquire([resources[0]], 5000)
      await settled(redlock)
      expect(await command(`redis://127.0.0.1:${replica.port}`, 'GET', resources[0])).toBe(lock.value)
      await lock.release()
    } finally {
      await redlock.quit()
    }
  })
})

describe('three independent clusters as the whole quorum', () => {
  let clusters = []
  let clock
  beforeAll(async () => {
    ;[clusters, [clock]] = await Promise.all([startClusters(3, { masters: 3 }), startServers(1)])
  }, 60000)
  afterAll(async () => {
    await Promise.all([...clusters.map((c) => c.stop()), stopServers(clock ? [clock] : [])])
  })
  const members = () => clusters.map((c) => c.seeds)

  test('single and multi-resource locks are set on every cluster and released from all', async () => {
    const redlock = new Redlock(members(), { fencing: true })
    try {
      expect(redlock.nodes).toHaveLength(3)
      const single = name('single')
      const lock = await redlock.acquire([single], 10000)
      await settled(redlock)
      for (const c of clusters) expect(await c.command(single, 'GET', single)).toBe(lock.value)
      const keys = [`{${single}}:a`, `{${single}}:b`]
      const multi = await redlock.acquire(keys, 10000)
      expect(multi.fencingToken).toBeGreaterThan(0n)
      await settled(redlock)
      for (const c of clusters) for (const k of keys) expect(await c.command(k, 'GET', k)).toBe(multi.value)
      await Promise.all([lock.release(), multi.release()])
      await settled(redlock)
      for (const c of clusters) for (const k of [single, ...keys]) expect(await c.command(k, 'EXISTS', k)).toBe(0)
    } finally {
      await redlock.quit()
    }
  })

  test("one cluster's master for the key killed: the other two clusters carry the quorum", async () => {
    const redlock = new Redlock(members(), { retryCount: 0, requestTimeout: 300 })
    const errors = []
    redlock.on('error', (e) => errors.push(e))
    const key = name('killed')
    const master = await clusters[0].masterFor(key)
    await clusters[0].kill(master.port)
    try {
      const lock = await redlock.acquire([key], 10000)
      expect(lock.attempts[0].votesFor.size).toBe(2)
      expect(lock.attempts[0].votesFor.has(redlock.nodes[0])).toBe(false)
      await lock.release()
      // A second cluster losing the key's master leaves no quorum: a clean ExecutionError.
      const master2 = await clusters[1].masterFor(key)
      await clusters[1].kill(master2.port)
      const error = await redlock.acquire([key], 10000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.code).toBe('ERR_REDLOCK_QUORUM')
      expect(errors.length).toBeGreaterThan(0)
      await clusters[1].restart(master2.port)
    } finally {
      await clusters[0].restart(master.port)
      await Promise.all(clusters.map((c) => c.waitOk()))
      await redlock.quit()
    }
    // Back up: locks are granted by all three again.
    const again = new Redlock(members())
    try {
      const lock = await until(() => again.acquire([name('back')], 5000).catch(() => null), { timeout: 20000, interval: 200 })
      await lock.release()
    } finally {
      await again.quit()
    }
  })

  test('a slot migration in every cluster during contention: no two holders at once, locks keep being granted', async () => {
    // A multi-key lock (TRYAGAIN from the cluster while its keys are split between the two
    // masters) and a single-key one (ASK redirects), both in the slot that moves.
    const resources = [['{migrate}:a', '{migrate}:b'], '{migrate}:c']
    const slot = slotOf('{migrate}')
    const report = await contend({
      clients: members(),
      clockUrl: clock.url,
      seconds: 8,
      resources,
      during: async () => {
        await new Promise((r) => setTimeout(r, 1500))
        for (const c of clusters) {
          const from = await c.masterFor('{migrate}')
          const to = (await c.masters()).find((m) => m.port !== from.port)
          // Traffic runs through the MIGRATING/IMPORTING window (ASK redirects) too.
          await c.migrateSlot(slot, to.port, { pauseMs: 700 })
        }
      },
    })
    expect(report.problems).toEqual([])
    expect(report.violations).toEqual([])
    expect(report.granted).toBeGreaterThan(20)
    const redlock = new Redlock(members())
    try {
      const lock = await redlock.acquire(resources[0], 5000)
      await settled(redlock)
      for (const c of clusters) for (const k of resources[0]) expect(await c.command(k, 'GET', k)).toBe(lock.value)
      await lock.release()
    } finally {
      await redlock.quit()
    }
  })
})

describe('cluster entries: bad input', () => {
  test.each([
    ['an empty URL list', [[]], /'clients\[0\]' is invalid: it must name at least one startup node/],
    ['a bad startup node', [['redis://127.0.0.1:7000', 'nope:port']], /'clients\[0\]\[1\]' is invalid/],
    ['cluster: { } without nodes', [{ cluster: {} }], /'clients\[0\]\.cluster' is invalid: a Redis Cluster entry needs its startup nodes in 'nodes'/],
    ['a db other than 0', [['redis://127.0.0.1:7000/3']], /'clients\[0\]' is invalid: a Redis Cluster has only database 0/],
    ['servername with TLS', [{ cluster: true, host: '127.0.0.1', port: 7000, tls: { servername: 'x' } }], /servername cannot be used with a Redis Cluster/],
    ['TLS and plain startup nodes mixed', [['rediss://127.0.0.1:7000', 'redis://127.0.0.1:7001']], /must all use TLS/],
    ['a plain entry that is one of its startup nodes', ['redis://127.0.0.1:7001', ['redis://127.0.0.1:7000', 'redis://localhost:7001']], /'clients\[1\]' is invalid: it reaches the same server/],
    ['two clusters sharing a startup node', [['redis://127.0.0.1:7000'], { cluster: true, port: 7000 }], /'clients\[1\]' is invalid: it reaches the same server/],
  ])('%s is refused synchronously with a TypeError', (_, clients, message) => {
    let thrown
    try {
      new Redlock(clients)
    } catch (e) {
      thrown = e
    }
    expect(thrown).toBeInstanceOf(TypeError)
    expect(thrown.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(thrown.message).toMatch(message)
  })

  test('cluster: false is an ordinary server', async () => {
    const plain = new Redlock([{ host: '127.0.0.1', port: 7000, cluster: false }])
    expect(plain.nodes).toEqual(['127.0.0.1:7000/0'])
    await plain.quit()
  })
})
