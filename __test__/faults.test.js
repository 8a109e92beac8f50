'use strict'

// Fault injection against this file's own 5 redis-servers: nodes killed, restarted, paused
// (SIGSTOP), holding foreign values; node errors reported without passwords.

const util = require('node:util')
const Redlock = require('..')
const { ExecutionError, ResourceLockedError } = Redlock
const {
  RedisServer,
  startServers,
  stopServers,
  freePort,
  command,
  until,
  valuesOnAll,
} = require('./support/servers')
const { uniqueKey } = require('./support/shared')

const PASSWORD = 's3cret-pw'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let servers = []
let urls = []
const redlocks = []

function redlock(clients, settings) {
  const rl = new Redlock(clients, settings)
  redlocks.push(rl)
  return rl
}

/** Opens every node's connection with one full acquire + release. */
async function warm(rl) {
  const lock = await rl.acquire([uniqueKey('faults-warm')], 5000, { retryCount: 3 })
  await lock.release()
}

function liveUrls() {
  return servers.filter((s) => s.running).map((s) => s.url)
}

/** Everything a user could print about a value: message, stack, nested attempts, Maps, Sets. */
function everything(value) {
  const parts = [util.inspect(value, { depth: Infinity, showHidden: true })]
  if (value instanceof Error) parts.push(String(value), value.message, value.stack || '')
  return parts.join('\n')
}

beforeAll(async () => {
  servers = await startServers(5)
  urls = servers.map((s) => s.url)
})

afterEach(async () => {
  // Every test starts with all 5 servers up and running.
  for (const s of servers) {
    s.resume()
    if (!s.running) await s.start()
  }
})

afterAll(async () => {
  for (const rl of redlocks) await rl.quit()
  await stopServers(servers)
})

describe('nodes killed', () => {
  test('a minority (2 of 5) killed: acquire succeeds and the value is on the 3 live nodes', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    await warm(rl)
    await Promise.all([servers[3].kill(), servers[4].kill()])
    const key = uniqueKey('faults-minority-down')
    const lock = await rl.acquire([key], 10000)
    const live = urls.slice(0, 3)
    await until(async () => (await valuesOnAll(live, key)).every((v) => v === lock.value), {
      timeout: 2000,
      message: 'the value on the 3 live nodes',
    })
    await lock.release()
    await until(async () => (await valuesOnAll(live, key)).every((v) => v === null), {
      timeout: 2000,
      message: 'the key released on the live nodes',
    })
  })

  test('a majority (3 of 5) killed: ExecutionError (ERR_REDLOCK_QUORUM), nothing left on the live nodes', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    await warm(rl)
    await Promise.all([servers[2].kill(), servers[3].kill(), servers[4].kill()])
    const key = uniqueKey('faults-majority-down')
    const error = await rl.acquire([key], 10000).then(
      () => null,
      (e) => e,
    )
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error).toBeInstanceOf(Error)
    expect(error).not.toBeInstanceOf(ResourceLockedError)
    expect(error.code).toBe('ERR_REDLOCK_QUORUM')
    expect(error.attempts).toHaveLength(1)
    expect(error.attempts[0].membershipSize).toBe(5)
    expect(error.attempts[0].quorumSize).toBe(3)
    expect(error.attempts[0].votesAgainst.size).toBeGreaterThanOrEqual(3)
    const live = urls.slice(0, 2)
    await sleep(100)
    await until(async () => (await valuesOnAll(live, key)).every((v) => v === null), {
      timeout: 2000,
      message: 'no key of ours on the live nodes',
    })
  })

  test('after restart() of the killed servers, acquire succeeds again (reconnects by itself)', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    await warm(rl)
    const killed = servers.slice(2)
    await Promise.all(killed.map((s) => s.kill()))
    await expect(rl.acquire([uniqueKey('faults-down')], 10000)).rejects.toBeInstanceOf(ExecutionError)
    for (const s of killed) await s.restart()

    // A node whose connect was refused is not dialled again for 100 ms: the retry window
    // (10 × 50 ms) outlasts that.
    const key = uniqueKey('faults-restarted')
    const lock = await rl.acquire([key], 10000, { retryCount: 10, retryDelay: 50, retryJitter: 0 })
    await until(async () => (await valuesOnAll(urls, key)).every((v) => v === lock.value), {
      timeout: 3000,
      message: 'the value on all 5 nodes after the restart',
    })
    await lock.release()
  })

  test('servers restarted while connections were idle: acquire succeeds and reaches every node', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    await warm(rl)
    for (const s of servers.slice(2)) await s.restart()
    const first = await rl.acquire([uniqueKey('faults-idle-restart')], 10000, {
      retryCount: 3,
      retryDelay: 50,
    })
    await first.release()
    const key = uniqueKey('faults-idle-restart-2')
    const lock = await rl.acquire([key], 10000)
    await until(async () => (await valuesOnAll(urls, key)).every((v) => v === lock.value), {
      timeout: 3000,
      message: 'the value on all 5 nodes',
    })
    await lock.release()
  })

  test('a killed node costs nothing noticeable (resolves < 3 s)', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    await warm(rl)
    await servers[4].kill()
    const started = Date.now()
    const lock = await rl.acquire([uniqueKey('faults-one-killed')], 10000)
    await lock.release()
    expect(Date.now() - started).toBeLessThan(3000)
  })

  test('releasing when a majority is down rejects with ExecutionError', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    await warm(rl)
    const key = uniqueKey('faults-release-down')
    const lock = await rl.acquire([key], 10000)
    await Promise.all([servers[0].kill(), servers[1].kill(), servers[2].kill()])
    const error = await rl.release(lock).then(
      () => null,
      (e) => e,
    )
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_QUORUM')
    await expect(lock.release({ retryCount: 0 })).rejects.toBeInstanceOf(ExecutionError)
  })
})

