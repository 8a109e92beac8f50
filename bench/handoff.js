#!/usr/bin/env node
'use strict'

// Hand-off latency of one contended lock across processes: wake-on-release notices against
// polling (node-redlock's defaults, and a tuned fast poll).
//
//   node bench/handoff.js [--handoffs 1000] [--waiters 8] [--time-limit 30]
//
// Starts 5 throwaway redis-servers. For each mode, forks `--waiters` child processes that
// each loop on one resource: acquire -> hold 1 ms -> release -> acquire again. Every grant
// is stamped with `performance.timeOrigin + performance.now()`, a high-resolution clock that
// is comparable across processes on one machine. The parent merges the grants in time order;
// a hand-off is a grant to a different process than the previous one, and its latency is the
// time from the previous holder's release resolving to the new holder's acquire resolving
// (it can be slightly negative: the winner may hear of its grant before the releaser hears
// that its release is done). A mode runs until `--handoffs` hand-offs or its time limit.
//
// "overlaps" counts grants that resolved before the previous holder had even begun its
// release: a mutual-exclusion violation (should be 0). The last line checks issue 14's target
// for the default (notification) mode: hand-off wait p50 across 8 processes at most 1 ms.

const { fork } = require('node:child_process')

const { readOptions } = require('./options')

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

// `--child` is how the parent starts its waiter processes, not an option for users.
const OPTIONS = readOptions(
  {
    handoffs: { type: 'integer', default: 1000 },
    waiters: { type: 'integer', default: 8 },
    'time-limit': { type: 'number', default: 30 },
    child: { type: 'boolean', default: false },
  },
  'node bench/handoff.js [--handoffs 1000] [--waiters 8] [--time-limit 30]',
)

if (OPTIONS.child) {
  child()
} else {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}

// ---------------------------------------------------------------------------------------
// A waiter loop, in its own process.

function child() {
  const Redlock = require('..')
  let stopping = false
  process.on('message', async (message) => {
    if (message.type === 'stop') {
      stopping = true
      return
    }
    if (message.type !== 'config') return
    const { urls, key, ttl, settings } = message
    const redlock = new Redlock(urls, settings)
    redlock.on('error', () => {})
    // Open the connections (and load the scripts) before the start.
    const warm = await redlock.acquire([`${key}:warm:${process.pid}`], 1000)
    await warm.release()
    process.send({ type: 'ready' })
    await new Promise((resolve) => process.once('message', resolve)) // 'go'
    let batch = []
    let failures = 0
    const flush = () => {
      if (batch.length || failures) process.send({ type: 'grants', grants: batch, failures })
      batch = []
      failures = 0
    }
    const flusher = setInterval(flush, 100)
    while (!stopping) {
      let lock
      try {
        lock = await redlock.acquire([key], ttl)
      } catch {
        failures += 1
        continue
      }
      const acquired = now()
      await sleep(1)
      const releasing = now()
      try {
        await lock.release()
      } catch {
        failures += 1
      }
      batch.push([acquired, releasing, now()])
    }
    clearInterval(flusher)
    flush()
    await redlock.quit()
    process.send({ type: 'done' }, () => process.disconnect())
  })
}

// ---------------------------------------------------------------------------------------
// The parent: servers, modes, statistics, table.

const MODES = [
  {
    name: 'notification (wakeOnRelease true, retryDelay 200 ±100)',
    settings: { wakeOnRelease: true, retryCount: -1, retryDelay: 200, retryJitter: 100 },
  },
  {
    name: 'polling, node-redlock defaults (retryDelay 200 ±100)',
    settings: { wakeOnRelease: false, retryCount: -1, retryDelay: 200, retryJitter: 100 },
  },
  {
    name: 'polling tuned (retryDelay 10 ±5)',
    settings: { wakeOnRelease: false, retryCount: -1, retryDelay: 10, retryJitter: 5 },
  },
]

