'use strict'
// One worker process of the demo (examples/demo.js forks several). It loops: pick a resource,
// take its lock with `using`, read the resource's shared counter from the parent, pause (the
// "slow" part of the update), write the value plus one back, release. The parent checks at the
// end that every counter equals the number of writes: a write made without really holding the
// lock would overwrite another worker's and show as a lost update.

const { performance } = require('node:perf_hooks')
const Redlock = require('..')

const { DEMO_URLS, DEMO_WORKER, DEMO_RESOURCES, DEMO_TTL } = process.env
const worker = Number(DEMO_WORKER)
const resources = DEMO_RESOURCES.split(',')
const ttl = Number(DEMO_TTL)
const WORK_MS = 2
const BACKOFF_MS = 100
/** A pause between two locks, so that the workers contend without spinning the CPU. */
const THINK_MS = 10

const now = () => performance.timeOrigin + performance.now()
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// Requests to the parent (the counters' keeper), answered in order of their ids.
const pending = new Map()
let nextRequest = 0
function ask(message) {
  return new Promise((resolve) => {
    const id = nextRequest++
    pending.set(id, resolve)
    process.send({ ...message, id })
  })
}

let stopping = false
process.on('message', (message) => {
  if (message.type === 'reply') {
    pending.get(message.id)(message.value)
    pending.delete(message.id)
  } else if (message.type === 'stop') {
    stopping = true
  }
})
// The parent decides when to stop; a Ctrl-C reaches the whole process group, this one included.
process.on('SIGINT', () => {})
process.on('disconnect', () => process.exit(0))

async function main() {
  const redlock = new Redlock(DEMO_URLS.split(','), {
    retryCount: 20,
    retryDelay: 20,
    retryJitter: 10,
    requestTimeout: 100,
  })
  const nodeErrors = {}
  redlock.on('error', (error) => {
    nodeErrors[error.code] = (nodeErrors[error.code] || 0) + 1
  })
  const report = setInterval(() => process.send({ type: 'node-errors', counts: nodeErrors }), 250)

  while (!stopping) {
    const resource = resources[Math.floor(Math.random() * resources.length)]
    const waitStart = now()
    try {
      await redlock.using([resource], ttl, async (signal) => {
        const grantedAt = now()
        process.send({ type: 'granted', worker, resource, at: grantedAt })
        const value = await ask({ type: 'read', resource })
        await sleep(WORK_MS)
        // Past its validity the lock protects nothing: better to drop the update.
        if (signal.aborted) throw signal.error
        await ask({ type: 'write', resource, value: value + 1 })
        process.send({ type: 'done', worker, resource, waitStart, grantedAt, doneAt: now() })
      })
      await sleep(Math.random() * THINK_MS)
    } catch (error) {
      process.send({
        type: 'failed',
        worker,
        resource,
        at: now(),
        name: error.name,
        code: error.code,
        message: error.message,
      })
      await sleep(BACKOFF_MS)
    }
  }
  clearInterval(report)
  await redlock.quit()
  process.send({ type: 'stats', stats: redlock.stats() })
  process.send({ type: 'node-errors', counts: nodeErrors }, () => process.exit(0))
}

main().catch((error) => {
  console.error(`worker ${worker}:`, error)
  process.exit(1)
})
