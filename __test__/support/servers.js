'use strict'

// Harness for real `redis-server` processes on loopback, plus a tiny raw RESP
// client so tests can inspect keys without going through the library under test.

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const NOT_FOUND_MESSAGE =
  'redis-server was not found on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; ' +
  'macOS: brew install redis) or set REDLOCK_TEST_SERVERS to a comma-separated list of redis:// ' +
  'URLs of servers the tests may use.'

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let redisServerChecked = false
function ensureRedisServer() {
  if (redisServerChecked) return
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' })
  if (r.error) {
    if (r.error.code === 'ENOENT') throw new Error(NOT_FOUND_MESSAGE)
    throw r.error
  }
  redisServerChecked = true
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close((err) => (err ? reject(err) : resolve(port)))
    })
  })
}

function parseUrl(url) {
  const u = new URL(url)
  return { host: u.hostname || '127.0.0.1', port: Number(u.port) || 6379 }
}

// ---------------------------------------------------------------------------
// RESP encoding / parsing

function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

const INCOMPLETE = Symbol('incomplete')

class RespError extends Error {
  constructor(message) {
    super(message)
    this.name = 'RespError'
  }
}

// Parses one reply starting at `offset`. Returns INCOMPLETE or { value, offset }.
// Error replies are returned as RespError instances (not thrown) so that errors
// nested in arrays (e.g. EXEC) don't desynchronise the stream.
function parseReply(buf, offset) {
  if (offset >= buf.length) return INCOMPLETE
  const lineEnd = buf.indexOf('\r\n', offset)
  if (lineEnd === -1) return INCOMPLETE
  const type = String.fromCharCode(buf[offset])
  const line = buf.toString('utf8', offset + 1, lineEnd)
  const next = lineEnd + 2
  switch (type) {
    case '+':
      return { value: line, offset: next }
    case '-':
      return { value: new RespError(line), offset: next }
    case ':':
      return { value: Number(line), offset: next }
    case '$': {
      const len = Number(line)
      if (len < 0) return { value: null, offset: next }
      if (buf.length < next + len + 2) return INCOMPLETE
      return { value: buf.toString('utf8', next, next + len), offset: next + len + 2 }
    }
    case '*': {
      const n = Number(line)
      if (n < 0) return { value: null, offset: next }
      const arr = []
      let off = next
      for (let i = 0; i < n; i++) {
        const r = parseReply(buf, off)
        if (r === INCOMPLETE) return INCOMPLETE
        arr.push(r.value)
        off = r.offset
      }
      return { value: arr, offset: off }
    }
    default:
      throw new Error(`Unexpected RESP type byte ${JSON.stringify(type)}`)
  }
}

// ---------------------------------------------------------------------------
// Connection keeping one socket open for many commands (pipelining-safe FIFO).

class Conn {
  /**
   * @param {string} url redis://host:port
   * @param {{ timeout?: number }} [opts] per-command timeout in ms (default 5000)
   */
  constructor(url, { timeout = 5000 } = {}) {
    this.url = url
    this.timeout = timeout
    this._buf = Buffer.alloc(0)
    this._pending = []
    this._closed = false
    this._fatal = null
    const { host, port } = parseUrl(url)
    this._socket = net.createConnection({ host, port })
    this._socket.setNoDelay(true)
    this._socket.on('data', (chunk) => this._onData(chunk))
    this._socket.on('error', (err) => this._failAll(err))
    this._socket.on('close', () => {
      this._closed = true
      this._failAll(new Error(`Connection to ${url} closed`))
    })
  }

  _onData(chunk) {
    this._buf = this._buf.length ? Buffer.concat([this._buf, chunk]) : chunk
    let off = 0
    while (this._pending.length) {
      let r
      try {
        r = parseReply(this._buf, off)
      } catch (err) {
        this._failAll(err)
        this._socket.destroy()
        return
      }
      if (r === INCOMPLETE) break
      off = r.offset
      const p = this._pending.shift()
      clearTimeout(p.timer)
      if (r.value instanceof RespError) p.reject(r.value)
      else p.resolve(r.value)
    }
    this._buf = this._buf.subarray(off)
  }

