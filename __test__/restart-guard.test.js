'use strict'

// The restart guard against real servers restarted empty at once (no delayed restart): a
// server that restarted less than the window ago has forgotten the locks it granted, so its
// vote for an acquisition must not hand out a lock another client holds on the rest of a
// majority. Each test shows what the guard stops, and that the same steps with the guard
// off grant the lock twice, so the test can fail.

const Redlock = require('..')
const { ExecutionError } = Redlock
const { command, until, valuesOnAll } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey } = require('./support/shared')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// Locks of TTL ms; the guard's window is raised to the longest duration a client used, so a
// server up for less than TTL is young here. INFO gives whole seconds, rounded down.
const TTL = 4000
const WINDOW = 1000
// For steps right after nodes are let back in: a failed connect is not retried for 100 ms.
const RETRIES = { retryCount: 10, retryDelay: 100, retryJitter: 0 }

let fleet = []
let urls = []
let direct = []
let startedAt = 0
let restartedAt = 0
const redlocks = []

function redlock(settings) {
  const rl = new Redlock(urls, { retryCount: 0, requestTimeout: 300, restartGuardWindow: WINDOW, ...settings })
  redlocks.push(rl)
  return rl
}

/** Records the 'error' events of `rl`. */
function events(rl) {
  const seen = []
  rl.on('error', (e) => seen.push(e))
  return seen
}

/** Waits until every server has been up long enough to be old for the tests' window (the longest TTL used). */
async function allOld() {
  const wait = Math.max(startedAt, restartedAt) + TTL + 1500 - Date.now()
  if (wait > 0) await sleep(wait)
}

/** Restarts node `i` empty and waits until it answers again. */
async function restartEmpty(i) {
  await fleet[i].restart()
  restartedAt = Date.now()
  expect(await command(direct[i], 'PING')).toBe('PONG')
}

/** The label the engine gives node `i`. */
const label = (i) => `${new URL(urls[i]).host}/0`

/** The votes against of an ExecutionError's last attempt, as [node, code]. */
function against(error) {
  const last = error.attempts[error.attempts.length - 1]
  return [...last.votesAgainst].map(([node, e]) => [node, e.code])
}

