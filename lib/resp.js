'use strict'
// A tiny Redis client speaking RESP2 over one socket: enough to read and write keys without
// going through the lock engine. `redlock inspect` uses it to look at each node on its own,
// and the test harness uses it to check what the engine left on each server.

const net = require('node:net')
const tls = require('node:tls')

/** Encodes one command as a RESP array of bulk strings. */
function encodeCommand(args) {
  const parts = [Buffer.from(`*${args.length}\r\n`)]
  for (const a of args) {
    const b = Buffer.isBuffer(a) ? a : Buffer.from(String(a))
    parts.push(Buffer.from(`$${b.length}\r\n`), b, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

const INCOMPLETE = Symbol('incomplete')

/** An error reply from the server (`-ERR ...`). */
class RespError extends Error {
  constructor(message) {
    super(message)
    this.name = 'RespError'
  }
}

/**
 * Parses one reply starting at `offset`: INCOMPLETE, or `{ value, offset }`. Error replies
 * are returned as RespError values, not thrown, so that errors nested in arrays (EXEC) do
 * not desynchronise the stream.
 */
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

/**
 * Where a `redis://[user[:password]@]host[:port][/db]` URL points. `label` names the server
 * without its password, for messages.
 */
function parseRedisUrl(url) {
  const u = new URL(url)
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new TypeError(`${u.protocol}// URLs are not supported (only redis:// and rediss://)`)
  }
  const db = u.pathname && u.pathname !== '/' ? Number(u.pathname.slice(1)) : 0
  if (!Number.isInteger(db) || db < 0) throw new TypeError(`"${u.pathname.slice(1)}" is not a database number`)
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1'
  const port = Number(u.port) || 6379
  return {
    host,
    port,
    db,
    username: u.username ? decodeURIComponent(u.username) : null,
    password: u.password ? decodeURIComponent(u.password) : null,
    label: `${u.hostname || '127.0.0.1'}:${port}/${db}`,
    // rediss:// is TLS; `#insecure` accepts any server certificate, as the engine reads it.
    tls: u.protocol === 'rediss:' ? { rejectUnauthorized: u.hash !== '#insecure' } : null,
  }
}

/** `url` with its password replaced by `***`. */
function redacted(url) {
  const u = new URL(url)
  u.password = '***'
  return u.toString()
}

/** One socket, many commands: replies are matched to commands in order (pipelining-safe). */
class Conn {
  /**
   * @param {string} url redis://[user[:password]@]host[:port][/db]; logs in and selects the
   *   database first when the URL says so
   * @param {{ timeout?: number, tls?: object }} [opts] per-command timeout in ms (default
   *   5000); for rediss:// URLs, Node's `tls.connect` options (`ca`, `cert`, `key`)
   */
  constructor(url, { timeout = 5000, tls: tlsOptions = {} } = {}) {
    const target = parseRedisUrl(url)
    this.url = url
    this.label = target.password ? redacted(url) : url
    this.timeout = timeout
    this._buf = Buffer.alloc(0)
    this._pending = []
    this._closed = false
    this._fatal = null
    this._socket = target.tls
      ? tls.connect({
          host: target.host,
          port: target.port,
          servername: net.isIP(target.host) ? undefined : target.host,
          ...target.tls,
          ...tlsOptions,
        })
      : net.createConnection({ host: target.host, port: target.port })
    this._socket.setNoDelay(true)
    this._socket.on('data', (chunk) => this._onData(chunk))
    this._socket.on('error', (err) => this._failAll(err))
    this._socket.on('close', () => {
      this._closed = true
      this._failAll(new Error(`Connection to ${this.label} closed`))
    })
    // Sent ahead of any caller's command; a refusal fails the connection, and its message
    // never repeats the password.
    const handshake = (args, what) =>
      this.send(...args).catch((err) => {
        const failure = new Error(`${this.label}: ${what} failed: ${err.message}`)
        this._failAll(failure)
        this._socket.destroy()
      })
    if (target.password !== null) {
      const auth = target.username ? ['AUTH', target.username, target.password] : ['AUTH', target.password]
      handshake(auth, 'AUTH')
    }
    if (target.db !== 0) handshake(['SELECT', target.db], 'SELECT')
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
      p.reject(this._fatal)
    }
  }

  /** Sends one command and resolves with its reply (error replies reject). */
  async send(...args) {
    if (this._closed || this._fatal) {
      throw this._fatal || new Error(`Connection to ${this.label} is closed`)
    }
    return new Promise((resolve, reject) => {
      const entry = { resolve, reject, timer: null }
      entry.timer = setTimeout(() => {
        const err = new Error(
          `Timed out after ${this.timeout} ms waiting for reply to ${String(args[0])} from ${this.label}`,
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

/** Opens a socket, sends one command, resolves with the reply, closes; `ms` bounds each step. */
async function commandWithTimeout(url, ms, ...args) {
  const conn = new Conn(url, { timeout: ms })
  try {
    return await conn.send(...args)
  } finally {
    conn.close()
  }
}

/** `commandWithTimeout` with 5 s. */
async function command(url, ...args) {
  return commandWithTimeout(url, 5000, ...args)
}

module.exports = {
  encodeCommand,
  parseReply,
  RespError,
  parseRedisUrl,
  Conn,
  command,
  commandWithTimeout,
}
