'use strict'
// The front door of redlock-rs. The native binding (binding.js) does the work; this file adds
// what is JavaScript by nature: the error classes (made here, so that `instanceof` works in
// the caller's realm, Jest's sandbox included), the EventEmitter, callbacks for the v4 API,
// `using`, `Symbol.asyncDispose`, and the aliases that let node-redlock v4 and v5 code and
// the original design's `acquireLock`/`releaseLock`/`renewLock` run unchanged.

const { EventEmitter } = require('node:events')
const native = require('./lib/native.js')

/**
 * Whether `@opentelemetry/api` can be loaded, asked once: lib/telemetry.js (and the API) is
 * loaded only when it can and a Redlock wants telemetry.
 */
let telemetryAvailable
function telemetryFor(option, binding) {
  if (option === false) return null
  if (telemetryAvailable === undefined) {
    try {
      require.resolve('@opentelemetry/api')
      telemetryAvailable = true
    } catch {
      telemetryAvailable = false
    }
  }
  return telemetryAvailable ? require('./lib/telemetry.js').telemetryFor(option, binding) : null
}

/** The constructor's settings without `telemetry` (a setting of this file), and that setting. */
function splitTelemetry(settings) {
  if (settings === null || typeof settings !== 'object' || !Object.hasOwn(settings, 'telemetry')) {
    return [settings, undefined]
  }
  const { telemetry, ...rest } = settings
  const valid =
    typeof telemetry === 'boolean' ||
    (telemetry !== null &&
      typeof telemetry === 'object' &&
      Object.keys(telemetry).every((k) => k === 'resourceNames' || k === 'requireParentSpan') &&
      ['boolean', 'undefined'].includes(typeof telemetry.resourceNames) &&
      ['boolean', 'undefined'].includes(typeof telemetry.requireParentSpan))
  if (!valid) {
    throw errorOf(native.invalidType('settings.telemetry', 'a boolean or { resourceNames?: boolean, requireParentSpan?: boolean }', telemetry))
  }
  return [rest, telemetry]
}

/** A quorum could not be reached in the retry window. */
class ExecutionError extends Error {
  static code = 'ERR_REDLOCK_QUORUM'
  constructor(message, attempts = [], code = new.target.code) {
    super(message)
    this.name = new.target.name
    this.code = code
    this.attempts = attempts
  }
}
/** Another holder has the resource on enough nodes that no quorum was possible. */
class ResourceLockedError extends ExecutionError { static code = 'ERR_REDLOCK_RESOURCE_LOCKED' }
/** The lock is no longer held on a quorum (expired, released or taken over). */
class LockExpiredError extends ExecutionError { static code = 'ERR_REDLOCK_LOCK_EXPIRED' }
/** The Redlock was closed with `quit()`. */
class RedlockClosedError extends ExecutionError { static code = 'ERR_REDLOCK_CLOSED' }
/** The lock was not acquired within `acquireTimeout`. */
class AcquireTimeoutError extends ExecutionError { static code = 'ERR_REDLOCK_ACQUIRE_TIMEOUT' }
/** A watchdog reached its maximum hold time and let the lock expire. */
class MaxHoldError extends ExecutionError { static code = 'ERR_REDLOCK_MAX_HOLD' }

/** The acquisition was aborted through its `signal`; `cause` is the signal's reason. */
class AbortError extends Error {
  constructor(message = 'The operation was aborted', options) {
    super(message, options)
    this.name = 'AbortError'
    this.code = 'ABORT_ERR'
  }
}

const executionErrors = new Map(
  [ExecutionError, ResourceLockedError, LockExpiredError, RedlockClosedError, AcquireTimeoutError, MaxHoldError].map(
    (Class) => [Class.code, Class],
  ),
)
const argumentErrors = { TypeError, RangeError }

