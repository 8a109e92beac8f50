'use strict'
// What is measured, and how each scenario's table reads. A scenario is a workload for
// bench/worker.js and bench/floor (loops of acquire → hold → release on fresh or shared
// resources) plus the columns its table shows. Every metric is derived from one worker
// result (one contender, one repetition); the runner takes the median and the range over
// repetitions.

/** Durations of the full run and of `--smoke`, in ms. */
const TIMING = {
  full: { warmupMs: 400, durationMs: 1500, contentionMs: 2500, graceMs: 300, nodeDownGraceMs: 1000 },
  smoke: { warmupMs: 50, durationMs: 120, contentionMs: 150, graceMs: 100, nodeDownGraceMs: 150 },
}

/**
 * Metrics a row can show. `better` says which way is good; `unit` is printed in the header;
 * `digits` overrides the decimals printed (1 for ms, else 0).
 */
const METRICS = {
  p50: { title: 'p50', unit: 'µs', better: 'lower', of: (r) => r.lat_p50_us },
  p99: { title: 'p99', unit: 'µs', better: 'lower', of: (r) => r.lat_p99_us },
  rate: { title: 'cycles/s', unit: '', better: 'higher', of: (r) => perSecond(r, r.cycles) },
  // The contender's own process (user + system, all threads).
  cpu: {
    title: 'client CPU per 1000 cycles',
    unit: 'ms',
    better: 'lower',
    of: (r) => (r.cycles ? (r.cpu_ms / r.cycles) * 1000 : null),
  },
  // The 5 redis-servers' used_cpu_sys + used_cpu_user over the window, read by the runner.
  redisCpu: {
    title: 'redis CPU per 1000 cycles',
    unit: 'ms',
    better: 'lower',
    of: (r) => (r.cycles && Number.isFinite(r.redis_cpu_ms) ? (r.redis_cpu_ms / r.cycles) * 1000 : null),
  },
  // Voluntary + involuntary, all threads of the contender's process, over the window.
  switches: {
    title: 'context switches per cycle',
    unit: '',
    digits: 1,
    better: 'lower',
    of: (r) => (r.cycles && Number.isFinite(r.ctx_switches) ? r.ctx_switches / r.cycles : null),
  },
  rss: { title: 'peak RSS', unit: 'MB', better: 'lower', of: (r) => r.max_rss_kb / 1024 },
  grants: { title: 'grants/s', unit: '', better: 'higher', of: (r) => perSecond(r, r.grants) },
  owners: {
    title: 'owner changes/s',
    unit: '',
    better: 'higher',
    of: (r) => perSecond(r, r.owner_changes),
  },
  handoffP50: { title: 'hand-off p50', unit: 'µs', better: 'lower', of: (r) => r.handoff_p50_us },
  handoffP99: { title: 'hand-off p99', unit: 'µs', better: 'lower', of: (r) => r.handoff_p99_us },
  handoffMax: { title: 'hand-off max', unit: 'µs', better: 'lower', of: (r) => r.handoff_max_us },
  // How long a grant was held in fact (grant → release called): a 1 ms timer lasts longer.
  hold: { title: 'hold, measured', unit: 'µs', better: 'lower', of: (r) => r.hold_mean_us },
  failures: {
    title: 'failed acquires/s',
    unit: '',
    better: 'lower',
    of: (r) => perSecond(r, r.acquire_failures),
  },
  errors: {
    title: 'errors',
    unit: '',
    better: 'lower',
    of: (r) => r.acquire_failures + r.release_failures,
  },
  cycles: { title: 'cycles', unit: '', better: 'higher', of: (r) => r.cycles },
  stalled: { title: 'stalled', unit: '', better: 'lower', of: (r) => r.stalled },
}

function perSecond(result, count) {
  return result.elapsed_ms > 0 ? count / (result.elapsed_ms / 1000) : null
}

/**
 * The scenarios, in order. `headline` is the metric of the chart and of the ratio column;
 * `ranged` metrics show their min–max over repetitions.
 */
const SCENARIOS = [
  {
    id: 'latency',
    title: '1. Uncontended latency',
    about: 'one loop, acquire + release on a fresh resource each cycle',
    workload: { loops: 1, resources: 1 },
    headline: 'p50',
    columns: ['p50', 'p99', 'cpu', 'redisCpu', 'switches', 'errors'],
    ranged: ['p50', 'p99'],
  },
  {
    id: 'throughput-64',
    title: '2a. Throughput, 64 loops',
    about: '64 concurrent loops, each on fresh resources',
    workload: { loops: 64, resources: 1 },
    headline: 'rate',
    columns: ['rate', 'cpu', 'redisCpu', 'switches', 'rss', 'errors'],
    ranged: ['rate', 'cpu'],
  },
  {
    id: 'throughput-512',
    title: '2b. Throughput, 512 loops',
    about: '512 concurrent loops, each on fresh resources',
    workload: { loops: 512, resources: 1 },
    headline: 'rate',
    columns: ['rate', 'cpu', 'redisCpu', 'switches', 'rss', 'errors'],
    ranged: ['rate', 'cpu'],
  },
  {
    id: 'contention-default',
    title: '3a. Contention, default retry settings',
    about:
      "8 loops on one resource: acquire, hold 1 ms, release, again; each library's default retries (floors: node-redlock's 10 × 200 ± 100 ms)",
    workload: { loops: 8, resources: 1, shared: true, hold: 1, retry: 'default' },
    headline: 'grants',
    columns: ['grants', 'owners', 'handoffP50', 'handoffP99', 'handoffMax', 'hold', 'failures'],
    ranged: ['grants', 'owners'],
    contention: true,
  },
  {
    id: 'contention-tuned',
    title: '3b. Contention, tuned retries',
    about: '8 loops on one resource as above, retryDelay 10 ms, retryJitter 5 ms',
    workload: { loops: 8, resources: 1, shared: true, hold: 1, retry: 'tuned' },
    headline: 'grants',
    columns: ['grants', 'owners', 'handoffP50', 'handoffP99', 'handoffMax', 'hold', 'failures'],
    ranged: ['grants', 'owners'],
    contention: true,
  },
  {
    id: 'multi',
    title: '4. Multi-resource locks',
    about: '64 concurrent loops, 5 fresh resources per lock',
    workload: { loops: 64, resources: 5 },
    headline: 'rate',
    columns: ['rate', 'cpu', 'errors'],
    ranged: ['rate'],
    multiResource: true,
  },
  {
    id: 'node-down',
    title: '5. One node of five killed',
    about:
      'one loop as in 1; after the warm-up one redis-server is killed (SIGKILL) and the window starts',
    workload: { loops: 1, resources: 1, handshake: true },
    headline: 'p50',
    columns: ['p50', 'p99', 'cycles', 'errors', 'stalled'],
    ranged: ['p50', 'p99'],
    killsNode: true,
  },
]

/** The worker job of `scenario` in a run of the given timing. */
function job(scenario, timing, index, prefix) {
  const t = TIMING[timing]
  const w = scenario.workload
  return {
    index,
    scenario: scenario.id,
    loops: w.loops,
    resources: w.resources,
    shared: !!w.shared,
    hold: w.hold || 0,
    retry: w.retry || 'default',
    handshake: !!w.handshake,
    ttl: 10000,
    warmupMs: t.warmupMs,
    durationMs: scenario.contention ? t.contentionMs : t.durationMs,
    graceMs: scenario.killsNode ? t.nodeDownGraceMs : t.graceMs,
    prefix,
  }
}

module.exports = { SCENARIOS, METRICS, TIMING, job }
