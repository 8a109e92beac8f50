'use strict'

// Where the conformance suites run, as the peers' own suites do: a single Redis server on
// its default database, the same server on database 2 (sesame's `db` setting, through the
// `redlock-rs/sesame` entry point), and a Redis Cluster. Each target gives an ioredis client
// to look at the keys with, and makes Redlocks the way a migrated user would: from ioredis
// client objects.

const IORedis = require('ioredis')
const Redlock = require('../..')
const Sesame = require('../../sesame')
const { freePort } = require('../support/servers')
const { startCluster } = require('../support/cluster')

/** Opened by the targets and closed by `closeAll()`. */
const opened = []

function track(client) {
  client.on('error', () => {})
  opened.push(client)
  return client
}

function place(url) {
  const { hostname, port } = new URL(url)
  return { host: hostname, port: Number(port) }
}

/** A plain server at `url`, its lock keys on database `db` (0: node-redlock's way). */
function instance(url, db) {
  return {
    name: db === 0 ? 'instance, db 0' : `instance, db ${db} (redlock-rs/sesame, { db: ${db} })`,
    async start() {},
    /** A client on the database the lock keys live in. */
    viewer: () => track(new IORedis({ ...place(url), db })),
    /** A Redlock over this target, as a migrated user makes it. */
    redlock: (settings = {}) =>
      db === 0
        ? new Redlock([track(new IORedis(place(url)))], settings)
        : new Sesame.Redlock([track(new IORedis(place(url)))], { db, ...settings }),
    async stop() {},
  }
}

/** A Redis Cluster of three masters, started by `start()`. */
function cluster() {
  let started
  return {
    name: 'cluster',
    async start() {
      started = await startCluster({ masters: 3 })
    },
    viewer: () => track(new IORedis.Cluster(started.seeds.slice(0, 1).map(place))),
    redlock: (settings = {}) => new Redlock([track(new IORedis.Cluster(started.seeds.slice(0, 1).map(place)))], settings),
    async stop() {
      if (started) await started.stop()
    },
  }
}

/** An ioredis client (or cluster) for a port where nothing listens, as the peers' suites make it. */
async function unreachable(kind) {
  const options = {
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    autoResubscribe: false,
    retryStrategy: () => null,
    reconnectOnError: () => false,
  }
  const where = { host: '127.0.0.1', port: await freePort() }
  return track(kind === 'cluster' ? new IORedis.Cluster([where], { redisOptions: options, clusterRetryStrategy: () => null }) : new IORedis({ ...where, ...options }))
}

function closeAll() {
  for (const client of opened.splice(0)) client.disconnect()
}

module.exports = { instance, cluster, unreachable, closeAll, track, place }
