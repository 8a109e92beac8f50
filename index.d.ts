// Types of redlock-rs's public API (index.js). The native binding's own types are in
// binding.d.ts; users import from here.
//
// index.js is a CommonJS module whose `module.exports` is the Redlock class itself, with the
// other exports (and `default`) as its properties, so this file says `export = Redlock` and
// merges a namespace into the class for the rest. That one shape serves every way of
// importing it: `import Redlock from 'redlock-rs'` (an ES module under NodeNext, a bundler,
// or CommonJS with esModuleInterop), `import { Redlock, Lock, type Settings } from …`,
// `import Redlock = require('redlock-rs')` and `const Redlock = require('redlock-rs')`.
// TypeScript 4.7 or newer; it depends on @types/node only (not on ioredis or redis).

/// <reference types="node" />
import { EventEmitter } from 'node:events'
import type { Settings as NativeSettings } from './binding.js'

declare global {
  // `Lock#[Symbol.asyncDispose]` without TypeScript 5.2's `esnext.disposable` lib; the same
  // declaration as TypeScript's own lib and @types/node, with which it merges.
  interface SymbolConstructor {
    readonly asyncDispose: unique symbol
  }
}

/** A Redlock client over N independent Redis masters. */
declare class Redlock extends EventEmitter {
  /**
   * @param clients The quorum's members, any iterable (an Array, a Set…) of at least one:
   *   `redis://` / `rediss://` URLs, option objects, cluster descriptions, or existing ioredis
   *   and node-redis clients and clusters (their connection settings are read; the engine
   *   opens its own connections). Two members reaching the same server and database are
   *   refused.
   * @param settings The defaults of every operation; an unknown name is a `TypeError`. With
   *   them, `telemetry` (the constructor's only): OpenTelemetry when `@opentelemetry/api` is
   *   installed (default true; `false` turns it off; see `TelemetryOption`).
   */
  constructor(clients: Redlock.Clients, settings?: Redlock.Settings & { telemetry?: Redlock.TelemetryOption })
  /** The constructor's settings, with defaults filled in. */
  readonly settings: Redlock.ResolvedSettings
  /** The members, as `host:port/db` (a cluster: `cluster[host:port,…]`). */
  readonly nodes: string[]
  /**
   * Requests sent and not yet answered or timed out: an operation answers at quorum, and the
   * other members' requests may still be on their way.
   */
  readonly inFlight: number

