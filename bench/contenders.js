'use strict'
// Who is measured. Every contender offers the same two operations to bench/worker.js:
// `acquire(resources, ttl)` resolving with a handle (rejecting when the lock was not granted
// within the library's retry settings) and `release(handle)`. Contenders of kind 'rust' are
// the floor binary (bench/floor), which runs the workload itself.
//
// `role` groups the rows: 'subject' is this package, 'library' a JavaScript Redlock a user
// might be migrating from, 'floor' the least work Redlock needs, with no library around it.
//
// redlock-rs is listed once per mode. A mode is a name, the settings it adds to the
// constructor's, and the environment its worker process starts with. To measure a new
// engine mode, add an entry to REDLOCK_RS_MODES (with `default: true` to have it in every
// run, otherwise ask for it with `--modes`).

const crypto = require('node:crypto')
const path = require('node:path')

const root = path.join(__dirname, '..')

/** The modes of redlock-rs the runner knows. */
const REDLOCK_RS_MODES = {
  notification: {
    default: true,
    about: 'the defaults: a waiter wakes on the release notice (wakeOnRelease: true)',
    settings: {},
    env: {},
  },
  polling: {
    default: true,
    about: 'retries by polling only, retryDelay ± retryJitter (wakeOnRelease: false)',
    settings: { wakeOnRelease: false },
    env: {},
  },
  fencing: {
    default: true,
    about: 'notification, and a fencing token with every acquisition (fencing: true)',
    settings: { fencing: true },
    env: {},
  },
}

/** Tuned retry settings of the contention scenario, in each library's own words. */
const TUNED = { retryDelay: 10, retryJitter: 5 }

/** node-redlock's defaults, which the floors use when a scenario asks for defaults. */
const NODE_REDLOCK_DEFAULTS = { retryCount: 10, retryDelay: 200, retryJitter: 100 }

function version(pkg) {
  return require(path.join(root, 'node_modules', pkg, 'package.json')).version
}

/**
 * ioredis clients, one per URL, with ioredis's defaults plus `options`; their errors are
 * expected here.
 */
function ioredisClients(urls, options = {}) {
  const IORedis = require('ioredis')
  return urls.map((url) => {
    const client = new IORedis(url, options)
    client.on('error', () => {})
    return client
  })
}

function disconnect(clients) {
  for (const client of clients) client.disconnect()
}

function redlockRs(mode) {
  const spec = REDLOCK_RS_MODES[mode]
  return {
    id: mode === 'notification' ? 'redlock-rs' : `redlock-rs:${mode}`,
    label: `redlock-rs [${mode}]`,
    role: 'subject',
    kind: 'node',
    env: spec.env,
    about: spec.about,
    version: () => `${require(path.join(root, 'package.json')).version} (${mode})`,
    open(urls, retry) {
      const Redlock = require(root)
      const redlock = new Redlock(urls, { ...spec.settings, ...(retry ? TUNED : {}) })
      redlock.on('error', () => {})
      return {
        acquire: (resources, ttl) => redlock.acquire(resources, ttl),
        release: (lock) => lock.release(),
        close: () => redlock.quit(),
      }
    },
  }
}

const nodeRedlock4 = {
  id: 'node-redlock-v4',
  label: 'redlock@4 (ioredis)',
  role: 'library',
  kind: 'node',
  version: () => `redlock ${version('redlock')}, ioredis ${version('ioredis')}`,
  open(urls, retry) {
    const Redlock = require('redlock')
    const clients = ioredisClients(urls)
    const redlock = new Redlock(clients, retry ? TUNED : {})
    redlock.on('clientError', () => {})
    return {
      acquire: (resources, ttl) => redlock.lock(resources, ttl),
      release: (lock) => lock.unlock(),
      close: () => disconnect(clients),
    }
  },
}

