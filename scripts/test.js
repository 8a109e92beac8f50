#!/usr/bin/env node
'use strict'
// The whole test suite, in the order a failure is cheapest to find: Rust formatting and
// lints, the engine's Rust tests, the type check of index.d.ts, then Jest against real
// redis-server processes. Stops at the first failing step.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const root = path.join(__dirname, '..')

function run(title, command, args) {
  console.log(`\n=== ${title}: ${command} ${args.join(' ')}`)
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit' })
  if (result.error) {
    console.error(`${title}: could not run ${command}: ${result.error.message}`)
    process.exit(1)
  }
  if (result.status !== 0) {
    console.error(`\n${title} failed (exit ${result.status}).`)
    process.exit(result.status || 1)
  }
}

if (!process.env.REDLOCK_TEST_SERVERS) {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' })
  if (probe.error) {
    console.error(
      'redis-server was not found on PATH. The tests start their own throwaway servers.\n' +
        'Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis),\n' +
        'or set REDLOCK_TEST_SERVERS to a comma-separated list of 5 redis:// URLs to use instead.',
    )
    process.exit(1)
  }
}

require('./ensure-addon.js').ensureAddon()

run('format', 'cargo', ['fmt', '--all', '--', '--check'])
run('lint', 'cargo', ['clippy', '--workspace', '--all-targets', '--', '-D', 'warnings'])
run('engine tests', 'cargo', ['test', '-p', 'redlock-core'])
run('binding unit tests', 'cargo', ['test', '-p', 'redlock-rs', '--lib'])
run('type check', process.execPath, ['__test__/types/run.js'])

const report = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-jest-')), 'report.json')
const jest = spawnSync('npx', ['jest', '--json', `--outputFile=${report}`, ...process.argv.slice(2)], {
  cwd: root,
  stdio: 'inherit',
})
let summary = null
try {
  summary = JSON.parse(fs.readFileSync(report, 'utf8'))
} catch {
  // Jest did not get far enough to write its report; its exit status says why.
}
if (summary) {
  console.log(`\njest: ${summary.numPassedTests} passed, ${summary.numFailedTests} failed`)
}
process.exit(jest.status === 0 && summary && summary.numTotalTests > 0 ? 0 : 1)
