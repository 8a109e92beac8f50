#!/usr/bin/env node
'use strict'
// The demo: five throwaway redis-servers, several worker processes (demo-worker.js) taking
// locks on a few resources to do read-modify-writes of shared counters kept here, and the
// servers failing under them: two killed (a quorum of three remains, locks still work), a third
// killed (no quorum: every acquisition fails with ExecutionError), then all restarted (locks work
// again). It ends with a summary, and proof that no counter update was lost. With a terminal it
// draws a live view; otherwise it prints plain lines. Every server it started is stopped at the
// end, on Ctrl-C too.
//
//   node examples/demo.js [--quick] [--json]
//
// --quick runs each phase for 2 s instead of 8 s; --json ends with a one-line JSON summary.
// REDLOCK_DEMO_SERVERS=redis://...,... runs against existing servers instead (no faults then).

const { fork } = require('node:child_process')
const path = require('node:path')
const { performance } = require('node:perf_hooks')
const { serversFor, pidAlive } = require('../scripts/redis-servers.js')

const USAGE = 'Usage: node examples/demo.js [--quick] [--json]'
const flags = process.argv.slice(2)
for (const flag of flags) {
  if (flag === '--help' || flag === '-h') {
    console.log(USAGE)
    process.exit(0)
  }
  if (flag !== '--quick' && flag !== '--json') {
    console.error(`demo: unknown argument ${flag}\n${USAGE}`)
    process.exit(2)
  }
}
const QUICK = flags.includes('--quick')
const JSON_SUMMARY = flags.includes('--json')
const WORKERS = QUICK ? 4 : 6
const PHASE_MS = QUICK ? 2000 : 8000
const RESOURCES = ['demo:alice', 'demo:bob', 'demo:carol']
const TTL = 1000
// Grants decided just before a kill can be reported just after it: a kill's phase starts
// this long after the kill, so that each grant is counted in the phase that made it.
const SETTLE_MS = 100

const now = () => performance.timeOrigin + performance.now()
const live = process.stdout.isTTY && !JSON_SUMMARY

// ---------------------------------------------------------------------------
// What the workers report

const state = {
  startedAt: now(),
  phases: [],
  nodes: [],
  counters: new Map(RESOURCES.map((r) => [r, 0])),
  writes: new Map(RESOURCES.map((r) => [r, 0])),
  holders: new Map(),
  granted: 0,
  records: [],
  failureExample: new Map(),
  nodeErrors: new Map(),
  /** Each worker's redlock.stats() at its end. */
  engineStats: [],
  events: [],
}

function phaseAt(t) {
  let found = state.phases[0]
  for (const phase of state.phases) if (phase.startedAt <= t) found = phase
  return found
}

function onMessage(child, message) {
  switch (message.type) {
    case 'read':
      child.send({ type: 'reply', id: message.id, value: state.counters.get(message.resource) })
      break
    case 'write':
      state.counters.set(message.resource, message.value)
      state.writes.set(message.resource, state.writes.get(message.resource) + 1)
      child.send({ type: 'reply', id: message.id })
      break
    case 'granted':
      state.holders.set(message.resource, message.worker)
      state.granted += 1
      phaseAt(message.at).granted += 1
      break
    case 'done':
      if (state.holders.get(message.resource) === message.worker) state.holders.delete(message.resource)
      state.records.push(message)
      break
    case 'failed': {
      if (state.holders.get(message.resource) === message.worker) state.holders.delete(message.resource)
      const failures = phaseAt(message.at).failures
      failures.set(message.code, (failures.get(message.code) || 0) + 1)
      if (!state.failureExample.has(message.code)) state.failureExample.set(message.code, message)
      break
    }
    case 'node-errors':
      state.nodeErrors.set(message.worker ?? child.demoWorker, message.counts)
      break
    case 'stats':
      state.engineStats.push(message.stats)
      break
  }
}

// ---------------------------------------------------------------------------
// Views: a live one for a terminal, plain lines otherwise

