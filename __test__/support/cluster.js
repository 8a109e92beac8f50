'use strict'

// Throwaway Redis Clusters for the tests: redis-server processes in cluster mode on free
// loopback ports (scripts/redis-servers.js), joined with `redis-cli --cluster create`, plus
// what a test needs to look at one and break it: the hash slot of a key, who serves it,
// commands routed to that master, slot migration (with a window for ASK redirects), manual
// failover, and kill / restart / pause / resume of one process. Everything talks to the
// nodes through the raw RESP client (lib/resp.js), never through the library under test.

const { spawn } = require('node:child_process')

const { freePort, RedisServer } = require('../../scripts/redis-servers.js')
const { Conn, commandWithTimeout } = require('../../lib/resp.js')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const SLOTS = 16384
/** Bound on one command while polling, so that a stuck node does not stall a wait. */
const POLL_COMMAND_MS = 2000
const POLL_INTERVAL_MS = 50

// ---------------------------------------------------------------------------
// Hash slots

const CRC16_TABLE = (() => {
  const table = new Uint16Array(256)
  for (let i = 0; i < 256; i++) {
    let crc = i << 8
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
    table[i] = crc
  }
  return table
})()

/** CRC16-XMODEM (polynomial 0x1021, initial value 0), the checksum Redis Cluster uses. */
function crc16(buf) {
  let crc = 0
  for (const byte of buf) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ byte) & 0xff]
  return crc
}

/**
 * The hash slot of a key (string, hashed as UTF-8, or Buffer). With a hash tag, a `{`
 * followed later by a `}` with at least one byte between them, only the bytes between the
 * first `{` and the first `}` after it are hashed.
 */
function slotOf(key) {
  const buf = Buffer.isBuffer(key) ? key : Buffer.from(String(key))
  const open = buf.indexOf(0x7b) // {
  if (open !== -1) {
    const close = buf.indexOf(0x7d, open + 1) // }
    if (close > open + 1) return crc16(buf.subarray(open + 1, close)) % SLOTS
  }
  return crc16(buf) % SLOTS
}

// ---------------------------------------------------------------------------
// CLUSTER NODES

/**
 * One line of CLUSTER NODES per node:
 * `<id> <ip:port@cport[,hostname]> <flags> <master|-> <ping> <pong> <epoch> <link> <slot>...`
 * Slots are `n`, `a-b`, or (on the migrating / importing node's own line) `[n->-id]` /
 * `[n-<-id]`.
 */
function parseClusterNodes(text) {
  const nodes = []
  for (const line of String(text).split('\n')) {
    const f = line.trim().split(' ')
    if (f.length < 8) continue
    const [id, addr, flagText, master, , , epoch, linkState, ...slotFields] = f
    const hostPort = addr.split(',')[0]
    const [hp, cport] = hostPort.split('@')
    const colon = hp.lastIndexOf(':')
    const flags = flagText.split(',')
    const slots = []
    const migrating = {}
    const importing = {}
    for (const s of slotFields) {
      let m
      if ((m = /^\[(\d+)->-(\w+)\]$/.exec(s))) migrating[m[1]] = m[2]
      else if ((m = /^\[(\d+)-<-(\w+)\]$/.exec(s))) importing[m[1]] = m[2]
      else if ((m = /^(\d+)(?:-(\d+))?$/.exec(s))) slots.push([Number(m[1]), Number(m[2] !== undefined ? m[2] : m[1])])
    }
    nodes.push({
      id,
      host: hp.slice(0, colon) || '127.0.0.1',
      port: Number(hp.slice(colon + 1)),
      busPort: Number(cport) || undefined,
      flags,
      role: flags.includes('master') ? 'master' : flags.includes('slave') ? 'replica' : 'unknown',
      myself: flags.includes('myself'),
      masterId: master === '-' ? null : master,
      configEpoch: Number(epoch),
      linkState,
      slots,
      migrating,
      importing,
    })
  }
  return nodes
}

/** Who owns which slots, as one string: equal strings mean equal slot maps. */
function slotMapSignature(view) {
  return view
    .filter((n) => n.role === 'master' && n.slots.length)
    .map((n) => `${n.id}=${n.slots.map(([a, b]) => `${a}-${b}`).join(',')}`)
    .sort()
    .join(' ')
}

