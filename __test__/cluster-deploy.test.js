'use strict'

// Redis Cluster members as production runs them: over TLS (certificates made here with
// openssl; the cluster bus and replication encrypted too), with an ACL user limited to what
// the README's rule grants, and with a password (requirepass). Each through URLs, options,
// and ioredis / node-redis cluster objects. Failures must be clear, name the member, and
// never show a secret.

const IORedis = require('ioredis')
const { createCluster } = require('redis')

const Redlock = require('..')
const { ExecutionError } = require('..')
const { startCluster } = require('./support/cluster')
const { command, until } = require('./support/servers')
const { wokenByRelease } = require('./support/shared')
const { makeCertificates, visible, haveOpenssl } = require('./support/deploy')

jest.setTimeout(60000)

let unique = 0
const name = (base) => `${base}:${process.pid}:${++unique}`
const settled = (redlock) => until(() => redlock.inFlight === 0, { message: 'requests settled' })
const enc = encodeURIComponent
const hostPort = (url) => {
  const u = new URL(url)
  return { host: u.hostname, port: Number(u.port) }
}

/** Acquire, extend and release through `clients` (one entry, a cluster); keys read back. */
async function roundTrip(cluster, clients, key = name('locks:trip')) {
  const redlock = new Redlock(clients, { fencing: true, retryCount: 0 })
  try {
    const lock = await redlock.acquire([key], 5000)
    await settled(redlock)
    expect(await cluster.command(key, 'GET', key)).toBe(lock.value)
    expect(typeof lock.fencingToken).toBe('bigint')
    await lock.extend(9000)
    await settled(redlock)
    expect(await cluster.command(key, 'PTTL', key)).toBeGreaterThan(5000)
    await lock.release()
    await settled(redlock)
    expect(await cluster.command(key, 'EXISTS', key)).toBe(0)
  } finally {
    await redlock.quit()
  }
}

const tlsSuite = haveOpenssl() ? describe : describe.skip