  /**
   * Acquires a lock on `resources` (a name or a list of names) for `duration` ms (an integer
   * from 1 to `Number.MAX_SAFE_INTEGER`). Rejects with `ResourceLockedError` when another
   * holder has it, `ExecutionError` when no quorum could be reached.
   */
  acquire(resources: Redlock.Resources, duration: number, settings?: Redlock.CallSettings): Promise<Redlock.Lock>
  /** node-redlock v4: the callback form. */
  acquire(resources: Redlock.Resources, duration: number, callback: Redlock.Callback<Redlock.Lock>): Promise<Redlock.Lock>
  /** Releases `lock`. Resolves also when the lock had already expired. */
  release(lock: Redlock.Lock, settings?: Redlock.Settings): Promise<Redlock.ReleaseResult>
  /** node-redlock v4: the callback form. */
  release(lock: Redlock.Lock, callback: Redlock.Callback<Redlock.ReleaseResult>): Promise<Redlock.ReleaseResult>
  /** Extends `lock` to `duration` ms from now, in place; resolves with that same lock. */
  extend(lock: Redlock.Lock, duration: number, settings?: Redlock.Settings): Promise<Redlock.Lock>
  /** node-redlock v4: the callback form. */
  extend(lock: Redlock.Lock, duration: number, callback: Redlock.Callback<Redlock.Lock>): Promise<Redlock.Lock>
  /**
   * Runs `routine(signal, context)` while holding a lock on `resources`, extended by the
   * engine `automaticExtensionThreshold` ms before each expiration; `signal` aborts (with
   * `signal.error`) if the lock is lost. The lock is released when the routine settles.
   */
  using<T>(
    resources: Redlock.Resources,
    duration: number,
    settings: Redlock.CallSettings | undefined,
    routine: Redlock.UsingRoutine<T>,
  ): Promise<T>
  using<T>(resources: Redlock.Resources, duration: number, routine: Redlock.UsingRoutine<T>): Promise<T>
  /**
   * A semaphore on `resource` with `permits` permits (an integer from 1 to 1024): at most
   * that many holders at once, each permit a slot held on a quorum like a mutex. Throws a
   * `TypeError`/`RangeError` naming the argument for a bad `resource` or `permits`.
   */
  semaphore(resource: string, permits: number): Redlock.Semaphore
  /**
   * A read-write lock on `resource`: `read` admits any number of holders at once, `write` one
   * holder alone, excluding every reader. Write-preferring: once a writer waits, new readers
   * wait behind it for as long as it keeps asking. Throws a `TypeError` for a bad `resource`.
   */
  readWriteLock(resource: string): Redlock.ReadWriteLock
  /**
   * Stops every operation under way (they reject with `RedlockClosedError`), lets requests
   * already sent finish, then closes every connection, the clients passed in included.
   */
  /**
   * What this client has done since it was made: per operation its outcomes and latency, per
   * node its requests, failures and latency, the hand-offs and the locks lost. Plain data,
   * readable after `quit()` too.
   */
  stats(): Redlock.Stats
  /**
   * What every node holds for a resource: per node its value, TTL and fencing counter, and
   * the verdict a client would reach. Read-only; one round trip per node, each bounded by
   * `requestTimeout`. A name gives one report; a list, or a `Lock` (its resources, with
   * `ours`), a report per name.
   */
  inspect(resource: string, settings?: Redlock.Settings): Promise<Redlock.Inspection>
  inspect(target: ReadonlyArray<string> | Redlock.Lock, settings?: Redlock.Settings): Promise<Redlock.Inspection[]>
  /**
   * Whether the resource (or any resource of a list) is held by one value on a quorum.
   * Rejects with an `ExecutionError` (`ERR_REDLOCK_QUORUM`) when fewer than a quorum answered.
   */
  isLocked(resources: Redlock.Resources, settings?: Redlock.Settings): Promise<boolean>
  quit(callback?: Redlock.Callback<void>): Promise<void>
  /** Keeps `lock` extended from the engine; see `Lock#autoExtend`. */
  autoExtend(lock: Redlock.Lock, options: Redlock.AutoExtendOptions): Redlock.AutoExtension

  /** The original design: acquire `resource` for `ttl` ms. */
  acquireLock(resource: Redlock.Resources, ttl: number): Promise<Redlock.Lock>
  /** The original design: release the lock on `resource` whose id is `lockId`. */
  releaseLock(resource: Redlock.Resources, lockId: string): Promise<Redlock.ReleaseResult>
  /** The original design: extend the lock on `resource` whose id is `lockId` to `ttl` ms from now. */
  renewLock(resource: Redlock.Resources, lockId: string, ttl: number): Promise<Redlock.Lock>

  /** node-redlock v4: `acquire` with an optional callback. */
  lock(resource: Redlock.Resources, ttl: number, callback?: Redlock.Callback<Redlock.Lock>): Promise<Redlock.Lock>
  /** node-redlock v4: `release` with an optional callback. */
  unlock(lock: Redlock.Lock, callback?: Redlock.Callback<Redlock.ReleaseResult>): Promise<Redlock.ReleaseResult>

  /**
   * A node failed (v5's `'error'`, v4's `'clientError'`), with its `code` and the `node`; or
   * the release at the end of `using` failed on the quorum (an `ExecutionError`, no `node`).
   * Never thrown when nobody listens.
   */
  on(event: 'error' | 'clientError', listener: (error: Error & { code: string; node?: string }) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this
}

declare namespace Redlock {
  // The class itself, also as `Redlock.default` (`module.exports.default`) and
  // `Redlock.Redlock`: `import { Redlock } from 'redlock-rs'`, and `import Redlock from …`
  // in CommonJS code compiled without esModuleInterop.
  export { RedlockClass as default, RedlockClass as Redlock }

  /** A name, or a list of names, to lock together (all or nothing). */
  export type Resources = string | ReadonlyArray<string>