beforeAll(async () => {
  fleet = await startFleet(5, { proxied: true, persistent: false })
  startedAt = Date.now()
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

test('a server restarted empty under a held lock cannot help a second client take it', async () => {
  await allOld()
  const key = uniqueKey('guard-minority')
  // A takes the lock on nodes 0, 1 and 2: 3 and 4 are cut off while it does.
  fleet[3].proxy.refuse()
  fleet[3].proxy.drop()
  fleet[4].proxy.refuse()
  fleet[4].proxy.drop()
  const a = redlock()
  const held = await a.acquire([key], TTL)
  expect(held.attempts[0].votesFor.size).toBe(3)
  fleet[3].proxy.refuse(false)
  fleet[4].proxy.refuse(false)
  // Node 2 crashes and comes back at once, empty.
  await restartEmpty(2)
  expect(await valuesOnAll(direct, key)).toEqual([held.value, held.value, null, null, null])

  // B, with the guard on (the default mode), would find nodes 2, 3 and 4 free.
  const b = redlock()
  const bEvents = events(b)
  const refused = b.acquire([key], TTL)
  await expect(refused).rejects.toThrow(ExecutionError)
  const error = await refused.catch((e) => e)
  expect(against(error).sort()).toEqual(
    [
      [label(0), 'ERR_REDLOCK_RESOURCE_LOCKED'],
      [label(1), 'ERR_REDLOCK_RESOURCE_LOCKED'],
      [label(2), 'ERR_REDLOCK_NODE_RESTARTED'],
    ].sort(),
  )
  const restarted = [...error.attempts[0].votesAgainst].filter(([, e]) => e.code === 'ERR_REDLOCK_NODE_RESTARTED')
  expect(restarted[0][1].message).toMatch(/up for only \d+ s, less than the restart guard's window of 4 s/)
  expect(held.valid).toBe(true)
  // Its attempt was undone: nothing of B's is left anywhere.
  await until(async () => (await valuesOnAll(direct, key)).every((v) => v === null || v === held.value), {
    message: "B's attempt undone",
  })
  // The restart was reported once, however many attempts it spoils.
  await expect(b.acquire([key], TTL)).rejects.toThrow(ExecutionError)
  await until(() => bEvents.length > 0, { message: "B's 'error' event" })
  const restarts = bEvents.filter((e) => e.code === 'ERR_REDLOCK_NODE_RESTARTED')
  expect(restarts).toHaveLength(1)
  expect(restarts[0].node).toBe(restarted[0][0])

  // Without the guard, the same steps grant the lock a second time while A's is valid.
  const unguarded = redlock({ restartGuard: false })
  const second = await unguarded.acquire([key], TTL)
  expect(held.valid).toBe(true)
  expect(second.valid).toBe(true)
  expect(second.value).not.toBe(held.value)
  await second.release()
  // A failed connect is not retried for 100 ms: retries let the release reach 3 and 4.
  await held.release(RETRIES)
}, 30000)

test('a young server is left out of acquisitions only: extensions and releases count it', async () => {
  await allOld()
  const key = uniqueKey('guard-release')
  await restartEmpty(0)
  const cut = (on) => {
    for (const i of [3, 4]) {
      fleet[i].proxy.refuse(on)
      if (on) fleet[i].proxy.drop()
    }
  }
  const rl = redlock()
  // With 3 and 4 cut off, only the young node 0 could make the third vote: refused.
  cut(true)
  const refused = await rl.acquire([key], TTL).catch((e) => e)
  expect(refused).toBeInstanceOf(ExecutionError)
  expect(against(refused)).toEqual(expect.arrayContaining([[label(0), 'ERR_REDLOCK_NODE_RESTARTED']]))
  await until(async () => (await valuesOnAll(direct, key)).every((v) => v === null), { message: 'undone' })
  // With them back, the four old nodes make the quorum.
  cut(false)
  const lock = await rl.acquire([key], TTL, RETRIES)
  await until(async () => (await valuesOnAll(direct, key)).every((v) => v === lock.value), { message: 'held on all' })
  // 3 and 4 cut off again: extension and release need node 0's answer, and count it.
  cut(true)
  await lock.extend(TTL)
  expect(lock.attempts[lock.attempts.length - 1].votesFor.has(label(0))).toBe(true)
  const released = await lock.release()
  expect(released.attempts[released.attempts.length - 1].votesFor.has(label(0))).toBe(true)
  expect((await valuesOnAll(direct, key)).slice(0, 3)).toEqual([null, null, null])
}, 30000)

test('a majority restarted together: the default mode grants and says so, strict refuses', async () => {
  await allOld()
  const key = uniqueKey('guard-majority')
  // A client that met the servers before they restarted can tell a restart from a new fleet.
  const lenient = redlock()
  const told = events(lenient)
  await (await lenient.acquire([key], TTL)).release()
  await Promise.all([restartEmpty(2), restartEmpty(3), restartEmpty(4)])

  const strict = redlock({ restartGuard: 'strict' })
  const refused = await strict.acquire([key], TTL).catch((e) => e)
  expect(refused).toBeInstanceOf(ExecutionError)
  const codes = against(refused).map(([, code]) => code)
  expect(codes.filter((c) => c === 'ERR_REDLOCK_NODE_RESTARTED')).toHaveLength(3)
  await until(async () => (await valuesOnAll(direct, key)).every((v) => v === null), { message: 'undone' })

  const lock = await until(() => lenient.acquire([key], TTL).catch(() => null), { message: 'reconnected' })
  expect(lock.valid).toBe(true)
  // Besides the broken connections' errors, one event per restarted server whose vote counted.
  const restarts = () => told.filter((e) => e.code === 'ERR_REDLOCK_NODE_RESTARTED')
  await until(() => restarts().length >= 3, { message: 'one event per young server' })
  expect(new Set(restarts().map((e) => e.node)).size).toBe(restarts().length)
  // Reported once per restart: as left out by an attempt that heard only some of them young,
  // or as counted. The grant itself counted young votes: only two servers are old.
  for (const e of restarts()) expect(e.message).toMatch(/less than the restart guard's window/)
  const granted = lock.attempts[lock.attempts.length - 1].votesFor
  expect([2, 3, 4].some((i) => granted.has(label(i)))).toBe(true)
  await lock.release()
}, 30000)

test('a fresh fleet grants at once and raises no event: a client that met every server young cannot tell it from a new fleet', async () => {
  const fresh = await startFleet(3, { proxied: false })
  try {
    const rl = new Redlock(fresh.map((n) => n.url), { retryCount: 0 })
    redlocks.push(rl)
    const told = events(rl)
    const lock = await rl.acquire([uniqueKey('guard-fresh')], TTL)
    expect(lock.attempts[0].votesFor.size).toBeGreaterThanOrEqual(2)
    await lock.release()
    expect(told).toEqual([])
  } finally {
    await stopFleet(fresh)
  }
}, 30000)

test('a server that persists every write is never young', async () => {
  const durable = await startFleet(3, { proxied: false, persistent: true })
  try {
    // All three just started: strict mode would refuse every vote of a server that does
    // not persist every write.
    const rl = new Redlock(
      durable.map((n) => n.url),
      { retryCount: 0, restartGuard: 'strict' },
    )
    redlocks.push(rl)
    const lock = await rl.acquire([uniqueKey('guard-durable')], TTL)
    expect(lock.attempts[0].votesFor.size).toBeGreaterThanOrEqual(2)
    await lock.release()
  } finally {
    await stopFleet(durable)
  }
}, 30000)

test('restartGuard settings are checked and shown', async () => {
  const rl = redlock()
  expect(rl.settings.restartGuard).toBe(true)
  expect(rl.settings.restartGuardWindow).toBe(WINDOW)
  expect(redlock({ restartGuard: 'strict' }).settings.restartGuard).toBe('strict')
  expect(redlock({ restartGuard: false }).settings.restartGuard).toBe(false)
  expect(new Redlock(urls).settings.restartGuardWindow).toBe(60000)
  expect(() => new Redlock(urls, { restartGuard: 'loose' })).toThrow(TypeError)
  expect(() => new Redlock(urls, { restartGuard: 'loose' })).toThrow(/restartGuard.*true, false or 'strict'/)
  expect(() => new Redlock(urls, { restartGuard: 1 })).toThrow(TypeError)
  expect(() => new Redlock(urls, { restartGuardWindow: -1 })).toThrow(RangeError)
  await expect(rl.acquire(['x'], 1000, { restartGuard: 'yes' })).rejects.toThrow(/settings.restartGuard/)
})
