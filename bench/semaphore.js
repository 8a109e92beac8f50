#!/usr/bin/env node
'use strict'

// Semaphore throughput and hand-off: 16 concurrent loops in one process share K = 4 permits
// of one semaphore name, each loop: acquire one permit (waiting as long as needed) -> hold
// 1 ms -> release -> acquire again, for a fixed time.
//
//   node bench/semaphore.js [--seconds 10] [--reps 3] [--smoke]
//
// Starts 5 throwaway redis-servers. Contenders: redlock-rs's `semaphore` (wake-on-release,
// retryDelay 200 ms), redis-semaphore's `RedlockSemaphore` over the 5 servers (one ioredis
// client each) and its single-server `Semaphore` on the first of them (both polling every
// 10 ms, no refresh). Each contender runs in a child process of its own (a fork of this file),
// one after the other, in an order rotated every repetition, so that they do not share the
// CPU and drifting noise falls on all of them alike. `--smoke` is 2 s and 1 repetition.
//
// Per contender, medians over the repetitions: grants/s (with its min–max); the acquire wait p50 and p99 (from a
// loop's acquire call to its grant, in ms: with 16 loops on 4 permits most calls find every
// permit taken, so this is the hand-off wait plus the queueing behind other waiters); how
// evenly the loops were served (the fewest and the most grants of one loop); the node
// process's CPU time per grant (process.cpuUsage over the measured window: every thread of
// the process, redlock-rs's engine threads included); and, the largest over the repetitions,
// the most loops that held a permit at once. A loop counts as a holder from its grant until
// it calls release (not until release resolves: the servers may hand its permit on before
// the releaser hears that its release is done), so more than 4 means two grants of one
// permit overlapped. For redlock-rs that is a failure: the program exits with code 1.

const os = require('node:os')

const { readOptions } = require('./options')
const { runChild, fmt, quantile, median } = require('./figures')

const LOOPS = 16
const PERMITS = 4
const HOLD_MS = 1
// Far beyond any hold, so that no permit expires while held (that would allow a 5th holder
// legitimately and spoil the check).
const TTL = 10000
const CONTENDERS = ['redlock-rs', 'RedlockSemaphore', 'Semaphore']

const now = () => performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// `--child` is how the parent starts a contender's process (the contender comes over IPC),
// not an option for users. --seconds and --reps default by --smoke, hence no defaults here.
const USAGE = 'node bench/semaphore.js [--seconds 10] [--reps 3] [--smoke]'
const OPTIONS = readOptions(
  {
    seconds: { type: 'number' },
    reps: { type: 'integer' },
    smoke: { type: 'boolean', default: false },
    child: { type: 'boolean', default: false },
  },
  USAGE,
)

if (OPTIONS.child) {
  process.once('message', (config) =>
    child(config).catch((error) => {
      console.error(error)
      process.exit(1)
    }),
  )
} else {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}

// ---------------------------------------------------------------------------------------
// One contender, in its own process.

/**
 * `acquire(key)` resolves with a handle once one permit of semaphore `key` is held (waiting
 * as long as needed); `release(handle)` gives it back; `close()` ends the connections.
 */
function open(contender, urls) {
  if (contender === 'redlock-rs') {
    const Redlock = require('..')
    const redlock = new Redlock(urls)
    redlock.on('error', () => {})
    const semaphores = new Map()
    const semaphore = (key) => {
      if (!semaphores.has(key)) semaphores.set(key, redlock.semaphore(key, PERMITS))
      return semaphores.get(key)
    }
    // Wait without end; a waiter is woken by a release, the 200 ms poll is the fallback.
    const retry = { retryCount: -1, retryDelay: 200 }
    return {
      acquire: (key) => semaphore(key).acquire(TTL, retry),
      release: (lock) => lock.release(),
      close: () => redlock.quit(),
    }
  }
  const IORedis = require('ioredis')
  const { RedlockSemaphore, Semaphore } = require('redis-semaphore')
  const redlockStyle = contender === 'RedlockSemaphore'
  // RedlockSemaphore: one client per server, shared by the loops; Semaphore: the first server.
  const clients = (redlockStyle ? urls : urls.slice(0, 1)).map((url) => {
    const client = new IORedis(url)
    client.on('error', () => {})
    return client
  })
  // acquireTimeout beyond any run: it waits as long as needed, as redlock-rs does here.
  // retryInterval 10 ms is its default poll; no refresh timers, the hold is far below the TTL.
  const options = { lockTimeout: TTL, acquireTimeout: 3600000, retryInterval: 10, refreshInterval: 0 }
  return {
    // A new instance per acquisition (a fresh identifier), as bench/contenders.js does with
    // its RedlockMutex and as redlock-rs makes a new lock value for each grant.
    async acquire(key) {
      const semaphore = redlockStyle
        ? new RedlockSemaphore(clients, key, PERMITS, options)
        : new Semaphore(clients[0], key, PERMITS, options)
      await semaphore.acquire()
      return semaphore
    },
    release: (semaphore) => semaphore.release(),
    close: async () => {
      await Promise.all(clients.map((client) => client.quit()))
    },
  }
}

