'use strict'

// The mutual-exclusion check under faults. Several OS processes (chaos-worker.js), each with
// its own Redlock over 5 redis-servers behind fault proxies, contend for a few resources while
// this process injects faults on a schedule drawn from a seed. Every critical section is
// stamped by INCR on a sixth, fault-free server; afterwards no two sections of one resource
// may overlap while both holders believed their lock valid (before its `expiration`).
//
// Faults follow the Redlock spec's safety rules, since outside them no implementation can
// promise exclusion: a server with persistence (appendonly, appendfsync always) may come back
// at once; one without stays down for longer than the longest TTL (the delayed restart).
// Breaking that rule on purpose is a failure-mode test of its own (failure-modes.test.js).
//
// With `restarts`, the plan breaks it on purpose: no node persists anything and every kill
// restarts at once, and the client's restart guard (docs/SAFETY.md) must keep exclusion:
// 'minority' keeps at most 2 nodes young at once (the default guard suffices), 'any'
// restarts majorities too (only 'strict' suffices). Run with `guard: false`, the same plans
// show overlaps.

const { fork } = require('node:child_process')
const path = require('node:path')
const { seededRandom, startFleet, stopFleet } = require('./faults')
const { command } = require('./servers')

const WORKER = path.join(__dirname, 'chaos-worker.js')
const NODES = 5
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)))

const DEFAULTS = {
  workers: 4,
  loops: 2,
  resources: 3,
  ttl: [800, 2000],
  holdMs: 120,
  marginMs: 150,
  extendChance: 0.35,
  slackMs: 5000,
  settings: { retryCount: 3, retryDelay: 60, retryJitter: 40, requestTimeout: 150 },
  longHoldChance: 0,
  longHoldMs: 0,
  // With permits > 0 the loops take permits of semaphores (1 to maxCount at a time) instead of
  // locks, and the check allows `permits` holders of a resource at once.
  permits: 0,
  maxCount: 1,
  // With rw, the loops take read-write locks: the write side with this chance, else the read
  // side; the check allows readers together and a writer alone.
  rw: false,
  writeChance: 0.3,
}

/**
 * With immediate restarts: some sections hold for up to 1.5 s (never past expiration -
 * margin), so that a lock is often still held when the node that forgot it is back.
 */
const RESTART_DEFAULTS = { longHoldChance: 0.3, longHoldMs: 1500 }

/**
 * The fault plan for `ms` milliseconds, drawn from `rand` alone so that a seed replays it:
 * `{ at, node, kind, ms, ... }`. At most 2 nodes are faulty at once, sometimes 3 (a
 * majority), and every fault has ended a second before the run does.
 *
 * With `restarts` ('minority' or 'any') no node persists anything and every kill restarts at
 * once: see planRestarts.
 */
function planFaults(rand, ms, { maxTtl, persistent, unsafe, restarts, window = maxTtl }) {
  if (restarts) return planRestarts(rand, ms, { restarts, window, maxTtl })
  const plan = []
  if (unsafe) {
    // Outside the rules: every few hundred ms a majority forgets every key at once.
    for (let at = 500; at < ms - 1000; at += rand.int(100, 400)) {
      plan.push({ at, node: -1, kind: 'flush majority', ms: 0 })
    }
    return plan
  }
  const busyUntil = new Array(NODES).fill(0)
  const end = ms - 1000
  for (let at = 300; ; ) {
    at += rand.int(100, 700)
    if (at >= end) break
    const free = busyUntil.map((until, i) => (until <= at ? i : -1)).filter((i) => i >= 0)
    const cap = rand.chance(0.15) ? 3 : 2
    if (NODES - free.length >= cap || !free.length) continue
    const node = rand.pick(free)
    const kind = rand.pick(['kill', 'kill', 'pause', 'latency', 'blackhole', 'blackhole', 'drop', 'cut'])
    let fault
    switch (kind) {
      case 'kill':
        fault = persistent(node)
          ? { kind: 'kill+restart', ms: rand.int(100, 1500) }
          : { kind: 'kill+delayed restart', ms: maxTtl + rand.int(500, 1500) }
        break
      default:
        fault = otherFault(rand, kind)
    }
    fault.ms = Math.min(fault.ms, end - at)
    if (fault.kind === 'kill+delayed restart' && fault.ms < maxTtl + 500) continue
    plan.push({ at, node, ...fault })
    // A restart takes a while; leave the node alone until it is surely back.
    busyUntil[node] = at + fault.ms + (kind === 'kill' ? 400 : 50)
  }
  return plan
}

