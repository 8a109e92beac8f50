'use strict'

// The test harness: throwaway redis-server processes (scripts/redis-servers.js), a raw RESP
// client (lib/resp.js) so that tests can inspect keys without the library under test, and a
// few helpers to wait for and read what is on every server.

const {
  NOT_FOUND_MESSAGE,
  freePort,
  RedisServer,
  startServers,
  stopServers,
} = require('../../scripts/redis-servers.js')
const { encodeCommand, parseReply, Conn, command, commandWithTimeout } = require('../../lib/resp.js')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

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