  _failAll(err) {
    if (!this._fatal) this._fatal = err
    const pending = this._pending
    this._pending = []
    for (const p of pending) {
      clearTimeout(p.timer)
      p.reject(err)
    }
  }

  /** Sends one command and resolves with its reply (error replies reject). */
  async send(...args) {
    if (this._closed || this._fatal) {
      throw this._fatal || new Error(`Connection to ${this.url} is closed`)
    }
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, timer: null }
      entry.timer = setTimeout(() => {
        const err = new Error(
          `Timed out after ${this.timeout} ms waiting for reply to ${String(args[0])} from ${this.url}`,
        )
        err.code = 'ETIMEDOUT'
        // The stream is now out of sync: tear the connection down.
        this._failAll(err)
        this._socket.destroy()
      }, this.timeout)
      this._pending.push(entry)
      this._socket.write(encodeCommand(args))
    })
  }

  close() {
    this._closed = true
    this._socket.destroy()
  }
}

/** Opens a socket, sends one command, returns the parsed reply, closes. */
async function commandWithTimeout(url, ms, ...args) {
  const conn = new Conn(url, { timeout: ms })
  try {
    return await conn.send(...args)
  } finally {
    conn.close()
  }
}

async function command(url, ...args) {
  return commandWithTimeout(url, 5000, ...args)
}

// ---------------------------------------------------------------------------
// redis-server process wrapper

function pidAlive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

const MAX_OUTPUT = 64 * 1024

class RedisServer {
  /**
   * @param {{ port: number, dir?: string, persistence?: boolean }} opts
   */
  constructor({ port, dir, persistence = false } = {}) {
    if (!port) throw new Error('RedisServer requires a port')
    this.port = port
    this.persistence = !!persistence
    this._ownDir = !dir
    this.dir = dir || fs.mkdtempSync(path.join(os.tmpdir(), `redlock-rs-redis-${port}-`))
    this.proc = null
    this.output = ''
  }

  get url() {
    return `redis://127.0.0.1:${this.port}`
  }

  /** pid of the running process, or undefined when not running. */
  get pid() {
    return this.proc && !this.proc.exitedFlag ? this.proc.pid : undefined
  }

  get running() {
    return !!this.proc && !this.proc.exitedFlag
  }

  async start() {
    if (this.proc && !this.proc.exitedFlag) throw new Error(`redis-server on port ${this.port} already running`)
    ensureRedisServer()
    fs.mkdirSync(this.dir, { recursive: true })
    const args = [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--daemonize', 'no',
      '--dir', this.dir,
    ]
    if (this.persistence) args.push('--appendonly', 'yes', '--appendfsync', 'always')
    else args.push('--appendonly', 'no')

    this.output = ''
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] })
    proc.exitedFlag = false
    const append = (chunk) => {
      if (this.output.length < MAX_OUTPUT) this.output += chunk.toString()
    }
    proc.stdout.on('data', append)
    proc.stderr.on('data', append)
    let spawnError = null
    proc.exitPromise = new Promise((resolve) => {
      proc.once('error', (err) => {
        spawnError = err
        proc.exitedFlag = true
        resolve()
      })
      proc.once('exit', (code, signal) => {
        proc.exitedFlag = true
        proc.exitInfo = { code, signal }
        resolve()
      })
    })
    this.proc = proc

    const deadline = Date.now() + 5000
    for (;;) {
      if (spawnError) {
        this.proc = null
        if (spawnError.code === 'ENOENT') throw new Error(NOT_FOUND_MESSAGE)
        throw spawnError
      }
      if (proc.exitedFlag) {
        throw new Error(
          `redis-server on port ${this.port} exited during startup ` +
            `(${JSON.stringify(proc.exitInfo)}). Output:\n${this.output}`,
        )
      }
      if (await ping(this.port, 200)) return this
      if (Date.now() > deadline) break
      await sleep(20)
    }
    await this.kill().catch(() => {})
    throw new Error(
      `redis-server on port ${this.port} did not answer PING within 5000 ms. Output:\n${this.output}`,
    )
  }

  async _waitExit(ms) {
    const proc = this.proc
    if (!proc || proc.exitedFlag) return true
    let timer
    const done = await Promise.race([
      proc.exitPromise.then(() => true),
      new Promise((r) => (timer = setTimeout(() => r(false), ms))),
    ])
    clearTimeout(timer)
    return done
  }

  _signal(sig) {
    const proc = this.proc
    if (!proc || proc.exitedFlag) return false
    try {
      process.kill(proc.pid, sig)
      return true
    } catch (err) {
      if (err.code === 'ESRCH') return false
      throw err
    }
  }

  /** SIGTERM (after SIGCONT in case it is paused), then SIGKILL after 3 s. */
  async stop() {
    if (!this.proc || this.proc.exitedFlag) return
    this._signal('SIGCONT')
    this._signal('SIGTERM')
    if (!(await this._waitExit(3000))) {
      this._signal('SIGKILL')
      await this._waitExit(5000)
    }
  }

  /** SIGKILL and wait for exit. */
  async kill() {
    if (!this.proc || this.proc.exitedFlag) return
    this._signal('SIGKILL')
    await this._waitExit(5000)
  }

  /** Kills (if running) and starts again on the same port. */
  async restart() {
    await this.kill()
    return this.start()
  }

  pause() {
    this._signal('SIGSTOP')
  }

  resume() {
    this._signal('SIGCONT')
  }

  /** Removes the temporary data dir if it was created by this instance. */
  cleanup() {
    if (this._ownDir) fs.rmSync(this.dir, { recursive: true, force: true })
  }
}