/** The whole membership (ids, roles, masters, slots), ignoring `myself` and link details. */
function membershipSignature(view) {
  return view
    .map((n) => `${n.id}:${n.role}:${n.masterId || '-'}:${n.slots.map(([a, b]) => `${a}-${b}`).join(',')}`)
    .sort()
    .join(' ')
}

function infoField(info, name) {
  const m = new RegExp(`^${name}:(.*?)\\r?$`, 'm').exec(String(info))
  return m ? m[1] : undefined
}

// ---------------------------------------------------------------------------
// Helpers

/**
 * Calls `check` every `interval` ms until it returns a falsy value (done) or `timeout` ms
 * pass; `check` returns a string saying what is still missing (or throws), which ends up in
 * the error.
 */
async function pollUntil(check, { timeout, interval = POLL_INTERVAL_MS, what }) {
  const deadline = Date.now() + timeout
  let why
  for (;;) {
    try {
      why = await check()
      if (!why) return
    } catch (err) {
      why = `error: ${err.message}`
    }
    if (Date.now() >= deadline) break
    await sleep(interval)
  }
  const err = new Error(`${what}: not reached within ${timeout} ms (${why})`)
  err.code = 'ECLUSTERTIMEOUT'
  throw err
}

// Ports handed to a cluster in this process and not yet given back, so that clusters
// started in parallel never get the same port from freePort().
const reservedPorts = new Set()

async function reservePort() {
  for (let i = 0; i < 50; i++) {
    const port = await freePort()
    if (!reservedPorts.has(port)) {
      reservedPorts.add(port)
      return port
    }
  }
  throw new Error('could not find a free port that is not already reserved')
}

// Clusters not stopped yet: a last-resort SIGKILL for their processes if this process exits
// without stopping them.
const activeClusters = new Set()
let exitHookInstalled = false
function installExitHook() {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const cluster of activeClusters) {
      for (const n of cluster.nodes) {
        if (n.server.pid === undefined) continue
        try {
          process.kill(n.server.pid, 'SIGKILL')
        } catch {}
        try {
          n.server.cleanup()
        } catch {}
      }
    }
  })
}