async function main() {
  const { startServers, stopServers } = require('../__test__/support/servers')
  const { handoffs, waiters } = OPTIONS
  const timeLimit = OPTIONS['time-limit'] * 1000
  const servers = await startServers(5)
  const urls = servers.map((s) => s.url)
  const rows = []
  try {
    for (const mode of MODES) {
      process.stderr.write(`${mode.name}: `)
      const row = await runMode(mode, { urls, handoffs, waiters, timeLimit })
      process.stderr.write(`${row.changes} hand-offs in ${(row.seconds).toFixed(1)} s\n`)
      rows.push(row)
    }
  } finally {
    await stopServers(servers)
  }
  console.log(
    `\n${waiters} waiter processes, 1 resource, 5 local redis-servers, hold 1 ms; ` +
      `target ${handoffs} hand-offs per mode, polling capped at ${timeLimit / 1000} s\n`,
  )
  console.log(
    '| mode | hand-offs | grants | s | hand-offs/s | grants/s | hand-off p50 ms | p99 ms | max ms | failures | max streak | overlaps |',
  )
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  for (const r of rows) {
    console.log(
      `| ${r.name} | ${r.changes} | ${r.grants} | ${r.seconds.toFixed(1)} | ${r.changesPerSecond.toFixed(0)} | ` +
        `${r.grantsPerSecond.toFixed(0)} | ${fmt(r.p50)} | ${fmt(r.p99)} | ${fmt(r.max)} | ${r.failures} | ` +
        `${r.maxStreak} | ${r.overlaps} |`,
    )
  }
  // Issue 14's target S3 across processes: the default mode hands the lock on within 1 ms.
  const notification = rows[0]
  if (notification.p50 !== undefined) {
    const met = notification.p50 <= 1
    console.log(
      `\nTarget S3 (issue 14), hand-off wait across ${waiters} processes, ${notification.name}: ` +
        `p50 ${fmt(notification.p50)} ms, limit ≤ 1 ms ${met ? '✓' : '✗'}` +
        (waiters === 8 ? '' : ' (the target is stated for 8 processes)'),
    )
  }
}

function fmt(ms) {
  return ms === undefined ? '–' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1)
}

async function runMode(mode, { urls, handoffs, waiters, timeLimit }) {
  const key = `bench-handoff:${process.pid}:${Date.now()}:${mode.settings.wakeOnRelease}:${mode.settings.retryDelay}`
  const grants = [] // [owner, acquired, releasing, released]
  let failures = 0
  const children = []
  const ready = []
  const done = []
  for (let id = 0; id < waiters; id++) {
    const proc = fork(__filename, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    children.push(proc)
    ready.push(new Promise((resolve) => proc.on('message', (m) => m.type === 'ready' && resolve())))
    done.push(new Promise((resolve) => proc.on('exit', resolve)))
    proc.on('message', (m) => {
      if (m.type !== 'grants') return
      failures += m.failures
      for (const g of m.grants) grants.push([id, ...g])
    })
    proc.send({ type: 'config', urls, key, ttl: 2000, settings: mode.settings })
  }
  await Promise.all(ready)
  const start = now()
  for (const proc of children) proc.send({ type: 'go' })
  const limit = mode.settings.wakeOnRelease ? Math.max(timeLimit, 60000) : timeLimit
  for (;;) {
    await sleep(200)
    if (ownerChanges(sorted(grants)) >= handoffs || now() - start >= limit) break
  }
  for (const proc of children) proc.send({ type: 'stop' })
  const killer = setTimeout(() => children.forEach((p) => p.kill('SIGKILL')), 15000)
  await Promise.all(done)
  clearTimeout(killer)

  const all = sorted(grants)
  const latencies = []
  let overlaps = 0
  let streak = 0
  let maxStreak = 0
  for (let i = 0; i < all.length; i++) {
    const same = i > 0 && all[i][0] === all[i - 1][0]
    streak = same ? streak + 1 : 1
    maxStreak = Math.max(maxStreak, streak)
    if (i > 0 && all[i][1] < all[i - 1][2]) overlaps += 1
    if (i > 0 && !same) latencies.push(all[i][1] - all[i - 1][3])
  }
  latencies.sort((a, b) => a - b)
  const end = all.length ? all[all.length - 1][3] : now()
  const seconds = (end - start) / 1000
  return {
    name: mode.name,
    grants: all.length,
    changes: latencies.length,
    seconds,
    changesPerSecond: latencies.length / seconds,
    grantsPerSecond: all.length / seconds,
    p50: quantile(latencies, 0.5),
    p99: quantile(latencies, 0.99),
    max: latencies[latencies.length - 1],
    failures,
    maxStreak,
    overlaps,
  }
}

function sorted(grants) {
  return [...grants].sort((a, b) => a[1] - b[1])
}

function ownerChanges(all) {
  let changes = 0
  for (let i = 1; i < all.length; i++) if (all[i][0] !== all[i - 1][0]) changes += 1
  return changes
}

function quantile(values, q) {
  if (!values.length) return undefined
  return values[Math.min(values.length - 1, Math.floor(q * values.length))]
}