const color = (code) => (text) => (live ? `\x1b[${code}m${text}\x1b[0m` : text)
const green = color(32)
const red = color(31)
const dim = color(2)
const bold = color(1)

function seconds(t) {
  return ((t - state.startedAt) / 1000).toFixed(1)
}

function tally(map) {
  const parts = [...map].filter(([, n]) => n > 0).map(([code, n]) => `${code} ×${n}`)
  return parts.length ? parts.join(', ') : 'none'
}

function nodeErrorTotals() {
  const totals = new Map()
  for (const counts of state.nodeErrors.values()) {
    for (const [code, n] of Object.entries(counts)) totals.set(code, (totals.get(code) || 0) + n)
  }
  return totals
}

function frame() {
  const phase = state.phases[state.phases.length - 1]
  const lines = []
  lines.push(bold(`redlock-rs demo · ${WORKERS} worker processes · ${RESOURCES.length} resources · ${state.nodes.length} redis-servers · lock ttl ${TTL} ms`))
  if (phase) {
    const elapsed = Math.min(PHASE_MS, now() - phase.enteredAt)
    const width = 24
    const done = Math.round((elapsed / PHASE_MS) * width)
    const bar = '█'.repeat(done) + dim('░'.repeat(width - done))
    lines.push(`phase ${phase.number}/${state.plan.length}  ${phase.title.padEnd(44)} ${bar} ${(elapsed / 1000).toFixed(1)} s`)
  }
  const quorum = Math.floor(state.nodes.length / 2) + 1
  const up = state.nodes.filter((n) => n.server === undefined || n.server.running).length
  const nodes = state.nodes.map((n) => (n.server === undefined || n.server.running ? green(`● ${n.label}`) : red(`✗ ${n.label}`)))
  lines.push(`nodes      ${nodes.join('  ')}   ${up >= quorum ? green(`${up} up, quorum ${quorum}`) : red(`${up} up, quorum ${quorum}: none`)}`)
  lines.push(dim('resource       holder      counter   writes'))
  for (const resource of RESOURCES) {
    const holder = state.holders.has(resource) ? `worker ${state.holders.get(resource)}` : dim('·')
    const holderCell = state.holders.has(resource) ? holder.padEnd(10) : `${holder}${' '.repeat(9)}`
    lines.push(`${resource.padEnd(14)} ${holderCell}  ${String(state.counters.get(resource)).padStart(7)}  ${String(state.writes.get(resource)).padStart(7)}`)
  }
  lines.push(`granted    ${state.granted} locks`)
  const failures = new Map()
  for (const p of state.phases) for (const [code, n] of p.failures) failures.set(code, (failures.get(code) || 0) + n)
  lines.push(`failures   ${tally(failures)}`)
  lines.push(`node errs  ${tally(nodeErrorTotals())}`)
  for (const event of state.events.slice(-4)) lines.push(dim(`  ${event}`))
  return lines
}

class LiveView {
  constructor() {
    this.drawn = 0
    process.stdout.write('\x1b[?25l')
    this.timer = setInterval(() => this.draw(), 100)
  }

  event(text) {
    state.events.push(`${seconds(now())}s ${text}`)
  }

  draw() {
    const columns = process.stdout.columns || 100
    const lines = frame().map((line) => clip(line, columns))
    let out = this.drawn ? `\x1b[${this.drawn}F` : ''
    out += `\x1b[J${lines.join('\n')}\n`
    this.drawn = lines.length
    process.stdout.write(out)
  }

  close() {
    clearInterval(this.timer)
    this.draw()
    process.stdout.write('\x1b[?25h\n')
  }
}

/** `line` cut to `columns` visible characters, keeping its colour codes. */
function clip(line, columns) {
  let visible = 0
  let out = ''
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\x1b') {
      const end = line.indexOf('m', i)
      out += line.slice(i, end + 1)
      i = end
      continue
    }
    if (visible >= columns - 1) continue
    out += line[i]
    visible += 1
  }
  return out
}

