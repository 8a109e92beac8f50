'use strict'

// TLS to the nodes: rediss:// URLs and `tls` options, verified against a CA made at test time
// with openssl, the server name checked, and client certificates for servers that demand
// them. A wrong CA or name fails at once with an error that names the node and the reason.

const Redlock = require('..')
const { ExecutionError } = require('..')
const { startRedis, makeCertificates, tlsArgs, visible, haveOpenssl, freePort } = require('./support/deploy')

const describeTls = haveOpenssl() ? describe : describe.skip
const FAIL_FAST = { retryCount: 0, requestTimeout: 2000 }

describeTls('TLS', () => {
  let certs
  let server // TLS, no client certificate asked
  let mutual // TLS, client certificate required
  let tlsPort
  let mutualPort

  beforeAll(async () => {
    certs = makeCertificates()
    tlsPort = await freePort()
    server = await startRedis(tlsArgs(certs, tlsPort))
    mutualPort = await freePort()
    mutual = await startRedis(tlsArgs(certs, mutualPort, { authClients: true }))
  }, 30000)
  afterAll(async () => {
    await Promise.all([server, mutual].filter(Boolean).map((s) => s.stop()))
    if (certs) certs.cleanup()
  })

  /** Acquires, checks the key landed on the server, extends and releases. */
  async function roundTrip(redlock, via) {
    const key = `tls:${via}:${Date.now()}`
    const lock = await redlock.acquire([key], 5000)
    const target = via === 'mutual' ? mutual : server
    expect(await target.command('GET', key)).toBe(lock.value)
    await lock.extend(8000)
    expect(await target.command('PTTL', key)).toBeGreaterThan(5000)
    await lock.release()
    expect(await target.command('GET', key)).toBeNull()
  }

  test('an option object with tls.ca locks over TLS', async () => {
    const redlock = new Redlock([{ host: '127.0.0.1', port: tlsPort, tls: { ca: certs.read('ca.crt') } }])
    try {
      await roundTrip(redlock, 'server')
    } finally {
      await redlock.quit()
    }
  })

  test('tls.ca may be a Buffer or an array, and the host may be a name the certificate carries', async () => {
    const ca = Buffer.from(certs.read('ca.crt'))
    const redlock = new Redlock([
      { host: 'localhost', port: tlsPort, tls: { ca: [ca] } },
    ])
    try {
      await roundTrip(redlock, 'server')
    } finally {
      await redlock.quit()
    }
  })

  test('the certificate must carry the name verified: the host, or tls.servername; a wrong name fails at once', async () => {
    const ok = new Redlock([
      { host: '127.0.0.1', port: tlsPort, tls: { ca: certs.read('ca.crt'), servername: 'redis.test' } },
    ])
    const wrong = new Redlock(
      [{ host: '127.0.0.1', port: tlsPort, tls: { ca: certs.read('ca.crt'), servername: 'elsewhere.test' } }],
      FAIL_FAST,
    )
    try {
      await roundTrip(ok, 'server')
      const error = await wrong.acquire(['tls:servername'], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toContain(`127.0.0.1:${tlsPort}/0`)
      expect(error.message).toContain('not valid for the name elsewhere.test')
    } finally {
      await ok.quit()
      await wrong.quit()
    }
  })

  test('a certificate from another CA fails at once, naming the node and the reason', async () => {
    const redlock = new Redlock(
      [{ host: '127.0.0.1', port: tlsPort, tls: { ca: certs.read('other-ca.crt') } }],
      FAIL_FAST,
    )
    const events = []
    redlock.on('error', (e) => events.push(e))
    try {
      const started = Date.now()
      const error = await redlock.acquire(['tls:wrong-ca'], 5000).catch((e) => e)
      expect(Date.now() - started).toBeLessThan(1000)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toContain(`127.0.0.1:${tlsPort}/0`)
      expect(error.message).toContain('not signed by a trusted CA')
      const vote = error.attempts[0].votesAgainst.get(`127.0.0.1:${tlsPort}/0`)
      expect(vote.code).toBe('ERR_REDLOCK_NODE_CONNECTION')
      expect(vote.message).toContain('not signed by a trusted CA')
      expect(events.map((e) => e.node)).toContain(`127.0.0.1:${tlsPort}/0`)
    } finally {
      await redlock.quit()
    }
  })

  test('rejectUnauthorized: false and rediss://…#insecure encrypt without verifying', async () => {
    const a = new Redlock([{ host: '127.0.0.1', port: tlsPort, tls: { rejectUnauthorized: false } }])
    const b = new Redlock([`rediss://127.0.0.1:${tlsPort}#insecure`])
    try {
      await roundTrip(a, 'server')
      await roundTrip(b, 'server')
    } finally {
      await a.quit()
      await b.quit()
    }
  })

  test('a rediss:// URL verifies against the system CAs, which do not know a private CA', async () => {
    const redlock = new Redlock([`rediss://localhost:${tlsPort}`], FAIL_FAST)
    try {
      const error = await redlock.acquire(['tls:system-cas'], 5000).catch((e) => e)
      expect(error.message).toContain('not signed by a trusted CA')
    } finally {
      await redlock.quit()
    }
  })

  test('a server that requires client certificates accepts ours and refuses a connection without', async () => {
    const tls = { ca: certs.read('ca.crt'), cert: certs.read('client.crt'), key: certs.read('client.key') }
    const withCert = new Redlock([{ host: '127.0.0.1', port: mutualPort, tls }])
    const without = new Redlock([{ host: '127.0.0.1', port: mutualPort, tls: { ca: tls.ca } }], FAIL_FAST)
    try {
      await roundTrip(withCert, 'mutual')
      const error = await without.acquire(['tls:no-client-cert'], 5000).catch((e) => e)
      expect(error).toBeInstanceOf(ExecutionError)
      expect(error.message).toContain(`127.0.0.1:${mutualPort}/0`)
      expect(error.message).toMatch(/TLS failed|connection failed/)
      expect(visible(error)).not.toContain('PRIVATE KEY')
    } finally {
      await withCert.quit()
      await without.quit()
    }
  })

  test('unusable TLS material is refused by the constructor, naming the field and never its content', () => {
    const key = certs.read('client.key')
    const attempts = [
      [{ port: tlsPort, tls: { ca: 'not a certificate' } }, "'clients[0]' is invalid: tls.ca holds no PEM certificate"],
      [{ port: tlsPort, tls: { cert: certs.read('client.crt') } }, 'tls.cert and tls.key must be given together'],
      [{ port: tlsPort, tls: { cert: certs.read('client.crt'), key: 'garbage' } }, 'tls.key holds no'],
      [{ port: tlsPort, tls: { cert: certs.read('server.crt'), key } }, 'tls.key does not fit tls.cert'],
      [{ port: tlsPort, tls: { pfx: Buffer.from('x') } }, 'PFX'],
      [{ port: tlsPort, tls: { ca: 42 } }, 'clients[0].tls.ca'],
    ]
    for (const [entry, expected] of attempts) {
      let thrown
      try {
        new Redlock([entry])
      } catch (e) {
        thrown = e
      }
      expect(thrown).toBeInstanceOf(TypeError)
      expect(thrown.message).toContain(expected)
      expect(thrown.message).not.toContain('PRIVATE KEY')
      expect(thrown.message).not.toContain(key.split('\n')[1])
    }
  })

  test('ioredis and node-redis client objects with TLS are followed', async () => {
    const IORedis = require('ioredis')
    const { createClient } = require('redis')
    const ca = certs.read('ca.crt')
    const tls = { ca, cert: certs.read('client.crt'), key: certs.read('client.key') }
    const io = new IORedis({ host: '127.0.0.1', port: mutualPort, tls, lazyConnect: true })
    const nodeRedis = createClient({
      url: `rediss://localhost:${tlsPort}`,
      socket: { tls: true, ca },
    })
    const a = new Redlock([io])
    const b = new Redlock([nodeRedis])
    try {
      await roundTrip(a, 'mutual')
      await roundTrip(b, 'server')
    } finally {
      await a.quit()
      await b.quit()
      io.disconnect()
    }
  })
})
