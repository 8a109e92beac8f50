'use strict'

// `quit()` as node-redlock (v4, v5) and sesame do it: it closes the client objects it was
// given, so that a service's shutdown, and a Jest run, end once the Redlock is quit.

const path = require('node:path')
const IORedis = require('ioredis')
const { createClient } = require('redis')
const Redlock = require('../..')
const { sharedUrls, uniqueKey, runNode } = require('../support/shared')
const { place } = require('./targets')

const urls = sharedUrls().slice(0, 3)

test('quit() closes connected ioredis and node-redis clients, and ones that never connected, without connecting them', async () => {
  const connected = new IORedis(place(urls[0]))
  const lazy = new IORedis({ ...place(urls[1]), lazyConnect: true })
  const nodeRedis = createClient({ url: urls[2] })
  await nodeRedis.connect()
  const neverOpened = createClient({ url: urls[2] })
  for (const c of [connected, lazy, nodeRedis, neverOpened]) c.on('error', () => {})
  await new Promise((resolve) => connected.once('ready', resolve))

  const redlock = new Redlock([connected, lazy, nodeRedis])
  const lock = await redlock.acquire([uniqueKey('quit')], 5000)
  await lock.release()
  await redlock.quit()

  expect(connected.status).toBe('end')
  expect(lazy.status).toBe('end')
  expect(nodeRedis.isOpen).toBe(false)
  // A client given twice, or already closed, is no trouble either.
  const again = new Redlock([neverOpened])
  await expect(again.quit()).resolves.toBeUndefined()
  expect(neverOpened.isOpen).toBe(false)
})

test('quit(callback) (v4) is called once everything is closed', async () => {
  const client = new IORedis(place(urls[0]))
  client.on('error', () => {})
  const redlock = new Redlock([client])
  await redlock.acquire([uniqueKey('quit-cb')], 5000).then((l) => l.release())
  const error = await new Promise((resolve) => redlock.quit(resolve))
  expect(error).toBeNull()
  expect(client.status).toBe('end')
})

test('a process that gave ioredis clients to a Redlock, locked, and quit exits on its own', async () => {
  const script = `
    const IORedis = require(${JSON.stringify(require.resolve('ioredis'))})
    const Redlock = require(${JSON.stringify(path.resolve(__dirname, '../..'))})
    const urls = ${JSON.stringify(urls)}
    ;(async () => {
      const clients = urls.map((u) => new IORedis(u))
      const redlock = new Redlock(clients)
      await redlock.using([${JSON.stringify(uniqueKey('quit-exit'))}], 1000, async () => {})
      await redlock.quit()
      console.log('quit')
    })()
  `
  // No process.exit: the child ends only if nothing is left open. The bound is against hangs.
  const exited = await runNode(['-e', script], { timeout: 20000 })
  expect(exited.stdout.trim()).toBe('quit')
  expect(exited.signal).toBeNull()
  expect(exited.code).toBe(0)
})
