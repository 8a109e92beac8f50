'use strict'

// redlock.inspect() and redlock.isLocked() against 5 servers behind fault proxies: each
// verdict (held on a quorum, free, split between two holders, unknown without a quorum of
// answers), a key of another type, fencing counters, `ours` with a Lock, and bad input.
// Keys are seeded directly on the servers where a verdict needs values no client would set.

const Redlock = require('..')
const { ExecutionError, RedlockClosedError } = require('..')
const { command, valuesOnAll } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey } = require('./support/shared')

let fleet = []
let urls = []
let direct = []
const redlocks = []

function redlock(settings) {
  const rl = new Redlock(urls, { retryCount: 0, requestTimeout: 300, ...settings })
  redlocks.push(rl)
  return rl
}

beforeAll(async () => {
  fleet = await startFleet(5, { proxied: true, persistent: false })
  urls = fleet.map((n) => n.url)
  direct = fleet.map((n) => n.directUrl)
}, 30000)

afterEach(async () => {
  await Promise.all(redlocks.splice(0).map((rl) => rl.quit()))
  for (const node of fleet) await node.heal()
})

afterAll(async () => {
  await stopFleet(fleet)
})

const label = (i) => `${new URL(urls[i]).host}/0`

test('a held lock: verdict held with its value, every node with the value, its TTL and fencing counter; ours with the Lock', async () => {
  const rl = redlock({ fencing: true })
  const key = uniqueKey('inspect-held')
  const lock = await rl.acquire([key], 10000)
  const report = await rl.inspect(key)
  expect(report).toMatchObject({ resource: key, verdict: 'held', value: lock.value, quorum: 3 })
  expect(report.ours).toBeUndefined()
  expect(report.nodes.map((n) => n.node)).toEqual(urls.map((_, i) => label(i)))
  // The other nodes' writes may still be landing when the quorum granted.
  const values = await valuesOnAll(direct, key)
  for (const [i, node] of report.nodes.entries()) {
    expect(node.reachable).toBe(true)
    if (node.value === null) continue
    expect(node.value).toBe(lock.value)
    expect(values[i]).toBe(lock.value)
    expect(node.ttlMs).toBeGreaterThan(8000)
    expect(node.ttlMs).toBeLessThanOrEqual(10000)
    // The token reached a quorum before the grant; a node beyond it may not have it yet.
    if (node.fencingCounter !== null) expect(node.fencingCounter <= lock.fencingToken).toBe(true)
    expect(node.otherType).toBe(false)
  }
  expect(report.nodes.filter((n) => n.value === lock.value).length).toBeGreaterThanOrEqual(3)
  expect(report.nodes.filter((n) => n.fencingCounter === lock.fencingToken).length).toBeGreaterThanOrEqual(3)

  const [mine] = await rl.inspect(lock)
  expect(mine).toMatchObject({ resource: key, verdict: 'held', ours: true })
  expect(mine.nodes.filter((n) => n.ours).length).toBeGreaterThanOrEqual(3)
  // Another client's view of the same lock: held, and not ours once it has passed on.
  expect(await redlock().isLocked(key)).toBe(true)
  await lock.release()
  const [after] = await rl.inspect(lock)
  expect(after).toMatchObject({ verdict: 'free', value: null, ours: false })
  expect(after.nodes.every((n) => n.value === null && n.ttlMs === null)).toBe(true)
  // The counter outlives the lock.
  expect(after.nodes.filter((n) => n.fencingCounter === lock.fencingToken).length).toBeGreaterThanOrEqual(3)
  expect(await rl.isLocked(key)).toBe(false)
})

test('a list of names gives a report per name, in order; isLocked is true when any is held', async () => {
  const rl = redlock()
  const [a, b] = [uniqueKey('inspect-a'), uniqueKey('inspect-b')]
  const lock = await rl.acquire([b], 5000)
  const reports = await rl.inspect([a, b])
  expect(reports.map((r) => [r.resource, r.verdict])).toEqual([
    [a, 'free'],
    [b, 'held'],
  ])
  expect(await rl.isLocked([a, b])).toBe(true)
  expect(await rl.isLocked([a])).toBe(false)
  await lock.release()
})

