'use strict'

// Interoperability with the JavaScript `redlock@4.2.0` package over ioredis 5, and ioredis
// client objects given to our constructor.

const IORedis = require('ioredis')
const NodeRedlock = require('redlock')
const Redlock = require('..')
const { ExecutionError, ResourceLockedError } = Redlock
const { until, valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey } = require('./support/shared')

const urls = sharedUrls()
const places = urls.map((u) => {
  const parsed = new URL(u)
  return { host: parsed.hostname, port: Number(parsed.port) || 6379 }
})

const ioClients = []
function ioredis(...args) {
  const client = new IORedis(...args)
  client.on('error', () => {})
  ioClients.push(client)
  return client
}

let ours
let theirs
let theirsPrefixed

beforeAll(() => {
  ours = new Redlock(urls, { retryCount: 0 })
  theirs = new NodeRedlock(
    urls.map((u) => ioredis(u)),
    { retryCount: 2, retryDelay: 20 },
  )
  theirsPrefixed = new NodeRedlock(
    places.map((p) => ioredis({ ...p, keyPrefix: 'app:' })),
    { retryCount: 2, retryDelay: 20 },
  )
})

afterAll(async () => {
  await ours.quit()
  for (const client of ioClients) client.disconnect()
})

describe('with node-redlock 4.2.0 on the same servers', () => {
  test('a lock held by node-redlock makes ours fail with ResourceLockedError; after its release ours takes it', async () => {
    const key = uniqueKey('interop-theirs-first')
    const held = await theirs.lock(key, 10000)
    const error = await ours.acquire([key], 5000).then(
      () => null,
      (e) => e,
    )
    expect(error).toBeInstanceOf(ResourceLockedError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
    // Theirs still holds it, untouched, everywhere.
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => held.value))

    await held.unlock()
    const lock = await ours.acquire([key], 5000)
    await until(async () => (await valuesOnAll(urls, key)).every((v) => v === lock.value), {
      timeout: 2000,
      message: 'our value on every node',
    })
    await lock.release()
  })

  test('a lock held by ours makes node-redlock reject with its LockError; after our release it takes it', async () => {
    const key = uniqueKey('interop-ours-first')
    const lock = await ours.acquire([key], 10000)
    await expect(theirs.lock(key, 5000)).rejects.toBeInstanceOf(NodeRedlock.LockError)
    // Ours was granted at quorum; a straggling node of ours may have lost the race to
    // node-redlock's attempt there, which node-redlock then undid. What must hold: our value
    // on a quorum, and nothing of theirs left anywhere.
    await until(
      async () => {
        const values = await valuesOnAll(urls, key)
        const ourNodes = values.filter((v) => v === lock.value).length
        return ourNodes >= 3 && values.every((v) => v === lock.value || v === null)
      },
      { timeout: 2000, message: 'our value on a quorum, none of theirs anywhere' },
    )

    await lock.release()
    const held = await theirs.lock(key, 5000)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => held.value))
    await held.unlock()
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
  })

  test('multi-resource locks exclude each other in both directions (all-or-nothing)', async () => {
    const [a, b, c] = [uniqueKey('interop-a'), uniqueKey('interop-b'), uniqueKey('interop-c')]
    const held = await theirs.lock([a, b], 10000)
    await expect(ours.acquire([b, c], 5000)).rejects.toBeInstanceOf(ResourceLockedError)
    await until(async () => (await valuesOnAll(urls, c)).every((v) => v === null), {
      timeout: 2000,
      message: 'nothing of ours left on the free key',
    })
    await held.unlock()

    const lock = await ours.acquire([a, b], 10000)
    await expect(theirs.lock([b, c], 5000)).rejects.toBeInstanceOf(NodeRedlock.LockError)
    expect(await valuesOnAll(urls, c)).toEqual(urls.map(() => null))
    await lock.release()
    const again = await theirs.lock([a, b, c], 5000)
    await again.unlock()
  })

  test('node-redlock cannot extend our lock, and we cannot extend theirs', async () => {
    const key = uniqueKey('interop-extend')
    const lock = await ours.acquire([key], 10000)
    const mine = await theirs.lock(uniqueKey('interop-extend-other'), 10000)
    // A node-redlock Lock object pointed at our key with its own value: its extend fails.
    const forged = new NodeRedlock.Lock(theirs, key, mine.value, Date.now() + 10000, 1)
    await expect(forged.extend(20000)).rejects.toBeInstanceOf(NodeRedlock.LockError)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
    await mine.unlock()
    await lock.release()

    const held = await theirs.lock(key, 10000)
    await expect(ours.renewLock(key, 'not-their-value', 20000)).rejects.toBeInstanceOf(ExecutionError)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => held.value))
    await held.unlock()
  })
})

