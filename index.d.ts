// Types of redlock-rs's public API (index.js). The native binding's own types are in
// binding.d.ts; users import from here.

import { EventEmitter } from 'node:events'

/** A Redis server: a `redis://` or `rediss://` URL, an options object, or an ioredis / node-redis client. */
export type Client = string | ClientOptions | ClientObject | ClusterClient

/**
 * A Redis Cluster as one member of the quorum: its startup nodes as a list, options with
 * `cluster`, node-redis `createCluster` options, or an ioredis `Cluster` / node-redis cluster.
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
  | ClusterObject

/**
 * Where to reach the nodes a cluster announces at addresses this process cannot use (NAT,
 * containers): `"host:port"` as announced, to the address to dial. ioredis calls it
 * `natMap`, node-redis `nodeAddressMap`; both are read from cluster clients too.
 */
export type AddressMap = { readonly [announced: string]: { host?: string; port?: number } }

/** One startup node of a cluster: a URL, `host:port`, a port, or node options. */
export type StartupNode = string | number | ClientOptions

/**
 * An existing cluster client: an ioredis `Cluster` (`isCluster`, `startupNodes`, `options`)
 * or a node-redis cluster (its `rootNodes` and `defaults` are read).
 */
export type ClusterObject =
  | { readonly isCluster: boolean }
  | { getSlotRandomNode(slot: number): unknown }

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

/** An existing client object (ioredis, node-redis): its `options` are read. */
export interface ClientObject {
  options: ClientOptions
  [key: string]: unknown
}

/** Behaviour of a Redlock; every field can be given to the constructor and per call. */
export interface Settings {
  /** Expected clock drift, as a fraction of the duration. Default 0.01. */
  readonly driftFactor: number
  /** Retries after the first attempt; -1 retries until acquired. Default 10. */
  readonly retryCount: number
  /** Pause between attempts, ms. Default 200. */
  readonly retryDelay: number
  /** Random ± added to each pause, ms. Default 100. */
  readonly retryJitter: number
  /** `'fixed'` (default) or `'exponential'` (the pause doubles up to `maxRetryDelay`). */
  readonly retryStrategy: 'fixed' | 'exponential'
  /** Cap of the exponential pause, ms. Default 5000. */
  readonly maxRetryDelay: number
  /** How long one node may take to answer one request, ms. Default 500. */
  readonly requestTimeout: number
  /** How long before expiration `using` extends the lock, ms. Default 500. */
  readonly automaticExtensionThreshold: number
  /** Take a fencing token with every acquisition (`lock.fencingToken`). Default `false`. */
  readonly fencing: boolean
  /** Wake a waiter as soon as the holder releases (default `true`), or only poll (`false`). */
  readonly wakeOnRelease: boolean
  /** The longest an acquisition may wait in all, ms. Default: only the retries bound it. */
  readonly acquireTimeout?: number
}

/** Per-call settings: any of the settings, and for acquisitions an `AbortSignal`. */
export interface CallSettings extends Partial<Settings> {
  /** Aborting it stops the acquisition, which rejects with `AbortError`. */
  signal?: AbortSignal
}

/** What `autoExtend` needs to know. */
export interface AutoExtendOptions {
  /** Each extension's duration, ms. */
  duration: number
  /** `automaticExtensionThreshold` and the extension's retry settings. */
  settings?: Partial<Settings>
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
  readonly votesAgainst: Map<string, Error & { code: string; node: string }>
}

/** What a release resolves with. */
export interface ReleaseResult {
  /** How many of the nodes that answered still held the lock and deleted it. */
  readonly nodesHeld: number
  readonly attempts: ReadonlyArray<ExecutionStats>
}

/** The signal given to a `using` routine; `error` says why it aborted. */
export type RedlockAbortSignal = AbortSignal & { error?: Error }

export type Callback<T> = (error: Error | null, value?: T) => void

/** A quorum could not be reached in the retry window. */
export class ExecutionError extends Error {
  readonly code: string
  readonly attempts: ReadonlyArray<ExecutionStats>
  constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>, code?: string)
}

/** Another holder has the resource on enough nodes that no quorum was possible. */
export class ResourceLockedError extends ExecutionError {
  constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>)
}

/** The lock is no longer held on a quorum (expired, released or taken over). */
export class LockExpiredError extends ExecutionError {
  constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>)
}

