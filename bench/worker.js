'use strict'
// One contender in its own process, so that the CPU time and peak RSS it reports are its own.
//
//   node bench/worker.js <contender id> <urls> <jobs as JSON>
//
// Runs each job in turn: `loops` concurrent loops of acquire → hold → release → again, on
// fresh resources per cycle or (`shared`) all on the same ones; a warm-up, then a measured
// window. Prints one JSON line per job: {"event":"result","job":…, counts and percentiles};
// with `handshake`, prints {"event":"warm","job":…} after the warm-up and starts the window
// when a line arrives on stdin (the runner kills a node in between). Just before the window
// starts and just after it ends it prints {"event":"window","job":…,"phase":"start"|"end"},
// without waiting: the runner reads the redis-servers' CPU time then. bench/floor speaks the
// same protocol, so the runner reads both alike.

const fs = require('node:fs')

const { contenders } = require('./contenders')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))
const now = () => Number(process.hrtime.bigint() / 1000n) // µs

/** The `p`-th percentile (nearest rank) of sorted values. */
function percentile(sorted, p) {
  if (sorted.length === 0) return 0
  const rank = Math.ceil((p / 100) * sorted.length)
  return sorted[Math.min(Math.max(rank, 1), sorted.length) - 1]
}

function cpuMicros() {
  const { user, system } = process.cpuUsage()
  return user + system
}

/**
 * Context switches so far of every thread of this process, by thread id: voluntary and
 * involuntary, from /proc/self/task/<tid>/status (null where there is no /proc).
 */
function contextSwitches() {
  let tids
  try {
    tids = fs.readdirSync('/proc/self/task')
  } catch {
    return null
  }
  const byThread = new Map()
  for (const tid of tids) {
    let status
    try {
      status = fs.readFileSync(`/proc/self/task/${tid}/status`, 'utf8')
    } catch {
      continue // the thread has just ended
    }
    const voluntary = /^voluntary_ctxt_switches:\s*(\d+)/m.exec(status)
    const involuntary = /^nonvoluntary_ctxt_switches:\s*(\d+)/m.exec(status)
    if (voluntary && involuntary) {
      byThread.set(tid, { voluntary: Number(voluntary[1]), involuntary: Number(involuntary[1]) })
    }
  }
  return byThread
}

/**
 * The context switches between two readings, summed over threads: a thread that started in
 * between counts from zero, one that ended in between is lost (the worker's threads live as
 * long as it does).
 */
function switchesBetween(start, end) {
  if (!start || !end) return { ctx_switches: null, ctx_involuntary: null, threads: null }
  let voluntary = 0
  let involuntary = 0
  for (const [tid, e] of end) {
    const s = start.get(tid) || { voluntary: 0, involuntary: 0 }
    voluntary += e.voluntary - s.voluntary
    involuntary += e.involuntary - s.involuntary
  }
  return { ctx_switches: voluntary + involuntary, ctx_involuntary: involuntary, threads: end.size }
}

let stdinLines = null
/** The next line on stdin. */
function nextLine() {
  if (!stdinLines) {
    stdinLines = []
    let buffered = ''
    process.stdin.setEncoding('utf8')
    process.stdin.on('data', (chunk) => {
      buffered += chunk
      let end
      while ((end = buffered.indexOf('\n')) >= 0) {
        const waiter = stdinLines.shift()
        buffered = buffered.slice(end + 1)
        if (waiter) waiter()
      }
    })
  }
  return new Promise((resolve) => stdinLines.push(resolve))
}

