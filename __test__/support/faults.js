'use strict'

// Fault injection for the reliability suites: a TCP proxy (node `net`) that can add latency,
// drop connections or blackhole a node, a fleet of redis-servers each behind its own proxy,
// and a seeded random source so that a fault schedule can be replayed. Everything listens on
// 127.0.0.1 only, every wait is bounded, and every redis-server is stopped by its pid.

const net = require('node:net')
const { RedisServer, freePort } = require('./servers')

const LOOPBACK = '127.0.0.1'

/** mulberry32: a small seeded PRNG, so that a run can be replayed from its seed. */
function seededRandom(seed) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  next.int = (min, max) => min + Math.floor(next() * (max - min + 1))
  next.pick = (list) => list[Math.floor(next() * list.length)]
  next.chance = (p) => next() < p
  return next
}

/**
 * One direction of a proxied connection. Chunks are delivered in order, each no earlier than
 * `latency` ms after it arrived; while blackholed nothing is delivered and the source is
 * paused, so bytes wait in the kernel as they would behind a partition (a TCP stream loses
 * no bytes in the middle: it stalls, or it breaks).
 */
class Pipe {
  constructor(proxy, pair, from, to, replies) {
    this.proxy = proxy
    this.pair = pair
    this.from = from
    this.to = to
    this.replies = replies
    this.queue = []
    this.lastDue = 0
    this.timer = null
    from.on('data', (chunk) => this.push(chunk))
  }

  push(chunk) {
    if (this.pair.cut) return
    const due = Math.max(this.lastDue, Date.now() + this.proxy.latencyMs)
    this.lastDue = due
    this.queue.push({ chunk, due })
    this.flush()
  }

  flush() {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    if (this.proxy.blackholed || (this.replies && this.proxy.repliesHeld)) {
      this.from.pause()
      return
    }
    this.from.resume()
    const now = Date.now()
    while (this.queue.length && this.queue[0].due <= now) {
      const { chunk } = this.queue.shift()
      if (!this.to.destroyed) this.to.write(chunk)
    }
    if (this.queue.length) {
      this.timer = setTimeout(() => this.flush(), this.queue[0].due - now)
    }
  }

  stop() {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    this.queue = []
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of one server.
 *
 * - `latency(ms)`: every chunk, both ways, is delayed by `ms`.
 * - `blackhole()`: connections (new ones too) are accepted and never answered; `heal()`
 *   delivers what waited, as a healed partition does.
 * - `holdReplies()`: requests still reach the server, which runs them, but its replies wait
 *   (in order) until `heal()`: the server acts while the client hears nothing.
 * - `drop({ reset })`: closes every open connection (RST with `reset`).
 * - `dropNextRequest({ forward })`: the next request is (optionally) passed on to the server
 *   and its connection closed before any answer comes back.
 * - `refuse(on)`: new connections are closed as soon as they are accepted.
 */
class FaultProxy {
  constructor({ targetPort, targetHost = LOOPBACK, port = 0 }) {
    this.targetHost = targetHost
    this.targetPort = targetPort
    this.port = port
    this.latencyMs = 0
    this.blackholed = false
    this.repliesHeld = false
    this.refusing = false
    this.pendingDrop = null
    this.pairs = new Set()
    this.accepted = 0
    this.dropped = 0
    this.server = null
  }

  get url() {
    return `redis://${LOOPBACK}:${this.port}`
  }

  async start() {
    this.server = net.createServer((client) => this.accept(client))
    this.server.on('error', () => {})
    await new Promise((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, LOOPBACK, () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.port = this.server.address().port
    return this
  }

  accept(client) {
    this.accepted += 1
    client.on('error', () => {})
    if (this.refusing) {
      client.destroy()
      return
    }
    client.setNoDelay(true)
    const upstream = net.createConnection({ host: this.targetHost, port: this.targetPort })
    upstream.setNoDelay(true)
    upstream.on('error', () => {})
    const pair = { client, upstream, cut: false }
    // Registered before the pipes, so that a request being cut off never reaches them.
    client.on('data', (chunk) => {
      const drop = this.pendingDrop
      if (!drop || pair.cut) return
      this.pendingDrop = null
      pair.cut = true
      if (drop.forward) {
        // Pass the request on (after anything still queued, to keep the order), answer nothing.
        for (const { chunk: queued } of pair.up.queue) upstream.write(queued)
        upstream.write(chunk)
        pair.forwarded = true
      } else {
        upstream.destroy()
      }
      pair.up.stop()
      this.dropped += 1
      client.destroy()
      drop.resolve()
    })
    pair.up = new Pipe(this, pair, client, upstream, false)
    pair.down = new Pipe(this, pair, upstream, client, true)
    const end = () => this.close(pair)
    client.on('close', end)
    upstream.on('close', end)
    this.pairs.add(pair)
  }

  close(pair, reset = false) {
    if (!this.pairs.delete(pair)) return
    pair.up.stop()
    pair.down.stop()
    if (reset && typeof pair.client.resetAndDestroy === 'function' && !pair.client.destroyed) {
      pair.client.resetAndDestroy()
    } else {
      pair.client.destroy()
    }
    if (pair.forwarded) {
      // Let the cut-off request reach the server before the connection goes.
      pair.upstream.end()
      setTimeout(() => pair.upstream.destroy(), 200).unref()
    } else {
      pair.upstream.destroy()
    }
  }

  latency(ms) {
    this.latencyMs = ms
  }

  blackhole() {
    this.blackholed = true
    for (const pair of this.pairs) {
      pair.up.flush()
      pair.down.flush()
    }
  }

  holdReplies() {
    this.repliesHeld = true
    for (const pair of this.pairs) pair.down.flush()
  }

  /** Ends latency, blackhole, held replies and refusal; what waited is delivered. */
  heal() {
    this.latencyMs = 0
    this.blackholed = false
    this.repliesHeld = false
    this.refusing = false
    for (const pair of this.pairs) {
      pair.up.lastDue = 0
      pair.down.lastDue = 0
      for (const item of pair.up.queue) item.due = 0
      for (const item of pair.down.queue) item.due = 0
      pair.up.flush()
      pair.down.flush()
    }
  }

  /** Closes every open connection; returns how many there were. */
  drop({ reset = false } = {}) {
    const open = [...this.pairs]
    for (const pair of open) this.close(pair, reset)
    this.dropped += open.length
    return open.length
  }

  /** Resolves once the next request has been cut off (or after `timeout` ms). */
  dropNextRequest({ forward = true, timeout = 5000 } = {}) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        if (this.pendingDrop === drop) this.pendingDrop = null
        resolve(false)
      }, timeout)
      const drop = {
        forward,
        resolve: () => {
          clearTimeout(timer)
          resolve(true)
        },
      }
      this.pendingDrop = drop
    })
  }

  refuse(on = true) {
    this.refusing = on
  }

  get connections() {
    return this.pairs.size
  }

  async stop() {
    this.drop()
    if (!this.server) return
    const server = this.server
    this.server = null
    await new Promise((resolve) => server.close(() => resolve()))
  }
}

