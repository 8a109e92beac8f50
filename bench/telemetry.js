'use strict'

// The cost of telemetry: S1 (1 loop, acquire + release of a fresh resource, p50 and client
// CPU per cycle) and S2 (64 loops, cycles/s and client CPU per cycle) with telemetry off
// (`telemetry: false`), with `@opentelemetry/api` but no SDK (its no-op providers), with
// the SDK registered (a MeterProvider with an in-memory reader, a tracer provider with a
// batch span processor and an in-memory exporter) and the defaults (the loops run outside
// any trace: metrics, no spans), and with the SDK and a span for every operation
// (`requireParentSpan: false`). Each run is a process of its own; the modes are interleaved and
// repeated, and the table shows medians and each mode's ratio to "off" in the same run.
//
//   node bench/telemetry.js [--reps 3] [--seconds 3]

const { fork } = require('node:child_process')
const path = require('node:path')
const { readOptions } = require('./options')
const { startServers, stopServers } = require('../scripts/redis-servers.js')

const MODES = ['off', 'api', 'sdk', 'sdk+spans']

async function child({ mode, urls, loops, seconds }) {
  const api = require('@opentelemetry/api')
  if (mode.startsWith('sdk')) {
    const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
    const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } = require('@opentelemetry/sdk-trace-base')
    class Reader extends MetricReader {
      async onForceFlush() {}
      async onShutdown() {}
    }
    const reader = new Reader()
    api.metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
    const spans = new InMemorySpanExporter()
    // Batched, as exporters are deployed.
    api.trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spans)] }))
    // Collected as an exporter would, and the spans let go.
    setInterval(() => {
      reader.collect().catch(() => {})
      spans.reset()
    }, 1000).unref()
  }
  const Redlock = require('..')
  const telemetry = mode === 'off' ? false : mode === 'sdk+spans' ? { requireParentSpan: false } : true
  const redlock = new Redlock(urls, { retryCount: 0, telemetry })
  for (let i = 0; i < 500; i++) await (await redlock.acquire([`tm:warm:${i}`], 5000)).release()
  const latencies = []
  let cycles = 0
  const stopAt = Date.now() + seconds * 1000
  const cpu = process.cpuUsage()
  const started = process.hrtime.bigint()
  await Promise.all(
    Array.from({ length: loops }, async (_, l) => {
      for (let n = 0; Date.now() < stopAt; n++) {
        const t = process.hrtime.bigint()
        await (await redlock.acquire([`tm:${mode}:${l}:${n}`], 5000)).release()
        if (loops === 1) latencies.push(Number(process.hrtime.bigint() - t) / 1000)
        cycles++
      }
    }),
  )
  const wall = Number(process.hrtime.bigint() - started) / 1e9
  const used = process.cpuUsage(cpu)
  await redlock.quit()
  latencies.sort((a, b) => a - b)
  return {
    cyclesPerS: cycles / wall,
    cpuUsPerCycle: (used.user + used.system) / cycles,
    p50Us: latencies.length ? latencies[Math.floor(latencies.length / 2)] : null,
  }
}

function run(job) {
  return new Promise((resolve, reject) => {
    const proc = fork(__filename, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    proc.once('message', resolve)
    proc.once('exit', (code) => code && reject(new Error(`${job.mode} exited with ${code}`)))
    proc.send(job)
  })
}

const median = (xs) => xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main() {
  const { reps, seconds } = readOptions(
    { reps: { type: 'integer', default: 3 }, seconds: { type: 'number', default: 3 } },
    'node bench/telemetry.js [--reps N] [--seconds S]',
  )
  const servers = await startServers(5)
  const urls = servers.map((s) => s.url)
  const results = {}
  try {
    for (let r = 0; r < reps; r++) {
      for (const loops of [1, 64]) {
        // Rotated, so that no mode always runs first.
        const order = MODES.map((_, i) => MODES[(i + r) % MODES.length])
        for (const mode of order) {
          const result = await run({ mode, urls, loops, seconds })
          ;(results[`${loops}:${mode}`] ||= []).push(result)
        }
      }
    }
  } finally {
    await stopServers(servers)
  }
  const cell = (loops, mode, field) => median(results[`${loops}:${mode}`].map((x) => x[field]))
  const ratio = (loops, mode, field) => (cell(loops, mode, field) / cell(loops, 'off', field)).toFixed(3)
  console.log(`telemetry overhead, medians of ${reps} interleaved runs of ${seconds} s, 5 servers\n`)
  console.log('| telemetry | S1 p50 (µs) | ÷ off | S1 CPU per cycle (µs) | ÷ off | S2 cycles/s | ÷ off | S2 CPU per cycle (µs) | ÷ off |')
  console.log('|---|--:|--:|--:|--:|--:|--:|--:|--:|')
  for (const mode of MODES) {
    console.log(
      `| ${mode} | ${cell(1, mode, 'p50Us').toFixed(0)} | ${ratio(1, mode, 'p50Us')} | ` +
        `${cell(1, mode, 'cpuUsPerCycle').toFixed(0)} | ${ratio(1, mode, 'cpuUsPerCycle')} | ` +
        `${cell(64, mode, 'cyclesPerS').toFixed(0)} | ${ratio(64, mode, 'cyclesPerS')} | ` +
        `${cell(64, mode, 'cpuUsPerCycle').toFixed(1)} | ${ratio(64, mode, 'cpuUsPerCycle')} |`,
    )
  }
  const overhead = Number(ratio(1, 'sdk', 'p50Us')) - 1
  console.log(`\nS1 p50 with the SDK: ${(overhead * 100).toFixed(1)} % over off (target ≤ 5 %) ${overhead <= 0.05 ? '✓' : '✗'}`)
}

if (process.argv.includes('--child')) {
  process.once('message', (job) =>
    child(job).then(
      (result) => process.send(result, () => process.exit(0)),
      (error) => {
        console.error(error)
        process.exit(1)
      },
    ),
  )
} else {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
