'use strict'

// OpenTelemetry for redlock-rs, with no setup beyond the user's own: the global meter and
// tracer of `@opentelemetry/api` (an optional peer dependency). index.js loads this file only
// when the API resolves and `telemetry` is not false; without it nothing here runs.
//
// Operations are timed and traced here, on the JavaScript side, from call to outcome; each
// node request's latency and failure is the engine's, sampled there and drained in batches
// (one boundary crossing per batch, not per request): every second, and on quit. The names, units and attributes are documented in the README.

const crypto = require('node:crypto')
const { version } = require('../package.json')

const NAME = 'redlock-rs'
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
    this.labels = native.nodes
    this.resourceNames = options.resourceNames !== false
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
    this.timer = setInterval(() => this.drain(), DRAIN_MS).unref()
  }

  /** Records the node requests sampled by the engine since the last drain, and the hand-offs. */
  drain() {
    const batch = this.native.drainRequests()
    if (batch.handoffs > this.handoffsSeen) {
      this.handoffs.add(batch.handoffs - this.handoffsSeen)
      this.handoffsSeen = batch.handoffs
    }
    for (let i = 0; i < batch.node.length; i++) {
      const node = { 'redlock.node': this.labels[batch.node[i]] }
      const error = batch.error[i]
      if (error >= 0) {
        const failed = { ...node, 'error.type': batch.codes[error] }
        this.requestDuration.record(batch.ms[i] / 1000, failed)
        this.nodeErrors.add(1, failed)
      } else {
        this.requestDuration.record(batch.ms[i] / 1000, node)
      }
    }
  }

  /** Stops sampling; records what is left. */
  close() {
    clearInterval(this.timer)
    this.drain()
    this.native.sampleRequests(false)
  }

  /**
   * Runs `operation()` (a promise) in a span `redlock.<name>` over `resources`, and ends the
   * span with its outcome: `attributes(result)` adds to it; an error is recorded on it.
   */
  span(name, resources, operation, attributes = () => ({})) {
    const { api } = this
    const span = this.tracer.startSpan(`redlock.${name}`, { kind: api.SpanKind.CLIENT })
    if (span.isRecording()) span.setAttributes(resourceAttribute(resources, this.resourceNames))
    const end = (outcome, extra) => {
      if (span.isRecording()) span.setAttributes({ 'redlock.outcome': outcome, ...extra })
      span.end()
    }
    return api.context.with(api.trace.setSpan(api.context.active(), span), operation).then(
      (result) => {
        end('ok', attributes(result))
        return result
      },
      (error) => {
        span.recordException(error)
        span.setStatus({ code: api.SpanStatusCode.ERROR, message: error.message })
        end(error.code || 'error', attemptAttributes(error.attempts))
        throw error
      },
    )
  }

  /** Acquires in a span, with the wait and the grant or failure counted. */
  acquire(resources, operation) {
    const started = performance.now()
    return this.span('acquire', resources, operation, (lock) => attemptAttributes(lock.attempts)).then(
      (lock) => {
        this.acquireDuration.record((performance.now() - started) / 1000, { 'redlock.outcome': 'ok' })
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
        this.extensions.add(1, { 'redlock.outcome': 'extended' })
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
