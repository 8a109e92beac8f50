'use strict'

// OpenTelemetry with the real SDKs: an in-memory metric reader and span exporter registered
// as the global providers, then a scripted sequence against 3 password-protected servers (a
// grant, contention, a hand-off, a refused extension, a lost lock, a killed node) and every
// documented metric and span is looked for, with its unit and attributes, and no password in
// any of them. Then: telemetry: false records nothing, and without the API installed
// (hidden from require in a child process) nothing of telemetry is loaded.

const path = require('node:path')
const { metrics, trace, context } = require('@opentelemetry/api')
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics')
const { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base')
const { AsyncLocalStorageContextManager } = require('@opentelemetry/context-async-hooks')
const Redlock = require('..')
const { startServers, stopServers } = require('../scripts/redis-servers.js')
const { command, until } = require('./support/servers')
const { uniqueKey, runNode } = require('./support/shared')

const PASSWORD = 'otel-secret-pw'

class TestReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

let servers = []
let urls = []
let direct = []
const reader = new TestReader()
const spans = new InMemorySpanExporter()

beforeAll(async () => {
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable())
  metrics.setGlobalMeterProvider(new MeterProvider({ readers: [reader] }))
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(spans)] }))
  servers = await startServers(3)
  await Promise.all(servers.map((s) => command(s.url, 'CONFIG', 'SET', 'requirepass', PASSWORD)))
  urls = servers.map((s) => `redis://:${PASSWORD}@127.0.0.1:${s.port}`)
  direct = urls
}, 30000)

afterAll(async () => {
  await stopServers(servers)
  metrics.disable()
  trace.disable()
  context.disable()
})

/** The metrics collected so far, by name: { unit, points: [{ attributes, value }] }. */
async function collected() {
  const { resourceMetrics } = await reader.collect()
  const byName = {}
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) {
      byName[metric.descriptor.name] = { unit: metric.descriptor.unit, points: metric.dataPoints, scope: scope.scope.name }
    }
  }
  return byName
}

const total = (metric, match = () => true) =>
  (metric ? metric.points : [])
    .filter((p) => match(p.attributes))
    .reduce((sum, p) => sum + (typeof p.value === 'number' ? p.value : p.value.count), 0)

