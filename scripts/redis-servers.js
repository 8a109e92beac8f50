'use strict'
// Throwaway redis-server processes on free loopback ports, for the demo, the examples and the
// tests: start them, kill, pause or restart one to make a fault, and stop exactly those
// started, removing their data directories.

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')

const NOT_FOUND_MESSAGE =
  'redis-server was not found on PATH. Install it (Debian/Ubuntu: apt-get install redis-server; ' +
  'macOS: brew install redis), or point the program at existing servers with a comma-separated ' +
  'list of redis:// URLs: REDLOCK_TEST_SERVERS for the tests, REDLOCK_DEMO_SERVERS for the demo, ' +
  'REDLOCK_SERVERS for the examples.'

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

/** A TCP port on 127.0.0.1 that nothing listens on right now. */
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

/** Whether a process with this pid exists (also when it is not ours to signal). */
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
   * @param {{ port: number, dir?: string, persistence?: boolean, args?: string[] }} opts
   *   `args`: extra redis-server arguments, appended to the command line on every start
   */
  constructor({ port, dir, persistence = false, args = [] } = {}) {
    if (!port) throw new Error('RedisServer requires a port')
    this.port = port
    this.persistence = !!persistence
    this.args = (args || []).map(String)
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
    args.push(...this.args)

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

/**
 * The servers a program runs against: the comma-separated redis:// URLs in the environment
 * variable `variable` when it is set, otherwise `count` throwaway redis-servers started here.
 * `stop()` stops those started (never servers named by the variable).
 */
async function serversFor(variable, count) {
  const named = (process.env[variable] || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  if (named.length) return { urls: named, started: [], stop: async () => {} }
  const started = await startServers(count)
  return { urls: started.map((s) => s.url), started, stop: () => stopServers(started) }
}

module.exports = {
  NOT_FOUND_MESSAGE,
  freePort,
  RedisServer,
  startServers,
  stopServers,
  serversFor,
  ping,
  pidAlive,
}