  /** The `clients` of `new Redlock(clients)`: any iterable of members but a string. */
  export type Clients = Iterable<Client> & object

  /**
   * One member of the quorum: a `redis://` or `rediss://` URL, an options object, a cluster
   * description, or an existing ioredis / node-redis client or cluster.
   */
  export type Client = string | ClientOptions | ClusterClient | ClientObject

  /**
   * An existing client or cluster of ioredis (4 or 5) or node-redis: any object with a
   * `sendCommand` or `eval` method. Its connection settings (`options`; a cluster's startup
   * nodes) are read, `keyPrefix` and the selected database included.
   */
  export type ClientObject =
    | { sendCommand(...args: any[]): unknown }
    | { eval(...args: any[]): unknown }

  /**
   * A Redis Cluster as one member of the quorum: its startup nodes as a list, options with
   * `cluster`, node-redis `createCluster` options, or an ioredis `Cluster` / node-redis
   * cluster (a `ClientObject`).
   */
  export type ClusterClient =
    | ReadonlyArray<StartupNode>
    | (ClientOptions & {
        cluster: true | { nodes: ReadonlyArray<StartupNode>; natMap?: AddressMap }
        nodes?: ReadonlyArray<StartupNode>
        startupNodes?: ReadonlyArray<StartupNode>
        natMap?: AddressMap
      })
    | { rootNodes: ReadonlyArray<StartupNode>; defaults?: ClientOptions; nodeAddressMap?: AddressMap }

  /**
   * Where to reach the nodes a cluster announces at addresses this process cannot use (NAT,
   * containers): `"host:port"` as announced, to the address to dial. ioredis calls it
   * `natMap`, node-redis `nodeAddressMap`; both are read from cluster clients too.
   */
  export type AddressMap = { readonly [announced: string]: { host?: string; port?: number } }

  /** One startup node of a cluster: a URL, `host:port`, a port, or node options. */
  export type StartupNode = string | number | ClientOptions

  /** Where a Redis server is and how to log in. */
  export interface ClientOptions {
    /** A `redis[s]://[user[:password]@]host[:port][/db]` URL; the other fields override it. */
    url?: string
    /** Default `127.0.0.1`. */
    host?: string
    /** Default 6379. */
    port?: number
    username?: string | null
    password?: string | null
    /** Database number; `database` is read too (node-redis). */
    db?: number
    database?: number
    /** Prepended to every key (ioredis's `keyPrefix`). */
    keyPrefix?: string
    /** TLS (ioredis style): `true` for the system's CAs, or Node's `tls.connect` options. */
    tls?: boolean | TlsOptions
    /** node-redis keeps `host`, `port` and, with `tls: true`, the TLS options here. */
    socket?: { host?: string; port?: number; tls?: boolean } & TlsOptions
  }

  /** PEM text: a string, a Buffer, or an array of them. */
  export type Pem = string | Uint8Array | ReadonlyArray<string | Uint8Array>

  /** The `tls.connect` options the engine understands. */
  export interface TlsOptions {
    /** CAs to trust instead of the system's. */
    ca?: Pem
    /** Client certificate, for servers with `tls-auth-clients yes`. */
    cert?: Pem
    /** Unencrypted PEM private key of `cert`. */
    key?: Pem
    /** The name the server's certificate must be valid for, when not the host. */
    servername?: string
    /** Default true; false accepts any server certificate (tests only). */
    rejectUnauthorized?: boolean
  }

  /**
   * Behaviour of a Redlock: every field is optional, given to the constructor (the defaults
   * of every call) or per call. A name not listed here is refused with a `TypeError`.
   * Durations are integer ms from 1 to `Number.MAX_SAFE_INTEGER`. The fields, their
   * defaults and ranges are the binding's own (binding.d.ts), documented where they are
   * defined.
   */
  export type Settings = Readonly<Partial<NativeSettings>>

  /**
   * `redlock.settings`: the constructor's settings with the defaults filled in; only
   * `acquireTimeout` and `db` may be absent.
   */
  export type ResolvedSettings = Readonly<NativeSettings>

  /** Per-call settings of `acquire` and `using`: any setting, and an `AbortSignal`. */
  export interface CallSettings extends Settings {
    /** Aborting it stops the acquisition, which rejects with `AbortError`. */
    readonly signal?: AbortSignal
  }

