'use strict'

// redlock.stats(): what a client has done since it was made, as plain data, after a scripted
// sequence against 3 servers behind fault proxies: grants, a refusal, a hand-off to a waiter,
// an extension, a blackholed node's timeouts, and a lock a watchdog lost.

const Redlock = require('..')
const { command, until } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey } = require('./support/shared')

let fleet = []
let urls = []

beforeAll(async () => {
  fleet = await startFleet(3, { proxied: true, persistent: false })
  urls = fleet.map((n) => n.url)
}, 30000)

afterAll(async () => {
  await stopFleet(fleet)
})

test('counts operations by outcome, each node, hand-offs and lost locks, with latencies', async () => {
  const rl = new Redlock(urls, { retryCount: 0, requestTimeout: 200 })
  const waiter = new Redlock(urls, { retryCount: 40, retryDelay: 1000, retryJitter: 0 })
  const empty = rl.stats()
  expect(empty.operations.acquire).toEqual({ count: 0, outcomes: {}, latencyMs: { count: 0, mean: 0, p50: 0, p90: 0, p99: 0, max: 0 } })
  expect(empty.nodes.map((n) => n.node)).toEqual(rl.nodes)
  expect(empty.since).toBeLessThanOrEqual(Date.now())

  const key = uniqueKey('stats')
  const lock = await rl.acquire([key], 5000)
  await expect(rl.acquire([key], 5000)).rejects.toMatchObject({ code: 'ERR_REDLOCK_RESOURCE_LOCKED' })
  const waiting = waiter.acquire([key], 5000)
  await new Promise((r) => setTimeout(r, 300))
  await lock.extend(5000)
  await lock.release()
  await (await waiting).release()

  // One node blackholed: its requests time out, the others still grant.
  fleet[2].proxy.blackhole()
  await (await rl.acquire([uniqueKey('stats-slow')], 5000)).release()
  await until(() => rl.stats().nodes[2].errors.ERR_REDLOCK_NODE_TIMEOUT >= 2, { timeout: 5000 })
  fleet[2].proxy.heal()

  // A lock lost under its watchdog: the keys are deleted.
  const lostKey = uniqueKey('stats-lost')
  await rl
    .using([lostKey], 1000, async (signal) => {
      await Promise.all(fleet.map((n) => command(n.directUrl, 'DEL', lostKey)))
      await until(() => signal.aborted, { timeout: 5000 })
    })
    .catch(() => {})

  const stats = rl.stats()
  const { acquire, extend, release } = stats.operations
  expect(acquire.outcomes).toEqual({ ok: 3, ERR_REDLOCK_RESOURCE_LOCKED: 1 })
  expect(acquire.count).toBe(4)
  expect(acquire.latencyMs.p50).toBeGreaterThan(0)
  expect(acquire.latencyMs.max).toBeGreaterThanOrEqual(acquire.latencyMs.p99)
  expect(acquire.latencyMs.p99).toBeGreaterThanOrEqual(acquire.latencyMs.p50)
  // The acquisition with the blackholed node waited for its quorum, not for the timeout; the
  // timeout shows in that node's latency.
  expect(extend.outcomes.ok).toBe(1)
  expect(release.outcomes.ok).toBeGreaterThanOrEqual(2)
  const [, , slow] = stats.nodes
  expect(slow.errors.ERR_REDLOCK_NODE_TIMEOUT).toBeGreaterThanOrEqual(2)
  expect(slow.latencyMs.max).toBeGreaterThanOrEqual(190)
  for (const node of stats.nodes) expect(node.requests).toBeGreaterThanOrEqual(7)
  expect(stats.locksLost).toBe(1)
  expect(stats.handoffs).toBe(0)
  // The waiter's grant came after the release ended its wait.
  expect(waiter.stats().handoffs).toBe(1)
  expect(waiter.stats().operations.acquire.outcomes).toEqual({ ok: 1 })

  await Promise.all([rl.quit(), waiter.quit()])
  // Still readable after quit; a plain object, JSON-safe.
  expect(JSON.parse(JSON.stringify(rl.stats())).operations.acquire.count).toBe(4)
}, 30000)
