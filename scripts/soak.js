#!/usr/bin/env node
'use strict'
// The soak: one process, 64 loops of acquire / extend / release under the chaos fault plan,
// sampling resident memory and open descriptors every 10 s (the Jest suite runs a short one):
//
//   npm run soak -- --minutes 10 [--seed N] [--loops 64] [--resources 16] [--every 10s] [--json]
//
// Starts its own 6 throwaway redis-servers on loopback, prints the report with the samples
// as a table, and exits 1 on a violation, an unexpected error, an unhandled rejection, or
// memory or descriptors that did not stay flat after warm-up.

const { parseArgs } = require('node:util')
const { runSoak, formatSoak } = require('../__test__/support/soak')

const USAGE = 'usage: npm run soak -- --minutes M [--seed N] [--loops L] [--resources R] [--every SECONDS] [--json]'

function options() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        minutes: { type: 'string', default: '1' },
        seed: { type: 'string' },
        loops: { type: 'string', default: '64' },
        resources: { type: 'string', default: '16' },
        every: { type: 'string', default: '10' },
        json: { type: 'boolean', default: false },
      },
    }))
  } catch (error) {
    console.error(`${error.message}\n${USAGE}`)
    process.exit(2)
  }
  const number = (name, { integer = false, min = 0 } = {}) => {
    const text = values[name]
    if (text === undefined) return undefined
    const n = Number(text.replace(/s$/, ''))
    if (!Number.isFinite(n) || n < min || (integer && !Number.isInteger(n))) {
      console.error(`--${name}: "${text}" is not a ${integer ? 'whole ' : ''}number of at least ${min}\n${USAGE}`)
      process.exit(2)
    }
    return n
  }
  return {
    minutes: number('minutes', { min: 0.1 }),
    seed: number('seed', { integer: true }),
    loops: number('loops', { integer: true, min: 1 }),
    resources: number('resources', { integer: true, min: 1 }),
    everyMs: number('every', { min: 1 }) * 1000,
    json: values.json,
  }
}

async function main() {
  const o = options()
  const report = await runSoak({
    seconds: o.minutes * 60,
    ...(o.seed !== undefined && { seed: o.seed }),
    loops: o.loops,
    resources: o.resources,
    everyMs: o.everyMs,
    log: (s) => console.log(`soak: ${Math.round(s.t / 1000)} s, ${s.cycles} cycles, RSS ${(s.rss / 2 ** 20).toFixed(1)} MB, ${s.fds} fds`),
  })
  console.log(`\n${formatSoak(report)}`)
  if (o.json) console.log(JSON.stringify({ ...report, violations: report.violations.length }))
  const flat = !report.flatness.judged || report.flatness.flat
  process.exit(report.violations.length || report.problems.length || !flat ? 1 : 0)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