/**
 * The one place where an error a user sees is made, in the caller's realm, from the binding's
 * `Failure` (code, kind, message): a refused argument (`TypeError`, `RangeError`), a failed
 * operation (the `ExecutionError` its code names, or `AbortError`), or a failure of the
 * binding itself (`Error`, `ERR_REDLOCK_INTERNAL`). `attempts` are the operation's votes;
 * `cause`, an abort's reason.
 */
function errorOf(failure, attempts = [], cause) {
  const { code, kind, message } = failure
  let error
  if (kind === 'ExecutionError') {
    error = new (executionErrors.get(code) || ExecutionError)(message, attempts, code)
  } else if (kind === 'AbortError') {
    error = new AbortError(message, { cause })
    error.attempts = attempts
  } else {
    error = new (argumentErrors[kind] || Error)(message)
    error.code = code
  }
  return error
}

/** A failed outcome's error. */
function failureError(outcome, reason) {
  return errorOf(outcome.error, outcome.attempts.map(executionStats), reason)
}

/**
 * What a call into the binding threw, as the caller sees it: a refusal (its `failure`, a
 * `Failure`) becomes its error; an exception of the caller's own (a throwing getter in
 * `settings`, say) passes unchanged.
 */
function fromNative(error) {
  const failure = error !== null && typeof error === 'object' ? error.failure : undefined
  return failure instanceof native.Failure ? errorOf(failure) : error
}

/** A wrong type found here, in the binding's words. */
function typeError(name, expected, value) {
  return errorOf(native.invalidType(name, expected, value))
}

function isAbortSignal(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof value.aborted === 'boolean' &&
    typeof value.addEventListener === 'function'
  )
}

/** node-redlock v5's ExecutionStats: `votesFor` a Set and `votesAgainst` a Map of nodes. */
function executionStats(attempt) {
  const votesAgainst = new Map()
  for (const vote of attempt.votesAgainst) {
    const Failure = vote.code === 'ERR_REDLOCK_RESOURCE_LOCKED' ? ResourceLockedError : Error
    const error = new Failure(vote.message)
    error.code = vote.code
    error.node = vote.node
    votesAgainst.set(vote.node, error)
  }
  return {
    membershipSize: attempt.membershipSize,
    quorumSize: attempt.quorumSize,
    votesFor: new Set(attempt.votesFor),
    votesAgainst,
  }
}

/**
 * A successful outcome's attempts as the binding tallied them (every recorded vote for): per
 * attempt the membership, the quorum and a bit per node that voted for, by its index in
 * `nodes`. Made into ExecutionStats only when someone reads them.
 */
class Tally {
  constructor(numbers, nodes) {
    this.numbers = numbers
    this.nodes = nodes
  }

  stats() {
    const { numbers, nodes } = this
    const attempts = []
    for (let i = 0; i + 2 < numbers.length; i += 3) {
      const votesFor = new Set()
      for (let node = 0; node < nodes.length; node++) {
        if (numbers[i + 2] & (1 << node)) votesFor.add(nodes[node])
      }
      attempts.push({ membershipSize: numbers[i], quorumSize: numbers[i + 1], votesFor, votesAgainst: new Map() })
    }
    return attempts
  }
}

/** A successful outcome's attempts: its tally, or ExecutionStats where it has none. */
function attemptsOf(outcome, nodes) {
  return outcome.tally ? new Tally(outcome.tally, nodes) : outcome.attempts.map(executionStats)
}

/** ExecutionStats, from a tally or as they are. */
function statsOf(attempts) {
  return attempts instanceof Tally ? attempts.stats() : attempts
}

/** Settles `promise` through a node-style callback (v4), keeping the promise for v5 code. */
function withCallback(promise, callback) {
  if (typeof callback === 'function') {
    promise.then(
      (value) => callback(null, value),
      (error) => callback(error),
    )
  }
  return promise
}

const internal = Symbol('redlock-rs internal')