/** Runs `redis-cli args...`; resolves with its output, rejects with the output on failure. */
function redisCli(args, timeoutMs) {
  return new Promise((resolve, reject) => {
    let output = ''
    let settled = false
    const proc = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    const append = (chunk) => {
      if (output.length < 256 * 1024) output += chunk.toString()
    }
    proc.stdout.on('data', append)
    proc.stderr.on('data', append)
    const timer = setTimeout(() => {
      try {
        proc.kill('SIGKILL')
      } catch {}
      finish(new Error(`redis-cli ${args.join(' ')} did not finish within ${timeoutMs} ms. Output:\n${output}`))
    }, timeoutMs)
    function finish(err) {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (err) reject(err)
      else resolve(output)
    }
    proc.once('error', (err) =>
      finish(err.code === 'ENOENT' ? new Error('redis-cli was not found on PATH (it comes with redis-server)') : err),
    )
    proc.once('close', (code, signal) => {
      output = output.replace(/\x1b\[[0-9;]*m/g, '') // redis-cli colours [ERR] even into a pipe
      if (code === 0 && !/\[ERR\]/.test(output)) finish(null)
      else finish(new Error(`redis-cli ${args.join(' ')} failed (code ${code}, signal ${signal}). Output:\n${output}`))
    })
  })
}

function parseRedirect(err) {
  const m = /^(MOVED|ASK) (\d+) (\S+)$/.exec((err && err.message) || '')
  if (!m) return null
  const colon = m[3].lastIndexOf(':')
  const host = m[3].slice(0, colon).replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  const port = Number(m[3].slice(colon + 1))
  const url = host.includes(':') ? `redis://[${host}]:${port}` : `redis://${host}:${port}`
  return { kind: m[1], slot: Number(m[2]), host, port, url }
}

async function sendOn(url, ...commands) {
  const conn = new Conn(url)
  try {
    let reply
    for (const args of commands) reply = await conn.send(...args)
    return reply
  } finally {
    conn.close()
  }
}

// ---------------------------------------------------------------------------
// Cluster

class Cluster {
  constructor({ masters, replicas, nodeTimeout }) {
    this.size = { masters, replicas }
    this.nodeTimeout = nodeTimeout
    /** Every process: `{ port, url, busPort, id, server }` (`id` is known once started). */
    this.nodes = []
    /** `redis://127.0.0.1:PORT` of every node, what a client is given as startup nodes. */
    this.seeds = []
    /** With `tls`: `rediss://127.0.0.1:TLSPORT` of every node. */
    this.tlsSeeds = []
    this._paused = new Set()
    this._stopping = null
  }

  slotOf(key) {
    return slotOf(key)
  }

  /** Our entry for the process on `port` (throws for a port not in this cluster). */
  node(port) {
    const n = this.nodes.find((x) => x.port === Number(port))
    if (!n) throw new Error(`no node of this cluster listens on port ${port}`)
    return n
  }

  /** Whether our process on `port` runs and is not paused. */
  alive(port) {
    const n = this.nodes.find((x) => x.port === Number(port))
    return !!n && n.server.running && !this._paused.has(n.port)
  }

  /** The nodes that run and are not paused: the ones that can answer. */
  liveNodes() {
    return this.nodes.filter((n) => this.alive(n.port))
  }

  _q(node, ...args) {
    return commandWithTimeout(node.url, POLL_COMMAND_MS, ...args)
  }

  /** CLUSTER NODES as seen by every live node that answers: `[{ node, view }]`. */
  async _views() {
    const answers = await Promise.all(
      this.liveNodes().map(async (node) => {
        try {
          return { node, view: parseClusterNodes(await this._q(node, 'CLUSTER', 'NODES')) }
        } catch {
          return null
        }
      }),
    )
    return answers.filter(Boolean)
  }

  /**
   * The cluster as the best-informed live node sees it (the view with the highest config
   * epoch among slot owners, so a node that has just come back is not believed over the
   * others). Each entry also says whether our process for it is `alive` and whether the
   * cluster thinks it `failed` (fail or fail?).
   */
  async topology() {
    const views = await this._views()
    if (!views.length) throw new Error('no node of the cluster answers CLUSTER NODES')
    const epoch = (view) => Math.max(0, ...view.filter((n) => n.slots.length).map((n) => n.configEpoch))
    let best = views[0]
    for (const v of views) if (epoch(v.view) > epoch(best.view)) best = v
    const byId = new Map(best.view.map((n) => [n.id, n]))
    return best.view.map((n) => {
      const master = n.masterId ? byId.get(n.masterId) : null
      return {
        ...n,
        url: n.host.includes(':') ? `redis://[${n.host}]:${n.port}` : `redis://${n.host}:${n.port}`,
        masterPort: master ? master.port : undefined,
        alive: this.alive(n.port),
        failed: n.flags.includes('fail') || n.flags.includes('fail?'),
      }
    })
  }

  /**
   * The masters, `{ port, url, id, slots: [[from, to], ...], alive, failed, flags, ... }`.
   * Nodes the cluster has marked `fail` are left out unless `{ all: true }`.
   */
  async masters({ all = false } = {}) {
    return (await this.topology()).filter((n) => n.role === 'master' && (all || !n.flags.includes('fail')))
  }

  /** The replicas, `{ port, url, id, masterId, masterPort, alive, failed, flags, ... }`. */
  async replicas({ all = false } = {}) {
    return (await this.topology()).filter((n) => n.role === 'replica' && (all || !n.flags.includes('fail')))
  }

  /** The master that serves `key`'s slot now. */
  async masterFor(key) {
    const slot = slotOf(key)
    const topology = await this.topology()
    const m = topology.find((n) => n.role === 'master' && n.slots.some(([a, b]) => slot >= a && slot <= b))
    if (!m) throw new Error(`no master serves slot ${slot} (key ${JSON.stringify(String(key))})`)
    return m
  }

  /**
   * Runs `args` (the whole command) on the master serving `key`, following one MOVED or ASK
   * redirect (ASKING first, on the same connection, for ASK). Error replies reject.
   */
  async command(key, ...args) {
    const m = await this.masterFor(key)
    try {
      return await sendOn(m.url, args)
    } catch (err) {
      const r = parseRedirect(err)
      if (!r) throw err
      if (r.kind === 'ASK') return sendOn(r.url, ['ASKING'], args)
      return sendOn(r.url, args)
    }
  }

  /** How many clients subscribe to `channel`, over every live node (PUBSUB NUMSUB). */
  async subscribers(channel) {
    let n = 0
    for (const node of this.liveNodes()) n += (await this._q(node, 'PUBSUB', 'NUMSUB', channel))[1]
    return n
  }

  /** Every key matching `pattern` on every live master, flattened. */
  async keysEverywhere(pattern = '*') {
    const masters = (await this.masters()).filter((m) => m.alive)
    const lists = await Promise.all(masters.map((m) => sendOn(m.url, ['KEYS', pattern])))
    return lists.flat()
  }

  /** FLUSHALL on every live master. */
  async flush() {
    const masters = (await this.masters()).filter((m) => m.alive)
    await Promise.all(masters.map((m) => sendOn(m.url, ['FLUSHALL'])))
  }

  /**
   * Moves `slot` and its keys from its master to the master on `toPort`: IMPORTING on the
   * target, MIGRATING on the source, then (after `pauseMs` and `await during()`, a window in
   * which clients get ASK redirects) MIGRATE of the keys 100 at a time, and SETSLOT NODE on
   * the target, the source and every other live master. Resolves once every live node
   * agrees the target owns the slot, with `{ slot, from, to, keys }`.
   */
  async migrateSlot(slot, toPort, { pauseMs = 0, during, timeout = 20000 } = {}) {
    slot = Number(slot)
    if (!Number.isInteger(slot) || slot < 0 || slot >= SLOTS) throw new RangeError(`not a slot: ${slot}`)
    const topology = await this.topology()
    const src = topology.find((n) => n.role === 'master' && n.slots.some(([a, b]) => slot >= a && slot <= b))
    const dst = topology.find((n) => n.port === Number(toPort))
    if (!src) throw new Error(`no master serves slot ${slot}`)
    if (!dst || dst.role !== 'master') throw new Error(`the node on port ${toPort} is not a master of this cluster`)
    if (src.id === dst.id) return { slot, from: src.port, to: dst.port, keys: 0 }

    let moved = 0
    try {
      await sendOn(dst.url, ['CLUSTER', 'SETSLOT', slot, 'IMPORTING', src.id])
      await sendOn(src.url, ['CLUSTER', 'SETSLOT', slot, 'MIGRATING', dst.id])
      if (pauseMs > 0) await sleep(pauseMs)
      if (during) await during()
      for (;;) {
        const keys = await sendOn(src.url, ['CLUSTER', 'GETKEYSINSLOT', slot, 100])
        if (!keys.length) break
        await sendOn(src.url, ['MIGRATE', dst.host, dst.port, '', 0, 5000, 'KEYS', ...keys])
        moved += keys.length
      }
    } catch (err) {
      // Best effort: leave the slot where it was rather than half-migrating.
      await Promise.all(
        [dst, src].map((n) => sendOn(n.url, ['CLUSTER', 'SETSLOT', slot, 'STABLE']).catch(() => {})),
      )
      err.message = `migrating slot ${slot} from ${src.port} to ${dst.port}: ${err.message}`
      throw err
    }
    await sendOn(dst.url, ['CLUSTER', 'SETSLOT', slot, 'NODE', dst.id])
    await sendOn(src.url, ['CLUSTER', 'SETSLOT', slot, 'NODE', dst.id])
    const others = topology.filter(
      (n) => n.role === 'master' && n.id !== src.id && n.id !== dst.id && this.alive(n.port),
    )
    await Promise.all(others.map((n) => sendOn(n.url, ['CLUSTER', 'SETSLOT', slot, 'NODE', dst.id])))

    await pollUntil(
      async () => {
        const views = await this._views()
        const wrong = views.filter(({ view }) => {
          const owner = view.find((n) => n.role === 'master' && n.slots.some(([a, b]) => slot >= a && slot <= b))
          return !owner || owner.id !== dst.id
        })
        return wrong.length ? `nodes ${wrong.map((v) => v.node.port).join(', ')} do not see the new owner yet` : null
      },
      { timeout, what: `slot ${slot} owned by ${dst.port} on every live node` },
    )
    return { slot, from: src.port, to: dst.port, keys: moved }
  }

  /**
   * CLUSTER FAILOVER [mode] on the replica on `replicaPort` (`mode`: 'FORCE' or 'TAKEOVER'
   * when its master is down), sent again if a manual failover times out on the server
   * side; resolves once it is a master, every live node says cluster_state:ok and agrees on
   * roles and slot owners (so a live old master is a replica by then), and the live
   * replicas of live masters have their link up.
   */
  async failover(replicaPort, { mode, timeout = 30000 } = {}) {
    const node = this.node(replicaPort)
    const deadline = Date.now() + timeout
    const role = await sendOn(node.url, ['ROLE'])
    if (role[0] !== 'slave') throw new Error(`the node on port ${replicaPort} is not a replica (ROLE: ${role[0]})`)
    if (!mode) {
      // A manual failover needs the replica in sync with its master: wait for the link
      // (bounded; the command is sent anyway afterwards).
      await pollUntil(
        async () => {
          const link = infoField(await this._q(node, 'INFO', 'replication'), 'master_link_status')
          return link === 'up' ? null : `master_link_status:${link}`
        },
        { timeout: Math.min(10000, timeout / 2), what: `replica ${replicaPort} linked to its master` },
      ).catch(() => {})
    }
    for (;;) {
      await sendOn(node.url, ['CLUSTER', 'FAILOVER', ...(mode ? [mode] : [])])
      const left = deadline - Date.now()
      try {
        // A manual failover gives up on the server after 5 s; then ask again.
        await pollUntil(async () => ((await this._q(node, 'ROLE'))[0] === 'master' ? null : 'still a replica'), {
          timeout: Math.max(0, Math.min(8000, left)),
          what: `node ${replicaPort} becoming master`,
        })
        break
      } catch (err) {
        if (Date.now() >= deadline) throw err
      }
    }
    await this._waitSettled(Math.max(1000, deadline - Date.now()), node.id)
  }

  /**
   * Waits until every live node says cluster_state:ok and all of them see the same roles
   * and slot owners (and `masterId`, if given, as a master), and every live replica whose
   * master is alive has master_link_status:up.
   */
  async _waitSettled(timeout, masterId) {
    await pollUntil(
      async () => {
        const live = this.liveNodes()
        const checks = await Promise.all(
          live.map(async (node) => {
            const [info, nodesText] = await Promise.all([
              this._q(node, 'CLUSTER', 'INFO'),
              this._q(node, 'CLUSTER', 'NODES'),
            ])
            const view = parseClusterNodes(nodesText)
            const me = view.find((n) => n.myself)
            let link = 'up'
            if (me && me.role === 'replica') {
              const master = view.find((n) => n.id === me.masterId)
              if (master && this.alive(master.port)) {
                link = infoField(await this._q(node, 'INFO', 'replication'), 'master_link_status')
              }
            }
            return { node, state: infoField(info, 'cluster_state'), view, link }
          }),
        )
        const notOk = checks.filter((c) => c.state !== 'ok')
        if (notOk.length) return `cluster_state not ok on ${notOk.map((c) => c.node.port).join(', ')}`
        if (new Set(checks.map((c) => slotMapSignature(c.view))).size > 1) return 'live nodes disagree on slot owners'
        if (new Set(checks.map((c) => membershipSignature(c.view))).size > 1) return 'live nodes disagree on roles'
        if (masterId) {
          const unaware = checks.filter((c) => !c.view.some((n) => n.id === masterId && n.role === 'master'))
          if (unaware.length) return `${unaware.map((c) => c.node.port).join(', ')} do not see the new master yet`
        }
        const down = checks.filter((c) => c.link !== 'up')
        if (down.length) return `replication link not up on ${down.map((c) => c.node.port).join(', ')}`
        return null
      },
      { timeout, what: 'cluster settled' },
    )
  }

  /**
   * Waits until every node says cluster_state:ok, all 16384 slots are assigned, every node
   * knows every other and they agree on roles and slot owners, and replicas have their
   * master link up. (After `redis-cli --cluster create`.)
   */
  async _waitFormed(timeout) {
    const total = this.nodes.length
    await pollUntil(
      async () => {
        const checks = await Promise.all(
          this.nodes.map(async (node) => {
            const [info, nodesText, repl] = await Promise.all([
              this._q(node, 'CLUSTER', 'INFO'),
              this._q(node, 'CLUSTER', 'NODES'),
              this._q(node, 'INFO', 'replication'),
            ])
            return { node, info, view: parseClusterNodes(nodesText), repl }
          }),
        )
        for (const { node, info, view, repl } of checks) {
          if (infoField(info, 'cluster_state') !== 'ok') return `cluster_state not ok on ${node.port}`
          if (Number(infoField(info, 'cluster_slots_assigned')) !== SLOTS) return `slots not all assigned on ${node.port}`
          if (Number(infoField(info, 'cluster_known_nodes')) !== total) return `${node.port} does not know every node`
          const odd = view.find((n) => n.flags.some((f) => ['fail', 'fail?', 'handshake', 'noaddr'].includes(f)))
          if (odd) return `${node.port} sees ${odd.port} as ${odd.flags.join(',')}`
          if (infoField(repl, 'role') === 'slave' && infoField(repl, 'master_link_status') !== 'up') {
            return `replica ${node.port} has its master link down`
          }
        }
        if (new Set(checks.map((c) => membershipSignature(c.view))).size > 1) return 'nodes disagree on membership'
        const replicas = checks[0].view.filter((n) => n.role === 'replica').length
        if (replicas !== this.size.masters * this.size.replicas) return `${replicas} replicas so far`
        return null
      },
      { timeout, what: 'cluster formed' },
    )
  }

  /** Waits until every live node says cluster_state:ok. */
  async waitOk(timeoutMs = 20000) {
    await pollUntil(
      async () => {
        if (!this.liveNodes().length) return 'no node is running'
        const states = await Promise.all(
          this.liveNodes().map(async (n) => [n.port, infoField(await this._q(n, 'CLUSTER', 'INFO'), 'cluster_state')]),
        )
        const bad = states.filter(([, s]) => s !== 'ok')
        return bad.length ? `cluster_state ${bad.map(([p, s]) => `${s} on ${p}`).join(', ')}` : null
      },
      { timeout: timeoutMs, what: 'cluster_state:ok on every live node' },
    )
  }

  /** SIGKILL the process on `port`. */
  async kill(port) {
    const n = this.node(port)
    await n.server.kill()
    this._paused.delete(n.port)
  }

  /** Kills (if running) and starts the process on `port` again, same dir (nodes.conf kept); resolves once it answers PING. */
  async restart(port) {
    const n = this.node(port)
    this._paused.delete(n.port)
    await n.server.restart()
  }

  /** SIGSTOP the process on `port`. */
  pause(port) {
    const n = this.node(port)
    n.server.pause()
    if (n.server.running) this._paused.add(n.port)
  }

  /** SIGCONT the process on `port`. */
  resume(port) {
    const n = this.node(port)
    n.server.resume()
    this._paused.delete(n.port)
  }

  /** Stops every process and removes its dir. Safe to call twice, and after a failed start. */
  stop() {
    if (!this._stopping) {
      this._stopping = (async () => {
        await Promise.all(
          this.nodes.map(async (n) => {
            await n.server.stop()
            n.server.cleanup()
          }),
        )
        for (const n of this.nodes) {
          reservedPorts.delete(n.port)
          reservedPorts.delete(n.busPort)
          reservedPorts.delete(n.tlsPort)
        }
        this._paused.clear()
        activeClusters.delete(this)
      })()
    }
    return this._stopping
  }
}

/** Starts one cluster-mode redis-server on fresh ports (a few tries, in case a port is taken meanwhile). */
async function startNode(nodeTimeout, args, tls) {
  let lastErr
  for (let attempt = 0; attempt < 4; attempt++) {
    const port = await reservePort()
    const busPort = await reservePort()
    const tlsPort = tls ? await reservePort() : undefined
    // With TLS the cluster bus and replication are encrypted too, and a TLS client is told
    // the TLS ports of the other nodes; the plain port stays for the harness.
    const tlsArgs = tls
      ? [
          '--tls-port', String(tlsPort),
          '--tls-cert-file', tls.certs.file('server.crt'),
          '--tls-key-file', tls.certs.file('server.key'),
          '--tls-ca-cert-file', tls.certs.file('ca.crt'),
          '--tls-auth-clients', tls.authClients ? 'yes' : 'no',
          '--tls-cluster', 'yes',
          '--tls-replication', 'yes',
        ]
      : []
    const server = new RedisServer({
      port,
      args: [
        '--cluster-enabled', 'yes',
        '--cluster-config-file', 'nodes.conf', // in the server's own --dir
        '--cluster-node-timeout', String(nodeTimeout),
        '--cluster-port', String(busPort),
        '--appendonly', 'no',
        // Replicas sync at once instead of after the default 5 s diskless-sync delay.
        '--repl-diskless-sync-delay', '0',
        ...tlsArgs,
        ...args,
      ],
    })
    try {
      await server.start()
      return { port, url: server.url, busPort, tlsPort, id: undefined, server }
    } catch (err) {
      lastErr = err
      await server.kill().catch(() => {})
      server.cleanup()
      reservedPorts.delete(port)
      reservedPorts.delete(busPort)
      reservedPorts.delete(tlsPort)
      // Only a port taken meanwhile is worth another try.
      if (/not found on PATH|FATAL CONFIG FILE ERROR/.test(err.message)) break
    }
  }
  throw lastErr
}

/**
 * Starts a Redis Cluster of `masters` masters with `replicas` replicas each on loopback and
 * resolves once it is formed (every node ok, all slots assigned, views agree, replicas
 * linked). `args` are added to every redis-server; `timeout` bounds the wait after
 * `redis-cli --cluster create`. With `tls: { certs, authClients }` (certificates from
 * support/deploy.js) every node also listens for TLS, and `tlsSeeds` lists those ports.
 * Everything started is stopped if a step fails.
 */
async function startCluster({ masters = 3, replicas = 0, nodeTimeout = 2000, args = [], timeout = 20000, tls } = {}) {
  if (!Number.isInteger(masters) || masters < 3) throw new RangeError('a Redis Cluster needs at least 3 masters')
  if (!Number.isInteger(replicas) || replicas < 0) throw new RangeError('replicas must be an integer >= 0')
  installExitHook()
  const cluster = new Cluster({ masters, replicas, nodeTimeout })
  activeClusters.add(cluster)
  try {
    const total = masters * (1 + replicas)
    const results = await Promise.allSettled(Array.from({ length: total }, () => startNode(nodeTimeout, args, tls)))
    for (const r of results) if (r.status === 'fulfilled') cluster.nodes.push(r.value)
    const failed = results.find((r) => r.status === 'rejected')
    if (failed) throw failed.reason
    cluster.seeds = cluster.nodes.map((n) => n.url)
    if (tls) cluster.tlsSeeds = cluster.nodes.map((n) => `rediss://127.0.0.1:${n.tlsPort}`)

    await redisCli(
      [
        '--cluster', 'create',
        ...cluster.nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas', String(replicas),
        '--cluster-yes',
      ],
      60000,
    )
    await cluster._waitFormed(timeout)
    await Promise.all(
      cluster.nodes.map(async (n) => {
        n.id = await sendOn(n.url, ['CLUSTER', 'MYID'])
      }),
    )
    return cluster
  } catch (err) {
    await cluster.stop().catch(() => {})
    throw err
  }
}

/** Starts `n` independent clusters in parallel; if one fails, stops the others and throws. */
async function startClusters(n, opts = {}) {
  const results = await Promise.allSettled(Array.from({ length: n }, () => startCluster(opts)))
  const failed = results.find((r) => r.status === 'rejected')
  if (failed) {
    await Promise.all(results.filter((r) => r.status === 'fulfilled').map((r) => r.value.stop().catch(() => {})))
    throw failed.reason
  }
  return results.map((r) => r.value)
}

module.exports = {
  startCluster,
  startClusters,
  slotOf,
  crc16,
  parseClusterNodes,
  Cluster,
  SLOTS,
}