async function child({ contender, urls, key, seconds }) {
  const subject = open(contender, urls)
  // Open the connections (and load the scripts) before the window, on a key of its own.
  await subject.release(await subject.acquire(`${key}:warm`))

  const waits = []
  const perLoop = new Array(LOOPS).fill(0)
  let holders = 0
  let maxHolders = 0
  let failures = 0
  const cpuBefore = process.cpuUsage()
  const start = now()
  const deadline = start + seconds * 1000
  const loop = async (_, id) => {
    while (now() < deadline) {
      const asked = now()
      let handle
      try {
        handle = await subject.acquire(key)
      } catch {
        failures += 1
        continue
      }
      waits.push(now() - asked)
      perLoop[id] += 1
      holders += 1
      if (holders > maxHolders) maxHolders = holders
      await sleep(HOLD_MS)
      holders -= 1 // before release is called: see the header
      try {
        await subject.release(handle)
      } catch {
        failures += 1
      }
    }
  }
  // The loops stop asking at the deadline; the window ends when the last has released.
  await Promise.all(Array.from({ length: LOOPS }, loop))
  const elapsed = now() - start
  const cpu = process.cpuUsage(cpuBefore)
  await subject.close()
  waits.sort((a, b) => a - b)
  const grants = waits.length
  process.send(
    {
      contender,
      grants,
      grantsPerSecond: grants / (elapsed / 1000),
      p50: quantile(waits, 0.5),
      p99: quantile(waits, 0.99),
      cpuPerGrant: grants ? (cpu.user + cpu.system) / 1000 / grants : undefined,
      loopMin: Math.min(...perLoop),
      loopMax: Math.max(...perLoop),
      maxHolders,
      failures,
    },
    () => process.disconnect(),
  )
}

// ---------------------------------------------------------------------------------------
// The parent: servers, the rotation, medians, table.

async function main() {
  const { startServers, stopServers, flushAll } = require('../__test__/support/servers')
  const seconds = OPTIONS.seconds ?? (OPTIONS.smoke ? 2 : 10)
  const reps = OPTIONS.reps ?? (OPTIONS.smoke ? 1 : 3)
  const servers = await startServers(5)
  const urls = servers.map((s) => s.url)
  const results = Object.fromEntries(CONTENDERS.map((c) => [c, []]))
  try {
    for (let rep = 0; rep < reps; rep++) {
      const order = CONTENDERS.map((_, i) => CONTENDERS[(i + rep) % CONTENDERS.length])
      for (const contender of order) {
        await flushAll(urls) // no keys left over from the run before
        process.stderr.write(`rep ${rep + 1}/${reps} ${contender}: `)
        const key = `bench-semaphore:${process.pid}:${rep}:${contender}`
        const r = await runChild(__filename, { contender, urls, key, seconds }, contender)
        process.stderr.write(`${r.grantsPerSecond.toFixed(0)} grants/s, max holders ${r.maxHolders}\n`)
        results[contender].push(r)
      }
    }
  } finally {
    await stopServers(servers)
  }

  console.log(
    `\n${LOOPS} loops in one process, 1 semaphore of ${PERMITS} permits, hold ${HOLD_MS} ms, ` +
      `5 local redis-servers (Semaphore: the first only), ${os.cpus().length} cores; ` +
      `${seconds} s per contender, median of ${reps} repetitions\n`,
  )
  console.log(
    '| contender | grants/s | × redlock-rs | acquire wait p50 ms | p99 ms | grants per loop, fewest–most | ' +
      'client CPU ms per grant | max holders | failed calls |',
  )
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|')
  const rsRate = median(results['redlock-rs'].map((r) => r.grantsPerSecond))
  for (const contender of CONTENDERS) {
    const rs = results[contender]
    const mid = (field) => median(rs.map((r) => r[field]).filter(Number.isFinite))
    const rate = mid('grantsPerSecond')
    // The spread too: on a shared 2-core machine one repetition can be far off the others.
    const rates = rs.map((r) => r.grantsPerSecond)
    const range = `${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}`
    const maxHolders = Math.max(...rs.map((r) => r.maxHolders))
    const failures = rs.reduce((sum, r) => sum + r.failures, 0)
    console.log(
      `| ${contender} | ${rate.toFixed(0)} (${range}) | ${(rate / rsRate).toFixed(2)} | ${fmt(mid('p50'))} | ` +
        `${fmt(mid('p99'))} | ${mid('loopMin').toFixed(0)}–${mid('loopMax').toFixed(0)} | ` +
        `${mid('cpuPerGrant').toFixed(3)} | ${maxHolders} | ${failures} |`,
    )
  }
  const rsMax = Math.max(...results['redlock-rs'].map((r) => r.maxHolders))
  const ok = rsMax <= PERMITS
  console.log(`\nredlock-rs: at most ${rsMax} simultaneous holders of ${PERMITS} permits ${ok ? '✓' : '✗'}`)
  if (!ok) process.exitCode = 1
}

/** Forks this file as one contender's process and resolves with its result. */
