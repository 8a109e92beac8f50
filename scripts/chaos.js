#!/usr/bin/env node
'use strict'
// The long form of the mutual-exclusion check under faults (the Jest suite runs a short one):
//
//   npm run chaos -- --minutes 10 [--seed N] [--workers 4] [--loops 2] [--resources 3]
//                    [--restarts minority|any] [--guard on|off|strict]
//                    [--permits K [--count N] | --rw] [--json]
//
// Starts its own 6 throwaway redis-servers on loopback, prints the report, and exits 1 on
// any violation, hang, unhandled rejection or unexpected error. `--seed` replays a run's
// fault plan. `--restarts` runs every node without persistence, restarting at once (a
// minority of nodes young at a time, or any number); `--guard` is the workers'
// `restartGuard` (on, the library's default; off; strict). `--permits` takes permits of
// semaphores of K permits (1 to N at a time) instead of locks, and checks at most K holders;
// `--rw` takes read-write locks (a third of them write locks), and checks that no writer overlaps.

const { parseArgs } = require('node:util')
const { runChaos, formatReport } = require('../__test__/support/chaos')

const USAGE =
  'usage: npm run chaos -- --minutes M [--seed N] [--workers W] [--loops L] [--resources R] ' +
  '[--restarts minority|any] [--guard on|off|strict] [--permits K [--count N] | --rw] [--json]'
const NUMBERS = ['minutes', 'seed', 'workers', 'loops', 'resources', 'permits', 'count']
const GUARDS = { on: true, off: false, strict: 'strict' }

function usage(why) {
  console.error(`${why}\n${USAGE}`)
  process.exit(2)
}

function options(args) {
  let values
  try {
    ;({ values } = parseArgs({
      args,
      options: {
        ...Object.fromEntries(NUMBERS.map((name) => [name, { type: 'string' }])),
        restarts: { type: 'string' },
        guard: { type: 'string' },
        json: { type: 'boolean' },
        rw: { type: 'boolean' },
      },
    }))
  } catch (error) {
    usage(error.message)
  }
  const o = { minutes: 1, json: !!values.json, rw: !!values.rw }
  for (const name of NUMBERS) {
    if (values[name] === undefined) continue
    const value = Number(values[name])
    if (values[name].trim() === '' || !(value >= 0)) usage(`--${name} must be a number of 0 or more, not ${values[name]}`)
    o[name] = value
  }
  if (values.restarts !== undefined) {
    if (!['minority', 'any'].includes(values.restarts)) usage(`--restarts must be minority or any, not ${values.restarts}`)
    o.restarts = values.restarts
  }
  if (values.guard !== undefined) {
    if (!Object.hasOwn(GUARDS, values.guard)) usage(`--guard must be on, off or strict, not ${values.guard}`)
    o.guard = GUARDS[values.guard]
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
    ...(o.restarts && { restarts: o.restarts }),
    ...(o.guard !== undefined && { guard: o.guard }),
    ...(o.permits && { permits: o.permits, maxCount: Math.min(o.count || 1, o.permits) }),
    ...(o.rw && { rw: true }),
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
