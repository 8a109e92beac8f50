// A CommonJS package, compiled under NodeNext and under a bundler's resolution (module
// preserve): `import … = require()`, default and named imports of redlock-rs and
// redlock-rs/sesame all give the same class, types and errors.
import Redlock = require('redlock-rs')
import Default, { Redlock as Named, Lock, LockError, ExecutionError, type Settings, type UsingContext } from 'redlock-rs'
import * as everything from 'redlock-rs'
import Sesame = require('redlock-rs/sesame')
import SesameDefault, { Redlock as SesameNamed, Lock as SesameLock, type RedlockUsingContext } from 'redlock-rs/sesame'

/** `true` only when A and B are the same type. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false
const same = <A, B>(proof: Same<A, B>): Same<A, B> => proof

export const redlock: Redlock = new Redlock(['redis://127.0.0.1:6379'], { db: 2 })
const fromDefault: Default = new Default(['redis://127.0.0.1:6379'])
const fromNamed: Named = new Named(['redis://127.0.0.1:6379'])
const fromStar: Redlock = new everything.Redlock(['redis://127.0.0.1:6379'])
same<typeof Redlock, typeof Default>(true)
same<typeof Redlock, typeof Named>(true)
same<typeof Redlock, typeof Redlock.default>(true)
same<typeof Redlock, typeof Redlock.Redlock>(true)
same<typeof Lock, typeof Redlock.Lock>(true)
same<Redlock.Lock, Lock>(true)
same<typeof ExecutionError, typeof LockError>(true)
same<Redlock.Settings, Settings>(true)
same<UsingContext, Redlock.RedlockUsingContext>(true)

export async function run(error: unknown): Promise<string> {
  const result = await redlock.using('r', 1000, { retryCount: 2 }, async (_signal, context: UsingContext) => {
    return `${context.lock.value} ${context.extensions}`
  })
  if (error instanceof Redlock.ResourceLockedError) return error.code
  if (error instanceof LockError) return `${error.attempts.length}`
  if (error instanceof Redlock.AbortError) return error.code
  return result
}

const sesame: Sesame = new Sesame(['redis://127.0.0.1:6379'])
const asMain: Redlock = sesame
same<typeof Sesame, typeof SesameDefault>(true)
same<typeof Sesame, typeof SesameNamed>(true)
same<typeof Sesame, typeof Sesame.default>(true)
same<typeof Lock, typeof SesameLock>(true)
same<typeof Lock, typeof Sesame.Lock>(true)
same<Sesame.Settings, Settings>(true)
same<UsingContext, RedlockUsingContext>(true)

// @ts-expect-error: the routine's second argument is the context, not the Lock
redlock.using('r', 1000, async (_signal, lock: Lock) => lock.value)

void [fromDefault, fromNamed, fromStar, asMain]
