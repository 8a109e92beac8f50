'use strict'
// What the benchmark programs that run each contender in a child of their own share
// (bench/semaphore.js, bench/rwlock.js): running that child, and reading its figures.

const { fork } = require('node:child_process')

/**
 * Runs `program` (the caller's own file) again with `--child`, sends it `config`, and
 * resolves with the one message it sends back, once it has exited 0.
 */
function runChild(program, config, label) {
  return new Promise((resolve, reject) => {
    const proc = fork(program, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    let result
    proc.on('message', (m) => (result = m))
    proc.on('error', reject)
    proc.on('exit', (code) => (result && code === 0 ? resolve(result) : reject(new Error(`${label}: exit code ${code}`))))
    proc.send(config)
  })
}

/** Milliseconds for a table: two decimals under 10, one above, a dash when there is none. */
function fmt(ms) {
  return ms === undefined || !Number.isFinite(ms) ? '–' : ms < 10 ? ms.toFixed(2) : ms.toFixed(1)
}

/** The nearest-rank quantile `q` of `sorted` (ascending). */
function quantile(sorted, q) {
  if (!sorted.length) return undefined
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

module.exports = { runChild, fmt, quantile, median }