/** The Redlock was closed with `quit()`. */
export class RedlockClosedError extends ExecutionError {
  constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>)
}

/** The lock was not acquired within `acquireTimeout`. */
export class AcquireTimeoutError extends ExecutionError {
  constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>)
}

/** An auto-extension reached its `maxHold` and let the lock expire. */
export class MaxHoldError extends ExecutionError {
  constructor(message: string, attempts?: ReadonlyArray<ExecutionStats>)
}

/** An acquisition stopped by its `signal`; `cause` is the signal's reason. */
export class AbortError extends Error {
  readonly code: 'ABORT_ERR'
  constructor(message?: string, options?: { cause?: unknown })
}

/** node-redlock v4's name for ExecutionError. */
export { ExecutionError as LockError }

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
  release(settings?: Partial<Settings>): Promise<ReleaseResult>
  extend(duration: number, settings?: Partial<Settings>): Promise<Lock>
  /** node-redlock v4. */
  unlock(callback?: Callback<ReleaseResult>): Promise<ReleaseResult>
  [Symbol.asyncDispose](): Promise<ReleaseResult>
}

/** A Redlock client over N independent Redis masters. */
export default class Redlock extends EventEmitter {
  constructor(clients: ReadonlyArray<Client>, settings?: Partial<Settings>)
  readonly settings: Settings
  /** The members, as `host:port/db` (a cluster: `cluster[host:port,…]`). */
  readonly nodes: string[]
  /**
   * Requests sent and not yet answered or timed out: an operation answers at quorum, and the
   * other members' requests may still be on their way.
   */
  readonly inFlight: number

  acquire(resources: string | string[], duration: number, settings?: CallSettings): Promise<Lock>
  acquire(resources: string | string[], duration: number, callback: Callback<Lock>): Promise<Lock>
  release(lock: Lock, settings?: Partial<Settings>): Promise<ReleaseResult>
  release(lock: Lock, callback: Callback<ReleaseResult>): Promise<ReleaseResult>
  extend(lock: Lock, duration: number, settings?: Partial<Settings>): Promise<Lock>
  extend(lock: Lock, duration: number, callback: Callback<Lock>): Promise<Lock>
  using<T>(
    resources: string | string[],
    duration: number,
    settings: CallSettings,
    routine: (signal: RedlockAbortSignal, lock: Lock) => Promise<T>,
  ): Promise<T>
  using<T>(
    resources: string | string[],
    duration: number,
    routine: (signal: RedlockAbortSignal, lock: Lock) => Promise<T>,
  ): Promise<T>
  quit(callback?: Callback<void>): Promise<void>
  /** Keeps `lock` extended from the engine; see `Lock#autoExtend`. */
  autoExtend(lock: Lock, options: AutoExtendOptions): AutoExtension

  /** The original design: acquire `resource` for `ttl` ms. */
  acquireLock(resource: string | string[], ttl: number): Promise<Lock>
  /** The original design: release the lock on `resource` whose id is `lockId`. */
  releaseLock(resource: string | string[], lockId: string): Promise<ReleaseResult>
  /** The original design: extend the lock on `resource` whose id is `lockId`. */
  renewLock(resource: string | string[], lockId: string, ttl: number): Promise<Lock>

  /** node-redlock v4. */
  lock(resource: string | string[], ttl: number, callback?: Callback<Lock>): Promise<Lock>
  /** node-redlock v4. */
  unlock(lock: Lock, callback?: Callback<ReleaseResult>): Promise<ReleaseResult>

  on(event: 'error' | 'clientError', listener: (error: Error & { code: string; node: string }) => void): this
  on(event: string | symbol, listener: (...args: any[]) => void): this

  static readonly default: typeof Redlock
  static readonly Redlock: typeof Redlock
  static readonly Lock: typeof Lock
  static readonly ExecutionError: typeof ExecutionError
  static readonly ResourceLockedError: typeof ResourceLockedError
  static readonly LockExpiredError: typeof LockExpiredError
  static readonly RedlockClosedError: typeof RedlockClosedError
  static readonly LockError: typeof ExecutionError
  static readonly AcquireTimeoutError: typeof AcquireTimeoutError
  static readonly MaxHoldError: typeof MaxHoldError
  static readonly AbortError: typeof AbortError
}

export { Redlock }