/** A fault that leaves the server's memory alone: pause, latency, blackhole, drop or cut. */
function otherFault(rand, kind) {
  switch (kind) {
    case 'pause':
      return { kind: 'pause', ms: rand.int(100, 1200) }
    case 'latency':
      return { kind: 'latency', ms: rand.int(300, 2000), latency: rand.int(5, 250) }
    case 'blackhole':
      return { kind: 'blackhole', ms: rand.int(200, 1500), heal: rand.chance(0.5) ? 'deliver' : 'drop' }
    case 'drop':
      return { kind: 'drop', ms: 0, reset: rand.chance(0.5) }
    default:
      return { kind: 'cut', ms: rand.int(100, 800), forward: rand.chance(0.5) }
  }
}

/**
 * How long after its restart a node may still look young to a client, beyond the window:
 * INFO gives the uptime in whole seconds, rounded down (up to 1 s), and the restart itself
 * (spawn, first PING) or a late timer may start the server up to 1 s after the plan says.
 */
const YOUNG_MARGIN = 2000
/** Kills wait until the fleet, started before the run, is surely older than the window. */
const OLD_AFTER = 1500

/**
 * The restarts a fault makes, as `{ node, killAt, restartAt }` (ms into the run, as planned).
 */
function restartsOf(fault) {
  switch (fault.kind) {
    case 'kill+immediate restart':
      return [{ node: fault.node, killAt: fault.at, restartAt: fault.at + fault.ms }]
    case 'majority kill+immediate restart':
      return fault.nodes.map((node) => ({ node, killAt: fault.at, restartAt: fault.at + fault.ms }))
    case 'partition+immediate restart': {
      const killAt = fault.at + fault.before
      return [{ node: fault.node, killAt, restartAt: killAt + fault.down }]
    }
    default:
      return []
  }
}

/**
 * The plan of the immediate restarts: no node persists anything, and a killed node comes
 * back at once (after 0.1-1.5 s), empty. No kill comes before the fleet is `window` +
 * OLD_AFTER ms old (it started before the run), so that a client never meets a fleet of
 * young servers around a restart.
 *
 * - `'minority'`: at most 2 distinct nodes are young at any moment, a node counting as young
 *   from its kill until `window` + YOUNG_MARGIN after its restart: the restart guard's
 *   minority rule holds. Besides, at most 2 nodes are faulty at once, except for the
 *   pattern below, which takes the whole fleet while it runs.
 * - `'any'`: restarts of any node whatever the others' age, sometimes of 3 nodes together (a
 *   majority restarted at once): only the guard's strict mode can keep exclusion.
 *
 * Every 2.5-6 s (once the fleet is free for it) both run a compound fault that takes the
 * whole fleet. In 'minority' it is the pattern that a client without the guard cannot
 * survive, 'partition+immediate restart': 2 nodes are cut off (connections refused and
 * dropped) for longer than the longest TTL, so that the locks taken meanwhile sit on the
 * other 3 alone; one of those 3 is killed and restarted at once, empty; then the 2 are let
 * back in. The restarted node and the 2 make a majority on which the locks held on the 3
 * are not. In 'any' it is that pattern or, 3 times in 10, 'majority kill+immediate
 * restart': 3 nodes killed together and restarted together at once.
 */