class LineView {
  event(text) {
    console.log(`${seconds(now()).padStart(5)}s  ${text}`)
  }

  close() {}
}

// ---------------------------------------------------------------------------
// Summary

function percentile(sorted, q) {
  if (!sorted.length) return null
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
}

/** The wait from one holder's end to the next holder's grant, where the next was waiting. */
function handoffs() {
  const byPhase = new Map(state.phases.map((p) => [p, []]))
  for (const resource of RESOURCES) {
    const records = state.records.filter((r) => r.resource === resource).sort((a, b) => a.grantedAt - b.grantedAt)
    for (let i = 1; i < records.length; i++) {
      const [previous, next] = [records[i - 1], records[i]]
      if (next.waitStart < previous.doneAt) byPhase.get(phaseAt(next.grantedAt)).push(next.grantedAt - previous.doneAt)
    }
  }
  return byPhase
}

function summarize(pids) {
  const latencies = handoffs()
  const phases = state.phases.map((p) => {
    const sorted = latencies.get(p).sort((a, b) => a - b)
    const p50 = percentile(sorted, 0.5)
    const p99 = percentile(sorted, 0.99)
    return {
      phase: p.title,
      nodesUp: p.nodesUp,
      granted: p.granted,
      handoffMs: p50 === null ? null : { p50: +p50.toFixed(2), p99: +p99.toFixed(2), count: sorted.length },
      failures: Object.fromEntries(p.failures),
      expected: p.expect,
      asExpected: p.expect === 'locks' ? p.granted > 0 : p.granted === 0 && p.failures.get('ERR_REDLOCK_QUORUM') > 0,
    }
  })
  const counters = Object.fromEntries(
    RESOURCES.map((r) => [r, { counter: state.counters.get(r), increments: state.writes.get(r) }]),
  )
  const lostUpdates = RESOURCES.reduce((n, r) => n + state.writes.get(r) - state.counters.get(r), 0)
  const stillRunning = pids.filter(pidAlive)
  return {
    ok: lostUpdates === 0 && phases.every((p) => p.asExpected) && stillRunning.length === 0,
    workers: WORKERS,
    ttl: TTL,
    granted: state.granted,
    phases,
    counters,
    lostUpdates,
    errors: Object.fromEntries(
      [...state.failureExample].map(([code, e]) => [code, { name: e.name, message: e.message }]),
    ),
    nodeErrors: Object.fromEntries(nodeErrorTotals()),
    engine: engineTotals(),
    serverPids: pids,
    serversStillRunning: stillRunning,
  }
}

/**
 * The workers' own counts, from each one's `redlock.stats()` at its end: acquisitions by
 * outcome, the slowest worker's acquire p50 and p99, each node's requests and failures.
 */
function engineTotals() {
  const outcomes = {}
  const nodes = new Map()
  let p50 = 0
  let p99 = 0
  for (const stats of state.engineStats) {
    const { acquire } = stats.operations
    for (const [outcome, n] of Object.entries(acquire.outcomes)) outcomes[outcome] = (outcomes[outcome] || 0) + n
    p50 = Math.max(p50, acquire.latencyMs.p50)
    p99 = Math.max(p99, acquire.latencyMs.p99)
    for (const node of stats.nodes) {
      const total = nodes.get(node.node) || { requests: 0, failed: 0 }
      total.requests += node.requests
      total.failed += Object.values(node.errors).reduce((a, b) => a + b, 0)
      nodes.set(node.node, total)
    }
  }
  return { workers: state.engineStats.length, acquire: { outcomes, p50Ms: p50, p99Ms: p99 }, nodes: Object.fromEntries(nodes) }
}