  /** The settings of `Semaphore#acquire`: a call's settings and how many permits to take. */
  export interface PermitSettings extends CallSettings {
    /** How many permits to take at once, all or none: an integer from 1 to `permits`. Default 1. */
    readonly count?: number
  }

  /** At most `permits` holders of `resource` at a time. Made by `Redlock#semaphore`. */
  export class Semaphore {
    private constructor()
    /** The resource, as given. */
    readonly resource: string
    /** How many permits it has. */
    readonly permits: number
    /**
     * Acquires one permit (or `settings.count`) for `duration` ms; resolves with a `Lock` on
     * the permit slots it holds (`lock.resources`), released and extended like any lock.
     * Rejects as `Redlock#acquire` does, with `ResourceLockedError` when every permit is held.
     */
    acquire(duration: number, settings?: PermitSettings): Promise<Lock>
    /** Runs `routine` while holding permits, as `Redlock#using` runs it while holding a lock. */
    using<T>(duration: number, settings: PermitSettings | undefined, routine: UsingRoutine<T>): Promise<T>
    using<T>(duration: number, routine: UsingRoutine<T>): Promise<T>
  }

  /** One side of a `ReadWriteLock`. */
  export interface LockSide {
    /**
     * Acquires this side for `duration` ms; resolves with a `Lock` on the read-write lock's
     * keys, released and extended like any lock. A write lock takes a fencing token with
     * `fencing: true`; a read lock never does.
     */
    acquire(duration: number, settings?: CallSettings): Promise<Lock>
    /** Runs `routine` while holding this side, as `Redlock#using` runs it while holding a lock. */
    using<T>(duration: number, settings: CallSettings | undefined, routine: UsingRoutine<T>): Promise<T>
    using<T>(duration: number, routine: UsingRoutine<T>): Promise<T>
  }

  /** Readers together, or one writer alone, on `resource`. Made by `Redlock#readWriteLock`. */
  export class ReadWriteLock {
    private constructor()
    /** The resource, as given. */
    readonly resource: string
    /** The shared side: any number of readers at once, while no writer holds or waits. */
    readonly read: LockSide
    /** The exclusive side: one writer, while no reader and no other writer holds it. */
    readonly write: LockSide
  }

  /** The second argument of a `using` routine (sesame's `RedlockUsingContext`). */
  export interface UsingContext {
    /** The lock held while the routine runs. */
    readonly lock: Lock
    /** How many times the lock has been extended automatically so far. */
    readonly extensions: number
  }

  /** @sesamecare-oss/redlock's name for `UsingContext`. */
  export type RedlockUsingContext = UsingContext

  /** What `using` runs while it holds the lock. */
  export type UsingRoutine<T> = (signal: RedlockAbortSignal, context: UsingContext) => Promise<T>

  /** What `autoExtend` needs to know. */
  export interface AutoExtendOptions {
    /** Each extension's duration, ms. */
    duration: number
    /** `automaticExtensionThreshold` and the extension's retry settings. */
    settings?: Settings
    /** Stop extending after this many ms in all, so a hung holder cannot keep the lock. */
    maxHold?: number
    /** Called once if the lock is lost (or `maxHold` is reached), with the reason. */
    onLost?: (error: ExecutionError) => void
  }

  /** A running auto-extension. */
  export interface AutoExtension {
    /** Aborts, with `signal.error` set, when the lock is lost. */
    readonly signal: RedlockAbortSignal
    /** Stops extending; resolves once an extension in flight has finished. */
    stop(): Promise<void>
  }

  /** One attempt's votes, as node-redlock v5 reports them. Nodes are named `host:port/db`. */
  export interface ExecutionStats {
    readonly membershipSize: number
    readonly quorumSize: number
    readonly votesFor: Set<string>
    readonly votesAgainst: Map<string, NodeError>
  }

  /** A failure of one node: its `code`, and the node as `host:port/db`. */
  export type NodeError = Error & { code: string; node: string }

