'use strict'
// The front door of redlock-rs. The native binding (binding.js) does the work; this file adds
// what is JavaScript by nature: the error classes (made here, so that `instanceof` works in
// the caller's realm, Jest's sandbox included), the EventEmitter, callbacks for the v4 API,
// `using`, `Symbol.asyncDispose`, and the aliases that let node-redlock v4 and v5 code and
// the original design's `acquireLock`/`releaseLock`/`renewLock` run unchanged.

const { EventEmitter } = require('node:events')
const native = require('./binding.js')

/** A quorum could not be reached in the retry window. */
class ExecutionError extends Error {
  constructor(message, attempts = [], code = 'ERR_REDLOCK_QUORUM') {
    super(message)
    this.name = new.target.name
    this.code = code
    this.attempts = attempts
  }
}

/** Another holder has the resource on enough nodes that no quorum was possible. */
class ResourceLockedError extends ExecutionError {
  constructor(message, attempts = []) {
    super(message, attempts, 'ERR_REDLOCK_RESOURCE_LOCKED')
  }
}

/** The lock is no longer held on a quorum (expired, released or taken over). */
class LockExpiredError extends ExecutionError {
  constructor(message, attempts = []) {
    super(message, attempts, 'ERR_REDLOCK_LOCK_EXPIRED')
  }
}

/** The Redlock was closed with `quit()`. */
class RedlockClosedError extends ExecutionError {
  constructor(message, attempts = []) {
    super(message, attempts, 'ERR_REDLOCK_CLOSED')
  }
}

const failures = {
  ERR_REDLOCK_RESOURCE_LOCKED: ResourceLockedError,
  ERR_REDLOCK_LOCK_EXPIRED: LockExpiredError,
  ERR_REDLOCK_CLOSED: RedlockClosedError,
}

/** Makes a caller-realm error out of one thrown by the binding (`"<code>: <message>"`). */
function fromNative(error) {
  const parsed = /^(ERR_[A-Z_]+): ([\s\S]*)$/.exec(error && error.message)
  if (!parsed) {
    const internal = new Error(String((error && error.message) || error))
    internal.code = 'ERR_REDLOCK_INTERNAL'
    return internal
  }
  const [, code, message] = parsed
  return argumentError(code, message)
}

function argumentError(code, message) {
  const error = code === 'ERR_OUT_OF_RANGE' ? new RangeError(message) : new TypeError(message)
  error.code = code
  return error
}

