'use strict'

// OpenTelemetry for redlock-rs, with no setup beyond the user's own: the global meter and
// tracer of `@opentelemetry/api` (an optional peer dependency). index.js loads this file only
// when the API resolves and `telemetry` is not false; without it nothing here runs.
//
// Operations are timed and traced here, on the JavaScript side, from call to outcome; each
// node request's latency and failure is the engine's, drained in batches (one boundary
// crossing per batch, not per request) every second and on quit: every failure, counted,
// and the latencies of up to 1000 requests per node and second (under load, a sample). The names, units and attributes are documented in the README.

const crypto = require('node:crypto')
const { version } = require('../package.json')

const NAME = 'redlock-rs'
/** The attributes of a granted acquisition, and of an extension, made once. */
const OK = Object.freeze({ 'redlock.outcome': 'ok' })
const EXTENDED = Object.freeze({ 'redlock.outcome': 'extended' })
const DRAIN_MS = 1000

/** The API, or null when it is not installed. */
function loadApi() {
  try {
    return require('@opentelemetry/api')
  } catch {
    return null
  }
}

/** How a resource is named on a span: as given, or a hash of it (`resourceNames: false`). */
function resourceAttribute(resources, names) {
  const list = [].concat(resources)
  if (names) return { 'redlock.resource': list.join(',') }
  const hash = crypto.createHash('sha256').update(list.join('\u0000')).digest('hex').slice(0, 16)
  return { 'redlock.resource.hash': hash }
}

/** The attempts and quorum margin of an outcome's attempts, for a span. */
function attemptAttributes(attempts) {
  if (!attempts || attempts.length === 0) return {}
  const last = attempts[attempts.length - 1]
  return {
    'redlock.attempts': attempts.length,
    'redlock.quorum.margin': last.votesFor.size - last.quorumSize,
  }
}

class Telemetry {
  /**
   * @param api the `@opentelemetry/api` module
   * @param options `{ resourceNames }`
   * @param native the binding's Redlock (its request samples and stats)
   */
  constructor(api, options, native) {
    this.api = api
    this.native = native
    /** Each node's attributes, made once. */
    this.nodeAttributes = native.nodes.map((node) => Object.freeze({ 'redlock.node': node }))
    this.resourceNames = options.resourceNames !== false
    this.requireParentSpan = options.requireParentSpan !== false
    this.tracer = api.trace.getTracer(NAME, version)
    const meter = api.metrics.getMeter(NAME, version)
    this.acquireDuration = meter.createHistogram('redlock.acquire.duration', {
      unit: 's',
      description: 'Time from an acquire call to its grant or failure',
    })
    this.holdDuration = meter.createHistogram('redlock.lock.hold.duration', {
      unit: 's',
      description: 'Time a lock was held: from its grant to its release or loss',
    })
    this.requestDuration = meter.createHistogram('redlock.node.request.duration', {
      unit: 's',
      description: 'Time from a request to one node to its answer, failure or timeout',
    })
    this.grants = meter.createCounter('redlock.grants', { unit: '{lock}', description: 'Locks granted' })
    this.failures = meter.createCounter('redlock.failures', {
      unit: '{operation}',
      description: 'Operations that failed, by operation and error code',
    })
    this.extensions = meter.createCounter('redlock.extensions', {
      unit: '{extension}',
      description: 'Extensions, by outcome (extended or refused)',
    })
    this.lost = meter.createCounter('redlock.locks.lost', {
      unit: '{lock}',
      description: 'Locks lost before their release: a watchdog found them lost, or an extension found them expired',
    })
    this.nodeErrors = meter.createCounter('redlock.node.errors', {
      unit: '{error}',
      description: 'Failed node requests, by node and error code',
    })
    this.handoffs = meter.createCounter('redlock.handoffs', {
      unit: '{lock}',
      description: 'Acquisitions granted after a release ended their wait (wake-on-release)',
    })
    this.handoffsSeen = 0
    /** Grant instants, for the hold time. */
    this.granted = new WeakMap()
    native.sampleRequests(true)
    // Held weakly: a Redlock dropped without quit() is not kept alive by its timer.
    const self = new WeakRef(this)
    const timer = setInterval(() => {
      const telemetry = self.deref()
      if (telemetry) telemetry.drain()
      else clearInterval(timer)
    }, DRAIN_MS).unref()
    this.timer = timer
  }

  /** Records the node requests sampled by the engine since the last drain, and the hand-offs. */
  drain() {
    const batch = this.native.drainRequests()
    if (batch.handoffs > this.handoffsSeen) {
      this.handoffs.add(batch.handoffs - this.handoffsSeen)
      this.handoffsSeen = batch.handoffs
    }
    const { nodeAttributes } = this
    for (let i = 0; i < batch.node.length; i++) {
      const error = batch.error[i]
      const attributes =
        error < 0 ? nodeAttributes[batch.node[i]] : { ...nodeAttributes[batch.node[i]], 'error.type': batch.codes[error] }
      this.requestDuration.record(batch.ms[i] / 1000, attributes)
    }
    for (let j = 0; j < batch.failedNode.length; j++) {
      const attributes = { ...nodeAttributes[batch.failedNode[j]], 'error.type': batch.codes[batch.failedCode[j]] }
      this.nodeErrors.add(batch.failedCount[j], attributes)
    }
  }

