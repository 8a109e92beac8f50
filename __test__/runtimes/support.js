'use strict'
// What the runtime suites need: the Bun and Deno binaries from the npm packages (no install
// script needed), a consumer project with redlock-rs installed the way npm lays it out, and a
// driver for smoke.mjs that checks the servers at each of its checkpoints.

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { valuesOnAll, pttlsOnAll, until } = require('../support/servers')

const ROOT = path.resolve(__dirname, '..', '..')
const SCRIPTS = ['smoke.mjs', 'load.mjs']
// No update check (a network request) from Deno, no colour codes in what the tests read.
const QUIET = { NO_COLOR: '1', DENO_NO_UPDATE_CHECK: '1' }

/**
 * Where npm put a runtime's executable. `bun` and `deno` carry no binary themselves: each
 * lists one platform package per os/cpu as an optional dependency (`@oven/bun-linux-x64`,
 * `@deno/linux-x64-glibc`, …) and npm installs the one that matches. Their postinstall
 * script only moves or links that binary into the wrapper package (node_modules/.bin/bun is a
 * placeholder shell script until it has run), and npm 11 may not run it, so the platform
 * package is looked at first and the postinstall's output second. Each candidate is run with
 * `--version`: the first that answers wins.
 *
 * Returns `{ path, version, tried }`, or `{ path: null, reason, fatal, tried }`: `fatal` when the
 * runtime should be here and is not (declared but not installed, or its binary does not run).
 */
function locateRuntime(name) {
  const exe = process.platform === 'win32' ? `${name}.exe` : name
  const tried = []
  let wrapper
  try {
    wrapper = path.dirname(require.resolve(`${name}/package.json`, { paths: [ROOT] }))
  } catch {
    const own = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
    const declared = Boolean((own.devDependencies || {})[name] || (own.dependencies || {})[name])
    return declared
      ? { path: null, tried, fatal: true, reason: `the npm package "${name}" is in package.json but not installed: run npm install` }
      : { path: null, tried, fatal: false, reason: `the npm package "${name}" is not among package.json's devDependencies` }
  }
  const manifest = JSON.parse(fs.readFileSync(path.join(wrapper, 'package.json'), 'utf8'))
  const platformPackages = Object.keys(manifest.optionalDependencies || {})
  const installed = []
  const candidates = []
  for (const dependency of platformPackages) {
    let dir
    try {
      dir = path.dirname(require.resolve(`${dependency}/package.json`, { paths: [wrapper, ROOT] }))
    } catch {
      continue
    }
    installed.push(dependency)
    candidates.push(path.join(dir, 'bin', exe), path.join(dir, exe))
  }
  // Where the wrapper's postinstall leaves the binary, when it has run.
  candidates.push(path.join(wrapper, 'bin', `${name}.exe`), path.join(wrapper, exe))
  for (const candidate of candidates) {
    if (!fs.existsSync(candidate)) continue
    const probe = spawnSync(candidate, ['--version'], { encoding: 'utf8', timeout: 30000 })
    const out = `${probe.stdout || ''}${probe.stderr || ''}`.trim()
    tried.push(`${path.relative(ROOT, candidate)}: ${probe.error ? probe.error.message : `exit ${probe.status}, ${out.split('\n')[0]}`}`)
    const version = /(\d+\.\d+\.\d+)/.exec(out)
    if (probe.status === 0 && version) return { path: candidate, version: version[1], tried }
  }
  // No platform package installed: npm found none for this os/cpu/libc, the one case where
  // the runtime cannot be had here. A platform package whose binary does not run is a failure.
  if (!installed.length) {
    return {
      path: null,
      tried,
      fatal: false,
      reason:
        `npm installed none of ${name}'s platform packages (${platformPackages.join(', ')}) for ` +
        `${process.platform}-${process.arch}: the npm package has no binary for this platform ` +
        `(or npm was told to omit optional dependencies)`,
    }
  }
  return {
    path: null,
    tried,
    fatal: true,
    reason: `no working ${name} binary in ${installed.join(', ')} (tried: ${tried.join('; ') || 'none found'})`,
  }
}

/** The files npm would install: package.json's "files" (directories, globs of the root, files). */
function packageFiles() {
  const manifest = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
  const rootEntries = fs.readdirSync(ROOT)
  const files = new Set(['package.json'])
  for (const entry of manifest.files) {
    const name = entry.replace(/\/$/, '')
    if (name.includes('*')) {
      const pattern = new RegExp(`^${name.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*')}$`)
      for (const file of rootEntries) if (pattern.test(file)) files.add(file)
    } else if (fs.existsSync(path.join(ROOT, name))) {
      files.add(name)
    }
  }
  return [...files]
}

