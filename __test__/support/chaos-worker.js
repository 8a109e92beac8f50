'use strict'

// One contender of the mutual-exclusion check, run as its own OS process (child_process.fork)
// with its own Redlock. Its loops take locks on a few shared resources until the deadline and
// record every critical section as checkpoints `[seq, localMs, expiration]`: `seq` is an INCR
// on the fault-free clock server (one total order for every process), `localMs` this
// process's clock right after the INCR answered, `expiration` the lock's expiration as the
// holder believed it at that moment. The coordinator (chaos.js) checks the sections.

const path = require('node:path')
const { Conn } = require('./servers')
const { seededRandom } = require('./faults')

const Redlock = require(path.join(__dirname, '..', '..'))

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)))

let go
const started = new Promise((resolve) => (go = resolve))
process.on('message', (message) => {
  if (message.type === 'go') go(message.deadline)
  if (message.type !== 'config') return
  run(message.config).then(
    (result) => process.send({ type: 'done', ...result }, () => process.exit(0)),
    (error) => process.send({ type: 'failed', message: String(error && error.stack) }, () => process.exit(1)),
  )
})

async function run(config) {
  const rand = seededRandom(config.seed)
  const stats = {
    acquires: 0,
    granted: 0,
    extended: 0,
    extendFailed: 0,
    released: 0,
    errors: {},
    nodeEvents: {},
    nodeEventSamples: {},
    unexpected: [],
    unhandled: [],
    maxMs: { acquire: 0, extend: 0, release: 0 },
    slow: [],
  }
  const sections = []
  process.on('unhandledRejection', (reason) => {
    stats.unhandled.push(String((reason && reason.stack) || reason))
  })

  const settings = config.settings
  const redlock = new Redlock(config.urls, settings)
  redlock.on('error', (e) => {
    stats.nodeEvents[e.code] = (stats.nodeEvents[e.code] || 0) + 1
    if (!stats.nodeEventSamples[e.code]) stats.nodeEventSamples[e.code] = e.message
  })
  const clock = new Conn(config.clockUrl, { timeout: 10000 })
  const tick = () => clock.send('INCR', 'chaos:seq')

  // The longest an operation may take: every attempt bounded by requestTimeout, plus the
  // pauses between attempts, plus slack for a loaded machine.
  const bound =
    (settings.retryCount + 1) * settings.requestTimeout +
    settings.retryCount * (settings.retryDelay + settings.retryJitter) +
    config.slackMs

  function failed(kind, error) {
    const code = (error && error.code) || 'no code'
    const key = `${kind} ${code}`
    stats.errors[key] = (stats.errors[key] || 0) + 1
    const expected =
      error instanceof Redlock.ExecutionError && /^ERR_REDLOCK_(QUORUM|RESOURCE_LOCKED|LOCK_EXPIRED)$/.test(code)
    if (!expected) stats.unexpected.push(`${kind}: ${(error && error.stack) || String(error)}`)
  }

  async function timed(kind, operation) {
    const started = Date.now()
    try {
      return await operation()
    } finally {
      const ms = Date.now() - started
      if (ms > stats.maxMs[kind]) stats.maxMs[kind] = ms
      if (ms > bound) stats.slow.push(`${kind} took ${ms} ms (bound ${bound} ms)`)
    }
  }

  async function loop() {
    while (Date.now() < config.deadline) {
      // A resource is a name, or a list of names locked together (checked as one).
      const resource = rand.pick(config.resources)
      const names = Array.isArray(resource) ? resource : [resource]
      const ttl = rand.int(config.ttl[0], config.ttl[1])
      // With permits: 1 to maxCount permits of the semaphore of that name; with rw: a side of
      // the read-write lock of that name.
      const count = config.permits > 0 ? rand.int(1, config.maxCount) : 1
      const mode = config.rw ? (rand.chance(config.writeChance) ? 'w' : 'r') : undefined
      const acquire = () => {
        if (config.permits > 0) return redlock.semaphore(names.join('+'), config.permits).acquire(ttl, { count })
        if (mode) return redlock.readWriteLock(names.join('+'))[mode === 'w' ? 'write' : 'read'].acquire(ttl)
        return redlock.acquire(names, ttl)
      }
      let lock
      stats.acquires += 1
      try {
        lock = await timed('acquire', acquire)
      } catch (error) {
        failed('acquire', error)
        await sleep(rand.int(0, 40))
        continue
      }
      stats.granted += 1
      const section = { r: names.join('+'), n: count, mode, w: config.id, v: lock.value, cp: [] }
      sections.push(section)
      const checkpoint = async () => {
        const expiration = lock.expiration
        const seq = await tick()
        section.cp.push([seq, Date.now(), expiration])
      }
      // The section: hold a while, maybe extend and hold again; never past expiration - margin.
      await checkpoint()
      const holdUntil = (until) => sleep(Math.min(until, lock.expiration - config.marginMs) - Date.now())
      // Some sections may hold longer (drawn only when asked for, so that other runs replay).
      const holdMs = config.longHoldChance > 0 && rand.chance(config.longHoldChance) ? config.longHoldMs : config.holdMs
      await holdUntil(Date.now() + rand.int(0, holdMs))
      if (rand.chance(config.extendChance)) {
        await checkpoint()
        try {
          await timed('extend', () => lock.extend(ttl))
          stats.extended += 1
          await checkpoint()
          await holdUntil(Date.now() + rand.int(0, holdMs))
        } catch (error) {
          stats.extendFailed += 1
          failed('extend', error)
        }
      }
      await checkpoint()
      try {
        await timed('release', () => lock.release())
        stats.released += 1
      } catch (error) {
        failed('release', error)
      }
    }
  }

  process.send({ type: 'ready' })
  config.deadline = await started
  await Promise.all(Array.from({ length: config.loops }, loop))
  await redlock.quit()
  clock.close()
  return { id: config.id, stats, sections }
}