function printSummary(summary) {
  const rows = summary.phases.map((p, i) => [
    `${i + 1}. ${p.phase}`,
    `${p.nodesUp}/${state.nodes.length}`,
    String(p.granted),
    p.handoffMs ? `${p.handoffMs.p50.toFixed(1)} / ${p.handoffMs.p99.toFixed(1)} ms` : '-',
    tally(new Map(Object.entries(p.failures))),
    p.asExpected ? 'yes' : 'NO',
  ])
  const header = ['phase', 'nodes up', 'locks', 'handoff p50 / p99', 'failures by code', 'as expected']
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c].length)))
  const line = (cells) =>
    cells.map((cell, c) => (c === 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd()
  console.log('')
  console.log(bold(line(header)))
  for (const row of rows) console.log(line(row))
  console.log(dim('handoff: from the end of one holder\'s update to the grant of a worker that was waiting'))
  console.log('')
  for (const [code, e] of Object.entries(summary.errors)) {
    console.log(`A caller sees ${e.name} (code ${code}): ${e.message}`)
  }
  const { engine } = summary
  if (engine.workers) {
    const outcomes = Object.entries(engine.acquire.outcomes).map(([k, n]) => `${k} ${n}`).join(', ')
    console.log(`The workers' redlock.stats(): acquisitions ${outcomes}; acquire p50 ${engine.acquire.p50Ms} ms, p99 ${engine.acquire.p99Ms} ms (slowest worker)`)
    const nodes = Object.entries(engine.nodes).map(([node, n]) => `${node} ${n.requests} requests, ${n.failed} failed`)
    console.log(`  per node: ${nodes.join('; ')}`)
  }
  const nodeErrors = tally(new Map(Object.entries(summary.nodeErrors)))
  console.log(`'error' events (node failures, and releases that found no quorum): ${nodeErrors}`)
  for (const [resource, c] of Object.entries(summary.counters)) {
    const mark = c.counter === c.increments ? green('=') : red('≠')
    console.log(`${resource}: counter ${c.counter} ${mark} ${c.increments} increments`)
  }
  console.log(
    summary.lostUpdates === 0
      ? green('No update was lost: every read-modify-write held its lock.')
      : red(`${summary.lostUpdates} updates were lost.`),
  )
  if (summary.serverPids.length) {
    console.log(
      summary.serversStillRunning.length === 0
        ? `Stopped the demo's redis-servers: pids ${summary.serverPids.join(', ')} are gone.`
        : red(`redis-server pids still running: ${summary.serversStillRunning.join(', ')}`),
    )
  }
  console.log(summary.ok ? green('Demo passed.') : red('Demo FAILED.'))
}

// ---------------------------------------------------------------------------
// The run

const interrupt = new AbortController()
function pause(ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms)
    interrupt.signal.addEventListener('abort', () => {
      clearTimeout(timer)
      resolve()
    }, { once: true })
  })
}

function startWorkers(urls) {
  return Array.from({ length: WORKERS }, (_, i) => {
    const child = fork(path.join(__dirname, 'demo-worker.js'), [], {
      env: {
        ...process.env,
        DEMO_URLS: urls.join(','),
        DEMO_WORKER: String(i + 1),
        DEMO_RESOURCES: RESOURCES.join(','),
        DEMO_TTL: String(TTL),
      },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    })
    child.demoWorker = i + 1
    child.exited = new Promise((resolve) => child.once('exit', resolve))
    child.on('message', (message) => onMessage(child, message))
    return child
  })
}

/** Asks each worker to finish its current lock and exit; kills those that do not within 3 s. */
async function stopWorkers(workers) {
  for (const child of workers) if (child.connected) child.send({ type: 'stop' })
  const timer = setTimeout(() => workers.forEach((c) => c.kill('SIGKILL')), 3000)
  await Promise.all(workers.map((c) => c.exited))
  clearTimeout(timer)
}