  /** Stops sampling; records what is left. */
  close() {
    clearInterval(this.timer)
    this.drain()
    this.native.sampleRequests(false)
  }

  /**
   * Runs `operation()` (a promise) in a span `redlock.<name>` over `resources` (only inside
   * a trace, unless `requireParentSpan: false`), and ends the span with its outcome: `attributes(result)` adds to it; an error is recorded on it. No
   * code of the caller's runs inside, so the span is not made the active one.
   */
  span(name, resources, operation, attributes) {
    const { api } = this
    // Outside a trace, an operation starts none of its own (unless requireParentSpan: false).
    if (this.requireParentSpan && api.trace.getSpan(api.context.active()) === undefined) return operation()
    const span = this.tracer.startSpan(`redlock.${name}`, { kind: api.SpanKind.CLIENT })
    const recording = span.isRecording()
    if (recording) span.setAttributes(resourceAttribute(resources, this.resourceNames))
    return operation().then(
      (result) => {
        if (recording) {
          span.setAttributes(attributes(result))
          span.setAttribute('redlock.outcome', 'ok')
        }
        span.end()
        return result
      },
      (error) => {
        if (recording) {
          span.recordException(error)
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message })
          span.setAttributes(attemptAttributes(error.attempts))
          span.setAttribute('redlock.outcome', error.code || 'error')
        }
        span.end()
        throw error
      },
    )
  }

  /** Acquires in a span, with the wait and the grant or failure counted. */
  acquire(resources, operation) {
    const started = performance.now()
    return this.span('acquire', resources, operation, (lock) => attemptAttributes(lock.attempts)).then(
      (lock) => {
        this.acquireDuration.record((performance.now() - started) / 1000, OK)
        this.grants.add(1)
        this.granted.set(lock, performance.now())
        return lock
      },
      (error) => {
        const code = error.code || 'error'
        this.acquireDuration.record((performance.now() - started) / 1000, { 'redlock.outcome': code })
        this.failures.add(1, { 'redlock.operation': 'acquire', 'error.type': code })
        throw error
      },
    )
  }

  /** Extends in a span, counting the extension or its refusal. */
  extend(lock, operation) {
    return this.span('extend', lock.resources, operation, (extended) => attemptAttributes(extended.attempts)).then(
      (extended) => {
        this.extensions.add(1, EXTENDED)
        return extended
      },
      (error) => {
        const code = error.code || 'error'
        this.extensions.add(1, { 'redlock.outcome': 'refused', 'error.type': code })
        this.failures.add(1, { 'redlock.operation': 'extend', 'error.type': code })
        if (code === 'ERR_REDLOCK_LOCK_EXPIRED') this.lose(lock, 'expired')
        throw error
      },
    )
  }

  /** Releases in a span; the hold time ends. */
  release(lock, operation) {
    return this.span('release', lock.resources, operation, (released) => ({
      ...attemptAttributes(released.attempts),
      'redlock.nodes_held': released.nodesHeld,
    })).then(
      (released) => {
        this.held(lock)
        return released
      },
      (error) => {
        this.failures.add(1, { 'redlock.operation': 'release', 'error.type': error.code || 'error' })
        throw error
      },
    )
  }

  /** `using` in an active span over the routine, so the routine's own spans nest in it. */
  using(resources, run) {
    const { api } = this
    return this.tracer.startActiveSpan('redlock.using', { kind: api.SpanKind.INTERNAL }, (span) => {
      if (span.isRecording()) span.setAttributes(resourceAttribute(resources, this.resourceNames))
      return run().then(
        (result) => {
          span.setAttribute('redlock.outcome', 'ok')
          span.end()
          return result
        },
        (error) => {
          span.recordException(error)
          span.setStatus({ code: api.SpanStatusCode.ERROR, message: error && error.message })
          span.setAttribute('redlock.outcome', (error && error.code) || 'error')
          span.end()
          throw error
        },
      )
    })
  }

  /** A lock was lost (`reason`: `watchdog` or `expired`); its hold time ends. */
  lose(lock, reason) {
    this.lost.add(1, { 'redlock.reason': reason })
    this.held(lock)
  }

  held(lock) {
    const since = this.granted.get(lock)
    if (since === undefined) return
    this.granted.delete(lock)
    this.holdDuration.record((performance.now() - since) / 1000)
  }
}

/**
 * The telemetry of a Redlock with `option` (its `telemetry` setting: true, false, or
 * `{ resourceNames }`), or null: off, or no API installed.
 */
function telemetryFor(option, native) {
  if (option === false) return null
  const api = loadApi()
  if (!api) return null
  return new Telemetry(api, typeof option === 'object' && option !== null ? option : {}, native)
}

module.exports = { telemetryFor }
