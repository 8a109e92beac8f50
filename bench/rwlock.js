#!/usr/bin/env node
'use strict'

// Read-write lock under a read-heavy load with one writer: in one process, 8 reader loops and
// 1 writer loop share one lock name, for a fixed time. A reader loop: acquire the read side
// (waiting as long as needed) -> hold 2 ms -> release -> again. The writer loop: acquire the
// write side -> hold 2 ms -> release -> sleep 20 ms -> again.
//
//   node bench/rwlock.js [--seconds 10] [--reps 3] [--smoke]
//
// Starts 5 throwaway redis-servers. Variants: redlock-rs's `readWriteLock` (both sides
// `retryCount: -1, retryDelay: 50`), and as the reference the same loops on a plain mutex
// (`redlock.acquire(name, ttl, { retryCount: -1, retryDelay: 50 })` for readers and writer
// alike), which shows what letting readers in together buys. Each variant runs in a child
// process of its own (a fork of this file), one after the other, in an order rotated every
// repetition, so that they do not share the CPU and drifting noise falls on both alike.
// `--smoke` is 2 s and 1 repetition.
//
// Per variant, medians over the repetitions: reader grants/s (with its min–max) and writer
// grants/s; the writer's wait p50 and p99 (from its write acquire call to its grant, in ms);
// the readers' wait p50 and p99; the largest writer and reader waits (the largest over the
// repetitions; the reader's is a column beyond the list, as its p99 alone hides how
// long the longest stall is); the node process's CPU time per grant, readers' and writer's
// together (process.cpuUsage over the measured window: every thread of the process,
// redlock-rs's engine threads included). And, the largest over the repetitions, checked in
// this process: the most readers seen holding while the writer held (must be 0) and the most
// readers holding at once. A loop counts as a holder from its grant until it calls release
// (not until release resolves: the servers may hand the lock on before the releaser hears
// that its release is done). Any reader under the writer is a failure: the program exits
// with code 1. The loops stop asking at the deadline and the window (for the rates) ends
// when the last of them has released, so a wait that began before the deadline counts whole.

const os = require('node:os')

const { readOptions } = require('./options')
const { runChild, fmt, quantile, median } = require('./figures')

const READERS = 8
const HOLD_MS = 2
const WRITER_PAUSE_MS = 20
// Far beyond any hold, so that no grant expires while held (an expired writer would let
// readers in legitimately and spoil the check).
const TTL = 10000
const RETRY = { retryCount: -1, retryDelay: 50 }
const VARIANTS = ['readWriteLock', 'mutex']

const now = () => performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// `--child` is how the parent starts a variant's process (the variant comes over IPC), not an
// option for users. --seconds and --reps default by --smoke, hence no defaults here.
const USAGE = 'node bench/rwlock.js [--seconds 10] [--reps 3] [--smoke]'
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
// One variant, in its own process.

/**
 * `read(key)` / `write(key)` resolve with a Lock once that side of `key` is held (waiting as
 * long as needed); for the mutex both are the same plain lock.
 */
function open(variant, urls) {
  const Redlock = require('..')
  const redlock = new Redlock(urls)
  redlock.on('error', () => {})
  const close = () => redlock.quit()
  if (variant === 'mutex') {
    const acquire = (key) => redlock.acquire(key, TTL, RETRY)
    return { read: acquire, write: acquire, close }
  }
  const locks = new Map()
  const rw = (key) => {
    if (!locks.has(key)) locks.set(key, redlock.readWriteLock(key))
    return locks.get(key)
  }
  return {
    read: (key) => rw(key).read.acquire(TTL, RETRY),
    write: (key) => rw(key).write.acquire(TTL, RETRY),
    close,
  }
}