/** A lock held (or once held) on a quorum of nodes. */
class Lock {
  #redlock
  #native
  #requested
  #watchdog = null
  /** The acquisition's own settings, which `extend()` reuses (as sesame does). */
  #settings
  /** ExecutionStats, or a `Tally` until they are first read. */
  #attempts
  /** @internal Locks are made by `Redlock#acquire`. */
  constructor(token, redlock, nativeLock, requested, attempts, settings) {
    if (token !== internal) {
      throw new TypeError('Lock instances are made by Redlock#acquire')
    }
    this.#settings = settings
    this.#redlock = redlock
    this.#native = nativeLock
    this.#requested = requested
    this.resources = nativeLock.resources
    this.value = nativeLock.value
    this.#attempts = attempts
  }

  /** The attempts of the operation that last acquired or extended the lock. */
  get attempts() {
    return (this.#attempts = statsOf(this.#attempts))
  }

  set attempts(attempts) {
    this.#attempts = attempts
  }

  /** The wall-clock instant (ms since the epoch) at which the lock's validity ends. */
  get expiration() {
    return this.#native.expiration
  }

  /** The fencing token (a bigint) when acquired with `fencing: true`; extensions keep it. */
  get fencingToken() {
    return this.#native.fencingToken ?? undefined
  }

  /** How many ms of validity are left (0 once expired or released); no round trip. */
  get timeLeft() {
    return Math.max(0, this.expiration - Date.now())
  }

  /** Whether the lock is still valid; no round trip. */
  get valid() {
    return this.timeLeft > 0
  }

  /**
   * Keeps the lock extended from the engine (not a JS timer) until `stop()`, `release()`,
   * the lock is lost, or `maxHold` ms have passed. `onLost(error)` is called if it is lost.
   * Returns `{ signal, stop() }`; `signal` aborts, with `signal.error`, when it is lost.
   */
  autoExtend(options = {}) {
    return this.#redlock.autoExtend(this, options)
  }

  /** The lock's id: its random value. */
  get id() {
    return this.value
  }

  /** The resource as it was requested: a name, or the list of names. */
  get resource() {
    return this.#requested
  }

  /** Releases the lock (stopping its watchdog first); resolves even when it had expired. */
  release(settings) {
    return this.#redlock.release(this, settings)
  }

  /**
   * Extends the lock to `duration` ms from now, in place; resolves with this lock. Without
   * `settings`, the acquisition's are used.
   */
  extend(duration, settings) {
    return this.#redlock.extend(this, duration, settings === undefined ? this.#settings : settings)
  }

  /** node-redlock v4: `lock.unlock(callback?)`. */
  unlock(callback) {
    return withCallback(this.release(), callback)
  }

  [Symbol.asyncDispose]() {
    return this.release()
  }

  static nativeOf(lock) {
    return lock.#native
  }

  /** The lock's running watchdog, if any, as set by `Redlock#autoExtend`. */
  static watchdog(lock, watchdog) {
    if (watchdog !== undefined) lock.#watchdog = watchdog
    return lock.#watchdog
  }

  /** An extension's attempts (ExecutionStats or a `Tally`) are the lock's from now on. */
  static update(lock, attempts) {
    lock.#attempts = attempts
    return lock
  }
}

/** A Redlock client over N independent Redis masters. */
/**
 * What acquires something other than a plain lock: a semaphore, a side of a read-write lock.
 * `acquire` resolves with a `Lock`; `using` runs a routine while holding one, as
 * `Redlock#using` does.
 */
class LockSide {
  #acquire
  #using

  /** @internal Made by `Redlock#semaphore` and `Redlock#readWriteLock`. */
  constructor(token, acquire, using) {
    if (token !== internal) throw new TypeError(`${new.target.name} instances are made by a Redlock`)
    this.#acquire = acquire
    this.#using = using
  }

  /** Acquires for `duration` ms; resolves with a `Lock`. */
  acquire(duration, settings) {
    return this.#acquire(duration, settings)
  }

