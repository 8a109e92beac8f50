// An ES module package ("type": "module"), compiled under NodeNext and under a bundler's
// resolution: each way an ES module imports redlock-rs and redlock-rs/sesame gives the class
// (constructable: `export default class` was TS2351 here), its types and its errors.
import Redlock, {
  Redlock as Named,
  Lock,
  LockError,
  ExecutionError,
  ResourceLockedError,
  LockExpiredError,
  RedlockClosedError,
  AcquireTimeoutError,
  MaxHoldError,
  AbortError,
  type Settings,
  type ResolvedSettings,
  type CallSettings,
  type UsingContext,
  type RedlockUsingContext,
  type ReleaseResult,
} from 'redlock-rs'
import * as everything from 'redlock-rs'
import Sesame, {
  Redlock as SesameNamed,
  Lock as SesameLock,
  ExecutionError as SesameExecutionError,
  type Settings as SesameSettings,
  type RedlockUsingContext as SesameUsingContext,
} from 'redlock-rs/sesame'

/** `true` only when A and B are the same type. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const same = <A, B>(proof: Same<A, B>): Same<A, B> => proof

export const redlock: Redlock = new Redlock(['redis://127.0.0.1:6379'], { db: 2, retryCount: 3 })
const named: Named = new Named(['redis://127.0.0.1:6379'])
const viaNamespace: Redlock = new everything.default(['redis://127.0.0.1:6379'])
same<typeof Redlock, typeof Named>(true)
same<Redlock, Named>(true)
same<typeof Redlock, typeof Redlock.default>(true)
same<typeof Redlock, typeof Redlock.Redlock>(true)
same<typeof Lock, typeof Redlock.Lock>(true)
same<typeof ExecutionError, typeof LockError>(true)
same<ExecutionError, LockError>(true)
same<UsingContext, RedlockUsingContext>(true)

const settings: ResolvedSettings = redlock.settings
const retries: number = settings.retryCount
const timeout: number | undefined = settings.acquireTimeout
const db: number | undefined = settings.db
const given: Settings = settings
const perCall: CallSettings = { ...given, signal: new AbortController().signal }

export async function run(): Promise<string> {
  const extensions: number = await redlock.using(['a'], 1000, perCall, async (signal, context) => {
    const lock: Lock = context.lock
    if (signal.aborted) throw signal.error
    return context.extensions + lock.expiration
  })
  try {
    const released: ReleaseResult = await (await redlock.acquire('b', 1000)).release()
    return `${extensions} ${released.nodesHeld}`
  } catch (error) {
    if (error instanceof ResourceLockedError) return error.code
    if (error instanceof LockExpiredError || error instanceof RedlockClosedError) return error.message
    if (error instanceof AcquireTimeoutError || error instanceof MaxHoldError) return error.name
    if (error instanceof ExecutionError) return `${error.attempts.length}`
    if (error instanceof AbortError) return error.code
    throw error
  }
}

// redlock-rs/sesame: the same exports, with its own Redlock (db defaults to 0).
const sesame: Sesame = new Sesame(new Set(['redis://127.0.0.1:6379']), { db: 1 })
const asMain: Redlock = sesame
same<typeof Sesame, typeof SesameNamed>(true)
same<typeof Sesame, typeof Sesame.default>(true)
same<typeof Sesame, typeof Sesame.Redlock>(true)
same<typeof Lock, typeof SesameLock>(true)
same<typeof ExecutionError, typeof SesameExecutionError>(true)
same<Settings, SesameSettings>(true)
same<UsingContext, SesameUsingContext>(true)
const sesameUsing: Promise<number> = sesame.using(['c'], 1000, async (_signal, { lock, extensions }) => {
  return lock.timeLeft + extensions
})

// @ts-expect-error: the using routine's second argument is the context, not the Lock
redlock.using(['d'], 1000, async (_signal, lock: Lock) => lock.value)
// @ts-expect-error: Locks are made by acquire (the constructor throws a TypeError)
new Lock()

void [named, viaNamespace, retries, timeout, db, sesameUsing, asMain]
