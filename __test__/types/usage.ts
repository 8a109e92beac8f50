// Type-checked (never run) by `npm test` (run.js): each API shape of index.d.ts as a user
// writes it, in CommonJS with the classic resolution (node10) and no esModuleInterop.
import Redlock, { ExecutionError, Lock, LockError, ResourceLockedError, type Settings } from '../..'
import type { AutoExtension, ExecutionStats, Inspection, RedlockAbortSignal, ReleaseResult, UsingContext } from '../..'
import { AbortError, AcquireTimeoutError, MaxHoldError, ReadWriteLock, Semaphore } from '../..'
import IORedis from 'ioredis'

async function permits(redlock: Redlock): Promise<string[]> {
  const uploads: Semaphore = redlock.semaphore('uploads', 4)
  const two: Lock = await uploads.acquire(1000, { count: 2, retryCount: -1, signal: AbortSignal.timeout(5000) })
  await two.release()
  const limit: number = uploads.permits
  return uploads.using(1000, async (signal, { lock }) => (signal.aborted || limit < 1 ? [] : lock.resources))
}

async function readers(redlock: Redlock): Promise<bigint | undefined> {
  const doc: ReadWriteLock = redlock.readWriteLock('doc')
  const seen: number = await doc.read.using(1000, { retryCount: 3 }, async (_, { lock }) => lock.timeLeft)
  const writer: Lock = await doc.write.acquire(Math.max(1000, seen), { fencing: true, signal: AbortSignal.timeout(500) })
  await writer.release()
  return writer.fencingToken
}

async function waiting(redlock: Redlock): Promise<boolean> {
  const controller = new AbortController()
  try {
    const lock = await redlock.acquire('r', 1000, { signal: controller.signal, acquireTimeout: 500, wakeOnRelease: true, fencing: true, restartGuard: 'strict', restartGuardWindow: 30_000 })
    const watch: AutoExtension = lock.autoExtend({ duration: 1000, maxHold: 60_000, onLost: (e) => console.log(e.code) })
    watch.signal.addEventListener('abort', () => console.log(watch.signal.error))
    await watch.stop()
    const token: bigint | undefined = lock.fencingToken
    return lock.valid && lock.timeLeft > 0 && token !== 0n
  } catch (error) {
    if (error instanceof AbortError) return error.code === 'ABORT_ERR'
    if (error instanceof AcquireTimeoutError || error instanceof MaxHoldError) return false
    throw error
  }
}

async function v5(redlock: Redlock): Promise<number> {
  const lock: Lock = await redlock.acquire(['a', 'b'], 5000, { retryCount: 3, retryStrategy: 'exponential' })
  const same: Lock = await lock.extend(5000)
  const released: ReleaseResult = await redlock.release(same)
  const stats: ExecutionStats = released.attempts[0]
  const size: number = stats.votesFor.size + stats.votesAgainst.size + released.nodesHeld
  const result: string = await redlock.using(['c'], 5000, async (signal: RedlockAbortSignal) => {
    if (signal.aborted) throw signal.error
    return 'done'
  })
  await redlock.using('d', 5000, { automaticExtensionThreshold: 200 }, async () => result.length)
  const extended: number = await redlock.using('e', 5000, undefined, async (signal, context: UsingContext) => {
    const held: Lock = context.lock
    return signal.aborted ? -1 : context.extensions + held.timeLeft
  })
  const resources: readonly string[] = ['f', 'g']
  await redlock.using(resources, 5000, async (_signal, { lock }) => lock.release())
  redlock.on('error', (error) => console.log(error.code, error.node))
  try {
    await redlock.acquire('a', 100)
  } catch (error) {
    if (error instanceof ResourceLockedError) console.log(error.attempts.length)
    else if (error instanceof ExecutionError) console.log(error.code)
  }
  const one: Inspection = await redlock.inspect('a', { requestTimeout: 200 })
  const mine: Inspection[] = await redlock.inspect(lock)
  const owned: boolean = mine.every((r) => r.ours === true) && one.verdict !== 'split'
  for (const node of one.nodes) {
    if (node.reachable) console.log(node.value, node.ttlMs, node.fencingCounter)
    else console.log(node.code, node.message)
  }
  const busy: boolean = (await redlock.isLocked(['a', 'b'])) || owned
  const { operations, nodes, handoffs } = redlock.stats()
  console.log(operations.acquire.latencyMs.p99, operations.release.outcomes.ok, nodes[0].errors, handoffs)
  const observed = new Redlock(['redis://127.0.0.1:6379'], { telemetry: { resourceNames: false }, retryCount: 1 })
  await observed.quit()
  await lock[Symbol.asyncDispose]()
  await redlock.quit()
  return size + lock.expiration + extended + (busy ? one.quorum : 0)
}

function v4(redlock: Redlock): void {
  redlock.lock('a', 1000, (error, lock) => {
    if (error instanceof LockError || !lock) return
    lock.unlock((err) => console.log(err))
    redlock.extend(lock, 1000, (_: Error | null, extended?: Lock) => extended?.unlock())
  })
  redlock.on('clientError', (error) => console.log(error.message))
}

async function original(redlock: Redlock): Promise<void> {
  const lock = await redlock.acquireLock('resource', 1000)
  const renewed: Lock = await redlock.renewLock('resource', lock.id, 2000)
  await redlock.releaseLock(renewed.resource, renewed.id)
}

const clients = ['redis://127.0.0.1:6379', { host: '127.0.0.1', port: 6380, keyPrefix: 'app:' }]
const redlock = new Redlock(clients, { driftFactor: 0.01, retryCount: -1, requestTimeout: 100, db: 0 })
const settings: Settings = redlock.settings
const filledIn: number = redlock.settings.retryJitter + redlock.settings.automaticExtensionThreshold
const Default: typeof Redlock = Redlock.default
const byDefault: Redlock.default = new Redlock.default(clients)
const partial: Partial<Settings> = { retryDelay: 100 }
void [v5, v4, original, waiting, settings, filledIn, Default, byDefault, partial, Redlock.Lock, Redlock.ExecutionError]

function clusters(): Redlock {
  const io = new IORedis.Cluster([{ host: '127.0.0.1', port: 7000 }], { keyPrefix: 'app:' })
  const redlock = new Redlock([
    ['redis://127.0.0.1:7200', 'redis://127.0.0.1:7201'],
    { cluster: true, nodes: ['127.0.0.1:7300', 7301, { host: '127.0.0.1', port: 7302 }], password: 'x' },
    { cluster: { nodes: ['127.0.0.1:7400'] }, natMap: { '10.0.0.4:7400': { host: 'localhost', port: 17400 } } },
    { rootNodes: [{ url: 'redis://127.0.0.1:7500' }], defaults: { password: 'x' } },
    io,
    new IORedis(6390, 'localhost', { tls: { ca: 'PEM' } }),
  ])
  const pending: number = redlock.inFlight
  return pending >= 0 ? redlock : redlock
}
void clusters