  /** Runs `routine(signal, { lock, extensions })` while holding it, as `Redlock#using`. */
  using(duration, settings, routine) {
    return this.#using(duration, settings, routine)
  }
}

/**
 * At most `permits` holders of `resource` at a time (`Redlock#semaphore`). Each grant is a
 * `Lock` on the permit slots it holds; `acquire(duration, { count })` takes several at once.
 */
class Semaphore extends LockSide {
  /** @internal Semaphores are made by `Redlock#semaphore`. */
  constructor(token, resource, permits, acquire, using) {
    super(token, acquire, using)
    this.resource = resource
    this.permits = permits
  }
}

/** Readers together or one writer alone on `resource` (`Redlock#readWriteLock`). */
class ReadWriteLock {
  /** @internal Made by `Redlock#readWriteLock`. */
  constructor(token, resource, read, write) {
    if (token !== internal) throw new TypeError('ReadWriteLock instances are made by Redlock#readWriteLock')
    this.resource = resource
    this.read = read
    this.write = write
  }
}

class Redlock extends EventEmitter {
  #native
  #stragglers = null
  /** OpenTelemetry (lib/telemetry.js), or null. */
  #telemetry = null
  /** The client objects the user gave: `quit()` closes them, as node-redlock does. */
  #clients
  /** The nodes' names, by index, as the binding's tallies count them. */
  #nodes