/** Resolves true if something on 127.0.0.1:port answers +PONG within ms. */
function ping(port, ms) {
  return new Promise((resolve) => {
    let buf = ''
    let settled = false
    const sock = net.createConnection({ host: '127.0.0.1', port })
    const finish = (ok) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      sock.destroy()
      resolve(ok)
    }
    const timer = setTimeout(() => finish(false), ms)
    sock.on('connect', () => sock.write('PING\r\n'))
    sock.on('data', (d) => {
      buf += d.toString()
      if (buf.includes('+PONG')) finish(true)
      else if (buf.includes('\r\n')) finish(false) // e.g. -LOADING
    })
    sock.on('error', () => finish(false))
    sock.on('close', () => finish(false))
  })
}

async function startServers(n, opts = {}) {
  const started = []
  try {
    for (let i = 0; i < n; i++) {
      // Retry a few times in case the free port is grabbed between probe and bind.
      let lastErr
      for (let attempt = 0; attempt < 3; attempt++) {
        const s = new RedisServer({ ...opts, port: await freePort() })
        try {
          await s.start()
          started.push(s)
          lastErr = null
          break
        } catch (err) {
          lastErr = err
          s.cleanup()
          if (err.message === NOT_FOUND_MESSAGE) throw err
        }
      }
      if (lastErr) throw lastErr
    }
  } catch (err) {
    await stopServers(started)
    throw err
  }
  return started
}

async function stopServers(list) {
  await Promise.all(
    (list || []).map(async (s) => {
      await s.stop()
      s.cleanup()
    }),
  )
}

// ---------------------------------------------------------------------------
// Helpers

async function until(fn, { timeout = 3000, interval = 10, message } = {}) {
  const deadline = Date.now() + timeout
  let lastErr
  for (;;) {
    try {
      const v = await fn()
      if (v) return v
      lastErr = null
    } catch (err) {
      lastErr = err
    }
    if (Date.now() >= deadline) break
    await sleep(interval)
  }
  const what = message || fn.toString().slice(0, 200)
  const err = new Error(
    `until(): condition not met within ${timeout} ms: ${what}` +
      (lastErr ? ` (last error: ${lastErr.message})` : ''),
  )
  err.code = 'EUNTILTIMEOUT'
  throw err
}

async function valuesOnAll(urls, key) {
  return Promise.all(urls.map((u) => command(u, 'GET', key)))
}

async function pttlsOnAll(urls, key) {
  return Promise.all(urls.map((u) => command(u, 'PTTL', key)))
}

async function flushAll(urls) {
  await Promise.all(urls.map((u) => command(u, 'FLUSHALL')))
}

module.exports = {
  NOT_FOUND_MESSAGE,
  freePort,
  RedisServer,
  startServers,
  stopServers,
  encodeCommand,
  parseReply,
  Conn,
  command,
  commandWithTimeout,
  until,
  valuesOnAll,
  pttlsOnAll,
  flushAll,
}
