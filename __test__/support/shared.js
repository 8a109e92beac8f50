'use strict'

/** URLs of the shared servers prepared by global setup. */
function sharedUrls() {
  const raw = process.env.REDLOCK_TEST_URLS
  if (!raw) {
    throw new Error(
      'REDLOCK_TEST_URLS is not set: run the tests through Jest with jest.config.js ' +
        '(its globalSetup starts the shared redis-server instances).',
    )
  }
  return raw.split(',').map((s) => s.trim()).filter(Boolean)
}

let counter = 0

/** A resource name unique across test files and workers sharing the servers. */
function uniqueKey(prefix = 'key') {
  counter += 1
  const rand = Math.random().toString(36).slice(2, 10)
  return `${prefix}:${process.pid}:${counter}:${Date.now().toString(36)}:${rand}`
}

const { spawn } = require('node:child_process')
const path = require('node:path')

const { until, valuesOnAll } = require('./servers')

/** Resolves after `ms` milliseconds. */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Waits until every node holds `value` under `key` (the 4th/5th may land after the quorum). */
function heldEverywhere(key, value, urls = sharedUrls()) {
  return until(async () => (await valuesOnAll(urls, key)).every((v) => v === value), {
    timeout: 2000,
    message: `${key} = ${value} on every node`,
  })
}

/** Waits until no node has `key`. */
function goneEverywhere(key, urls = sharedUrls()) {
  return until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), {
    timeout: 2000,
    message: `${key} gone from every node`,
  })
}

/**
 * Wake-on-release through `clients`: a holder takes `key`, a waiter whose retry delay is a
 * minute waits for it, and once `subscribed()` says the waiter listens, the holder releases.
 * `whileHeld(lock)` runs while the waiter holds the lock. Resolves with how long the waiter
 * waited (about a minute had it not been woken).
 */
async function wokenByRelease(Redlock, clients, key, { subscribed, whileHeld = async () => {} }) {
  // The holder is another process: a release made in this one would reach the waiter
  // without the servers' notice (the line's local hand-off), and prove nothing about it.
  const holder = await heldElsewhere(clients, key, 30000)
  const waiter = new Redlock(clients, { retryDelay: 60000, retryJitter: 0, retryCount: 1 })
  try {
    const started = Date.now()
    const waiting = waiter.acquire([key], 5000)
    await until(subscribed, { timeout: 10000, message: 'the waiter subscribed' })
    await holder.release()
    const next = await waiting
    const waited = Date.now() - started
    await until(() => waiter.inFlight === 0, { message: 'requests settled' })
    await whileHeld(next)
    await next.release()
    return waited
  } finally {
    holder.stop()
    await waiter.quit()
  }
}

/**
 * A lock on `key` held by another Node process, through `clients` (URLs or option objects).
 * Resolves once it is held, with `release()` (resolves once the child has released it and
 * ended) and `stop()` (kills the child if it still runs).
 */
async function heldElsewhere(clients, key, ttl) {
  const script = `
    const Redlock = require(process.env.PKG)
    const rl = new Redlock(JSON.parse(process.env.CLIENTS))
    rl.acquire([process.env.KEY], Number(process.env.TTL)).then((lock) => {
      console.log('held')
      process.stdin.once('data', async () => {
        await lock.release()
        await rl.quit()
        console.log('released')
      })
    }, (error) => { console.error(error.message); process.exit(1) })
  `
  const env = { PKG: path.join(__dirname, '..', '..'), CLIENTS: JSON.stringify(clients), KEY: key, TTL: String(ttl) }
  const { proc, output, exited } = spawnNode(['-e', script], { env, stdin: 'pipe' })
  let ended = null
  exited.then((r) => (ended = r))
  await until(() => output.stdout.includes('held') || ended !== null, {
    timeout: 10000,
    message: 'the other process holds the lock',
  })
  if (!output.stdout.includes('held')) throw new Error(`the other process did not get the lock: ${output.stderr}`)
  return {
    async release() {
      proc.stdin.end('release\n')
      const result = await exited
      if (!result.stdout.includes('released')) throw new Error(`the other process did not release: ${result.stderr}`)
    },
    stop() {
      if (ended === null) proc.kill('SIGKILL')
    },
  }
}

/**
 * Runs `node ...args` in a child process. `output` ({ stdout, stderr }) grows as the child
 * writes; `exited` resolves with { code, signal, stdout, stderr, ms } once it has closed.
 * `env` adds to this process's environment (a variable set to undefined is removed); `stdin`
 * is 'ignore' or 'pipe'; a child still running after `timeout` ms is killed.
 */
function spawnNode(args, { env = {}, stdin = 'ignore', timeout = 60000, cwd } = {}) {
  const started = Date.now()
  const childEnv = { ...process.env, ...env }
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name]
  const proc = spawn(process.execPath, args, { env: childEnv, cwd, stdio: [stdin, 'pipe', 'pipe'] })
  const output = { stdout: '', stderr: '' }
  proc.stdout.on('data', (d) => (output.stdout += d))
  proc.stderr.on('data', (d) => (output.stderr += d))
  const timer = setTimeout(() => proc.kill('SIGKILL'), timeout)
  const exited = new Promise((resolve, reject) => {
    proc.on('error', reject)
    proc.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, ...output, ms: Date.now() - started })
    })
  })
  return { proc, output, exited }
}

/** spawnNode, resolved once the child has closed; `onSpawn(child, output)` sees it run. */
function runNode(args, { onSpawn, ...options } = {}) {
  const { proc, output, exited } = spawnNode(args, options)
  if (onSpawn) onSpawn(proc, output)
  return exited
}

/**
 * A throwaway project directory where 'redlock-rs' resolves to this tree, as it would once
 * installed (a symlink in its node_modules), and the OpenTelemetry packages to this tree's.
 * The caller removes it.
 */
function linkedProject(prefix) {
  const fs = require('node:fs')
  const os = require('node:os')
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  fs.mkdirSync(path.join(dir, 'node_modules'))
  fs.symlinkSync(path.resolve(__dirname, '../..'), path.join(dir, 'node_modules', 'redlock-rs'), 'dir')
  // The OpenTelemetry packages too, for the README's observability example.
  const otel = path.resolve(__dirname, '../../node_modules/@opentelemetry')
  if (fs.existsSync(otel)) fs.symlinkSync(otel, path.join(dir, 'node_modules', '@opentelemetry'), 'dir')
  return dir
}

module.exports = { linkedProject, sharedUrls, uniqueKey, sleep, heldEverywhere, goneEverywhere, wokenByRelease, heldElsewhere, spawnNode, runNode }