function planRestarts(rand, ms, { restarts, window, maxTtl }) {
  if (restarts !== 'minority' && restarts !== 'any') throw new Error(`restarts: 'minority' or 'any', not ${restarts}`)
  const minority = restarts === 'minority'
  const plan = []
  const busyUntil = new Array(NODES).fill(0)
  const youngUntil = new Array(NODES).fill(0)
  const end = ms - 1000
  const oldAt = window + OLD_AFTER
  const youngAt = (at) => youngUntil.map((until, i) => (until > at ? i : -1)).filter((i) => i >= 0)
  // Whether the restarts `list` keep the minority rule: with them, at most 2 nodes young at
  // each of their kills (the start of a young interval is where the count can grow).
  const keepsMinority = (list) =>
    list.every(({ killAt }) => {
      const young = new Set(youngAt(killAt))
      for (const r of list) if (r.killAt <= killAt) young.add(r.node)
      return young.size <= NODES - 3
    })
  // The compound faults come every few seconds: when one is due, no new fault starts until
  // the fleet is free for it.
  let due = oldAt + rand.int(0, 2000)
  for (let at = 300; ; ) {
    at += rand.int(100, 700)
    if (at >= end) break
    const free = busyUntil.map((until, i) => (until <= at ? i : -1)).filter((i) => i >= 0)
    let fault
    if (at >= due) {
      if (free.length < NODES) continue
      due = at + rand.int(2500, 6000)
      if (!minority && rand.chance(0.3)) {
        fault = { kind: 'majority kill+immediate restart', node: -1, nodes: shuffled(rand, NODES).slice(0, 3).sort(), ms: rand.int(100, 1500) }
      } else {
        // The restarted node: one already young when two are (the minority rule), else any.
        const young = youngAt(at)
        const node = young.length >= NODES - 3 ? rand.pick(young) : rand.int(0, NODES - 1)
        const others = shuffled(rand, NODES).filter((i) => i !== node)
        // Cut off for longer than the longest TTL before the kill: the keys the 2 kept of
        // locks released meanwhile (the release could not reach them) are gone when they
        // come back, so that only the lost lock stands between a second client and them.
        const before = rand.int(maxTtl + 300, maxTtl + 900)
        const down = rand.int(100, 300)
        const after = rand.int(0, 50)
        fault = { kind: 'partition+immediate restart', node, cut: others.slice(0, 2).sort(), before, down, after, ms: before + down + after }
      }
    } else {
      const cap = minority || !rand.chance(0.15) ? 2 : 3
      if (NODES - free.length >= cap || !free.length) continue
      const node = rand.pick(free)
      const kind = rand.pick(['kill', 'kill', 'pause', 'latency', 'blackhole', 'blackhole', 'drop', 'cut'])
      if (kind === 'kill') {
        if (at < oldAt) continue
        fault = { kind: 'kill+immediate restart', node, ms: rand.int(100, 1500) }
      } else {
        fault = otherFault(rand, kind)
        fault.node = node
      }
    }
    if (at + fault.ms > end) continue
    fault = { at, ...fault }
    const made = restartsOf(fault)
    if (minority && !keepsMinority(made)) continue
    plan.push(fault)
    for (const r of made) youngUntil[r.node] = Math.max(youngUntil[r.node], r.restartAt + window + YOUNG_MARGIN)
    // A restart takes a while; leave a node alone until it is surely back. The compound
    // faults take the whole fleet while they run.
    const until = at + fault.ms + (made.length ? 400 : 50)
    const taken = fault.kind === 'kill+immediate restart' || !made.length ? [fault.node] : [...Array(NODES).keys()]
    for (const i of taken) busyUntil[i] = until
  }
  return plan
}

/** 0..n-1 in an order drawn from `rand`. */
function shuffled(rand, n) {
  const order = [...Array(n).keys()]
  for (let i = n - 1; i > 0; i--) {
    const j = rand.int(0, i)
    ;[order[i], order[j]] = [order[j], order[i]]
  }
  return order
}

/**
 * Applies one fault to `node` and undoes it after `fault.ms`. `restarted(index)`, when given,
 * is called as each killed server answers again.
 */