  constructor(clients, settings, scripts) {
    super()
    // node-redlock v5 takes any iterable of clients.
    const list = isIterableObject(clients) ? Array.from(clients) : clients
    const [nativeSettings, telemetry] = splitTelemetry(settings)
    try {
      this.#native = new native.Redlock(list, nativeSettings, scripts)
    } catch (error) {
      throw fromNative(error)
    }
    this.#telemetry = telemetryFor(telemetry, this.#native)
    this.#clients = list.filter(isClientObject)
    this.#nodes = this.#native.nodes
    // Held weakly, so that the native side's reference never keeps this object alive.
    const self = new WeakRef(this)
    this.#native.onNodeError((event) => {
      const redlock = self.deref()
      if (!redlock || redlock.listenerCount('error') + redlock.listenerCount('clientError') === 0) return
      const error = new Error(`${event.node}: ${event.message}`)
      error.code = event.code
      error.node = event.node
      redlock.#emitNodeError(error)
    })
  }

  /** The constructor's settings, with defaults filled in. */
  get settings() {
    return this.#native.settings
  }

  /** The members, as `host:port/db` (a cluster: `cluster[host:port,…]`). */
  get nodes() {
    return this.#native.nodes
  }

  /**
   * Requests sent and not yet answered or timed out: an operation answers at quorum, and the
   * other members' requests may still be on their way.
   */
  get inFlight() {
    return this.#native.inFlight
  }

  /**
   * Acquires a lock on `resources` (a name or a list of names) for `duration` ms.
   * v4's `acquire(resource, ttl, callback)` works too.
   */
  acquire(resources, duration, settings) {
    if (typeof settings === 'function') {
      return withCallback(this.acquire(resources, duration), settings)
    }
    const start = (binding, cancellation) => binding.acquire(resources, duration, settings, cancellation)
    return this.#acquire(resources, copy(resources), settings, start)
  }

  /**
   * A semaphore of `permits` permits on `resource`: at most that many holders at once,
   * each permit held on a quorum like a mutex (docs/SAFETY.md).
   */
  semaphore(resource, permits) {
    this.#call((binding) => binding.checkSemaphore(resource, permits))
    const acquire = (duration, settings) => {
      const [count, own] = splitCount(settings)
      const start = (binding, cancellation) =>
        binding.acquirePermits(resource, permits, duration, count, own, cancellation)
      return this.#acquire(resource, resource, own, start)
    }
    return new Semaphore(internal, resource, permits, acquire, this.#usingBy(resource, acquire))
  }

  /**
   * A read-write lock on `resource`: `read` lets any number of holders in at once, `write`
   * one holder alone. Write-preferring: once a writer waits, new readers wait behind it, for
   * as long as it keeps asking (docs/SAFETY.md).
   */
  readWriteLock(resource) {
    this.#call((binding) => binding.checkReadWrite(resource))
    const side = (write) => {
      const acquire = (duration, settings) => {
        const start = (binding, cancellation) =>
          binding.acquireReadWrite(resource, write, duration, settings, cancellation)
        return this.#acquire(resource, resource, settings, start)
      }
      return new LockSide(internal, acquire, this.#usingBy(resource, acquire))
    }
    return new ReadWriteLock(internal, resource, side(false), side(true))
  }

  /** `using(duration, settings?, routine)` over `acquire(duration, settings)`. */
  #usingBy(resource, acquire) {
    return (duration, settings, routine) => {
      const run = () => this.#using((s) => acquire(duration, s), duration, settings, routine)
      return this.#telemetry ? this.#telemetry.using(resource, run) : run()
    }
  }

  /** Acquires by `start(binding, cancellation)`, with the settings' AbortSignal and telemetry. */
  #acquire(resources, requested, settings, start) {
    const signal = settings != null && typeof settings === 'object' ? settings.signal : undefined
    if (signal !== undefined && !isAbortSignal(signal)) {
      return Promise.reject(typeError('settings.signal', 'an instance of AbortSignal', signal))
    }
    if (signal && signal.aborted) {
      return Promise.reject(new AbortError(undefined, { cause: signal.reason }))
    }
    const cancellation = signal ? new native.Cancellation() : undefined
    const onAbort = () => cancellation.cancel()
    if (signal) signal.addEventListener('abort', onAbort, { once: true })
    const acquired = () => {
      const lock = this.#run((binding) => start(binding, cancellation), signal).then((outcome) => {
        const attempts = attemptsOf(outcome, this.#nodes)
        return new Lock(internal, this, outcome.lock, requested, attempts, extensionSettings(settings))
      })
      return signal ? lock.finally(() => signal.removeEventListener('abort', onAbort)) : lock
    }
    return this.#telemetry ? this.#telemetry.acquire(resources, acquired) : acquired()
  }

  /** Releases `lock`. Resolves `{ nodesHeld, attempts }`, also for an expired lock. */
  release(lock, settings) {
    if (typeof settings === 'function') {
      return withCallback(this.release(lock), settings)
    }
    const release = () =>
      this.#withLock(lock, async (nativeLock) => {
        const watchdog = Lock.watchdog(lock)
        if (watchdog) await watchdog.stop()
        const outcome = await this.#run((binding) => binding.release(nativeLock, settings))
        return released(outcome, this.#nodes)
      })
    return this.#telemetry && lock instanceof Lock ? this.#telemetry.release(lock, release) : release()
  }

  /** Extends `lock` to `duration` ms from now; updates it in place and resolves with it. */
  extend(lock, duration, settings) {
    if (typeof settings === 'function') {
      return withCallback(this.extend(lock, duration), settings)
    }
    const extend = () =>
      this.#withLock(lock, (nativeLock) =>
        this.#run((binding) => binding.extend(nativeLock, duration, settings)).then((outcome) =>
          Lock.update(lock, attemptsOf(outcome, this.#nodes)),
        ),
      )
    return this.#telemetry && lock instanceof Lock ? this.#telemetry.extend(lock, extend) : extend()
  }

  /**
   * What this client has done since it was made, as plain data: per operation (`acquire`,
   * `extend`, `release`) the count, the outcomes (`ok` or an error code) and latency
   * percentiles in ms; per node its requests, failures by code and latency; the hand-offs
   * (acquisitions granted once a release ended their wait) and the locks a watchdog lost.
   */
  stats() {
    const s = this.#native.stats()
    return {
      since: s.since,
      operations: { acquire: s.acquire, extend: s.extend, release: s.release },
      nodes: s.nodes,
      handoffs: s.handoffs,
      locksLost: s.locksLost,
    }
  }

  /**
   * What every node holds for `target`: a resource name, a list of names, or a `Lock`. Per
   * resource: the verdict a client would reach (`held` by one value on a quorum, `free`,
   * `split`, or `unknown` when fewer than a quorum answered), the holder's value, and per
   * node whether it answered, the value, its TTL and the fencing counter; with a `Lock`,
   * whether it is ours. Read-only, one round trip per node, each bounded by
   * `requestTimeout`. Resolves one report for a name, a list of reports otherwise.
   */
  inspect(target, settings) {
    const lock = target instanceof Lock ? target : null
    const resources = lock ? lock.resources : target
    return new Promise((resolve) => resolve(this.#call((binding) => binding.inspect(resources, settings)))).then(
      (inspection) => {
        if (inspection.error) throw errorOf(inspection.error)
        const reports = inspection.resources.map((r) => resourceReport(r, lock))
        return typeof resources === 'string' ? reports[0] : reports
      },
    )
  }

  /**
   * Whether `resources` (a name, or any name of a list) is held on a quorum. Rejects with
   * `ERR_REDLOCK_QUORUM` when fewer than a quorum of nodes answered: then nobody can tell.
   */
  async isLocked(resources, settings) {
    const reports = [].concat(await this.inspect(resources, settings))
    if (reports.some((r) => r.verdict === 'held')) return true
    const unknown = reports.find((r) => r.verdict === 'unknown')
    if (unknown) {
      const down = unknown.nodes.filter((n) => !n.reachable).map((n) => `${n.node} (${n.code})`)
      const message = `cannot tell whether "${unknown.resource}" is locked: fewer than a quorum of ${unknown.quorum} nodes answered; unreachable: ${down.join(', ')}`
      throw new ExecutionError(message, [], 'ERR_REDLOCK_QUORUM')
    }
    return false
  }

  /**
   * Runs `routine(signal, { lock, extensions })` while holding a lock on `resources`. The engine extends the lock
   * `automaticExtensionThreshold` ms before each expiration, whatever the event loop is
   * doing; `signal` aborts (with `signal.error`) if the lock is lost. When the routine
   * settles, the watchdog stops, an extension in flight is awaited, and the lock is
   * released. A release failure never replaces the routine's own result or error.
   */
  using(resources, duration, settings, routine) {
    const using = () => this.#using((s) => this.acquire(resources, duration, s), duration, settings, routine)
    return this.#telemetry ? this.#telemetry.using(resources, using) : using()
  }

  async #using(acquire, duration, settings, routine) {
    if (typeof settings === 'function') {
      routine = settings
      settings = undefined
    }
    if (typeof routine !== 'function') {
      throw typeError('routine', 'of type function', routine)
    }
    // A semaphore's `count` is the acquisition's alone; the watchdog extends with the rest.
    const [, own] = splitCount(settings)
    this.#call((binding) => binding.checkAutoExtension(duration, own))
    const lock = await acquire(settings)
    const { signal, stop, extensions } = this.#autoExtend(lock, { duration, settings: own })
    // sesame's context: the lock, and how many times it has been extended so far.
    const context = Object.freeze({
      lock,
      get extensions() {
        return extensions()
      },
    })
    try {
      return await routine(signal, context)
    } finally {
      await stop()
      await lock.release().catch((error) => this.#emitNodeError(error))
    }
  }

  /**
   * Keeps `lock` extended by `duration` ms (default: the lock's own duration is unknown, so
   * `duration` is required) until `stop()`, the lock's release, loss, or `maxHold` ms.
   */
  autoExtend(lock, options) {
    const { signal, stop } = this.#autoExtend(lock, options)
    return { signal, stop }
  }

  #autoExtend(lock, { duration, settings, maxHold, onLost } = {}) {
    if (!(lock instanceof Lock)) throw typeError('lock', 'an instance of Lock', lock)
    if (onLost !== undefined && typeof onLost !== 'function') {
      throw typeError('onLost', 'of type function', onLost)
    }
    const controller = new AbortController()
    const signal = controller.signal
    const lost = (outcome) => {
      const error = failureError(outcome)
      if (this.#telemetry && error.code !== 'ERR_REDLOCK_MAX_HOLD') this.#telemetry.lose(lock, 'watchdog')
      signal.error = error
      controller.abort(error)
      if (onLost) onLost(error)
    }
    const watchdog = this.#call((binding) =>
      binding.watch(Lock.nativeOf(lock), duration, settings, maxHold, lost),
    )
    Lock.watchdog(lock, watchdog)
    const stop = async () => {
      await watchdog.stop()
      if (Lock.watchdog(lock) === watchdog) Lock.watchdog(lock, null)
    }
    return { signal, stop, extensions: () => watchdog.extensions }
  }

  /**
   * Stops every operation under way (they reject with `RedlockClosedError`), lets requests
   * already sent finish so that a release on a slow node still lands, then closes every
   * connection: the engine's own, and the ioredis / node-redis clients given to the
   * constructor (node-redlock and sesame quit them too). Operations afterwards reject with
   * `RedlockClosedError`.
   */
  quit(callback) {
    const clients = this.#clients.splice(0)
    const telemetry = this.#telemetry
    this.#telemetry = null
    const closed = this.#native
      .quit()
      .then(() => telemetry && telemetry.close())
      .then(() => Promise.all(clients.map(closeClient)))
      .then(() => {})
    return withCallback(closed, callback)
  }

  // The original design's API.

  /** Acquires `resource` for `ttl` ms; the lock carries `resource` and `id`. */
  acquireLock(resource, ttl) {
    return this.acquire(resource, ttl)
  }

  /** Releases the lock on `resource` whose id is `lockId`. */
  releaseLock(resource, lockId) {
    return this.#byId(resource, lockId).then((lock) => this.release(lock))
  }

  /** Extends the lock on `resource` whose id is `lockId` to `ttl` ms from now. */
  renewLock(resource, lockId, ttl) {
    return this.#byId(resource, lockId).then((lock) => this.extend(lock, ttl))
  }

  // node-redlock v4's names.

  /** v4: `lock(resource, ttl, callback?)`. */
  lock(resource, ttl, callback) {
    return withCallback(this.acquire(resource, ttl), callback)
  }

  /** v4: `unlock(lock, callback?)`. */
  unlock(lock, callback) {
    return withCallback(this.release(lock), callback)
  }

  #byId(resource, lockId) {
    return new Promise((resolve) => {
      const nativeLock = this.#call((binding) => binding.lockById(resource, lockId))
      resolve(new Lock(internal, this, nativeLock, copy(resource), []))
    })
  }

  #withLock(lock, operation) {
    if (!(lock instanceof Lock)) {
      return Promise.reject(typeError('lock', 'an instance of Lock', lock))
    }
    return operation(Lock.nativeOf(lock))
  }

  #call(operation) {
    try {
      return operation(this.#native)
    } catch (error) {
      throw fromNative(error)
    }
  }

  async #run(operation, signal) {
    const outcome = await this.#call(operation)
    this.#awaitStragglers()
    if (outcome.error) throw failureError(outcome, signal && signal.reason)
    return outcome
  }

  /**
   * An operation answers at quorum; the other nodes' requests may still be under way (a
   * release queued on a slow node behind the lock's own acquire). A timer keeps the process
   * alive until they have landed or timed out; it costs one property read per operation.
   */
  #awaitStragglers() {
    if (this.#stragglers || this.#native.inFlight === 0) return
    this.#stragglers = setTimeout(() => {
      this.#stragglers = null
      this.#awaitStragglers()
    }, 10)
  }

  /** 'error' (v5) and 'clientError' (v4) events; never thrown when nobody listens. */
  #emitNodeError(error) {
    if (this.listenerCount('clientError') > 0) this.emit('clientError', error)
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }
}