  /** What a release resolves with. */
  /** The `telemetry` option of the constructor. */
  export type TelemetryOption =
    | boolean
    | {
        /** false: a hash of the resource on spans instead of its name. */
        readonly resourceNames?: boolean
        /**
         * Default true: `acquire`, `extend` and `release` make spans only inside a trace (an
         * active span); false: always. `using` always makes its span.
         */
        readonly requireParentSpan?: boolean
      }

  /** Latency percentiles, in ms (all 0 before the first). */
  export interface LatencyMs {
    readonly count: number
    readonly mean: number
    readonly p50: number
    readonly p90: number
    readonly p99: number
    readonly max: number
  }

  /** One operation's counts: how many ended, by outcome (`ok` or an error code). */
  export interface OperationStats {
    readonly count: number
    readonly outcomes: Readonly<Record<string, number>>
    /** From the call to its outcome. */
    readonly latencyMs: LatencyMs
  }

  /** What `stats()` returns. */
  export interface Stats {
    /** When counting began (the Redlock's creation), ms since the epoch. */
    readonly since: number
    readonly operations: { readonly acquire: OperationStats; readonly extend: OperationStats; readonly release: OperationStats }
    readonly nodes: ReadonlyArray<{
      /** `host:port/db`, or `cluster[…]`. */
      readonly node: string
      readonly requests: number
      /** Failed requests by code, e.g. `ERR_REDLOCK_NODE_TIMEOUT`. */
      readonly errors: Readonly<Record<string, number>>
      /** From a request's sending to its answer, failure or timeout. */
      readonly latencyMs: LatencyMs
    }>
    /** Acquisitions granted after a release ended their wait (wake-on-release). */
    readonly handoffs: number
    /** Locks a watchdog found lost. */
    readonly locksLost: number
  }

  /** One resource as `inspect` found it. */
  export interface Inspection {
    readonly resource: string
    /**
     * `held`: one value holds it on a quorum (`value`); `free`: a quorum answered and none
     * holds it; `split`: held, but by no value on a quorum; `unknown`: fewer than a quorum
     * answered.
     */
    readonly verdict: 'held' | 'free' | 'split' | 'unknown'
    /** The value that holds it on a quorum (a lock's `value`), or null. */
    readonly value: string | null
    /** How many nodes must agree. */
    readonly quorum: number
    /** With a `Lock`: whether that lock holds it on a quorum. */
    readonly ours?: boolean
    readonly nodes: ReadonlyArray<InspectedNode>
  }

  /** One node's answer for one resource: reachable with what it holds, or why not. */
  export type InspectedNode =
    | {
        /** `host:port/db`, or `cluster[…]`. */
        readonly node: string
        readonly reachable: true
        /** The lock key's value, or null when there is none (or it is another type). */
        readonly value: string | null
        /** The key holds another type than a string: no lock, but it keeps locks off. */
        readonly otherType: boolean
        /** Remaining time to live in ms; null when absent or without expiry. */
        readonly ttlMs: number | null
        /** The resource's fencing counter on this node, when it has one. */
        readonly fencingCounter: bigint | null
        /** With a `Lock`: whether this node holds that lock's value. */
        readonly ours?: boolean
      }
    | {
        readonly node: string
        readonly reachable: false
        /** e.g. `ERR_REDLOCK_NODE_TIMEOUT`, `ERR_REDLOCK_NODE_CONNECTION`. */
        readonly code: string
        readonly message: string
      }

  export interface ReleaseResult {
    /** How many of the nodes that answered still held the lock and deleted it. */
    readonly nodesHeld: number
    readonly attempts: ReadonlyArray<ExecutionStats>
  }

  /** The signal given to a `using` routine; `error` says why it aborted. */
  export type RedlockAbortSignal = AbortSignal & { error?: Error }

  /** A node-style callback (node-redlock v4). */
  export type Callback<T> = (error: Error | null, value?: T) => void