async function inject(node, fault, fleet, restarted = () => {}) {
  const back = async (n) => {
    await n.start()
    restarted(n.index)
  }
  switch (fault.kind) {
    case 'flush majority':
      await Promise.all(fleet.slice(0, 3).map((n) => command(n.directUrl, 'FLUSHALL')))
      return
    case 'kill+immediate restart':
      await node.kill()
      await sleep(fault.ms)
      await back(node)
      return
    case 'majority kill+immediate restart': {
      const nodes = fault.nodes.map((i) => fleet[i])
      await Promise.all(nodes.map((n) => n.kill()))
      await sleep(fault.ms)
      await Promise.all(nodes.map(back))
      return
    }
    case 'partition+immediate restart': {
      const cut = fault.cut.map((i) => fleet[i])
      for (const n of cut) {
        n.proxy.refuse(true)
        n.proxy.drop()
      }
      try {
        await sleep(fault.before)
        await node.kill()
        await sleep(fault.down)
        await back(node)
        await sleep(fault.after)
      } finally {
        for (const n of cut) n.proxy.heal()
      }
      return
    }
    case 'kill+restart':
    case 'kill+delayed restart':
      await node.kill()
      await sleep(fault.ms)
      await node.start()
      return
    case 'pause':
      node.pause()
      await sleep(fault.ms)
      node.resume()
      return
    case 'latency':
      node.proxy.latency(fault.latency)
      await sleep(fault.ms)
      node.proxy.heal()
      return
    case 'blackhole':
      node.proxy.blackhole()
      await sleep(fault.ms)
      if (fault.heal === 'drop') node.proxy.drop()
      node.proxy.heal()
      return
    case 'drop':
      node.proxy.drop({ reset: fault.reset })
      return
    case 'cut':
      await node.proxy.dropNextRequest({ forward: fault.forward, timeout: fault.ms })
      return
    default:
      throw new Error(`unknown fault ${fault.kind}`)
  }
}

/**
 * The valid part of a section: from its first checkpoint to the last one taken before the
 * holder's lock expired (checkpoints after an expiration are not believed valid). Null when
 * even the first was too late.
 */
function validInterval(section) {
  let last = -1
  for (let i = 0; i < section.cp.length; i++) {
    const [, local, expiration] = section.cp[i]
    if (local < expiration) last = i
    else break
  }
  if (last < 0) return null
  return { start: section.cp[0][0], end: section.cp[last][0], section, truncated: last < section.cp.length - 1 }
}

/**
 * Sections of one resource whose valid parts overlap in the clock's order beyond `limit`
 * holders (a section holding n permits counts n): each violation names the section that
 * went over and the first of those it overlapped.
 */
function findViolations(sections, limit = 1) {
  const byResource = new Map()
  let lateStarts = 0
  let truncated = 0
  for (const section of sections) {
    const interval = validInterval(section)
    if (!interval) {
      lateStarts += 1
      continue
    }
    if (interval.truncated) truncated += 1
    if (!byResource.has(section.r)) byResource.set(section.r, [])
    byResource.get(section.r).push(interval)
  }
  const violations = []
  for (const [resource, intervals] of byResource) {
    intervals.sort((a, b) => a.start - b.start)
    let open = []
    for (const interval of intervals) {
      // Every checkpoint has a seq of its own: a section still open at this start overlaps it.
      open = open.filter((o) => o.end >= interval.start)
      if (conflicts(open, interval, limit)) {
        violations.push({ resource, holders: open.length + 1, first: describe(open[0] ?? interval), second: describe(interval) })
      }
      open.push(interval)
    }
  }
  return { violations, lateStarts, truncated }
}

/**
 * Whether `interval` may not overlap the still-open intervals: beyond `limit` holders (a
 * section holding n permits counts n), or, for a read-write lock, a writer with anyone.
 */
function conflicts(open, interval, limit) {
  const writing = (i) => i.section.mode === 'w'
  if (writing(interval) || open.some(writing)) return open.length > 0
  if (interval.section.mode === 'r') return false
  return open.reduce((n, o) => n + (o.section.n ?? 1), 0) + (interval.section.n ?? 1) > limit
}

function describe(interval) {
  const { w, v, cp } = interval.section
  return { worker: w, value: v, seq: [interval.start, interval.end], checkpoints: cp }
}

