#!/usr/bin/env node
'use strict'

// The cost of fencing tokens: sequential acquire+release cycles on one resource with
// `fencing: false` against `fencing: true`.
//
//   node bench/fencing.js [--cycles 4000] [--blocks 20] [--warmup 500] [--persistence]
//
// Starts 5 throwaway redis-servers (with --persistence: appendonly yes, appendfsync always,
// as docs/SAFETY.md asks of nodes that keep fencing counters). One Redlock per mode (fencing set in the constructor),
// each warmed up first (connections open, scripts loaded). Then the modes run in alternating
// blocks of cycles/blocks cycles each, so that a slow spell of the machine hits both modes
// alike. A cycle is `await acquire([key], 10000)` then `await lock.release()`, timed with
// process.hrtime. Prints a markdown table of per-cycle latency in µs.

const Redlock = require('..')
const { startServers, stopServers } = require('../__test__/support/servers')
const { readOptions } = require('./options')

const OPTIONS = readOptions(
  {
    cycles: { type: 'integer', default: 4000 },
    blocks: { type: 'integer', default: 20 },
    warmup: { type: 'integer', default: 500 },
    persistence: { type: 'boolean', default: false },
  },
  'node bench/fencing.js [--cycles 4000] [--blocks 20] [--warmup 500] [--persistence]',
)

async function cycle(redlock, key) {
  const start = process.hrtime.bigint()
  const lock = await redlock.acquire([key], 10_000)
  await lock.release()
  return Number(process.hrtime.bigint() - start) / 1000
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]
}

async function main() {
  const { cycles, blocks, warmup, persistence } = OPTIONS
  const perBlock = Math.ceil(cycles / blocks)
  const servers = await startServers(5, { persistence })
  const urls = servers.map((s) => s.url)
  const tag = `${process.pid}:${Date.now().toString(36)}`
  const modes = [
    { name: 'fencing off', redlock: new Redlock(urls, { fencing: false }), key: `bench-fencing:off:${tag}`, samples: [] },
    { name: 'fencing on', redlock: new Redlock(urls, { fencing: true }), key: `bench-fencing:on:${tag}`, samples: [] },
  ]
  let lastToken
  try {
    for (const mode of modes) {
      for (let i = 0; i < warmup; i++) await cycle(mode.redlock, mode.key)
    }
    for (let b = 0; b < blocks; b++) {
      // Alternate which mode goes first in a block pair.
      const order = b % 2 === 0 ? modes : [...modes].reverse()
      for (const mode of order) {
        for (let i = 0; i < perBlock; i++) mode.samples.push(await cycle(mode.redlock, mode.key))
      }
    }
    const check = await modes[1].redlock.acquire([modes[1].key], 10_000)
    lastToken = check.fencingToken
    await check.release()
  } finally {
    for (const mode of modes) await mode.redlock.quit()
    await stopServers(servers)
  }

  const rows = modes.map((mode) => {
    const sorted = [...mode.samples].sort((a, b) => a - b)
    const mean = sorted.reduce((sum, v) => sum + v, 0) / sorted.length
    return {
      name: mode.name,
      n: sorted.length,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      mean,
    }
  })
  const [off, on] = rows
  const os = require('node:os')
  console.log(
    `\nSequential acquire+release on one resource, 5 local redis-servers (loopback` +
      `${persistence ? ', appendfsync always' : ', no persistence'}), ` +
      `${os.cpus().length} cores (load average ${os.loadavg()[0].toFixed(1)}), Node ${process.version}; ` +
      `${warmup} warm-up cycles per mode, ` +
      `then ${blocks} alternating blocks of ${perBlock}. Last token: ${lastToken}.\n`,
  )
  console.log('| mode | cycles | p50 µs | p90 µs | p99 µs | mean µs |')
  console.log('|---|---:|---:|---:|---:|---:|')
  const f = (v) => v.toFixed(0)
  const d = (v) => (v >= 0 ? `+${f(v)}` : f(v))
  for (const r of rows) {
    console.log(`| ${r.name} | ${r.n} | ${f(r.p50)} | ${f(r.p90)} | ${f(r.p99)} | ${f(r.mean)} |`)
  }
  console.log(
    `| cost of fencing | | ${d(on.p50 - off.p50)} | ${d(on.p90 - off.p90)} | ` +
      `${d(on.p99 - off.p99)} | ${d(on.mean - off.mean)} |`,
  )
  if (lastToken !== BigInt(warmup + on.n + 1)) {
    console.error(`unexpected last token ${lastToken}, wanted ${warmup + on.n + 1}`)
    process.exitCode = 1
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
