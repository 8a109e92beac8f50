'use strict'

// The fault harness itself (support/faults.js): what each fault does to a client on the other
// side of the proxy, and that kills and restarts keep or lose data as configured.

const { Conn, command, until } = require('./support/servers')
const { startFleet, stopFleet, seededRandom } = require('./support/faults')

let fleet = []

beforeAll(async () => {
  fleet = await startFleet(2, { proxied: true, persistent: (i) => i === 0 })
})

afterEach(async () => {
  await Promise.all(fleet.map((n) => n.heal()))
})

afterAll(async () => {
  await stopFleet(fleet)
})

test('the proxy passes commands and answers through', async () => {
  expect(await command(fleet[0].url, 'PING')).toBe('PONG')
  expect(fleet[0].proxy.accepted).toBeGreaterThanOrEqual(1)
})

test('latency(ms) delays every answer by at least ms', async () => {
  const conn = new Conn(fleet[0].url)
  try {
    await conn.send('PING')
    fleet[0].proxy.latency(150)
    const started = Date.now()
    await conn.send('PING')
    expect(Date.now() - started).toBeGreaterThanOrEqual(290) // 150 each way
  } finally {
    conn.close()
  }
})

test('blackhole() accepts and never answers; heal() delivers what waited, in order', async () => {
  const conn = new Conn(fleet[0].url, { timeout: 5000 })
  try {
    await conn.send('DEL', 'bh')
    fleet[0].proxy.blackhole()
    const answers = [conn.send('INCR', 'bh'), conn.send('INCR', 'bh')]
    const fresh = new Conn(fleet[0].url, { timeout: 300 })
    await expect(fresh.send('PING')).rejects.toThrow(/Timed out/)
    fresh.close()
    expect(await command(fleet[0].directUrl, 'GET', 'bh')).toBeNull()
    fleet[0].proxy.heal()
    expect(await Promise.all(answers)).toEqual([1, 2])
  } finally {
    conn.close()
  }
})

test('holdReplies(): the server runs what it is sent, and its replies wait until heal()', async () => {
  const conn = new Conn(fleet[0].url, { timeout: 5000 })
  try {
    await conn.send('DEL', 'held')
    fleet[0].proxy.holdReplies()
    let answered = false
    const answers = Promise.all([conn.send('INCR', 'held'), conn.send('INCR', 'held')]).then((a) => {
      answered = true
      return a
    })
    await until(async () => (await command(fleet[0].directUrl, 'GET', 'held')) === '2')
    expect(answered).toBe(false)
    fleet[0].proxy.heal()
    expect(await answers).toEqual([1, 2])
  } finally {
    conn.close()
  }
})

test('drop() closes open connections; reset sends RST', async () => {
  for (const reset of [false, true]) {
    const conn = new Conn(fleet[0].url)
    await conn.send('PING')
    const closed = new Promise((resolve) => conn._socket.once('close', resolve))
    expect(fleet[0].proxy.drop({ reset })).toBeGreaterThanOrEqual(1)
    await closed
    conn.close()
  }
})

test.each([true, false])('dropNextRequest({ forward: %s }): the client loses its connection; the server got the request only when forwarded', async (forward) => {
  const key = `cut:${forward}`
  await command(fleet[0].directUrl, 'DEL', key)
  const conn = new Conn(fleet[0].url)
  try {
    await conn.send('PING')
    const cut = fleet[0].proxy.dropNextRequest({ forward })
    await expect(conn.send('SET', key, 'v')).rejects.toThrow(/closed/)
    expect(await cut).toBe(true)
    await new Promise((r) => setTimeout(r, 100))
    expect(await command(fleet[0].directUrl, 'GET', key)).toBe(forward ? 'v' : null)
  } finally {
    conn.close()
  }
})

test('refuse() closes new connections as soon as they are accepted', async () => {
  fleet[0].proxy.refuse()
  const conn = new Conn(fleet[0].url)
  await expect(conn.send('PING')).rejects.toThrow(/closed/)
  conn.close()
  fleet[0].proxy.refuse(false)
  expect(await command(fleet[0].url, 'PING')).toBe('PONG')
})

test('kill + start on the same port: the data survives with appendfsync always, and is lost without', async () => {
  for (const node of fleet) await command(node.directUrl, 'SET', 'durable', 'yes')
  const ports = fleet.map((n) => n.server.port)
  const pids = fleet.map((n) => n.server.pid)
  for (const node of fleet) await node.kill()
  for (const node of fleet) expect(node.server.pid).toBeUndefined()
  for (const node of fleet) await node.start()
  expect(fleet.map((n) => n.server.port)).toEqual(ports)
  expect(fleet.map((n) => n.server.pid)).not.toEqual(pids)
  expect(await command(fleet[0].url, 'GET', 'durable')).toBe('yes')
  expect(await command(fleet[1].url, 'GET', 'durable')).toBeNull()
})

test('pause() stops answers until resume()', async () => {
  fleet[1].pause()
  const conn = new Conn(fleet[1].url, { timeout: 5000 })
  try {
    const answer = conn.send('PING')
    const early = await Promise.race([answer, new Promise((r) => setTimeout(() => r('none yet'), 300))])
    expect(early).toBe('none yet')
    fleet[1].resume()
    expect(await answer).toBe('PONG')
  } finally {
    conn.close()
  }
})

test('seededRandom replays from its seed', () => {
  const a = seededRandom(7)
  const b = seededRandom(7)
  const xs = Array.from({ length: 20 }, () => a())
  expect(Array.from({ length: 20 }, () => b())).toEqual(xs)
  expect(xs.every((x) => x >= 0 && x < 1)).toBe(true)
  expect(seededRandom(8)()).not.toBe(xs[0])
})