test('every metric and span appears with its documented name, unit and attributes, and no password', async () => {
  // Spans of every operation, also outside a trace.
  const rl = new Redlock(urls, { retryCount: 0, requestTimeout: 300, telemetry: { requireParentSpan: false } })
  const other = new Redlock(urls, { retryCount: 40, retryDelay: 500, retryJitter: 0 })
  const key = uniqueKey('otel')

  // A grant, and contention: refused at once, and a waiter handed the lock on release.
  const lock = await rl.acquire([key], 5000)
  await expect(rl.acquire([key], 5000)).rejects.toMatchObject({ code: 'ERR_REDLOCK_RESOURCE_LOCKED' })
  const waiter = other.acquire([key], 5000)
  await new Promise((r) => setTimeout(r, 200))
  await lock.extend(5000)
  await lock.release()
  const handed = await waiter
  await handed.release()

  // A refused extension: the keys are gone.
  const gone = await rl.acquire([uniqueKey('otel-gone')], 5000)
  await Promise.all(direct.map((url) => command(url, 'DEL', gone.resources[0])))
  await expect(gone.extend(5000)).rejects.toMatchObject({ code: 'ERR_REDLOCK_LOCK_EXPIRED' })

  // A lock lost under `using`: its keys deleted, the watchdog's extension finds it lost; the
  // routine's own span is a child of the using span.
  const tracer = trace.getTracer('test')
  const lostKey = uniqueKey('otel-lost')
  await rl
    .using([lostKey], 1000, async (signal) => {
      tracer.startSpan('inside the routine').end()
      await Promise.all(direct.map((url) => command(url, 'DEL', lostKey)))
      await until(() => signal.aborted, { timeout: 5000 })
    })
    .catch(() => {})

  // A killed node: its requests fail.
  await servers[2].stop()
  const survived = await rl.acquire([uniqueKey('otel-killed')], 5000)
  await survived.release()
  await Promise.all([rl.quit(), other.quit()])

  const m = await collected()
  expect(m['redlock.acquire.duration'].unit).toBe('s')
  expect(m['redlock.acquire.duration'].scope).toBe('redlock-rs')
  expect(total(m['redlock.acquire.duration'], (a) => a['redlock.outcome'] === 'ok')).toBeGreaterThanOrEqual(4)
  expect(total(m['redlock.acquire.duration'], (a) => a['redlock.outcome'] === 'ERR_REDLOCK_RESOURCE_LOCKED')).toBe(1)
  expect(m['redlock.lock.hold.duration'].unit).toBe('s')
  expect(total(m['redlock.lock.hold.duration'])).toBeGreaterThanOrEqual(3)
  expect(m['redlock.node.request.duration'].unit).toBe('s')
  expect(new Set(m['redlock.node.request.duration'].points.map((p) => p.attributes['redlock.node'])).size).toBe(3)
  expect(total(m['redlock.grants'])).toBeGreaterThanOrEqual(4)
  expect(total(m['redlock.failures'], (a) => a['redlock.operation'] === 'acquire' && a['error.type'] === 'ERR_REDLOCK_RESOURCE_LOCKED')).toBe(1)
  expect(total(m['redlock.failures'], (a) => a['redlock.operation'] === 'extend' && a['error.type'] === 'ERR_REDLOCK_LOCK_EXPIRED')).toBe(1)
  expect(total(m['redlock.extensions'], (a) => a['redlock.outcome'] === 'extended')).toBeGreaterThanOrEqual(1)
  expect(total(m['redlock.extensions'], (a) => a['redlock.outcome'] === 'refused')).toBe(1)
  expect(total(m['redlock.locks.lost'], (a) => a['redlock.reason'] === 'expired')).toBe(1)
  expect(total(m['redlock.locks.lost'], (a) => a['redlock.reason'] === 'watchdog')).toBe(1)
  const killed = `127.0.0.1:${servers[2].port}/0`
  expect(total(m['redlock.node.errors'], (a) => a['redlock.node'] === killed && /^ERR_REDLOCK_NODE_/.test(a['error.type']))).toBeGreaterThanOrEqual(1)
  expect(total(m['redlock.handoffs'])).toBeGreaterThanOrEqual(1)

  const finished = spans.getFinishedSpans()
  const named = (name) => finished.filter((s) => s.name === name)
  const acquired = named('redlock.acquire').find((s) => s.attributes['redlock.outcome'] === 'ok')
  expect(acquired.attributes).toMatchObject({ 'redlock.resource': key, 'redlock.attempts': 1 })
  expect(acquired.attributes['redlock.quorum.margin']).toBeGreaterThanOrEqual(0)
  const refused = named('redlock.acquire').find((s) => s.attributes['redlock.outcome'] === 'ERR_REDLOCK_RESOURCE_LOCKED')
  expect(refused.status.code).toBe(2) // ERROR
  expect(refused.events.map((e) => e.name)).toContain('exception')
  expect(named('redlock.extend').map((s) => s.attributes['redlock.outcome'])).toEqual(
    expect.arrayContaining(['ok', 'ERR_REDLOCK_LOCK_EXPIRED']),
  )
  expect(named('redlock.release').length).toBeGreaterThanOrEqual(3)
  const using = named('redlock.using')[0]
  expect(using.attributes['redlock.resource']).toBe(lostKey)
  const inside = named('inside the routine')[0]
  expect(inside.parentSpanContext.spanId).toBe(using.spanContext().spanId)
  // The using span covers the routine: it ends after the routine's span.
  expect(using.endTime[0] * 1e9 + using.endTime[1]).toBeGreaterThanOrEqual(inside.endTime[0] * 1e9 + inside.endTime[1])

  const everything = JSON.stringify([m, finished.map((s) => ({ attributes: s.attributes, events: s.events }))])
  expect(everything).not.toContain(PASSWORD)
}, 60000)