/** An acquisition's settings as its lock's extensions use them: without its signal. */
function extensionSettings(settings) {
  if (settings === null || typeof settings !== 'object') return undefined
  try {
    const { signal, acquireTimeout, ...rest } = settings
    return rest
  } catch {
    // A getter that throws now (it did not when the acquisition read it): the lock is held
    // all the same, and its extensions use the constructor's settings.
    return undefined
  }
}

/** An iterable object that is not an array (a Set of clients, say). */
/**
 * A semaphore's settings as `[count, the rest]`: `count` is the acquisition's alone, not a
 * setting that its lock's extensions reuse. Anything but a settings object is left to the
 * checks that refuse it.
 */
function splitCount(settings) {
  if (settings == null || typeof settings !== 'object' || Array.isArray(settings)) return [undefined, settings]
  const { count, ...rest } = settings
  return [count, rest]
}

function isIterableObject(value) {
  return (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    typeof value[Symbol.iterator] === 'function'
  )
}

/** An ioredis or node-redis client (or cluster) object, as opposed to connection options. */
function isClientObject(entry) {
  return (
    entry !== null &&
    typeof entry === 'object' &&
    !Array.isArray(entry) &&
    ['quit', 'close', 'disconnect'].some((method) => typeof entry[method] === 'function')
  )
}