async function main() {
  const view = live ? new LiveView() : new LineView()
  const stopping = (signal) => {
    if (interrupt.signal.aborted) return
    view.event(`${signal}: stopping the workers and the servers`)
    interrupt.abort()
  }
  process.on('SIGINT', stopping)
  process.on('SIGTERM', stopping)

  let servers
  let workers = []
  const pids = new Set()
  const notePids = () => servers.started.forEach((s) => s.pid && pids.add(s.pid))
  try {
    servers = await serversFor('REDLOCK_DEMO_SERVERS', 5)
    notePids()
    state.nodes = servers.urls.map((url, i) => ({ label: url.replace(/^redis:\/\/(.*@)?/, ''), server: servers.started[i] }))
    if (servers.started.length) {
      view.event(`started ${servers.started.length} redis-servers: ${servers.started.map((s) => `${s.port} (pid ${s.pid})`).join(', ')}`)
    } else {
      view.event(`using the servers in REDLOCK_DEMO_SERVERS: ${state.nodes.map((n) => n.label).join(', ')} (no faults: they are not the demo's to kill)`)
    }
    const [first, second, third] = servers.started
    const kill = (...list) => async () => {
      for (const s of list) {
        const pid = s.pid
        await s.kill()
        view.event(`killed redis-server :${s.port} (pid ${pid})`)
      }
    }
    state.plan = servers.started.length
      ? [
          { title: 'all 5 nodes up', expect: 'locks' },
          { title: '2 nodes killed: a quorum of 3 remains', expect: 'locks', enter: kill(first, second) },
          { title: 'a 3rd node killed: no quorum', expect: 'no locks', enter: kill(third) },
          {
            title: 'the 3 nodes restarted',
            expect: 'locks',
            restart: true,
            // Redlock's "delayed restart": the phase before lasted longer than a lock's TTL, so
            // that no lock granted before the crash can still be held when the nodes come back empty.
            enter: async () => {
              for (const s of [first, second, third]) {
                await s.start()
                view.event(`restarted redis-server :${s.port} (pid ${s.pid}), empty`)
              }
              notePids()
            },
          },
        ]
      : [{ title: `all ${state.nodes.length} nodes up`, expect: 'locks' }]

    for (const [index, step] of state.plan.entries()) {
      if (interrupt.signal.aborted) break
      const phase = { number: index + 1, title: step.title, expect: step.expect, granted: 0, failures: new Map() }
      // A restart's phase starts with the first node back (a quorum may form from then on);
      // a kill's a little after the kill.
      if (step.restart) {
        phase.startedAt = now()
        state.phases.push(phase)
        await step.enter()
      } else {
        if (step.enter) await step.enter()
        phase.startedAt = step.enter ? now() + SETTLE_MS : now()
        state.phases.push(phase)
      }
      phase.enteredAt = now()
      phase.nodesUp = state.nodes.filter((n) => n.server === undefined || n.server.running).length
      view.event(`phase ${phase.number}/${state.plan.length}: ${phase.title}`)
      if (!workers.length) {
        workers = startWorkers(servers.urls)
        view.event(`${WORKERS} worker processes contend for ${RESOURCES.join(', ')}`)
      }
      await pause(PHASE_MS)
      if (!live) {
        view.event(`phase ${phase.number} done: ${phase.granted} locks granted, failures: ${tally(phase.failures)}`)
      }
    }
  } finally {
    await stopWorkers(workers)
    view.close()
    if (servers) await servers.stop()
    process.off('SIGINT', stopping)
    process.off('SIGTERM', stopping)
  }
  const summary = summarize([...pids])
  if (interrupt.signal.aborted) {
    const gone = summary.serversStillRunning.length === 0
    console.log(`Interrupted. ${gone ? `Stopped the demo's redis-servers: pids ${summary.serverPids.join(', ') || 'none'} are gone.` : `Still running: ${summary.serversStillRunning.join(', ')}`}`)
    process.exitCode = 130
    return
  }
  printSummary(summary)
  if (JSON_SUMMARY) console.log(JSON.stringify(summary))
  process.exitCode = summary.ok ? 0 : 1
}

main().catch((error) => {
  console.error(live ? '\x1b[?25h' : '', error.message || error)
  process.exitCode = 1
})