test("by default an operation makes a span only inside a trace, as a child of the caller's span", async () => {
  spans.reset()
  const rl = new Redlock(urls.slice(0, 2))
  await (await rl.acquire([uniqueKey('otel-bare')], 1000)).release()
  expect(spans.getFinishedSpans()).toEqual([])
  const tracer = trace.getTracer('test')
  await tracer.startActiveSpan('request', async (parent) => {
    await (await rl.acquire([uniqueKey('otel-traced')], 1000)).release()
    parent.end()
  })
  await rl.quit()
  const finished = spans.getFinishedSpans()
  const request = finished.find((s) => s.name === 'request')
  const children = finished.filter((s) => s.name.startsWith('redlock.'))
  expect(children.map((s) => s.name)).toEqual(['redlock.acquire', 'redlock.release'])
  for (const child of children) expect(child.parentSpanContext.spanId).toBe(request.spanContext().spanId)
})

test('resourceNames: false puts a hash of the resource on spans instead of its name', async () => {
  spans.reset()
  const rl = new Redlock(urls.slice(0, 2), { telemetry: { resourceNames: false, requireParentSpan: false } })
  const key = uniqueKey('otel-secret-resource')
  await (await rl.acquire([key], 1000)).release()
  await rl.quit()
  const finished = spans.getFinishedSpans()
  expect(finished.length).toBeGreaterThanOrEqual(2)
  for (const span of finished) {
    expect(span.attributes['redlock.resource']).toBeUndefined()
    expect(span.attributes['redlock.resource.hash']).toMatch(/^[0-9a-f]{16}$/)
  }
  expect(JSON.stringify(finished.map((s) => s.attributes))).not.toContain(key)
})

test('telemetry: false records nothing, with the API and SDK installed', async () => {
  spans.reset()
  const before = total((await collected())['redlock.grants'])
  const rl = new Redlock(urls.slice(0, 2), { telemetry: false })
  await (await rl.acquire([uniqueKey('otel-off')], 1000)).release()
  await rl.quit()
  expect(total((await collected())['redlock.grants'])).toBe(before)
  expect(spans.getFinishedSpans()).toEqual([])
})

test('a bad telemetry setting is a TypeError naming it', () => {
  expect(() => new Redlock(urls, { telemetry: 'yes' })).toThrow(TypeError)
  expect(() => new Redlock(urls, { telemetry: { names: false } })).toThrow(/settings\.telemetry/)
  expect(() => new Redlock(urls, { telemetry: { requireParentSpan: 1 } })).toThrow(TypeError)
})

test('without @opentelemetry/api installed, locks work and no telemetry code is loaded', async () => {
  // A child process in which the API cannot be resolved.
  const program = `
    const Module = require('node:module')
    const resolve = Module._resolveFilename
    Module._resolveFilename = function (request, ...rest) {
      if (request.startsWith('@opentelemetry/')) {
        const error = new Error("Cannot find module '" + request + "'")
        error.code = 'MODULE_NOT_FOUND'
        throw error
      }
      return resolve.call(this, request, ...rest)
    }
    const Redlock = require(${JSON.stringify(path.resolve(__dirname, '..'))})
    ;(async () => {
      const rl = new Redlock(${JSON.stringify(urls.slice(0, 2))})
      await (await rl.acquire(['otel-absent'], 1000)).release()
      await rl.quit()
      const loaded = Object.keys(require.cache).filter((f) => /telemetry|opentelemetry/.test(f))
      console.log(JSON.stringify({ loaded, acquires: rl.stats().operations.acquire.count }))
    })()
  `
  const result = await runNode(['-e', program], { timeout: 20000 })
  expect(result.stderr).toBe('')
  expect(JSON.parse(result.stdout)).toEqual({ loaded: [], acquires: 1 })
})