describe('foreign values', () => {
  test('a minority of nodes holding a foreign value: still acquired, foreign values untouched', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    const key = uniqueKey('faults-foreign-minority')
    await Promise.all(urls.slice(0, 2).map((u) => command(u, 'SET', key, 'foreign', 'PX', 10000)))
    const lock = await rl.acquire([key], 10000)
    await until(
      async () => {
        const values = await valuesOnAll(urls, key)
        return values.slice(0, 2).every((v) => v === 'foreign') && values.slice(2).every((v) => v === lock.value)
      },
      { timeout: 2000, message: 'foreign on 2 nodes, ours on 3' },
    )
    await lock.release()
    await until(
      async () => {
        const values = await valuesOnAll(urls, key)
        return values.slice(0, 2).every((v) => v === 'foreign') && values.slice(2).every((v) => v === null)
      },
      { timeout: 2000, message: 'release removed ours only' },
    )
  })

  test('a majority holding a foreign value: ResourceLockedError and our value is on no node', async () => {
    const rl = redlock(urls, { retryCount: 0 })
    const key = uniqueKey('faults-foreign-majority')
    await Promise.all(urls.slice(0, 3).map((u) => command(u, 'SET', key, 'foreign', 'PX', 10000)))
    const error = await rl.acquire([key], 10000).then(
      () => null,
      (e) => e,
    )
    expect(error).toBeInstanceOf(ResourceLockedError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
    await sleep(100)
    await until(
      async () => {
        const values = await valuesOnAll(urls, key)
        return values.slice(0, 3).every((v) => v === 'foreign') && values.slice(3).every((v) => v === null)
      },
      { timeout: 2000, message: 'our value on no node' },
    )
  })
})

describe('paused (SIGSTOP) nodes', () => {
  test('one paused node costs at most its timeout (requestTimeout 200: resolves < 3 s)', async () => {
    const rl = redlock(urls, { retryCount: 0, requestTimeout: 200 })
    await warm(rl)
    const key = uniqueKey('faults-one-paused')
    servers[4].pause()
    let lock
    try {
      const started = Date.now()
      lock = await rl.acquire([key], 10000)
      expect(Date.now() - started).toBeLessThan(3000)
      const releaseStarted = Date.now()
      await lock.release()
      expect(Date.now() - releaseStarted).toBeLessThan(3000)
    } finally {
      servers[4].resume()
    }
    // Once resumed, the paused node's late SET must be followed by the release.
    await until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), {
      timeout: 2000,
      message: 'no key of ours left once the node is resumed',
    })
  })

  test('3 of 5 paused, retryCount 1: ExecutionError promptly, and after resuming no key remains', async () => {
    const rl = redlock(urls, { requestTimeout: 200, retryDelay: 100, retryJitter: 0 })
    await warm(rl)
    const key = uniqueKey('faults-majority-paused')
    const paused = servers.slice(2)
    paused.forEach((s) => s.pause())
    let error
    try {
      const started = Date.now()
      error = await rl.acquire([key], 10000, { retryCount: 1 }).then(
        () => null,
        (e) => e,
      )
      expect(Date.now() - started).toBeLessThan(6000)
    } finally {
      paused.forEach((s) => s.resume())
    }
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error).not.toBeInstanceOf(ResourceLockedError)
    expect(error.attempts).toHaveLength(2)
    await until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), {
      timeout: 2000,
      message: 'no key of ours anywhere within 2 s of resuming (the undo reached them)',
    })
    // Stays gone (no late write lands afterwards).
    await sleep(300)
    expect(await valuesOnAll(urls, key)).toEqual([null, null, null, null, null])
  })
})

