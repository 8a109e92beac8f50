'use strict'

// Logging in: password-only AUTH (requirepass) and ACL users, from URLs (percent-encoded),
// option objects, and ioredis / node-redis client objects. A restricted user with only the
// rule the README documents does everything (acquire, fencing, extend, release,
// wake-on-release); wrong credentials fail at once, naming the node, and no password ever
// shows in an error, an 'error' event or the attempts.

const Redlock = require('..')
const { ExecutionError } = require('..')
const { startRedis, visible } = require('./support/deploy')
const { until } = require('./support/servers')
const { heldElsewhere } = require('./support/shared')

const USER = 'locker'
const PASSWORD = 'p@ss:w/rd%S3cret!'
const WRONG = 'not-the-S3cret!'
/** The README's rule for a restricted user whose lock names start with `locks:`. */
const RULE = [
  'reset', 'on', `>${PASSWORD}`,
  '~locks:*', '~redlock-rs:fence:*', '&redlock-rs:released:{locks:*',
  '+evalsha', '+eval', '+script|load', '+get', '+set', '+del', '+pexpire', '+publish',
  '+subscribe', '+unsubscribe', '+ping',
]
const enc = encodeURIComponent

/** No secret in what the user sees. */
function expectNoSecret(text) {
  for (const secret of [PASSWORD, WRONG, enc(PASSWORD), enc(WRONG)]) expect(text).not.toContain(secret)
}

describe('ACL users', () => {
  let servers = []
  beforeAll(async () => {
    servers = await Promise.all([startRedis(), startRedis(), startRedis()])
    await Promise.all(servers.map((s) => s.command('ACL', 'SETUSER', USER, ...RULE)))
  }, 30000)
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()))
  })
  const urls = (user, password) =>
    servers.map((s) => `redis://${enc(user)}:${enc(password)}@127.0.0.1:${s.port}`)

  /** Acquire (with a fencing token), extend, release, and a waiter woken by the release. */
  async function endToEnd(clients, tag) {
    const redlock = new Redlock(clients, { fencing: true })
    const waiter = new Redlock(clients, { retryDelay: 3000, retryJitter: 0, retryCount: 3 })
    const errors = []
    redlock.on('error', (e) => errors.push(e))
    waiter.on('error', (e) => errors.push(e))
    const key = `locks:${tag}:${Date.now()}`
    try {
      const lock = await redlock.acquire([key], 5000)
      expect(typeof lock.fencingToken).toBe('bigint')
      // Granted at quorum: the last server's SET may land a moment later.
      await until(async () => (await Promise.all(servers.map((s) => s.command('GET', key)))).every((v) => v === lock.value))
      await lock.extend(9000)
      await until(async () => (await Promise.all(servers.map((s) => s.command('PTTL', key)))).every((t) => t > 5000))

      await lock.release()
      // The next holder is another process (through the same user, by URL): its release
      // reaches the waiter only as the servers' notice.
      const other = await heldElsewhere(urls(USER, PASSWORD), key, 5000)
      const started = Date.now()
      const waiting = waiter.acquire([key], 5000)
      // Released once the waiter listens on every server (as the default user sees it).
      const channel = `redlock-rs:released:{${key}}`
      const listening = async () =>
        (await Promise.all(servers.map((s) => s.command('PUBSUB', 'NUMSUB', channel)))).every(([, n]) => n >= 1)
      await until(listening, { timeout: 10000, message: 'the waiter subscribed' })
      await other.release()
      const next = await waiting
      // Woken by the release notice, not by its 3 s retry timer.
      expect(Date.now() - started).toBeLessThan(2000)
      await next.release()
      // The release is decided at quorum; the last node's delete may land just after.
      await until(async () => (await Promise.all(servers.map((s) => s.command('GET', key)))).every((v) => v === null))
      expect(errors.map((e) => e.message)).toEqual([])
    } finally {
      await redlock.quit()
      await waiter.quit()
    }
  }

  test('a user with only the documented rule locks end to end (URLs, percent-encoded password)', async () => {
    await endToEnd(urls(USER, PASSWORD), 'url')
  })

  test('the same user through option objects', async () => {
    const options = servers.map((s) => ({ host: '127.0.0.1', port: s.port, username: USER, password: PASSWORD }))
    await endToEnd(options, 'options')
  })

  test('the same user through ioredis and node-redis client objects', async () => {
    const IORedis = require('ioredis')
    const { createClient } = require('redis')
    const [a, b, c] = servers
    const clients = [
      new IORedis({ port: a.port, host: '127.0.0.1', username: USER, password: PASSWORD, lazyConnect: true }),
      createClient({ url: `redis://${enc(USER)}:${enc(PASSWORD)}@127.0.0.1:${b.port}` }),
      createClient({ socket: { host: '127.0.0.1', port: c.port }, username: USER, password: PASSWORD }),
    ]
    try {
      await endToEnd(clients, 'clients')
    } finally {
      clients[0].disconnect()
    }
  })

  test('a release in this process hands the lock to the next waiter here without the notice', async () => {
    // A user who may not SUBSCRIBE: no release notice can reach the waiter, whose retry
    // timer is 3 s. The holder in the same process releases, and the waiter, first in this
    // process's line for the key, tries again at once.
    const NO_SUBSCRIBE = 'nosub'
    await Promise.all(
      servers.map((s) => s.command('ACL', 'SETUSER', NO_SUBSCRIBE, ...RULE.filter((r) => r !== '+subscribe'))),
    )
    const clients = urls(NO_SUBSCRIBE, PASSWORD)
    const holder = new Redlock(clients)
    const waiter = new Redlock(clients, { retryDelay: 3000, retryJitter: 0, retryCount: 3 })
    const key = `locks:local:${Date.now()}`
    try {
      const lock = await holder.acquire([key], 10000)
      const started = Date.now()
      const waiting = waiter.acquire([key], 5000)
      setTimeout(() => lock.release(), 300)
      const next = await waiting
      expect(Date.now() - started).toBeLessThan(2000)
      expect(next.attempts.length).toBe(2)
      await next.release()
    } finally {
      await holder.quit()
      await waiter.quit()
    }
  })

  test('a key outside the rule is refused by the server, and nothing else breaks', async () => {
    const redlock = new Redlock(urls(USER, PASSWORD), { retryCount: 0 })
    try {
      const error = await redlock.acquire(['elsewhere:x'], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toMatch(/no permissions/i)
      expectNoSecret(visible(error))
    } finally {
      await redlock.quit()
    }
  })

  test('a wrong password fails at once, says authentication failed, names the nodes, shows no secret', async () => {
    const clients = urls(USER, WRONG)
    // Default retries (10 × 200 ms) would take 2 s; a refused login is not retried.
    const redlock = new Redlock(clients)
    const events = []
    redlock.on('error', (e) => events.push(e))
    try {
      const started = Date.now()
      const error = await redlock.acquire(['locks:wrong'], 5000).catch((e) => e)
      expect(Date.now() - started).toBeLessThan(500)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.attempts).toHaveLength(1)
      expect(error.message).toContain('authentication failed')
      // Decided as soon as a quorum (2 of 3) refused: those are named.
      const named = servers.filter((s) => error.message.includes(`127.0.0.1:${s.port}/0`))
      expect(named.length).toBeGreaterThanOrEqual(2)
      const [attempt] = error.attempts
      for (const vote of attempt.votesAgainst.values()) expect(vote.code).toBe('ERR_REDLOCK_NODE_AUTH')
      await new Promise((r) => setTimeout(r, 50))
      expect(events.length).toBeGreaterThanOrEqual(2)
      for (const e of events) {
        expect(e.code).toBe('ERR_REDLOCK_NODE_AUTH')
        expect(e.message).toContain('authentication failed')
        expectNoSecret(`${e.message} ${e.stack} ${e.node}`)
      }
      expectNoSecret(visible(error))
      expectNoSecret(JSON.stringify(redlock.nodes))
    } finally {
      await redlock.quit()
    }
  })

  test('wrong credentials in client objects fail the same way, without the secret', async () => {
    const IORedis = require('ioredis')
    const { createClient } = require('redis')
    const io = new IORedis({ port: servers[0].port, username: USER, password: WRONG, lazyConnect: true })
    const clients = [io, ...servers.slice(1).map((s) => createClient({ url: `redis://${USER}:${enc(WRONG)}@127.0.0.1:${s.port}` }))]
    const redlock = new Redlock(clients)
    try {
      const error = await redlock.acquire(['locks:wrong-clients'], 5000).catch((e) => e)
      expect(error.message).toContain('authentication failed')
      expectNoSecret(visible(error))
    } finally {
      await redlock.quit()
      io.disconnect()
    }
  })
})