async function runJob(contender, urls, job) {
  const lib = contender.open(urls, job.retry === 'tuned')
  const state = {
    measuring: false,
    stopping: false,
    cycles: 0,
    acquireFailures: 0,
    releaseFailures: 0,
    latencies: [],
    grants: 0,
    ownerChanges: 0,
    lastOwner: -1,
    releaseCalled: 0,
    handoffs: [],
    // How long the measured grants were held in fact: a 1 ms timer sleeps 1 ms or more.
    holdTotal: 0,
    holds: 0,
  }
  const inflight = new Map() // loop → start of its current cycle, µs

  async function loop(id) {
    const shared = Array.from({ length: job.resources }, (_, r) => `${job.prefix}:shared:${r}`)
    for (let cycle = 1; !state.stopping; cycle++) {
      const resources = job.shared
        ? shared
        : Array.from({ length: job.resources }, (_, r) => `${job.prefix}:${id}:${cycle}:${r}`)
      const startedInside = state.measuring
      const start = now()
      inflight.set(id, start)
      let handle
      try {
        handle = await lib.acquire(resources, job.ttl)
      } catch {
        if (state.measuring) state.acquireFailures += 1
        continue
      }
      if (state.measuring) {
        state.grants += 1
        if (state.lastOwner >= 0 && state.lastOwner !== id) state.ownerChanges += 1
        if (state.releaseCalled) state.handoffs.push(now() - state.releaseCalled)
      }
      state.lastOwner = id
      const granted = now()
      const grantCounted = state.measuring
      if (job.hold) await sleep(job.hold)
      state.releaseCalled = now()
      if (grantCounted) {
        state.holdTotal += state.releaseCalled - granted
        state.holds += 1
      }
      let released = true
      try {
        await lib.release(handle)
      } catch {
        released = false
      }
      if (state.measuring) {
        if (!released) state.releaseFailures += 1
        state.cycles += 1
        if (startedInside) state.latencies.push(now() - start)
      }
    }
    inflight.delete(id)
  }

  const loops = Array.from({ length: job.loops }, (_, id) => loop(id))
  await sleep(job.warmupMs)
  if (job.handshake) {
    emit({ event: 'warm', job: job.index })
    await nextLine()
  }
  emit({ event: 'window', job: job.index, phase: 'start' })
  const switchesStart = contextSwitches()
  const cpuStart = cpuMicros()
  const start = now()
  state.measuring = true
  await sleep(job.durationMs)
  state.measuring = false
  const cpu = cpuMicros() - cpuStart
  const elapsed = now() - start
  const switches = switchesBetween(switchesStart, contextSwitches())
  emit({ event: 'window', job: job.index, phase: 'end' })
  const maxRssKb = process.resourceUsage().maxRSS
  const cycles = state.cycles
  state.stopping = true

  // Cycles still running after the grace period are stalled: a node that never answers.
  await Promise.race([Promise.all(loops), sleep(job.graceMs)])
  const stalledSince = [...inflight.values()]
  const latencies = state.latencies.concat(stalledSince.map((since) => now() - since))
  latencies.sort((a, b) => a - b)
  const handoffs = state.handoffs.sort((a, b) => a - b)
  emit({
    event: 'result',
    job: job.index,
    cycles,
    elapsed_ms: elapsed / 1000,
    cpu_ms: cpu / 1000,
    max_rss_kb: maxRssKb,
    ...switches,
    acquire_failures: state.acquireFailures,
    release_failures: state.releaseFailures,
    stalled: stalledSince.length,
    lat_p50_us: percentile(latencies, 50),
    lat_p99_us: percentile(latencies, 99),
    lat_max_us: latencies.length ? latencies[latencies.length - 1] : 0,
    grants: state.grants,
    owner_changes: state.ownerChanges,
    handoff_p50_us: percentile(handoffs, 50),
    handoff_p99_us: percentile(handoffs, 99),
    handoff_max_us: handoffs.length ? handoffs[handoffs.length - 1] : 0,
    hold_mean_us: state.holds ? state.holdTotal / state.holds : null,
  })
  // Stalled loops may wait on a dead node for long: do not wait for a clean close either.
  await Promise.race([Promise.resolve(lib.close()).catch(() => {}), sleep(200)])
}

function emit(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`)
}

async function main() {
  const [id, urls, jobs] = process.argv.slice(2)
  const contender = contenders(Object.keys(require('./contenders').REDLOCK_RS_MODES)).find(
    (c) => c.id === id,
  )
  if (!contender || contender.kind !== 'node') throw new Error(`no JavaScript contender "${id}"`)
  for (const job of JSON.parse(jobs)) {
    await runJob(contender, urls.split(','), job)
  }
  process.exit(0)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