describe('ioredis client objects given to our constructor', () => {
  test("keyPrefix is read: the key is stored as 'app:<resource>'", async () => {
    const clients = places.map((p) => ioredis({ ...p, keyPrefix: 'app:', lazyConnect: true }))
    const prefixed = new Redlock(clients, { retryCount: 0 })
    try {
      const key = uniqueKey('interop-prefix')
      const lock = await prefixed.acquire([key], 10000)
      await until(async () => (await valuesOnAll(urls, `app:${key}`)).every((v) => v === lock.value), {
        timeout: 2000,
        message: "the value under 'app:<resource>' on every node",
      })
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
      await lock.release()
      await until(async () => (await valuesOnAll(urls, `app:${key}`)).every((v) => v === null), {
        timeout: 2000,
        message: 'the prefixed key released',
      })
      // The lazy ioredis clients were only read, never used.
      for (const client of clients) expect(client.status).toBe('wait')
    } finally {
      await prefixed.quit()
    }
    // quit() closes the clients it was given, as node-redlock does, without connecting them.
    for (const client of clients) expect(client.status).toBe('end')
  })

  test('ioredis clients made from URLs are read too', async () => {
    const clients = urls.map((u) => ioredis(u, { lazyConnect: true }))
    const viaUrl = new Redlock(clients, { retryCount: 0 })
    try {
      const key = uniqueKey('interop-ioredis-url')
      const lock = await viaUrl.acquire([key], 10000)
      await until(async () => (await valuesOnAll(urls, key)).every((v) => v === lock.value), {
        timeout: 2000,
        message: 'the value on every node',
      })
      await lock.release()
    } finally {
      await viaUrl.quit()
    }
  })

  test('with the same keyPrefix, node-redlock (prefixed ioredis) and ours exclude each other', async () => {
    const clients = places.map((p) => ioredis({ ...p, keyPrefix: 'app:', lazyConnect: true }))
    const prefixed = new Redlock(clients, { retryCount: 0 })
    try {
      const key = uniqueKey('interop-prefix-both')
      const held = await theirsPrefixed.lock(key, 10000)
      expect(await valuesOnAll(urls, `app:${key}`)).toEqual(urls.map(() => held.value))
      await expect(prefixed.acquire([key], 5000)).rejects.toBeInstanceOf(ResourceLockedError)
      // Without the prefix it is another key.
      const other = await ours.acquire([key], 5000)
      await other.release()
      await held.unlock()
      const lock = await prefixed.acquire([key], 10000)
      await expect(theirsPrefixed.lock(key, 5000)).rejects.toBeInstanceOf(NodeRedlock.LockError)
      await lock.release()
    } finally {
      await prefixed.quit()
    }
  })

  test('two ioredis clients pointing at the same server are refused as duplicates', () => {
    const p = places[0]
    const twice = [
      ioredis({ ...p, lazyConnect: true }),
      ...places.slice(1).map((q) => ioredis({ ...q, lazyConnect: true })),
      ioredis({ ...p, lazyConnect: true }),
    ]
    let error
    try {
      new Redlock(twice)
    } catch (e) {
      error = e
    }
    expect(error).toBeInstanceOf(TypeError)
    expect(error.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(error.message).toMatch(/clients\[5\]/)

    // An ioredis client and a URL reaching the same server.
    expect(() => new Redlock([ioredis(urls[1], { lazyConnect: true }), urls[1]])).toThrow(TypeError)
    // localhost vs 127.0.0.1 through ioredis options.
    if (p.host === '127.0.0.1') {
      expect(
        () =>
          new Redlock([
            ioredis({ host: 'localhost', port: p.port, lazyConnect: true }),
            ioredis({ host: '127.0.0.1', port: p.port, lazyConnect: true }),
          ]),
      ).toThrow(TypeError)
    }
  })

  test('the same server on different dbs is not a duplicate', async () => {
    const p = places[0]
    const rl = new Redlock([
      ioredis({ ...p, db: 0, lazyConnect: true }),
      ioredis({ ...p, db: 1, lazyConnect: true }),
    ])
    expect(rl.nodes).toHaveLength(2)
    await rl.quit()
  })
})