describe('password-only AUTH (requirepass)', () => {
  let server
  beforeAll(async () => {
    server = await startRedis(['--requirepass', PASSWORD], { password: PASSWORD })
  })
  afterAll(async () => {
    if (server) await server.stop()
  })

  test('a password without a user logs in, from a URL and from options', async () => {
    for (const client of [
      `redis://:${enc(PASSWORD)}@127.0.0.1:${server.port}`,
      { port: server.port, password: PASSWORD },
    ]) {
      const redlock = new Redlock([client])
      try {
        const lock = await redlock.acquire(['auth:pw'], 5000)
        expect(await server.command('GET', 'auth:pw')).toBe(lock.value)
        await lock.release()
      } finally {
        await redlock.quit()
      }
    }
  })

  test('a missing or wrong password fails at once with authentication failed', async () => {
    for (const [client, why] of [
      [`redis://127.0.0.1:${server.port}`, 'requires a password'],
      [`redis://:${enc(WRONG)}@127.0.0.1:${server.port}`, 'refused the password'],
    ]) {
      const redlock = new Redlock([client])
      try {
        const started = Date.now()
        const error = await redlock.acquire(['auth:pw-wrong'], 5000).catch((e) => e)
        expect(Date.now() - started).toBeLessThan(500)
        expect(error.message).toContain('authentication failed')
        expect(error.message).toContain(why)
        expectNoSecret(visible(error))
      } finally {
        await redlock.quit()
      }
    }
  })
})
