'use strict'

// A fleet in the middle of a migration: some processes still run the JavaScript library,
// some already run redlock-rs, on the same servers, with the same client set-up. Each peer's
// users migrate to the entry point the README's migration table names, and the two must
// exclude each other whatever database the clients are on and whatever their keyPrefix:
// the real packages are used, never imitations.

const IORedis = require('ioredis')
const RedlockV4 = require('redlock')
const RedlockV5 = require('redlock5').default
const { Redlock: SesameRedlock } = require('@sesamecare-oss/redlock')
const Redlock = require('../..')
const Sesame = require('../../sesame')
const { sharedUrls, uniqueKey } = require('../support/shared')
const { until } = require('../support/servers')
const { track, place, closeAll } = require('./targets')

const urls = sharedUrls().slice(0, 3)
const TTL = 20000

/** Each peer: how to make it, lock and unlock with it, and which of our entry points replaces it. */
const peers = [
  {
    name: 'redlock@4.2.0',
    make: (clients, settings) => new RedlockV4(clients, settings),
    lock: (peer, key) => peer.lock(key, TTL),
    unlock: (lock) => lock.unlock(),
    ours: (clients, settings) => new Redlock(clients, settings),
  },
  {
    name: 'redlock@5.0.0-beta.2',
    make: (clients, settings) => new RedlockV5(clients, settings),
    lock: (peer, key) => peer.acquire([key], TTL),
    unlock: (lock) => lock.release(),
    ours: (clients, settings) => new Redlock(clients, settings),
  },
  {
    name: '@sesamecare-oss/redlock',
    make: (clients, settings) => new SesameRedlock(clients, settings),
    lock: (peer, key) => peer.acquire([key], TTL),
    unlock: (lock) => lock.release(),
    ours: (clients, settings) => new Sesame.Redlock(clients, settings),
  },
  {
    name: '@sesamecare-oss/redlock with { db: 2 }',
    make: (clients, settings) => new SesameRedlock(clients, { ...settings, db: 2 }),
    lock: (peer, key) => peer.acquire([key], TTL),
    unlock: (lock) => lock.release(),
    ours: (clients, settings) => new Sesame.Redlock(clients, { ...settings, db: 2 }),
  },
]

const setups = [
  { db: 0, keyPrefix: '' },
  { db: 2, keyPrefix: '' },
  { db: 0, keyPrefix: 'app:' },
  { db: 2, keyPrefix: 'app:' },
]

const viewers = {}

beforeAll(() => {
  for (const db of [0, 2]) viewers[db] = urls.map((u) => track(new IORedis({ ...place(u), db })))
})

afterAll(closeAll)

/** Where `value` is stored for `key` on every server: `db<n>:<key as stored>`. */
async function whereIs(key, value) {
  const places = []
  for (const [db, clients] of Object.entries(viewers)) {
    for (const stored of [key, `app:${key}`]) {
      const values = await Promise.all(clients.map((c) => c.get(stored)))
      if (values.some((v) => v === value)) places.push(`db${db}:${stored}:${values.filter((v) => v === value).length}`)
    }
  }
  return places
}

/**
 * Where `value` is once every server has it: both libraries answer at quorum, and the last
 * server's write may land a moment later.
 */
async function placeOnAll(key, value) {
  let places
  await until(async () => {
    places = await whereIs(key, value)
    return places.length === 1 && places[0].endsWith(`:${urls.length}`)
  }, { timeout: 3000, message: `${value} under ${key} on every server` })
  return places
}

const clientsFor = ({ db, keyPrefix }) =>
  urls.map((u) => track(new IORedis({ ...place(u), db, ...(keyPrefix ? { keyPrefix } : {}) })))

describe.each(peers)('$name and its redlock-rs entry point', (peer) => {
  test.each(setups)('clients on db $db, keyPrefix "$keyPrefix": each excludes the other, on the same keys', async (setup) => {
    const theirs = peer.make(clientsFor(setup), { retryCount: 0 })
    const ours = peer.ours(clientsFor(setup), { retryCount: 0 })
    const key = uniqueKey('migration')
    try {
      // Theirs first: ours is refused and leaves their lock alone.
      const held = await peer.lock(theirs, key)
      const theirPlace = await placeOnAll(key, held.value)
      await expect(ours.acquire([key], TTL)).rejects.toBeInstanceOf(Redlock.ResourceLockedError)
      expect(await whereIs(key, held.value)).toEqual(theirPlace)
      await peer.unlock(held)

      // Ours next, in the very same place: theirs is refused.
      const lock = await ours.acquire([key], TTL)
      expect(await placeOnAll(key, lock.value)).toEqual(theirPlace)
      await expect(peer.lock(theirs, key)).rejects.toBeInstanceOf(Error)
      expect(await whereIs(key, lock.value)).toEqual(theirPlace)
      await lock.release()
      await until(async () => (await whereIs(key, lock.value)).length === 0, { timeout: 3000, message: 'released everywhere' })
    } finally {
      await ours.quit()
    }
  })
})

test('why sesame users take redlock-rs/sesame: the main entry follows the client, sesame database 0', async () => {
  // With clients on db 2 and no `db` setting, sesame locks in database 0 and node-redlock in
  // the client's database 2; the main entry does as node-redlock does. The two would not see
  // each other's locks, which is why sesame's users migrate to the entry point made for them.
  const setup = { db: 2, keyPrefix: '' }
  const sesame = new SesameRedlock(clientsFor(setup), { retryCount: 0 })
  const main = new Redlock(clientsFor(setup), { retryCount: 0 })
  const key = uniqueKey('migration-entry')
  try {
    const held = await sesame.acquire([key], TTL)
    expect(await placeOnAll(key, held.value)).toEqual([`db0:${key}:3`])
    const lock = await main.acquire([key], TTL)
    expect(await placeOnAll(key, lock.value)).toEqual([`db2:${key}:3`])
    await Promise.all([held.release(), lock.release()])
  } finally {
    await main.quit()
  }
})