  /**
   * The errors of an operation. Each class has a stable `code` (also the class's static
   * `code`); a refused argument is instead a `TypeError` (`ERR_INVALID_ARG_TYPE`,
   * `ERR_INVALID_ARG_VALUE`) or a `RangeError` (`ERR_OUT_OF_RANGE`, `ERR_REDLOCK_CROSS_SLOT`),
   * thrown (or rejected) before anything is sent to Redis.
   *
   * `ERR_REDLOCK_QUORUM`: a quorum could not be reached in the retry window.
   */
  export class ExecutionError extends Error {
    static readonly code: string
    /** A stable code: `ERR_REDLOCK_QUORUM`, or the subclass's. */
    readonly code: string
    /** Every attempt's votes. */
    readonly attempts: ReadonlyArray<ExecutionStats>
    constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>, code?: string)
  }

  /** node-redlock v4's name for ExecutionError. */
  export { ExecutionError as LockError }

  /** `ERR_REDLOCK_RESOURCE_LOCKED`: another holder has the resource on enough nodes that no quorum was possible. */
  export class ResourceLockedError extends ExecutionError {
    static readonly code: 'ERR_REDLOCK_RESOURCE_LOCKED'
  }
  /** `ERR_REDLOCK_LOCK_EXPIRED`: the lock is no longer held on a quorum (expired, released or taken over). */
  export class LockExpiredError extends ExecutionError {
    static readonly code: 'ERR_REDLOCK_LOCK_EXPIRED'
  }
  /** `ERR_REDLOCK_CLOSED`: the Redlock was closed with `quit()`. */
  export class RedlockClosedError extends ExecutionError {
    static readonly code: 'ERR_REDLOCK_CLOSED'
  }
  /** `ERR_REDLOCK_ACQUIRE_TIMEOUT`: the lock was not acquired within `acquireTimeout`. */
  export class AcquireTimeoutError extends ExecutionError {
    static readonly code: 'ERR_REDLOCK_ACQUIRE_TIMEOUT'
  }
  /** `ERR_REDLOCK_MAX_HOLD`: an auto-extension reached its `maxHold` and let the lock expire. */
  export class MaxHoldError extends ExecutionError {
    static readonly code: 'ERR_REDLOCK_MAX_HOLD'
  }

  /** `ABORT_ERR`: an acquisition stopped by its `signal`; `cause` is the signal's reason. */
  export class AbortError extends Error {
    readonly code: 'ABORT_ERR'
    /** The attempts made before the abort, when any had started. */
    readonly attempts?: ReadonlyArray<ExecutionStats>
    constructor(message?: string, options?: { cause?: unknown })
  }

  /** A lock held (or once held) on a quorum of nodes. Made by `Redlock#acquire`. */
  export class Lock {
    private constructor()
    /** The locked resources. */
    readonly resources: string[]
    /** The random value stored under every key. */
    readonly value: string
    /** The lock's id (its value), for `releaseLock` / `renewLock`. */
    readonly id: string
    /** The resource as requested: a name or the list of names. */
    readonly resource: string | string[]
    /** The attempts of the operation that last acquired or extended it. */
    readonly attempts: ReadonlyArray<ExecutionStats>
    /** Wall-clock instant (ms since the epoch) at which the validity ends; 0 once released. */
    readonly expiration: number
    /** With `fencing: true`: a token that grows with every acquisition of the resource. */
    readonly fencingToken: bigint | undefined
    /** Ms of validity left, 0 once expired or released; no round trip. */
    readonly timeLeft: number
    /** Whether the validity has not ended; no round trip. */
    readonly valid: boolean
    /** Keeps the lock extended from the engine until `stop()`, `release()`, loss or `maxHold`. */
    autoExtend(options: AutoExtendOptions): AutoExtension
    /** Releases the lock (stopping its auto-extension first); resolves even when it had expired. */
    release(settings?: Settings): Promise<ReleaseResult>
    /** Extends the lock to `duration` ms from now, in place; resolves with this lock. */
    extend(duration: number, settings?: Settings): Promise<Lock>
    /** node-redlock v4. */
    unlock(callback?: Callback<ReleaseResult>): Promise<ReleaseResult>
    /**
     * Releases the lock, as `release()` does: `await using lock = await redlock.acquire(…)`
     * (TypeScript 5.2+) releases it at the end of the block. Typed `Promise<void>`, as
     * `AsyncDisposable` requires.
     */
    [Symbol.asyncDispose](): Promise<void>
  }
}

// The merged class and namespace under a second name, for the namespace's exports above.
import RedlockClass = Redlock

export = Redlock