/**
 * A consumer project in a temp dir with redlock-rs copied (not linked: Deno treats a file
 * outside node_modules by its own rules, not npm's) to node_modules/redlock-rs, and smoke.mjs
 * and load.mjs at its root. `exclude(file)` leaves files out. Returns the project's directory.
 */
function makeConsumer({ exclude = () => false, prefix = 'redlock-rs-runtime-' } = {}) {
  const app = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  const pkg = path.join(app, 'node_modules', 'redlock-rs')
  fs.mkdirSync(pkg, { recursive: true })
  for (const file of packageFiles()) {
    if (exclude(file)) continue
    fs.cpSync(path.join(ROOT, file), path.join(pkg, file), { recursive: true })
  }
  fs.writeFileSync(
    path.join(app, 'package.json'),
    JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }),
  )
  for (const script of SCRIPTS) fs.copyFileSync(path.join(__dirname, script), path.join(app, script))
  return app
}

/**
 * Runs load.mjs with `command args…` in `cwd`: resolves `{ status, result, stdout, stderr }`,
 * `result` being what it printed (whether the package loaded, or the error it threw).
 */
function runLoad(command, args, { cwd }) {
  const out = run(command, [...args, 'load.mjs'], { cwd })
  const line = out.stdout.split('\n').find((l) => l.startsWith('{'))
  return { ...out, result: line ? JSON.parse(line) : null }
}

/** Runs `command args` in `cwd` and collects its output; killed after `timeout` ms. */
function run(command, args, { cwd, timeout = 60000, env } = {}) {
  const result = spawnSync(command, args, { cwd, encoding: 'utf8', timeout, env: { ...process.env, ...QUIET, ...env } })
  return { status: result.status, signal: result.signal, stdout: result.stdout || '', stderr: result.stderr || '', error: result.error }
}

/**
 * Runs smoke.mjs with `command args…` in the consumer project `cwd` against `urls`, answering
 * its checkpoints after looking at the servers: at 'acquired', 'extended', 'using' and
 * 'await-using' the lock's value must be on every server, at 'released', 'used' and
 * 'disposed' the key must be gone from all of them. Resolves with the steps it saw, what the
 * servers held, how the process ended, and how long it took to end after 'done'.
 */
function runSmoke(command, args, { cwd, urls, prefix, timeout = 60000 }) {
  return new Promise((resolve, reject) => {
    const started = Date.now()
    const child = spawn(command, [...args, 'smoke.mjs', urls.join(','), prefix], {
      cwd,
      env: { ...process.env, ...QUIET },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const steps = []
    const observed = {}
    const problems = []
    let stdout = ''
    let stderr = ''
    let pending = ''
    let doneAt = null
    let chain = Promise.resolve()
    const timer = setTimeout(() => {
      problems.push(`killed after ${timeout} ms`)
      child.kill('SIGKILL')
    }, timeout)

    const check = async (step) => {
      const { key, value } = step
      if (['acquired', 'extended', 'using', 'await-using'].includes(step.step)) {
        try {
          await until(async () => (await valuesOnAll(urls, key)).every((v) => v === value), {
            timeout: 3000,
            message: `${key} = ${value} on every server`,
          })
        } catch (error) {
          problems.push(`${step.step}: ${error.message}`)
        }
        observed[step.step] = { values: await valuesOnAll(urls, key), pttls: await pttlsOnAll(urls, key) }
      } else {
        try {
          await until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), {
            timeout: 3000,
            message: `${key} gone from every server`,
          })
        } catch (error) {
          problems.push(`${step.step}: ${error.message}`)
        }
        observed[step.step] = { values: await valuesOnAll(urls, key) }
      }
      if (!child.stdin.destroyed) child.stdin.write('next\n')
      if (step.step === 'disposed') child.stdin.end()
    }

    child.stdin.on('error', () => {}) // the child may be gone already
    child.stderr.on('data', (d) => (stderr += d))
    child.stdout.on('data', (d) => {
      stdout += d
      pending += d
      let newline
      while ((newline = pending.indexOf('\n')) !== -1) {
        const line = pending.slice(0, newline)
        pending = pending.slice(newline + 1)
        let step
        try {
          step = JSON.parse(line)
        } catch {
          continue // not a protocol line
        }
        steps.push(step)
        if (step.step === 'done') doneAt = Date.now()
        if (step.key !== undefined && !['refused'].includes(step.step)) chain = chain.then(() => check(step))
      }
    })
    child.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      chain.then(() =>
        resolve({
          code,
          signal,
          steps,
          names: steps.map((s) => s.step),
          observed,
          problems,
          stdout,
          stderr,
          ms: Date.now() - started,
          exitAfterDone: doneAt === null ? null : Date.now() - doneAt,
        }),
      )
    })
  })
}

module.exports = { ROOT, locateRuntime, makeConsumer, packageFiles, run, runLoad, runSmoke }
