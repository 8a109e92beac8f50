#!/usr/bin/env node
'use strict'
// The benchmark runner: `npm run bench` (about 6 minutes on 2 cores) or `npm run bench -- --smoke`
// (about 10 seconds, every contender and scenario very briefly, to prove it still works).
//
// Starts 5 throwaway redis-server processes on loopback, then for every repetition and every
// scenario runs each contender in turn (in a rotating order, so that drifting noise falls on
// all of them alike) in a child process of its own, on the same servers, flushed in between.
// Writes results.md, chart.svg and results.json to the output folder and prints the tables;
// then runs the semaphore and read-write lock benchmarks (bench/semaphore.js, bench/rwlock.js),
// which print tables of their own.
//
// Options: --smoke, --reps N, --out DIR, --contenders id,id (optional ones included, such as
// engine-rust-mt and engine-rust-ct), --scenarios id,id, --modes mode,mode (redlock-rs modes,
// see bench/contenders.js).

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')

const { contenders, defaultModes, NODE_REDLOCK_DEFAULTS, TUNED } = require('./contenders')
const { SCENARIOS, TIMING, job } = require('./scenarios')
const report = require('./report')
const { startServers, stopServers, command, Conn } = require('../__test__/support/servers')

const root = path.join(__dirname, '..')
const RESULTS = path.join(__dirname, 'results')
const DOC = path.join(root, 'docs', 'BENCHMARKS.md')

function readOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      smoke: { type: 'boolean', default: false },
      reps: { type: 'string' },
      out: { type: 'string' },
      contenders: { type: 'string' },
      scenarios: { type: 'string' },
      modes: { type: 'string' },
    },
  })
  const list = (value) => (value === undefined ? null : value.split(',').filter(Boolean))
  return {
    smoke: values.smoke,
    reps: values.reps === undefined ? null : Number(values.reps),
    out: values.out === undefined ? null : path.resolve(values.out),
    contenders: list(values.contenders),
    scenarios: list(values.scenarios),
    modes: list(values.modes),
  }
}

function versionOf(commandLine) {
  const [cmd, ...args] = commandLine
  const r = spawnSync(cmd, args, { encoding: 'utf8' })
  return r.error ? 'not found' : (r.stdout || r.stderr).trim().split('\n')[0]
}

/** Builds bench/floor: release for a full run, debug (already mostly built by the tests) for smoke. */
function buildFloor(smoke) {
  const profile = smoke ? [] : ['--release']
  const r = spawnSync('cargo', ['build', '--quiet', '-p', 'bench-floor', ...profile], {
    cwd: root,
    stdio: 'inherit',
  })
  if (r.status !== 0) throw new Error('building bench/floor failed')
  return path.join(root, 'target', smoke ? 'debug' : 'release', 'bench-floor')
}

/** The floor binary's arguments for a worker job. */
function floorArgs(contender, urls, j) {
  const retry = j.retry === 'tuned' ? { ...NODE_REDLOCK_DEFAULTS, ...TUNED } : NODE_REDLOCK_DEFAULTS
  return [
    ...contender.args,
    '--urls', urls.join(','),
    '--loops', j.loops, '--resources', j.resources, '--ttl-ms', j.ttl, '--hold-ms', j.hold,
    '--retry-count', retry.retryCount, '--retry-delay-ms', retry.retryDelay,
    '--retry-jitter-ms', retry.retryJitter,
    '--warmup-ms', j.warmupMs, '--duration-ms', j.durationMs, '--prefix', j.prefix,
    ...(j.shared ? ['--shared'] : []),
    ...(j.handshake ? ['--handshake'] : []),
  ].map(String)
}

/**
 * The redis-servers' own CPU time (INFO cpu: used_cpu_sys + used_cpu_user), read over one open
 * connection per server. `read()` resolves with when it was asked (ms) and each server's CPU
 * time in ms (null for a server that is down or did not answer).
 */
function redisCpuMeter(servers) {
  const connections = new Map()
  const readOne = async (server) => {
    if (!server.running) return null
    let conn = connections.get(server)
    if (!conn || conn._closed || conn._fatal) {
      conn = new Conn(server.url, { timeout: 2000 })
      connections.set(server, conn)
    }
    try {
      const info = String(await conn.send('INFO', 'cpu'))
      const field = (name) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1])
      const seconds = field('used_cpu_sys') + field('used_cpu_user')
      return Number.isFinite(seconds) ? seconds * 1000 : null
    } catch {
      conn.close()
      connections.delete(server)
      return null
    }
  }
  return {
    async read() {
      const at = performance.now()
      return { at, cpu: await Promise.all(servers.map(readOne)) }
    },
    close() {
      for (const conn of connections.values()) conn.close()
      connections.clear()
    },
  }
}