test('two holders splitting the nodes, none on a quorum: split; a key of another type holds no lock', async () => {
  const rl = redlock()
  const key = uniqueKey('inspect-split')
  await Promise.all([
    command(direct[0], 'SET', key, 'first', 'PX', '10000'),
    command(direct[1], 'SET', key, 'first', 'PX', '10000'),
    command(direct[2], 'SET', key, 'second', 'PX', '10000'),
    command(direct[3], 'SET', key, 'second', 'PX', '10000'),
    command(direct[4], 'LPUSH', key, 'x'),
  ])
  const report = await rl.inspect(key)
  expect(report.verdict).toBe('split')
  expect(report.value).toBeNull()
  expect(report.nodes.map((n) => n.value)).toEqual(['first', 'first', 'second', 'second', null])
  expect(report.nodes[4]).toMatchObject({ otherType: true, value: null, ttlMs: null })
  expect(await rl.isLocked(key)).toBe(false)
  await Promise.all(direct.map((url) => command(url, 'DEL', key)))
})

test('without a quorum of answers: unknown within the request timeout, the silent nodes named with their code; isLocked rejects', async () => {
  const rl = redlock({ requestTimeout: 200 })
  const key = uniqueKey('inspect-unknown')
  await rl.acquire([key], 10000)
  fleet[0].proxy.blackhole()
  fleet[1].proxy.blackhole()
  fleet[2].proxy.refuse(true)
  fleet[2].proxy.drop()
  const started = Date.now()
  const report = await rl.inspect(key)
  // Generous: one round of at most requestTimeout, on a busy machine.
  expect(Date.now() - started).toBeLessThan(2000)
  expect(report.verdict).toBe('unknown')
  expect(report.nodes.slice(0, 3).map((n) => [n.reachable, n.code])).toEqual([
    [false, 'ERR_REDLOCK_NODE_TIMEOUT'],
    [false, 'ERR_REDLOCK_NODE_TIMEOUT'],
    [false, expect.stringMatching(/^ERR_REDLOCK_NODE_(CONNECTION|TIMEOUT)$/)],
  ])
  expect(report.nodes.slice(3).every((n) => n.reachable)).toBe(true)
  const error = await rl.isLocked(key).catch((e) => e)
  expect(error).toBeInstanceOf(ExecutionError)
  expect(error).toBeInstanceOf(Error)
  expect(error.code).toBe('ERR_REDLOCK_QUORUM')
  expect(error.message).toContain(label(0))
})

test('a held lock with two nodes down is still held: the verdict needs only a quorum', async () => {
  const rl = redlock()
  const key = uniqueKey('inspect-two-down')
  const lock = await rl.acquire([key], 10000)
  fleet[3].proxy.blackhole()
  fleet[4].proxy.blackhole()
  const [report] = await rl.inspect(lock)
  expect(report).toMatchObject({ verdict: 'held', value: lock.value, ours: true })
})

test('bad input rejects with an error naming the argument, never throws; a closed client rejects with RedlockClosedError', async () => {
  const rl = redlock()
  let pending
  expect(() => (pending = rl.inspect())).not.toThrow()
  await expect(pending).rejects.toThrow(TypeError)
  await expect(rl.inspect('')).rejects.toThrow(/resources/)
  await expect(rl.inspect([])).rejects.toThrow(/'resources' is invalid: it must name at least one resource/)
  await expect(rl.inspect(42)).rejects.toThrow(TypeError)
  await expect(rl.inspect('x', { requestTimeout: -1 })).rejects.toThrow(RangeError)
  await expect(rl.isLocked(null)).rejects.toThrow(TypeError)
  await rl.quit()
  await expect(rl.inspect('x')).rejects.toThrow(RedlockClosedError)
})