/** Every redis-server started here, so that an abrupt exit still stops them by pid. */
const started = new Set()
let exitHookInstalled = false
function track(server) {
  started.add(server)
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.once('exit', () => {
    for (const s of started) {
      if (s.pid === undefined) continue
      try {
        process.kill(s.pid, 'SIGKILL')
      } catch {}
    }
  })
}

/** One lock node: a redis-server, and the proxy through which clients reach it. */
class FleetNode {
  constructor(index, server, proxy) {
    this.index = index
    this.server = server
    this.proxy = proxy
  }

  /** What clients connect to: the proxy when there is one. */
  get url() {
    return this.proxy ? this.proxy.url : this.server.url
  }

  /** The server itself, for inspection that must not go through faults. */
  get directUrl() {
    return this.server.url
  }

  get persistent() {
    return this.server.persistence
  }

  kill() {
    return this.server.kill()
  }

  /** Starts the server again on the same port (its data survives only with persistence). */
  async start() {
    if (!this.server.running) await this.server.start()
  }

  restart() {
    return this.server.restart()
  }

  pause() {
    this.server.pause()
  }

  resume() {
    this.server.resume()
  }

  /** Back to normal: running, not paused, proxy healed. */
  async heal() {
    this.server.resume()
    if (this.proxy) this.proxy.heal()
    await this.start()
  }
}

/**
 * Starts `n` redis-servers, each behind a FaultProxy when `proxied`. `persistent` says which
 * servers run with `appendonly yes` + `appendfsync always` (a boolean for all, or a function
 * of the index).
 */
async function startFleet(n, { proxied = true, persistent = false } = {}) {
  const nodes = []
  try {
    for (let i = 0; i < n; i++) {
      const persistence = typeof persistent === 'function' ? !!persistent(i) : !!persistent
      let server
      for (let attempt = 0; ; attempt++) {
        server = new RedisServer({ port: await freePort(), persistence })
        track(server)
        try {
          await server.start()
          break
        } catch (error) {
          started.delete(server)
          server.cleanup()
          if (attempt >= 2) throw error
        }
      }
      const proxy = proxied ? await new FaultProxy({ targetPort: server.port }).start() : null
      nodes.push(new FleetNode(i, server, proxy))
    }
  } catch (error) {
    await stopFleet(nodes)
    throw error
  }
  return nodes
}

async function stopFleet(nodes) {
  await Promise.all(
    (nodes || []).map(async (node) => {
      if (node.proxy) await node.proxy.stop()
      await node.server.stop()
      node.server.cleanup()
      started.delete(node.server)
    }),
  )
}

module.exports = { seededRandom, FaultProxy, FleetNode, startFleet, stopFleet }