const sesamecare = {
  id: 'sesamecare-redlock',
  label: '@sesamecare-oss/redlock (v5 API)',
  role: 'library',
  kind: 'node',
  version: () => `@sesamecare-oss/redlock ${version('@sesamecare-oss/redlock')}, ioredis ${version('ioredis')}`,
  open(urls, retry) {
    const { Redlock } = require('@sesamecare-oss/redlock')
    const clients = ioredisClients(urls)
    const redlock = new Redlock(clients, retry ? TUNED : {})
    return {
      acquire: (resources, ttl) => redlock.acquire(resources, ttl),
      release: (lock) => lock.release(),
      close: () => disconnect(clients),
    }
  },
}

const redisSemaphore = {
  id: 'redis-semaphore',
  label: 'redis-semaphore RedlockMutex',
  role: 'library',
  kind: 'node',
  // One key per mutex: it has no multi-resource lock.
  multiResource: false,
  version: () => `redis-semaphore ${version('redis-semaphore')}, ioredis ${version('ioredis')}`,
  open(urls, retry) {
    const { RedlockMutex } = require('redis-semaphore')
    const clients = ioredisClients(urls)
    // Its own default retryInterval is already 10 ms, and it has no jitter.
    const options = retry ? { retryInterval: TUNED.retryDelay } : {}
    return {
      async acquire([resource], ttl) {
        const mutex = new RedlockMutex(clients, resource, { ...options, lockTimeout: ttl })
        await mutex.acquire()
        return mutex
      },
      release: (mutex) => mutex.release(),
      close: () => disconnect(clients),
    }
  },
}

/** Compare-and-delete over all keys, as every Redlock releases. */
const RELEASE_SCRIPT = `
local deleted = 0
for _, key in ipairs(KEYS) do
  if redis.call("GET", key) == ARGV[1] then
    redis.call("DEL", key)
    deleted = deleted + 1
  end
end
return deleted`

/** Sets every key unless one holds another value: the least that makes a multi-lock atomic. */
const ACQUIRE_ALL_SCRIPT = `
for _, key in ipairs(KEYS) do
  local held = redis.call("GET", key)
  if held and held ~= ARGV[1] then
    return 0
  end
end
for _, key in ipairs(KEYS) do
  redis.call("SET", key, ARGV[1], "PX", ARGV[2])
end
return #KEYS`

/**
 * Redlock's minimum work straight on ioredis: SET NX PX (a script for several keys) to every
 * node at once, compare-and-delete to every node at once, each decided at quorum; retries
 * undo the attempt and pause retryDelay ± retryJitter. No per-node timeout, no bookkeeping.
 * With `autoPipelining`, the clients are made with `enableAutoPipelining: true`: the commands
 * issued to a node in one tick of the event loop go out in one write.
 */
function floorIoredis({ autoPipelining = false } = {}) {
  return {
    id: autoPipelining ? 'floor-ioredis-ap' : 'floor-ioredis',
    label: autoPipelining ? 'floor: ioredis, by hand, auto-pipelined' : 'floor: ioredis, by hand',
    role: 'floor',
    kind: 'node',
    version: () => `ioredis ${version('ioredis')}${autoPipelining ? ', enableAutoPipelining' : ''}`,
    open(urls, retry) {
      const options = autoPipelining ? { enableAutoPipelining: true } : {}
      return openFloorIoredis(ioredisClients(urls, options), retry)
    },
  }
}