/**
 * Closes a user's client: gracefully (QUIT) when it is connected, at once when it is not, so
 * that a client that never connected or cannot reconnect does not hold `quit()` up. Its own
 * errors are its own: closing goes on for the others.
 */
async function closeClient(client) {
  try {
    if (typeof client.status === 'string') {
      // ioredis: `ready` is connected; `wait` never connected; `end` is closed. QUIT's
      // answer comes before the socket closes: resolve once it has (`end`).
      if (client.status === 'end') return
      const ended = new Promise((resolve) => client.once('end', resolve))
      if (client.status === 'ready') await client.quit().catch(() => client.disconnect())
      else client.disconnect()
      // Bounded, so that a client in an odd state can never hold `quit()` up.
      if (client.status !== 'end') await Promise.race([ended, delay(2000)])
      return
    }
    // node-redis: `isOpen` is false once closed (or before connect).
    if (client.isOpen === false) return
    if (typeof client.close === 'function') await client.close()
    else if (typeof client.quit === 'function') await client.quit()
    else await client.disconnect()
  } catch {
    // Already closed, or closing: nothing is left to do for this client.
  }
}

/** Resolves after `ms`, without keeping the process alive. */
function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref())
}

function copy(resources) {
  return Array.isArray(resources) ? [...resources] : resources
}