/**
 * The servers' CPU time in a job's window from the readings at its start and end, summed over
 * the servers that answered both, scaled from the runner's span between the readings to the
 * job's own window (they differ by the time the window's events take to arrive).
 */
function redisCpuOf(start, end, result) {
  let cpu = 0
  let servers = 0
  start.cpu.forEach((before, i) => {
    const after = end.cpu[i]
    if (before === null || after === null) return
    cpu += after - before
    servers += 1
  })
  const span = end.at - start.at
  if (!servers || !(span > 0)) return {}
  return { redis_cpu_ms: (cpu * result.elapsed_ms) / span, redis_span_ms: span, redis_servers: servers }
}

/**
 * Runs one child (a worker with one or more jobs, or the floor binary with one) and resolves
 * with its results by job index. `onWarm(job)` runs when a job asks for its node to be killed;
 * the window starts when it resolves. `onWindow()` runs as a job's window starts and as it
 * ends, and resolves with a reading of the servers' CPU time, from which each result gets its
 * `redis_cpu_ms`.
 */
function runChild(cmd, args, env, onWarm, onWindow) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] })
    const results = new Map()
    const windows = new Map() // job index → { start, end }: promises of readings
    let out = ''
    let err = ''
    child.stderr.on('data', (d) => {
      if (err.length < 20000) err += d
    })
    child.stdout.on('data', (d) => {
      out += d
      let end
      while ((end = out.indexOf('\n')) >= 0) {
        const line = out.slice(0, end).trim()
        out = out.slice(end + 1)
        if (!line.startsWith('{')) continue
        const message = JSON.parse(line)
        if (message.event === 'warm') {
          Promise.resolve(onWarm(message.job)).then(() => child.stdin.write('go\n'), reject)
        } else if (message.event === 'window') {
          const job = message.job ?? 0
          if (!windows.has(job)) windows.set(job, {})
          windows.get(job)[message.phase] = onWindow()
        } else if (message.event === 'result') {
          results.set(message.job ?? 0, message)
        }
      }
    })
    child.on('error', reject)
    // 'close', not 'exit': every line the child wrote has been read by then.
    child.on('close', async (code) => {
      if (code !== 0) {
        reject(new Error(`${cmd} ${args.slice(0, 2).join(' ')} exited with ${code}:\n${err}`))
        return
      }
      try {
        for (const [job, result] of results) {
          const window = windows.get(job)
          if (window?.start && window?.end) Object.assign(result, redisCpuOf(await window.start, await window.end, result))
        }
        resolve(results)
      } catch (error) {
        reject(error)
      }
    })
  })
}

async function flushAll(servers) {
  await Promise.all(servers.filter((s) => s.running).map((s) => command(s.url, 'FLUSHALL')))
}