describe("'error' events and passwords", () => {
  test('a minority of closed password URLs: acquired, and no password in the lock, its attempts, events or nodes', async () => {
    const closed = await freePort()
    const rl = redlock([`redis://:${PASSWORD}@127.0.0.1:${closed}`, ...urls.slice(0, 4)], {
      retryCount: 0,
    })
    const events = []
    rl.on('error', (e) => events.push(e))
    const lock = await rl.acquire([uniqueKey('faults-events')], 10000)
    await lock.release()
    await sleep(100)
    for (const e of events) {
      expect(e).toBeInstanceOf(Error)
      expect(e.code).toMatch(/^ERR_REDLOCK_NODE_/)
      expect(everything(e)).not.toContain(PASSWORD)
    }
    expect(everything(lock)).not.toContain(PASSWORD)
    expect(everything(rl.nodes)).not.toContain(PASSWORD)
  })

  test("a node that times out is reported through 'error' events even when the quorum did not wait for it", async () => {
    // node-redlock emits an error for every node that fails, stragglers included; a node that
    // is down behind a black hole (paused here) must not go unreported for ever.
    const rl = redlock(urls, { retryCount: 0, requestTimeout: 200 })
    await warm(rl)
    const events = []
    rl.on('error', (e) => events.push(e))
    servers[4].pause()
    try {
      for (let i = 0; i < 3; i++) {
        const lock = await rl.acquire([uniqueKey('faults-timeout-event')], 10000)
        await lock.release()
      }
      await sleep(500)
    } finally {
      servers[4].resume()
    }
    expect(events.map((e) => e.code)).toContain('ERR_REDLOCK_NODE_TIMEOUT')
  })

  test('a failed acquire over password URLs shows no password in its error, attempts or events', async () => {
    const ports = [await freePort(), await freePort(), await freePort()]
    const rl = redlock(
      [
        `redis://:${PASSWORD}@127.0.0.1:${ports[0]}`,
        `redis://alice:${PASSWORD}@127.0.0.1:${ports[1]}/2`,
        { host: '127.0.0.1', port: ports[2], username: 'bob', password: PASSWORD },
        ...urls.slice(0, 2),
      ],
      { retryCount: 1, retryDelay: 20, retryJitter: 0 },
    )
    const events = []
    rl.on('error', (e) => events.push(e))
    const error = await rl.acquire([uniqueKey('faults-pw')], 10000).then(
      () => null,
      (e) => e,
    )
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_QUORUM')
    expect(error.attempts.length).toBe(2)
    const against = error.attempts.flatMap((a) => [...a.votesAgainst.values()])
    expect(against.length).toBeGreaterThanOrEqual(3)
    for (const e of against) expect(e.code).toMatch(/^ERR_REDLOCK_NODE_/)
    expect(everything(error)).not.toContain(PASSWORD)
    expect(events.length).toBeGreaterThanOrEqual(3)
    for (const e of events) {
      expect(e.code).toMatch(/^ERR_REDLOCK_NODE_/)
      expect(everything(e)).not.toContain(PASSWORD)
    }
  })

  test('a server refusing the password (requirepass) reports an error without the password', async () => {
    const guarded = new RedisServer({ port: await freePort() })
    await guarded.start()
    try {
      await command(guarded.url, 'CONFIG', 'SET', 'requirepass', 'the-right-one')
      // 3 nodes, quorum 2: one closed, one live, so the guarded node's answer decides.
      const rl = redlock(
        [`redis://:${PASSWORD}@127.0.0.1:${guarded.port}`, `redis://127.0.0.1:${await freePort()}`, urls[0]],
        { retryCount: 0 },
      )
      const events = []
      rl.on('error', (e) => events.push(e))
      const error = await rl.acquire([uniqueKey('faults-wrongpass')], 10000).then(
        () => null,
        (e) => e,
      )
      expect(error).toBeInstanceOf(ExecutionError)
      const refused = [...error.attempts[0].votesAgainst.values()].find((e) => e.node.includes(`:${guarded.port}/`))
      expect(refused).toBeDefined()
      expect(refused.code).toMatch(/^ERR_REDLOCK_NODE_/)
      expect(everything(error)).not.toContain(PASSWORD)
      expect(events.some((e) => e.node === refused.node)).toBe(true)
      for (const e of events) {
        expect(e.code).toMatch(/^ERR_REDLOCK_NODE_/)
        expect(everything(e)).not.toContain(PASSWORD)
      }
    } finally {
      await guarded.stop()
      guarded.cleanup()
    }
  })
})