/** One resource of an inspection, as the user sees it; `lock` adds `ours`. */
function resourceReport(r, lock) {
  const report = { resource: r.resource, verdict: r.verdict, value: r.value ?? null, quorum: r.quorum }
  if (lock) report.ours = r.verdict === 'held' && r.value === lock.value
  report.nodes = r.nodes.map((n) => {
    const node = n.reachable
      ? {
          node: n.node,
          reachable: true,
          value: n.value ?? null,
          otherType: n.otherType,
          ttlMs: n.ttlMs ?? null,
          fencingCounter: n.fencingCounter ?? null,
        }
      : { node: n.node, reachable: false, code: n.code, message: n.message }
    if (lock && n.reachable) node.ours = n.value === lock.value
    return node
  })
  return report
}

/** A release's answer, `{ nodesHeld, attempts }`, its attempts made when first read. */
function released(outcome, nodes) {
  let attempts = attemptsOf(outcome, nodes)
  return {
    nodesHeld: outcome.nodesHeld,
    get attempts() {
      return (attempts = statsOf(attempts))
    },
    set attempts(value) {
      attempts = value
    },
  }
}

module.exports = Redlock
module.exports.default = Redlock
module.exports.Redlock = Redlock
module.exports.Lock = Lock
module.exports.Semaphore = Semaphore
module.exports.ReadWriteLock = ReadWriteLock
module.exports.ExecutionError = ExecutionError
module.exports.ResourceLockedError = ResourceLockedError
module.exports.LockExpiredError = LockExpiredError
module.exports.RedlockClosedError = RedlockClosedError
module.exports.AcquireTimeoutError = AcquireTimeoutError
module.exports.MaxHoldError = MaxHoldError
module.exports.AbortError = AbortError
module.exports.LockError = ExecutionError