function add(into, from) {
  for (const [k, n] of Object.entries(from)) into[k] = (into[k] || 0) + n
}

/** Forks one worker and resolves with it once it is ready. */
function startWorker(config) {
  const child = fork(WORKER, [], { execArgv: [], stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let stderr = ''
  child.stderr.on('data', (d) => {
    if (stderr.length < 20000) stderr += d
  })
  const result = new Promise((resolve) => {
    child.on('message', (m) => {
      if (m.type === 'done' || m.type === 'failed') resolve(m)
    })
    child.on('exit', (code, signal) => resolve({ type: 'exited', code, signal, stderr }))
  })
  const ready = new Promise((resolve, reject) => {
    child.on('message', (m) => m.type === 'ready' && resolve())
    child.on('exit', () => reject(new Error(`worker ${config.id} exited before it was ready: ${stderr}`)))
  })
  child.send({ type: 'config', config })
  return { child, ready, result }
}

/**
 * Runs the check for `seconds` and resolves with its report. `log` is told of progress.
 * Options: `seed`, `workers`, `loops` (per worker), `resources`, and DEFAULTS' fields;
 * `unsafe` replaces the plan with one that breaks the spec's rules (a majority flushed
 * again and again), to show that the checker does see overlaps.
 *
 * `restarts: 'minority' | 'any'` runs every node without persistence, restarting at once
 * (planRestarts), with RESTART_DEFAULTS' long holds; the workers' `restartGuardWindow` is
 * then the longest TTL. `guard: true | false | 'strict'` is the workers' `restartGuard`
 * (absent: the library's default, true).
 */
async function runChaos({ seconds, seed = Date.now() % 2 ** 31, log = () => {}, ...options }) {
  const restarts = options.restarts
  const base = restarts ? { ...DEFAULTS, ...RESTART_DEFAULTS } : DEFAULTS
  const o = { ...base, ...options, settings: { ...base.settings, ...options.settings } }
  if (restarts) o.settings.restartGuardWindow ??= o.ttl[1]
  if (o.guard !== undefined) o.settings.restartGuard = o.guard
  const window = o.settings.restartGuardWindow ?? 60000
  const ms = Math.round(seconds * 1000)
  const persistent = restarts ? () => false : (i) => i < 3
  const rand = seededRandom(seed)
  const plan = planFaults(rand, ms, { maxTtl: o.ttl[1], persistent, unsafe: o.unsafe, restarts, window })
  const resources = Array.from({ length: o.resources }, (_, i) => `chaos:{resource}:${i}`)

  const fleet = await startFleet(NODES, { proxied: true, persistent })
  const [clock] = await startFleet(1, { proxied: false })
  const workers = []
  const faults = {}
  const injectErrors = []
  // How much later than planned each killed server answered again; the minority plan's
  // young intervals allow YOUNG_MARGIN - 1000 ms (the rest is INFO's rounding).
  const late = { max: 0, over: [] }
  let report
  try {
    workers.push(...startWorkers(o, { seed, clients: fleet.map((n) => n.url), clockUrl: clock.directUrl, resources }))
    const start = await go(workers, ms)
    log(`chaos: seed ${seed}, ${o.workers} processes x ${o.loops} loops, ${resources.length} resources, ${plan.length} faults planned over ${seconds} s`)

    const running = []
    let nextLog = start + 30000
    for (const fault of plan) {
      await sleep(start + fault.at - Date.now())
      faults[fault.kind] = (faults[fault.kind] || 0) + 1
      const planned = new Map(restartsOf(fault).map((r) => [r.node, r.restartAt]))
      const restarted = (i) => {
        const by = Date.now() - start - planned.get(i)
        late.max = Math.max(late.max, by)
        if (by > YOUNG_MARGIN - 1000) late.over.push(`node ${i} answered ${by} ms after its planned restart at ${planned.get(i)} ms`)
      }
      running.push(
        inject(fleet[fault.node], fault, fleet, restarted).catch((e) =>
          injectErrors.push(`${fault.kind} on node ${fault.node}: ${e.message}`),
        ),
      )
      if (Date.now() >= nextLog) {
        nextLog += 30000
        log(`chaos: ${Math.round((Date.now() - start) / 1000)} s, ${Object.values(faults).reduce((a, b) => a + b, 0)} faults so far`)
      }
    }
    await Promise.all(running)
    await Promise.all(fleet.map((n) => n.heal()))

    const results = await collect(workers, start + ms)
    // Past the margin, the plan's minority rule may not have held: the run proves nothing.
    if (restarts === 'minority') for (const e of late.over) injectErrors.push(`restart too late for the plan: ${e}`)
    report = summarize({ seed, seconds, o, resources, plan, faults, injectErrors, results })
    Object.assign(report, { restarts: restarts ?? null, guard: o.settings.restartGuard ?? true, window, restartLateMs: late.max })
  } finally {
    killWorkers(workers)
    await stopFleet([...fleet, clock])
  }
  return report
}

function summarize({ seed, seconds, o, resources, plan, faults, injectErrors, results }) {
  const sections = []
  const totals = { acquires: 0, granted: 0, extended: 0, extendFailed: 0, released: 0 }
  const errors = {}
  const nodeEvents = {}
  const nodeEventSamples = {}
  const maxMs = { acquire: 0, extend: 0, release: 0 }
  const problems = []
  for (const [id, r] of results.entries()) {
    if (r.type !== 'done') {
      problems.push(`worker ${id}: ${r.type} ${r.message || r.stderr || r.code || ''}`.trim())
      continue
    }
    sections.push(...r.sections)
    for (const k of Object.keys(totals)) totals[k] += r.stats[k]
    add(errors, r.stats.errors)
    add(nodeEvents, r.stats.nodeEvents)
    for (const [code, message] of Object.entries(r.stats.nodeEventSamples)) nodeEventSamples[code] ??= message
    for (const k of Object.keys(maxMs)) maxMs[k] = Math.max(maxMs[k], r.stats.maxMs[k])
    for (const p of r.stats.unexpected) problems.push(`worker ${id} unexpected error: ${p}`)
    for (const p of r.stats.unhandled) problems.push(`worker ${id} unhandled rejection: ${p}`)
    for (const p of r.stats.slow) problems.push(`worker ${id} slow operation: ${p}`)
  }
  for (const e of injectErrors) problems.push(`fault injection failed: ${e}`)
  const { violations, lateStarts, truncated } = findViolations(sections, o.permits || 1)
  return {
    seed,
    seconds,
    processes: o.workers,
    loopsPerProcess: o.loops,
    resources: resources.length,
    permits: o.permits,
    maxCount: o.maxCount,
    rw: o.rw,
    faultsPlanned: plan.length,
    faultsInjected: Object.values(faults).reduce((a, b) => a + b, 0),
    faults,
    ...totals,
    sectionsChecked: sections.length - lateStarts,
    sectionsPastExpiration: truncated + lateStarts,
    violations,
    errors,
    nodeEvents,
    nodeEventSamples,
    maxMs,
    problems,
  }
}

/**
 * The exclusion check without a fault plan, over any client entries (clusters included):
 * `workers` processes contend for `resources` for `seconds` while `during()` runs the
 * caller's own fault (a slot migration, a failover). Resolves with the same report as
 * runChaos; a failure of `during` is one of its problems.
 */
async function contend({ clients, clockUrl, seconds, resources, during = async () => {}, seed = 1, ...options }) {
  const o = { ...DEFAULTS, ...options, settings: { ...DEFAULTS.settings, ...options.settings } }
  const ms = Math.round(seconds * 1000)
  const workers = []
  const injectErrors = []
  try {
    workers.push(...startWorkers(o, { seed, clients, clockUrl, resources }))
    const start = await go(workers, ms)
    await during().catch((e) => injectErrors.push(`during: ${e.stack || e.message}`))
    const results = await collect(workers, start + ms)
    return summarize({ seed, seconds, o, resources, plan: [], faults: {}, injectErrors, results })
  } finally {
    killWorkers(workers)
  }
}

/** Forks `o.workers` workers over `clients`, each with a seed of its own drawn from `seed`. */
function startWorkers(o, { seed, clients, clockUrl, resources }) {
  return Array.from({ length: o.workers }, (_, id) =>
    startWorker({
      id,
      seed: (seed + 7919 * (id + 1)) >>> 0,
      urls: clients,
      clockUrl,
      resources,
      loops: o.loops,
      ttl: o.ttl,
      holdMs: o.holdMs,
      longHoldChance: o.longHoldChance,
      longHoldMs: o.longHoldMs,
      marginMs: o.marginMs,
      extendChance: o.extendChance,
      slackMs: o.slackMs,
      settings: o.settings,
      permits: o.permits,
      maxCount: o.maxCount,
      rw: o.rw,
      writeChance: o.writeChance,
    }),
  )
}

/** Waits until every worker is ready, then starts them all for `ms`; resolves the start. */
async function go(workers, ms) {
  await Promise.all(workers.map((w) => w.ready))
  const start = Date.now()
  for (const w of workers) w.child.send({ type: 'go', deadline: start + ms })
  return start
}

/** The workers' results; a worker that does not report within 30 s of `deadline` is hung. */
function collect(workers, deadline) {
  return Promise.all(
    workers.map(async (w) => {
      let timer
      const hung = new Promise((resolve) => {
        timer = setTimeout(() => resolve({ type: 'hung' }), Math.max(0, deadline - Date.now()) + 30000)
      })
      const r = await Promise.race([w.result, hung])
      clearTimeout(timer)
      return r
    }),
  )
}

function killWorkers(workers) {
  for (const w of workers) {
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL')
  }
}

const GUARD_NAMES = new Map([
  [true, 'on'],
  [false, 'off'],
  ['strict', 'strict'],
])

/** The report as text. */
function formatReport(r) {
  const lines = [
    `seed ${r.seed} | ${r.seconds} s | ${r.processes} processes x ${r.loopsPerProcess} loops | ${r.resources} resources` +
      (r.permits ? ` | semaphores of ${r.permits} permits, 1-${r.maxCount} at a time` : '') +
      (r.rw ? ' | read-write locks' : ''),
    ...('restarts' in r
      ? [
          `restarts ${r.restarts ? `${r.restarts}, all at once, no persistence` : 'nodes 0-2 persistent at once, 3-4 delayed'}` +
            ` | restart guard ${GUARD_NAMES.get(r.guard)}, window ${r.window} ms` +
            ` | restart events (ERR_REDLOCK_NODE_RESTARTED) ${r.nodeEvents.ERR_REDLOCK_NODE_RESTARTED || 0}` +
            (r.restarts ? ` | latest restart ${r.restartLateMs} ms after its plan` : ''),
        ]
      : []),
    `locks granted ${r.granted} of ${r.acquires} acquires | extended ${r.extended}, extension refused ${r.extendFailed} | released ${r.released}`,
    `faults injected ${r.faultsInjected}: ${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `sections checked ${r.sectionsChecked} | holder past its expiration (checked up to it) ${r.sectionsPastExpiration}`,
    `violations ${r.violations.length}`,
    `errors by code: ${Object.entries(r.errors).sort().map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `node events: ${Object.entries(r.nodeEvents).sort().map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    ...Object.entries(r.nodeEventSamples).sort().map(([k, m]) => `  e.g. ${k}: ${m}`),
    `slowest: acquire ${r.maxMs.acquire} ms, extend ${r.maxMs.extend} ms, release ${r.maxMs.release} ms`,
    `problems ${r.problems.length}`,
  ]
  for (const v of r.violations.slice(0, 5)) lines.push(`VIOLATION ${JSON.stringify(v)}`)
  for (const p of r.problems.slice(0, 10)) lines.push(`PROBLEM ${p}`)
  return lines.join('\n')
}

module.exports = { runChaos, contend, formatReport, planFaults, restartsOf, inject, findViolations, validInterval, YOUNG_MARGIN, OLD_AFTER }