async function main() {
  const options = readOptions(process.argv.slice(2))
  const timing = options.smoke ? 'smoke' : 'full'
  const reps = options.reps || (options.smoke ? 1 : 3)
  const out = options.out || (options.smoke ? fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-bench-')) : RESULTS)
  const all = contenders(options.modes || defaultModes(), { optional: !!options.contenders })
  const chosen = options.contenders ? all.filter((c) => options.contenders.includes(c.id)) : all
  const scenarios = options.scenarios ? SCENARIOS.filter((s) => options.scenarios.includes(s.id)) : SCENARIOS
  if (!chosen.length || !scenarios.length) throw new Error('nothing to run')

  try {
    require(root)
  } catch (error) {
    throw new Error(`the addon is not built (${error.message}); run \`npm run build\` first`)
  }
  const floorBinary = chosen.some((c) => c.kind === 'rust') ? buildFloor(options.smoke) : null

  const meta = {
    date: new Date().toISOString(),
    mode: timing,
    reps,
    cores: os.cpus().length,
    cpu: os.cpus()[0] ? os.cpus()[0].model.trim() : 'unknown',
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
    node: process.version,
    redis: versionOf(['redis-server', '--version']),
    rustc: versionOf(['rustc', '--version']),
    commit: versionOf(['git', '-C', root, 'rev-parse', '--short', 'HEAD']),
    timing: TIMING[timing],
    contenders: chosen.map((c) => ({ id: c.id, label: c.label, role: c.role, version: c.version(), about: c.about })),
  }
  console.log(`redlock-rs benchmark (${timing}), ${reps} repetition(s), ${meta.cores} cores (${meta.cpu}), load ${meta.load}`)
  console.log(`node ${meta.node}; ${meta.redis}; ${meta.rustc}; commit ${meta.commit}`)
  for (const c of meta.contenders) console.log(`  ${c.label}: ${c.version}`)

  const servers = await startServers(5)
  const urls = servers.map((s) => s.url)
  const victim = servers[servers.length - 1]
  const meter = redisCpuMeter(servers)
  const readRedisCpu = () => meter.read()
  const raw = {} // scenario id → contender id → [worker result]
  const started = Date.now()
  const stop = async () => {
    meter.close()
    await stopServers(servers)
  }
  process.once('SIGINT', () => stop().then(() => process.exit(130)))

  try {
    let serial = 0
    const jobFor = (scenario, contender, rep) =>
      job(scenario, timing, serial++, `bench:${contender.id}:${scenario.id}:${rep}:${process.pid}`)
    const record = (scenario, contender, result) => {
      raw[scenario.id] ??= {}
      ;(raw[scenario.id][contender.id] ??= []).push(result)
    }
    const kill = async () => {
      await victim.kill()
    }
    const revive = async () => {
      if (!victim.running) await victim.start()
    }

    for (let rep = 0; rep < reps; rep++) {
      if (options.smoke) {
        // One child per JavaScript contender runs every scenario (the node-down one last):
        // starting 50 Node processes would take the whole budget.
        for (const contender of chosen) {
          const mine = scenarios.filter((s) => !s.multiResource || contender.multiResource !== false)
          const jobs = mine.map((s) => ({ scenario: s, job: jobFor(s, contender, rep) }))
          if (contender.kind === 'node') {
            const results = await runChild(
              process.execPath,
              [path.join(__dirname, 'worker.js'), contender.id, urls.join(','), JSON.stringify(jobs.map((j) => j.job))],
              contender.env,
              kill,
              readRedisCpu,
            )
            for (const { scenario, job: j } of jobs) record(scenario, contender, results.get(j.index))
          } else {
            for (const { scenario, job: j } of jobs) {
              const results = await runChild(floorBinary, floorArgs(contender, urls, j), contender.env, kill, readRedisCpu)
              record(scenario, contender, results.get(0))
              await revive()
            }
          }
          await revive()
          await flushAll(servers)
        }
        continue
      }
      for (const [s, scenario] of scenarios.entries()) {
        const rotation = (rep + s) % chosen.length
        const order = chosen.slice(rotation).concat(chosen.slice(0, rotation))
        for (const contender of order) {
          if (scenario.multiResource && contender.multiResource === false) continue
          const j = jobFor(scenario, contender, rep)
          const [cmd, args] =
            contender.kind === 'node'
              ? [process.execPath, [path.join(__dirname, 'worker.js'), contender.id, urls.join(','), JSON.stringify([j])]]
              : [floorBinary, floorArgs(contender, urls, j)]
          const results = await runChild(cmd, args, contender.env, kill, readRedisCpu)
          const result = results.get(contender.kind === 'node' ? j.index : 0)
          record(scenario, contender, result)
          process.stdout.write(
            `  [${Math.round((Date.now() - started) / 1000)} s] rep ${rep + 1} ${scenario.id} ${contender.id}: ${result.cycles} cycles\n`,
          )
          await revive()
          await flushAll(servers)
        }
      }
    }
  } finally {
    await stop()
  }
  meta.seconds = Math.round((Date.now() - started) / 1000)

  const summary = report.summarize(raw, scenarios, meta)
  fs.mkdirSync(out, { recursive: true })
  const markdown = report.markdown(summary)
  fs.writeFileSync(path.join(out, 'results.md'), markdown)
  fs.writeFileSync(path.join(out, 'chart.svg'), report.svg(summary))
  fs.writeFileSync(path.join(out, 'results.json'), `${JSON.stringify({ meta, raw }, null, 2)}\n`)
  if (out === RESULTS && fs.existsSync(DOC)) {
    fs.writeFileSync(DOC, report.intoDocument(fs.readFileSync(DOC, 'utf8'), markdown))
  }
  console.log(`\n${markdown}`)
  console.log(`written to ${out} in ${meta.seconds} s`)
  // Then the semaphore and read-write lock scenarios: programs of their own (their own
  // contenders and loops, their own servers), unless --scenarios or --contenders chose others.
  if (!options.scenarios && !options.contenders) {
    for (const program of ['semaphore.js', 'rwlock.js']) {
      const args = [path.join(__dirname, program), ...(options.smoke ? ['--smoke'] : []), ...(options.reps ? ['--reps', String(options.reps)] : [])]
      console.log(`\n$ node bench/${program} ${args.slice(1).join(' ')}`)
      if (spawnSync(process.execPath, args, { stdio: 'inherit' }).status !== 0) process.exitCode = 1
    }
  }
}

main().catch((error) => {
  console.error(error.stack || error)
  process.exit(1)
})