/** The hand-written Redlock of floorIoredis on the given clients. */
function openFloorIoredis(clients, retry) {
  for (const client of clients) {
    client.defineCommand('floorRelease', { lua: RELEASE_SCRIPT })
    client.defineCommand('floorAcquireAll', { lua: ACQUIRE_ALL_SCRIPT })
  }
  const quorum = Math.floor(clients.length / 2) + 1
  const { retryCount, retryDelay, retryJitter } = { ...NODE_REDLOCK_DEFAULTS, ...(retry ? TUNED : {}) }
  const round = (send, granted) =>
    new Promise((resolve) => {
      let votesFor = 0
      let votesAgainst = 0
      const vote = (yes) => {
        if (yes) votesFor += 1
        else votesAgainst += 1
        if (votesFor === quorum) resolve(true)
        else if (votesAgainst === clients.length - quorum + 1) resolve(false)
      }
      for (const client of clients) {
        send(client).then(
          (answer) => vote(granted(answer)),
          () => vote(false),
        )
      }
    })
  const release = ({ keys, value }) =>
    round(
      (c) => c.floorRelease(keys.length, ...keys, value),
      () => true,
    )
  return {
    async acquire(keys, ttl) {
      const value = crypto.randomBytes(16).toString('hex')
      const send =
        keys.length === 1
          ? (c) => c.set(keys[0], value, 'PX', ttl, 'NX')
          : (c) => c.floorAcquireAll(keys.length, ...keys, value, ttl)
      for (let attempt = 0; ; attempt++) {
        if (await round(send, (answer) => answer === 'OK' || answer === keys.length)) {
          return { keys, value }
        }
        await release({ keys, value })
        if (attempt === retryCount) throw new Error('the lock was not granted')
        const pause = retryDelay + Math.round((Math.random() * 2 - 1) * retryJitter)
        await new Promise((r) => setTimeout(r, Math.max(0, pause)))
      }
    },
    async release(handle) {
      if (!(await release(handle))) throw new Error('no quorum answered the release')
    },
    close: () => disconnect(clients),
  }
}

function floorRust(runtime) {
  const multi = runtime === 'multi'
  return {
    id: multi ? 'floor-rust-mt' : 'floor-rust-ct',
    label: multi ? 'floor: Rust, multi-thread (2 workers)' : 'floor: Rust, current-thread',
    role: 'floor',
    kind: 'rust',
    args: multi ? ['--runtime', 'multi', '--workers', '2'] : ['--runtime', 'current'],
    version: () => 'redis 1.8.1 (crate), tokio',
  }
}

/**
 * redlock-rs's engine (redlock-core) driven straight from Rust by bench/floor, without Node:
 * the gap to the floor is the engine's cost, the gap to redlock-rs the binding's and runtime's.
 * Optional: run only when named with `--contenders`.
 */
function engineRust(runtime) {
  const multi = runtime === 'multi'
  return {
    ...floorRust(runtime),
    id: multi ? 'engine-rust-mt' : 'engine-rust-ct',
    label: multi ? 'engine without Node: multi-thread (2 workers)' : 'engine without Node: current-thread',
    args: [...floorRust(runtime).args, '--engine'],
    version: () => `redlock-core ${require(path.join(root, 'package.json')).version}, redis 1.8.1 (crate)`,
    optional: true,
  }
}

/**
 * Every contender, in table order; `modes` picks the redlock-rs modes, `optional` adds the
 * contenders that are only run when asked for.
 */
function contenders(modes = defaultModes(), { optional = false } = {}) {
  for (const mode of modes) {
    if (!REDLOCK_RS_MODES[mode]) {
      throw new Error(
        `unknown redlock-rs mode "${mode}"; known: ${Object.keys(REDLOCK_RS_MODES).join(', ')}`,
      )
    }
  }
  return [
    ...modes.map(redlockRs),
    nodeRedlock4,
    sesamecare,
    redisSemaphore,
    floorIoredis(),
    floorIoredis({ autoPipelining: true }),
    floorRust('multi'),
    floorRust('current'),
    ...(optional ? [engineRust('multi'), engineRust('current')] : []),
  ]
}

function defaultModes() {
  return Object.keys(REDLOCK_RS_MODES).filter((m) => REDLOCK_RS_MODES[m].default)
}

module.exports = { contenders, defaultModes, REDLOCK_RS_MODES, NODE_REDLOCK_DEFAULTS, TUNED }