function typeError(name, expected, value) {
  const received =
    value === null ? 'null' : Array.isArray(value) ? 'an instance of Array' : `type ${typeof value}`
  return argumentError(
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. Received ${received}`,
  )
}

/** node-redlock v5's ExecutionStats: `votesFor` a Set and `votesAgainst` a Map of nodes. */
function executionStats(attempt) {
  const votesAgainst = new Map()
  for (const vote of attempt.votesAgainst) {
    const Failure = vote.code === 'ERR_REDLOCK_RESOURCE_LOCKED' ? ResourceLockedError : Error
    const error = new Failure(`${vote.node}: ${vote.message}`)
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
  /** @internal Locks are made by `Redlock#acquire`. */
  constructor(token, redlock, nativeLock, requested, attempts) {
    if (token !== internal) {
      throw new TypeError('Lock instances are made by Redlock#acquire')
    }
    this.#redlock = redlock
    this.#native = nativeLock
    this.#requested = requested
    this.resources = nativeLock.resources
    this.value = nativeLock.value
    this.attempts = attempts
  }

  /** The wall-clock instant (ms since the epoch) at which the lock's validity ends. */
  get expiration() {
    return this.#native.expiration
  }

  /** The lock's id: its random value. */
  get id() {
    return this.value
  }

  /** The resource as it was requested: a name, or the list of names. */
  get resource() {
    return this.#requested
  }

  /** Releases the lock; resolves even when it had already expired. */
  release(settings) {
    return this.#redlock.release(this, settings)
  }

  /** Extends the lock to `duration` ms from now, in place; resolves with this lock. */
  extend(duration, settings) {
    return this.#redlock.extend(this, duration, settings)
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

  static update(lock, attempts) {
    lock.attempts = attempts
    return lock
  }
}

/** A Redlock client over N independent Redis masters. */
class Redlock extends EventEmitter {
  #native

  constructor(clients, settings) {
    super()
    try {
      this.#native = new native.Redlock(clients, settings)
    } catch (error) {
      throw fromNative(error)
    }
    // Held weakly, so that the native side's reference never keeps this object alive.
    const self = new WeakRef(this)
    this.#native.onNodeError((event) => {
      const error = new Error(`${event.node}: ${event.message}`)
      error.code = event.code
      error.node = event.node
      self.deref()?.#emitNodeError(error)
    })
  }

  /** The constructor's settings, with defaults filled in. */
  get settings() {
    return this.#native.settings
  }

  /** The nodes, as `host:port/db`. */
  get nodes() {
    return this.#native.nodes
  }

  /**
   * Acquires a lock on `resources` (a name or a list of names) for `duration` ms.
   * v4's `acquire(resource, ttl, callback)` works too.
   */
  acquire(resources, duration, settings) {
    if (typeof settings === 'function') {
      return withCallback(this.acquire(resources, duration), settings)
    }
    return this.#run((binding) => binding.acquire(resources, duration, settings)).then(
      (outcome) =>
        new Lock(internal, this, outcome.lock, copy(resources), outcome.attempts.map(executionStats)),
    )
  }

  /** Releases `lock`. Resolves `{ nodesHeld, attempts }`, also for an expired lock. */
  release(lock, settings) {
    if (typeof settings === 'function') {
      return withCallback(this.release(lock), settings)
    }
    return this.#withLock(lock, (nativeLock) =>
      this.#run((binding) => binding.release(nativeLock, settings)).then(released),
    )
  }

  /** Extends `lock` to `duration` ms from now; updates it in place and resolves with it. */
  extend(lock, duration, settings) {
    if (typeof settings === 'function') {
      return withCallback(this.extend(lock, duration), settings)
    }
    return this.#withLock(lock, (nativeLock) =>
      this.#run((binding) => binding.extend(nativeLock, duration, settings)).then((outcome) =>
        Lock.update(lock, outcome.attempts.map(executionStats)),
      ),
    )
  }

  /**
   * Runs `routine(signal)` while holding a lock on `resources`, extending it before it
   * expires, and releases it afterwards. `signal` aborts (with `signal.error` set) if an
   * extension fails. A release failure never replaces the routine's own result or error.
   */
  async using(resources, duration, settings, routine) {
    if (typeof settings === 'function') {
      routine = settings
      settings = undefined
    }
    if (typeof routine !== 'function') {
      throw typeError('routine', 'of type function', routine)
    }
    const resolved = this.#call((binding) => binding.resolveSettings(settings))
    // A bad duration is left to `acquire`, whose message names it.
    const validDuration = Number.isInteger(duration) && duration > 0
    if (validDuration && resolved.automaticExtensionThreshold > duration - 100) {
      throw argumentError(
        'ERR_OUT_OF_RANGE',
        `The value of "settings.automaticExtensionThreshold" is out of range. It must be at least 100 ms below the lock's duration (${duration}). Received ${resolved.automaticExtensionThreshold}`,
      )
    }
    const lock = await this.acquire(resources, duration, settings)
    const controller = new AbortController()
    const signal = controller.signal
    let timer
    let extension
    let settled = false
    const schedule = () => {
      if (settled) return
      const wait = lock.expiration - Date.now() - resolved.automaticExtensionThreshold
      timer = setTimeout(extend, Math.max(0, wait))
    }
    const extend = () => {
      timer = undefined
      extension = lock.extend(duration, settings).then(schedule, (error) => {
        signal.error = error
        controller.abort(error)
      })
    }
    schedule()
    try {
      return await routine(signal)
    } finally {
      settled = true
      clearTimeout(timer)
      await extension
      await lock.release().catch((error) => this.#emitNodeError(error))
    }
  }

  /** Closes every connection. Operations afterwards reject with `RedlockClosedError`. */
  quit(callback) {
    this.#native.quit()
    return withCallback(Promise.resolve(), callback)
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

  async #run(operation) {
    const outcome = await this.#call(operation)
    if (outcome.error) {
      const Failure = failures[outcome.error.code] || ExecutionError
      const error = new Failure(outcome.error.message, outcome.attempts.map(executionStats))
      error.code = outcome.error.code
      throw error
    }
    return outcome
  }

  /** 'error' (v5) and 'clientError' (v4) events; never thrown when nobody listens. */
  #emitNodeError(error) {
    if (this.listenerCount('clientError') > 0) this.emit('clientError', error)
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }
}

function copy(resources) {
  return Array.isArray(resources) ? [...resources] : resources
}

function released(outcome) {
  return { nodesHeld: outcome.nodesHeld, attempts: outcome.attempts.map(executionStats) }
}

module.exports = Redlock
module.exports.default = Redlock
module.exports.Redlock = Redlock
module.exports.Lock = Lock
module.exports.ExecutionError = ExecutionError
module.exports.ResourceLockedError = ResourceLockedError
module.exports.LockExpiredError = LockExpiredError
module.exports.RedlockClosedError = RedlockClosedError
module.exports.LockError = ExecutionError
