#!/usr/bin/env node
'use strict'

// What a Redis Cluster member costs: the same acquire+release cycles against three plain
// masters, two plain masters and a 3-master cluster, and three 3-master clusters.
//
//   node bench/cluster.js [--cycles 2000] [--seconds 3] [--loops 64] [--reps 3]
//
// Starts its own throwaway servers on loopback (3 plain, and 3 clusters of 3 masters). For
// each setup and repetition (setups interleaved): `--cycles` sequential cycles on one key
// (p50 and p99 of a cycle), the same with a two-key lock under one hash tag, and `--loops`
// concurrent loops for `--seconds` (cycles per second). Prints the medians as a markdown
// table, with the range over the repetitions.

const { performance } = require('node:perf_hooks')

const Redlock = require('..')
const { startServers, stopServers } = require('../scripts/redis-servers.js')
const { startClusters } = require('../__test__/support/cluster.js')
const { readOptions } = require('./options')

const {
  cycles: CYCLES,
  seconds: SECONDS,
  loops: LOOPS,
  reps: REPS,
} = readOptions(
  {
    cycles: { type: 'integer', default: 2000 },
    seconds: { type: 'number', default: 3 },
    loops: { type: 'integer', default: 64 },
    reps: { type: 'integer', default: 3 },
  },
  'node bench/cluster.js [--cycles 2000] [--seconds 3] [--loops 64] [--reps 3]',
)

const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** p50 and p99 (µs) of `CYCLES` sequential acquire+release cycles on `resources`. */
async function sequential(redlock, resources) {
  const took = []
  for (let i = 0; i < CYCLES; i++) {
    const started = performance.now()
    const lock = await redlock.acquire(resources, 5000)
    await lock.release()
    took.push((performance.now() - started) * 1000)
  }
  took.sort((a, b) => a - b)
  return { p50: quantile(took, 0.5), p99: quantile(took, 0.99) }
}

/** Cycles per second of `LOOPS` loops, each on a key of its own, for `SECONDS`. */
async function concurrent(redlock, tag) {
  let cycles = 0
  const until = performance.now() + SECONDS * 1000
  await Promise.all(
    Array.from({ length: LOOPS }, async (_, i) => {
      const resources = [`bench:{${tag}:${i}}`]
      while (performance.now() < until) {
        const lock = await redlock.acquire(resources, 5000)
        await lock.release()
        cycles += 1
      }
    }),
  )
  return cycles / SECONDS
}

async function main() {
  const [plain, clusters] = await Promise.all([startServers(3), startClusters(3, { masters: 3 })])
  const setups = [
    ['3 plain masters', plain.map((s) => s.url)],
    ['2 plain + 1 cluster', [plain[0].url, plain[1].url, clusters[0].seeds]],
    ['3 clusters', clusters.map((c) => c.seeds)],
  ]
  const results = new Map(setups.map(([name]) => [name, { p50: [], p99: [], multi: [], rate: [] }]))
  try {
    for (let rep = 0; rep < REPS; rep++) {
      for (const [name, clients] of setups) {
        const redlock = new Redlock(clients, { retryCount: -1, retryDelay: 5, retryJitter: 5 })
        try {
          // Warm-up: connections, scripts, the cluster's slot map.
          for (let i = 0; i < 200; i++) await (await redlock.acquire([`warm:${i % 16}`], 5000)).release()
          const one = await sequential(redlock, ['bench:{one}'])
          const two = await sequential(redlock, ['bench:{two}:a', 'bench:{two}:b'])
          const rate = await concurrent(redlock, `r${rep}`)
          const r = results.get(name)
          r.p50.push(one.p50)
          r.p99.push(one.p99)
          r.multi.push(two.p50)
          r.rate.push(rate)
          console.error(`rep ${rep + 1}/${REPS} ${name}: p50 ${one.p50.toFixed(0)} µs, 2 keys ${two.p50.toFixed(0)} µs, ${rate.toFixed(0)} cycles/s`)
        } finally {
          await redlock.quit()
        }
      }
    }
  } finally {
    await Promise.all([stopServers(plain), ...clusters.map((c) => c.stop())])
  }
  const cell = (values, digits = 0) => {
    const sorted = [...values].sort((a, b) => a - b)
    return `${median(values).toFixed(digits)} (${sorted[0].toFixed(digits)}–${sorted[sorted.length - 1].toFixed(digits)})`
  }
  console.log(`\n${CYCLES} sequential cycles, ${LOOPS} loops for ${SECONDS} s, ${REPS} repetitions: median (min–max)\n`)
  console.log(`| setup | 1 key p50 µs | 1 key p99 µs | 2 keys p50 µs | cycles/s, ${LOOPS} loops |`)
  console.log('|---|--:|--:|--:|--:|')
  for (const [name] of setups) {
    const r = results.get(name)
    console.log(`| ${name} | ${cell(r.p50)} | ${cell(r.p99)} | ${cell(r.multi)} | ${cell(r.rate)} |`)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