tlsSuite('a Redis Cluster over TLS', () => {
  let certs
  let cluster
  beforeAll(async () => {
    certs = makeCertificates()
    cluster = await startCluster({ masters: 3, tls: { certs } })
  }, 60000)
  afterAll(async () => {
    if (cluster) await cluster.stop()
    if (certs) certs.cleanup()
  })

  test('the TLS ports are what a TLS client is told: rediss:// with the CA, as URLs, options, ioredis and node-redis', async () => {
    const ca = certs.read('ca.crt')
    await roundTrip(cluster, [{ cluster: true, nodes: cluster.tlsSeeds, tls: { ca } }])
    const io = new IORedis.Cluster(cluster.tlsSeeds.map(hostPort), { lazyConnect: true, redisOptions: { tls: { ca } } })
    try {
      await roundTrip(cluster, [io])
    } finally {
      io.disconnect()
    }
    const nodeRedis = createCluster({
      rootNodes: cluster.tlsSeeds.map((url) => ({ url })),
      defaults: { socket: { tls: true, ca } },
    })
    await roundTrip(cluster, [nodeRedis])
    await roundTrip(cluster, [{ cluster: true, nodes: cluster.tlsSeeds, tls: { rejectUnauthorized: false } }])
  })

  test('a CA that did not sign the servers fails clearly, naming the member, with no key material in it', async () => {
    const tls = { ca: certs.read('other-ca.crt'), cert: certs.read('client.crt'), key: certs.read('client.key') }
    const redlock = new Redlock([{ cluster: true, nodes: cluster.tlsSeeds, tls }], { retryCount: 0 })
    try {
      const error = await redlock.acquire([name('locks:ca')], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toContain('not signed by a trusted CA')
      expect(error.message).toContain(`cluster[127.0.0.1:${cluster.nodes[0].tlsPort}`)
      const shown = visible(error)
      for (const pem of [tls.key, tls.cert]) {
        const body = pem.split('\n')[1]
        expect(shown).not.toContain(body)
      }
    } finally {
      await redlock.quit()
    }
    // The system's CAs do not know the test CA either.
    const system = new Redlock([cluster.tlsSeeds], { retryCount: 0 })
    try {
      const error = await system.acquire([name('locks:ca')], 5000).catch((e) => e)
      expect(error.message).toContain('not signed by a trusted CA')
    } finally {
      await system.quit()
    }
  })

  test('client-certificate auth: refused without a certificate, granted with one', async () => {
    const nodes = cluster.nodes.map((n) => n.url)
    await Promise.all(nodes.map((u) => command(u, 'CONFIG', 'SET', 'tls-auth-clients', 'yes')))
    try {
      const ca = certs.read('ca.crt')
      const without = new Redlock([{ cluster: true, nodes: cluster.tlsSeeds, tls: { ca } }], { retryCount: 0 })
      try {
        const error = await without.acquire([name('locks:mtls')], 5000).catch((e) => e)
        expect(error).toBeInstanceOf(ExecutionError)
        expect(error.code).toBe('ERR_REDLOCK_QUORUM')
        expect(error.message).toContain('connection failed')
      } finally {
        await without.quit()
      }
      const tls = { ca, cert: certs.read('client.crt'), key: certs.read('client.key') }
      await roundTrip(cluster, [{ cluster: true, nodes: cluster.tlsSeeds, tls }])
    } finally {
      await Promise.all(nodes.map((u) => command(u, 'CONFIG', 'SET', 'tls-auth-clients', 'no')))
    }
  })
})

describe('a Redis Cluster with an ACL user and with a password', () => {
  const USER = 'locker'
  const PASSWORD = 'cl@ster:P/w%S3cret!'
  const WRONG = 'not-the-cl@ster-S3cret!'
  /** The README's rule for locks named `locks:…`, plus what a cluster client needs. */
  const RULE = [
    'reset', 'on', `>${PASSWORD}`,
    '~locks:*', '~redlock-rs:fence:*', '&redlock-rs:released:{locks:*',
    '+evalsha', '+eval', '+script|load', '+get', '+set', '+del', '+pexpire', '+publish',
    '+subscribe', '+unsubscribe', '+ping', '+cluster|slots', '+asking',
  ]
  const expectNoSecret = (text) => {
    for (const secret of [PASSWORD, WRONG, enc(PASSWORD), enc(WRONG)]) expect(text).not.toContain(secret)
  }
  let cluster
  beforeAll(async () => {
    cluster = await startCluster({ masters: 3 })
    // ACL users are per node: every node gets the rule.
    await Promise.all(cluster.nodes.map((n) => command(n.url, 'ACL', 'SETUSER', USER, ...RULE)))
  }, 60000)
  afterAll(async () => {
    if (cluster) await cluster.stop()
  })
  const urls = (user, password) => cluster.nodes.map((n) => `redis://${enc(user)}:${enc(password)}@127.0.0.1:${n.port}`)

  test("the README's rule with +cluster|slots and +asking is enough: URLs, options, ioredis, node-redis", async () => {
    await roundTrip(cluster, [urls(USER, PASSWORD)])
    await roundTrip(cluster, [{ cluster: true, nodes: cluster.seeds, username: USER, password: PASSWORD }])
    const io = new IORedis.Cluster(cluster.seeds.map(hostPort), {
      lazyConnect: true,
      redisOptions: { username: USER, password: PASSWORD },
    })
    try {
      await roundTrip(cluster, [io])
    } finally {
      io.disconnect()
    }
    await roundTrip(cluster, [
      createCluster({ rootNodes: cluster.seeds.map((url) => ({ url })), defaults: { username: USER, password: PASSWORD } }),
    ])
  })

  test('wake-on-release works for the restricted user', async () => {
    const key = name('locks:wake')
    const subscribed = async () => (await cluster.subscribers(`redlock-rs:released:{${key}}`)) >= 1
    const waited = await wokenByRelease(Redlock, [urls(USER, PASSWORD)], key, { subscribed })
    // Without the notice it would have slept 60 s; this bound only proves it did not.
    expect(waited).toBeLessThan(30000)
  })

  test('a key outside the rule is refused by the cluster, saying so', async () => {
    const redlock = new Redlock([urls(USER, PASSWORD)], { retryCount: 0 })
    try {
      const error = await redlock.acquire([name('elsewhere')], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toMatch(/no permissions/i)
      expectNoSecret(visible(error))
    } finally {
      await redlock.quit()
    }
  })

  test('a wrong password fails at once with ERR_REDLOCK_NODE_AUTH, in errors and events, without the secret', async () => {
    const io = new IORedis.Cluster(cluster.seeds.map(hostPort), { lazyConnect: true, redisOptions: { username: USER, password: WRONG } })
    try {
      for (const entry of [urls(USER, WRONG), io]) {
        const redlock = new Redlock([entry])
        const events = []
        redlock.on('error', (e) => events.push(e))
        try {
          const error = await redlock.acquire([name('locks:wrong')], 5000).catch((e) => e)
          expect(error).toBeInstanceOf(ExecutionError)
          // A refused login is not retried: one attempt, not the default eleven.
          expect(error.attempts).toHaveLength(1)
          expect(error.message).toContain('authentication failed')
          const [vote] = error.attempts[0].votesAgainst.values()
          expect(vote.code).toBe('ERR_REDLOCK_NODE_AUTH')
          await until(() => events.length > 0)
          for (const e of events) expectNoSecret(`${e.message} ${e.stack} ${e.node}`)
          expectNoSecret(visible(error))
          expectNoSecret(JSON.stringify(redlock.nodes))
        } finally {
          await redlock.quit()
        }
      }
    } finally {
      io.disconnect()
    }
  })

  test('password-only AUTH (requirepass) on every node: the right password works, none fails clearly', async () => {
    // Last in this suite: the harness itself does not log in.
    await Promise.all(cluster.nodes.map((n) => command(n.url, 'CONFIG', 'SET', 'requirepass', PASSWORD)))
    const authed = cluster.nodes.map((n) => `redis://:${enc(PASSWORD)}@127.0.0.1:${n.port}`)
    const redlock = new Redlock([authed])
    try {
      const key = name('locks:pw')
      const lock = await redlock.acquire([key], 5000)
      await settled(redlock)
      const values = await Promise.all(authed.map((u) => command(u, 'GET', key).catch(() => null)))
      expect(values).toContain(lock.value)
      await lock.release()
    } finally {
      await redlock.quit()
    }
    const none = new Redlock([cluster.seeds], { retryCount: 0 })
    try {
      const error = await none.acquire([name('locks:none')], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toMatch(/authentication failed|NOAUTH|password/i)
      expectNoSecret(visible(error))
    } finally {
      await none.quit()
    }
  })
})
