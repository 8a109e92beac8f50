// Types of `redlock-rs/sesame` (sesame.js), the entry point for code migrating from
// @sesamecare-oss/redlock: the main entry's exports, except that `Redlock` (the module
// itself, `default` and `Redlock`) is a subclass whose `db` setting defaults to 0, as sesame's
// does. Same shape as index.d.ts: `export =` a class merged with a namespace.

import Main = require('./index.js')

/**
 * A Redlock whose lock keys live in database `settings.db` on every plain member, 0 unless
 * given, whatever database the clients are on (as in @sesamecare-oss/redlock).
 */
declare class Redlock extends Main {
  /**
   * @param clients The quorum's members, any iterable (an Array, a Set…) of at least one:
   *   URLs, option objects, cluster descriptions, or ioredis / node-redis clients.
   * @param settings The defaults of every operation; `db` defaults to 0.
   */
  constructor(clients: Main.Clients, settings?: Main.Settings)
}

declare namespace Redlock {
  // This class, also as `default` and `Redlock`, as in index.d.ts.
  export { SesameRedlock as default, SesameRedlock as Redlock }

  export import Lock = Main.Lock
  export import Semaphore = Main.Semaphore
  export import ReadWriteLock = Main.ReadWriteLock
  export import ExecutionError = Main.ExecutionError
  export import LockError = Main.LockError
  export import ResourceLockedError = Main.ResourceLockedError
  export import LockExpiredError = Main.LockExpiredError
  export import RedlockClosedError = Main.RedlockClosedError
  export import AcquireTimeoutError = Main.AcquireTimeoutError
  export import MaxHoldError = Main.MaxHoldError
  export import AbortError = Main.AbortError

  export import Resources = Main.Resources
  export import Clients = Main.Clients
  export import Client = Main.Client
  export import ClientObject = Main.ClientObject
  export import ClusterClient = Main.ClusterClient
  export import AddressMap = Main.AddressMap
  export import StartupNode = Main.StartupNode
  export import ClientOptions = Main.ClientOptions
  export import Pem = Main.Pem
  export import TlsOptions = Main.TlsOptions
  export import Settings = Main.Settings
  export import ResolvedSettings = Main.ResolvedSettings
  export import CallSettings = Main.CallSettings
  export import UsingContext = Main.UsingContext
  export import RedlockUsingContext = Main.RedlockUsingContext
  export import UsingRoutine = Main.UsingRoutine
  export import AutoExtendOptions = Main.AutoExtendOptions
  export import AutoExtension = Main.AutoExtension
  export import ExecutionStats = Main.ExecutionStats
  export import NodeError = Main.NodeError
  export import ReleaseResult = Main.ReleaseResult
  export import RedlockAbortSignal = Main.RedlockAbortSignal
  export import Callback = Main.Callback
}

// The merged class and namespace under a second name, for the namespace's exports above.
import SesameRedlock = Redlock

export = Redlock
