'use strict'

// The soak: one process, one Redlock, many loops of acquire / extend / release for minutes,
// under the chaos suite's fault plan (support/chaos.js), sampling the process's resident
// memory and open descriptors as it goes. What a long-running service would see of the
// library: memory and descriptors that stay flat after warm-up, no violation of exclusion,
// no hang, no unhandled rejection.
//
// Exclusion is checked online, so that the check itself keeps no growing record: every
// section is stamped by INCR on a fault-free clock server when the lock is granted and before
// it is released, and only while the holder still believed its lock valid; each resource
// keeps its last sections, and a new one must not overlap any of them.

const fs = require('node:fs')
const path = require('node:path')
const { Conn } = require('./servers')
const { seededRandom, startFleet, stopFleet } = require('./faults')
const { planFaults, inject } = require('./chaos')

const Redlock = require(path.join(__dirname, '..', '..'))

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)))
const NODES = 5
/** Sections kept per resource for the overlap check: far more than can overlap a new one. */
const KEPT = 64

const DEFAULTS = {
  loops: 64,
  resources: 16,
  ttl: [800, 2000],
  holdMs: 60,
  extendChance: 0.35,
  everyMs: 10000,
  warmUpMs: 30000,
  settings: { retryCount: 3, retryDelay: 60, retryJitter: 40, requestTimeout: 150 },
}

/** This process's resident memory (bytes) and open descriptors, as the kernel counts them. */
function sample() {
  return { rss: process.memoryUsage.rss(), fds: fs.readdirSync('/proc/self/fd').length }
}

/**
 * Whether the samples after warm-up are flat: descriptors back to at most `fdSlack` above
 * the first sample after warm-up at the end, and memory grown by at most `rssSlack` (a
 * fraction) from the first sample after warm-up to the mean of the last third.
 */
function flatness(samples, warmUpMs, { fdSlack = 16, rssSlack = 0.25 } = {}) {
  const after = samples.filter((s) => s.t >= warmUpMs)
  if (after.length < 3) return { judged: false }
  const base = after[0]
  const tail = after.slice(Math.floor((after.length * 2) / 3))
  const meanRss = tail.reduce((a, s) => a + s.rss, 0) / tail.length
  const growth = meanRss / base.rss - 1
  // Descriptors come and go with the faults (a killed or cut node's sockets close until it is
  // back), so any one sample may be a low point: a leak shows as a tail whose peak rises above
  // every peak before it.
  const peak = (list) => Math.max(...list.map((s) => s.fds))
  const fdsPeakBefore = peak(samples.slice(0, samples.length - tail.length))
  const fdsPeakTail = peak(tail)
  return {
    judged: true,
    rssGrowth: growth,
    fdsPeakBefore,
    fdsPeakTail,
    flat: growth <= rssSlack && fdsPeakTail <= fdsPeakBefore + fdSlack,
  }
}

/** Checks sections of one resource online: a new one must not overlap one of the last kept. */
class Referee {
  constructor() {
    this.kept = new Map()
    this.checked = 0
    this.violations = []
  }

  add(resource, section) {
    const list = this.kept.get(resource) ?? []
    for (const other of list) {
      if (section.start < other.end && other.start < section.end) {
        this.violations.push({ resource, first: other, second: section })
      }
    }
    list.push(section)
    if (list.length > KEPT) list.shift()
    this.kept.set(resource, list)
    this.checked += 1
  }
}

/**
 * Runs the soak for `seconds` with `seed` and resolves with its report; `log` is told of every
 * sample. Options: DEFAULTS' fields.
 */
