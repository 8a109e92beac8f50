#!/usr/bin/env node
'use strict'
// The long form of the mutual-exclusion check under faults (the Jest suite runs a short one):
//
//   npm run chaos -- --minutes 10 [--seed N] [--workers 4] [--loops 2] [--resources 3] [--json]
//
// Starts its own 6 throwaway redis-servers on loopback, prints the report, and exits 1 on
// any violation, hang, unhandled rejection or unexpected error. `--seed` replays a run's
// fault plan.

const { runChaos, formatReport } = require('../__test__/support/chaos')

function options(argv) {
  const o = { minutes: 1 }
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].replace(/^--/, '')
    if (name === 'json') {
      o.json = true
      continue
    }
    const value = Number(argv[++i])
    if (!['minutes', 'seed', 'workers', 'loops', 'resources'].includes(name) || !(value >= 0)) {
      console.error(`usage: npm run chaos -- --minutes M [--seed N] [--workers W] [--loops L] [--resources R] [--json]`)
      process.exit(2)
    }
    o[name] = value
  }
  return o
}

async function main() {
  const o = options(process.argv.slice(2))
  const started = Date.now()
  const report = await runChaos({
    seconds: o.minutes * 60,
    ...(o.seed !== undefined && { seed: o.seed }),
    ...(o.workers && { workers: o.workers }),
    ...(o.loops && { loops: o.loops }),
    ...(o.resources && { resources: o.resources }),
    log: (line) => console.log(line),
  })
  console.log(`\n${formatReport(report)}\nwall time ${Math.round((Date.now() - started) / 1000)} s`)
  if (o.json) console.log(JSON.stringify({ ...report, violations: report.violations.length }))
  process.exit(report.violations.length || report.problems.length ? 1 : 0)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
