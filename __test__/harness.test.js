'use strict'

const net = require('node:net')
const {
  RedisServer,
  Conn,
  command,
  commandWithTimeout,
  freePort,
  until,
  valuesOnAll,
  pttlsOnAll,
  flushAll,
} = require('./support/servers')
const { sharedUrls, uniqueKey } = require('./support/shared')

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.createConnection({ host: '127.0.0.1', port })
    s.once('connect', () => {
      s.destroy()
      resolve(true)
    })
    s.once('error', () => resolve(false))
  })
}

describe('RedisServer', () => {
  let server

  beforeAll(async () => {
    server = new RedisServer({ port: await freePort() })
    await server.start()
  })

  afterAll(async () => {
    if (server) {
      await server.stop()
      server.cleanup()
    }
  })

  test('a started server answers PING and exposes url and pid', async () => {
    expect(server.url).toBe(`redis://127.0.0.1:${server.port}`)
    expect(typeof server.pid).toBe('number')
    await expect(command(server.url, 'PING')).resolves.toBe('PONG')
  })

  test('command parses integers, bulk strings, nulls, arrays and errors', async () => {
    const key = uniqueKey('harness-types')
    await expect(command(server.url, 'SET', key, 'héllo\r\nworld')).resolves.toBe('OK')
    await expect(command(server.url, 'GET', key)).resolves.toBe('héllo\r\nworld')
    await expect(command(server.url, 'GET', `${key}:missing`)).resolves.toBeNull()
    await expect(command(server.url, 'EXISTS', key, `${key}:missing`)).resolves.toBe(1)
    await expect(command(server.url, 'RPUSH', `${key}:list`, 'a', 'b', 'c')).resolves.toBe(3)
    await expect(command(server.url, 'LRANGE', `${key}:list`, 0, -1)).resolves.toEqual(['a', 'b', 'c'])
    await expect(command(server.url, 'NOSUCHCOMMAND')).rejects.toThrow(/unknown command/i)
  })

  test('Conn handles many commands and replies split across TCP chunks', async () => {
    const key = uniqueKey('harness-conn')
    const big = 'x'.repeat(300 * 1024)
    const conn = new Conn(server.url)
    try {
      await expect(conn.send('SET', key, big)).resolves.toBe('OK')
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) => conn.send('INCR', `${key}:n`).then((v) => [i, v])),
      )
      for (const [i, v] of replies) expect(v).toBe(i + 1)
      const got = await conn.send('GET', key)
      expect(got.length).toBe(big.length)
      await expect(conn.send('MGET', key, `${key}:n`, `${key}:none`)).resolves.toEqual([big, '200', null])
      await expect(conn.send('BADCMD')).rejects.toThrow(/unknown command/i)
      // the connection stays usable after an error reply
      await expect(conn.send('PING')).resolves.toBe('PONG')
    } finally {
      conn.close()
    }
  })

  test('kill() refuses connections; restart() returns on the same port with an empty keyspace', async () => {
    const key = uniqueKey('harness-restart')
    const port = server.port
    await command(server.url, 'SET', key, 'v')
    const oldPid = server.pid

    await server.kill()
    expect(server.pid).toBeUndefined()
    expect(await canConnect(port)).toBe(false)
    await expect(command(server.url, 'PING')).rejects.toThrow(/ECONNREFUSED|closed/)

    await server.restart()
    expect(server.port).toBe(port)
    expect(server.pid).not.toBe(oldPid)
    await expect(command(server.url, 'PING')).resolves.toBe('PONG')
    await expect(command(server.url, 'GET', key)).resolves.toBeNull()
    await expect(command(server.url, 'DBSIZE')).resolves.toBe(0)
  })

  test('pause() makes commands time out; resume() makes the server answer again', async () => {
    server.pause()
    try {
      const t0 = Date.now()
      await expect(commandWithTimeout(server.url, 200, 'PING')).rejects.toThrow(/Timed out after 200 ms/)
      expect(Date.now() - t0).toBeGreaterThanOrEqual(150)
    } finally {
      server.resume()
    }
    await expect(commandWithTimeout(server.url, 2000, 'PING')).resolves.toBe('PONG')
  })
})

describe('RedisServer with persistence', () => {
  test('keys survive restart() when persistence is on', async () => {
    const server = new RedisServer({ port: await freePort(), persistence: true })
    await server.start()
    try {
      await command(server.url, 'SET', 'persisted', '1')
      await server.restart()
      await expect(command(server.url, 'GET', 'persisted')).resolves.toBe('1')
    } finally {
      await server.stop()
      server.cleanup()
    }
  })
})

describe('shared servers from global setup', () => {
  test('there are 5 shared URLs and each answers PING', async () => {
    const urls = sharedUrls()
    expect(urls.length).toBeGreaterThanOrEqual(5)
    for (const u of urls) expect(u).toMatch(/^redis:\/\//)
    await expect(Promise.all(urls.map((u) => command(u, 'PING')))).resolves.toEqual(urls.map(() => 'PONG'))
  })

  test('valuesOnAll / pttlsOnAll read a key on every server', async () => {
    const urls = sharedUrls()
    const key = uniqueKey('harness-all')
    await command(urls[0], 'SET', key, 'a', 'PX', 10000)
    await command(urls[1], 'SET', key, 'b')
    const values = await valuesOnAll(urls, key)
    expect(values.slice(0, 2)).toEqual(['a', 'b'])
    expect(values.slice(2).every((v) => v === null)).toBe(true)
    const pttls = await pttlsOnAll(urls, key)
    expect(pttls[0]).toBeGreaterThan(9000)
    expect(pttls[0]).toBeLessThanOrEqual(10000)
    expect(pttls[1]).toBe(-1)
    expect(pttls.slice(2).every((v) => v === -2)).toBe(true)
    await Promise.all(urls.slice(0, 2).map((u) => command(u, 'DEL', key)))
  })

  test('uniqueKey never repeats', () => {
    const keys = new Set(Array.from({ length: 1000 }, () => uniqueKey('p')))
    expect(keys.size).toBe(1000)
    for (const k of keys) expect(k.startsWith('p')).toBe(true)
  })
})

describe('flushAll', () => {
  test('empties every listed server', async () => {
    const servers = [new RedisServer({ port: await freePort() }), new RedisServer({ port: await freePort() })]
    await Promise.all(servers.map((s) => s.start()))
    try {
      const urls = servers.map((s) => s.url)
      await Promise.all(urls.map((u) => command(u, 'SET', 'k', 'v')))
      await flushAll(urls)
      await expect(Promise.all(urls.map((u) => command(u, 'DBSIZE')))).resolves.toEqual([0, 0])
    } finally {
      await Promise.all(servers.map(async (s) => { await s.stop(); s.cleanup() }))
    }
  })
})

describe('until', () => {
  test('returns the first truthy value', async () => {
    let n = 0
    await expect(until(async () => (++n >= 3 ? n : 0), { interval: 5 })).resolves.toBe(3)
  })

  test('throws a clear error when the predicate never becomes truthy', async () => {
    const t0 = Date.now()
    await expect(until(async () => false, { timeout: 100, interval: 10 })).rejects.toThrow(
      /until\(\): condition not met within 100 ms/,
    )
    expect(Date.now() - t0).toBeGreaterThanOrEqual(90)
  })
})