async function child({ variant, urls, key, seconds }) {
  const subject = open(variant, urls)
  // Open the connections (and load the scripts) before the window, on a key of its own.
  await (await subject.read(`${key}:warm`)).release()
  await (await subject.write(`${key}:warm`)).release()

  const readerWaits = []
  const writerWaits = []
  let readers = 0 // readers holding now
  let writer = false // the writer holding now
  let maxReaders = 0
  let readersUnderWriter = 0 // the most readers seen holding while the writer held
  let failures = 0
  const cpuBefore = process.cpuUsage()
  const start = now()
  const deadline = start + seconds * 1000

  const reader = async () => {
    while (now() < deadline) {
      const asked = now()
      let lock
      try {
        lock = await subject.read(key)
      } catch {
        failures += 1
        continue
      }
      readerWaits.push(now() - asked)
      readers += 1
      if (readers > maxReaders) maxReaders = readers
      if (writer && readers > readersUnderWriter) readersUnderWriter = readers
      await sleep(HOLD_MS)
      readers -= 1 // before release is called: see the header
      try {
        await lock.release()
      } catch {
        failures += 1
      }
    }
  }
  const writerLoop = async () => {
    while (now() < deadline) {
      const asked = now()
      let lock
      try {
        lock = await subject.write(key)
      } catch {
        failures += 1
        continue
      }
      writerWaits.push(now() - asked)
      writer = true
      if (readers > readersUnderWriter) readersUnderWriter = readers
      await sleep(HOLD_MS)
      writer = false
      try {
        await lock.release()
      } catch {
        failures += 1
      }
      await sleep(WRITER_PAUSE_MS)
    }
  }
  // The loops stop asking at the deadline; the window ends when the last has released.
  await Promise.all([writerLoop(), ...Array.from({ length: READERS }, reader)])
  const elapsed = (now() - start) / 1000
  const cpu = process.cpuUsage(cpuBefore)
  await subject.close()
  readerWaits.sort((a, b) => a - b)
  writerWaits.sort((a, b) => a - b)
  const grants = readerWaits.length + writerWaits.length
  process.send(
    {
      variant,
      readerGrants: readerWaits.length,
      writerGrants: writerWaits.length,
      readerRate: readerWaits.length / elapsed,
      writerRate: writerWaits.length / elapsed,
      writerP50: quantile(writerWaits, 0.5),
      writerP99: quantile(writerWaits, 0.99),
      writerMax: writerWaits[writerWaits.length - 1],
      readerP50: quantile(readerWaits, 0.5),
      readerP99: quantile(readerWaits, 0.99),
      readerMax: readerWaits[readerWaits.length - 1],
      cpuPerGrant: grants ? (cpu.user + cpu.system) / 1000 / grants : undefined,
      readersUnderWriter,
      maxReaders,
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
  const results = Object.fromEntries(VARIANTS.map((v) => [v, []]))
  try {
    for (let rep = 0; rep < reps; rep++) {
      const order = VARIANTS.map((_, i) => VARIANTS[(i + rep) % VARIANTS.length])
      for (const variant of order) {
        await flushAll(urls) // no keys left over from the run before
        process.stderr.write(`rep ${rep + 1}/${reps} ${variant}: `)
        const key = `bench-rwlock:${process.pid}:${rep}:${variant}`
        const r = await runChild(__filename, { variant, urls, key, seconds }, variant)
        process.stderr.write(
          `${r.readerRate.toFixed(0)} reader + ${r.writerRate.toFixed(1)} writer grants/s, ` +
            `writer wait max ${fmt(r.writerMax)} ms, readers under the writer ${r.readersUnderWriter}\n`,
        )
        results[variant].push(r)
      }
    }
  } finally {
    await stopServers(servers)
  }

  console.log(
    `\n${READERS} reader loops + 1 writer loop in one process on one lock, hold ${HOLD_MS} ms ` +
      `(the writer then pauses ${WRITER_PAUSE_MS} ms), retryDelay ${RETRY.retryDelay} ms, ` +
      `5 local redis-servers, ${os.cpus().length} cores; ${seconds} s per variant, median of ${reps} repetitions ` +
      `(the max waits and the two reader counts: the largest over the repetitions)\n`,
  )
  console.log(
    '| variant | reader grants/s | writer grants/s | writer wait p50 ms | p99 ms | max ms | ' +
      'reader wait p50 ms | p99 ms | max ms | client CPU ms per grant | readers under the writer | ' +
      'max concurrent readers | failed calls |',
  )
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
  for (const variant of VARIANTS) {
    const rs = results[variant]
    const mid = (field) => median(rs.map((r) => r[field]).filter(Number.isFinite))
    const most = (field) => Math.max(...rs.map((r) => r[field]).filter(Number.isFinite))
    // The spread too: on a shared 2-core machine one repetition can be far off the others.
    const rates = rs.map((r) => r.readerRate)
    const range = `${Math.min(...rates).toFixed(0)}–${Math.max(...rates).toFixed(0)}`
    const failures = rs.reduce((sum, r) => sum + r.failures, 0)
    const name = variant === 'mutex' ? 'mutex (reference)' : 'readWriteLock'
    console.log(
      `| ${name} | ${mid('readerRate').toFixed(0)} (${range}) | ${mid('writerRate').toFixed(1)} | ` +
        `${fmt(mid('writerP50'))} | ${fmt(mid('writerP99'))} | ${fmt(most('writerMax'))} | ` +
        `${fmt(mid('readerP50'))} | ${fmt(mid('readerP99'))} | ${fmt(most('readerMax'))} | ${mid('cpuPerGrant').toFixed(3)} | ` +
        `${most('readersUnderWriter')} | ${most('maxReaders')} | ${failures} |`,
    )
  }
  const rwRate = median(results.readWriteLock.map((r) => r.readerRate))
  const muRate = median(results.mutex.map((r) => r.readerRate))
  console.log(`\nreader grants/s, readWriteLock ÷ mutex: ${(rwRate / muRate).toFixed(2)}×`)
  const under = Math.max(...VARIANTS.flatMap((v) => results[v].map((r) => r.readersUnderWriter)))
  const ok = under === 0
  console.log(`at most ${under} readers held while the writer held ${ok ? '✓' : '✗'}`)
  if (!ok) process.exitCode = 1
}

/** Forks this file as one variant's process and resolves with its result. */