async function runSoak({ seconds, seed = Date.now() % 2 ** 31, log = () => {}, ...options }) {
  const o = { ...DEFAULTS, ...options, settings: { ...DEFAULTS.settings, ...options.settings } }
  const ms = Math.round(seconds * 1000)
  const rand = seededRandom(seed)
  const persistent = (i) => i < 3
  const plan = planFaults(rand, ms, { maxTtl: o.ttl[1], persistent })
  const resources = Array.from({ length: o.resources }, (_, i) => `soak:{resource}:${i}`)
  const fleet = await startFleet(NODES, { proxied: true, persistent })
  const [clockNode] = await startFleet(1, { proxied: false })
  const clock = new Conn(clockNode.directUrl, { timeout: 10000 })
  const tick = () => clock.send('INCR', 'soak:seq')
  const unhandled = []
  const onUnhandled = (reason) => unhandled.push(String((reason && reason.stack) || reason))
  process.on('unhandledRejection', onUnhandled)

  const redlock = new Redlock(
    fleet.map((n) => n.url),
    o.settings,
  )
  const stats = { cycles: 0, acquires: 0, granted: 0, extended: 0, extendFailed: 0, released: 0, errors: {} }
  const nodeEvents = {}
  redlock.on('error', (e) => (nodeEvents[e.code] = (nodeEvents[e.code] || 0) + 1))
  const slowest = { acquire: 0, extend: 0, release: 0 }
  const unexpected = []
  const referee = new Referee()
  const timed = async (what, promise) => {
    const started = Date.now()
    try {
      return await promise
    } finally {
      slowest[what] = Math.max(slowest[what], Date.now() - started)
    }
  }
  const failed = (what, error) => {
    const code = error && error.code
    if (!(error instanceof Redlock.ExecutionError)) unexpected.push(`${what}: ${error && error.stack}`)
    stats.errors[`${what} ${code}`] = (stats.errors[`${what} ${code}`] || 0) + 1
  }

  const start = Date.now()
  const deadline = start + ms
  async function loop(id) {
    const r = seededRandom(seed + id + 1)
    while (Date.now() < deadline) {
      const resource = r.pick(resources)
      const ttl = r.int(o.ttl[0], o.ttl[1])
      stats.acquires += 1
      let lock
      try {
        lock = await timed('acquire', redlock.acquire([resource], ttl))
      } catch (error) {
        failed('acquire', error)
        await sleep(r.int(5, 40))
        continue
      }
      stats.granted += 1
      const first = Number(await tick())
      const firstValid = Date.now() < lock.expiration
      await sleep(r.int(o.holdMs / 2, o.holdMs))
      if (r.chance(o.extendChance)) {
        try {
          await timed('extend', lock.extend(ttl))
          stats.extended += 1
        } catch (error) {
          stats.extendFailed += 1
          failed('extend', error)
        }
      }
      const last = Number(await tick())
      const lastValid = Date.now() < lock.expiration
      if (firstValid && lastValid) referee.add(resource, { start: first, end: last, loop: id })
      try {
        await timed('release', lock.release())
        stats.released += 1
      } catch (error) {
        failed('release', error)
      }
      stats.cycles += 1
    }
  }

  const samples = []
  const take = () => {
    const s = { t: Date.now() - start, cycles: stats.cycles, ...sample() }
    samples.push(s)
    log(s)
  }
  const faults = {}
  const injectErrors = []
  let sampler
  try {
    take()
    sampler = setInterval(take, o.everyMs)
    const running = []
    const injecting = (async () => {
      for (const fault of plan) {
        await sleep(start + fault.at - Date.now())
        faults[fault.kind] = (faults[fault.kind] || 0) + 1
        running.push(inject(fleet[fault.node], fault, fleet).catch((e) => injectErrors.push(`${fault.kind}: ${e.message}`)))
      }
      await Promise.all(running)
    })()
    await Promise.all([...Array.from({ length: o.loops }, (_, i) => loop(i)), injecting])
    take()
  } finally {
    clearInterval(sampler)
    await redlock.quit()
    clock.close()
    await stopFleet([...fleet, clockNode])
    process.off('unhandledRejection', onUnhandled)
  }
  // After quit: what the process holds once the Redlock is gone.
  await sleep(200)
  const afterQuit = sample()
  return {
    seed,
    seconds,
    loops: o.loops,
    resources: resources.length,
    ...stats,
    faultsInjected: Object.values(faults).reduce((a, b) => a + b, 0),
    faults,
    sectionsChecked: referee.checked,
    violations: referee.violations,
    nodeEvents,
    slowest,
    samples,
    afterQuit,
    flatness: flatness(samples, Math.min(o.warmUpMs, ms / 3)),
    problems: [
      ...unexpected.map((p) => `unexpected error: ${p}`),
      ...unhandled.map((p) => `unhandled rejection: ${p}`),
      ...injectErrors.map((p) => `fault injection failed: ${p}`),
    ],
  }
}

const mb = (bytes) => (bytes / 2 ** 20).toFixed(1)

/** The report as lines of text, with the samples as a table. */
function formatSoak(r) {
  const f = r.flatness
  const lines = [
    `soak: seed ${r.seed} | ${r.seconds} s | ${r.loops} loops | ${r.resources} resources`,
    `cycles ${r.cycles} | granted ${r.granted} of ${r.acquires} acquires | extended ${r.extended}, refused ${r.extendFailed} | released ${r.released}`,
    `faults injected ${r.faultsInjected}: ${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ')}`,
    `sections checked ${r.sectionsChecked} | violations ${r.violations.length}`,
    `errors: ${Object.entries(r.errors).sort().map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `node events: ${Object.entries(r.nodeEvents).sort().map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}`,
    `slowest: acquire ${r.slowest.acquire} ms, extend ${r.slowest.extend} ms, release ${r.slowest.release} ms`,
    '',
    '| t (s) | cycles | RSS (MB) | open fds |',
    '|--:|--:|--:|--:|',
    ...r.samples.map((s) => `| ${Math.round(s.t / 1000)} | ${s.cycles} | ${mb(s.rss)} | ${s.fds} |`),
    `| after quit | | ${mb(r.afterQuit.rss)} | ${r.afterQuit.fds} |`,
    '',
    f.judged
      ? `after warm-up: RSS ${f.rssGrowth >= 0 ? '+' : ''}${(f.rssGrowth * 100).toFixed(1)} % (last third's mean against the first sample), fds peak ${f.fdsPeakBefore} before the last third, ${f.fdsPeakTail} in it: ${f.flat ? 'flat' : 'NOT FLAT'}`
      : 'too few samples after warm-up to judge flatness',
    `problems ${r.problems.length}`,
  ]
  for (const v of r.violations.slice(0, 5)) lines.push(`VIOLATION ${JSON.stringify(v)}`)
  for (const p of r.problems.slice(0, 10)) lines.push(`PROBLEM ${p}`)
  return lines.join('\n')
}

module.exports = { runSoak, formatSoak, flatness, Referee }
