'use strict'

// Run by leaks.test.js in a child process (node --expose-gc): CYCLES acquire/release cycles
// at CONCURRENCY over the servers in URLS, sampling memory and open descriptors along the
// way, then quit() and a last sample. Prints one JSON line: { samples, errors, final }.

const fs = require('node:fs')
const path = require('node:path')
const Redlock = require(path.join(__dirname, '..', '..'))

const urls = process.env.URLS.split(',')
const cycles = Number(process.env.CYCLES)
const concurrency = Number(process.env.CONCURRENCY)
const every = Number(process.env.SAMPLE_EVERY)

/** Open descriptors of this process, and how many of them are sockets. */
function descriptors() {
  const fds = fs.readdirSync('/proc/self/fd')
  let sockets = 0
  for (const fd of fds) {
    try {
      if (fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('socket:')) sockets += 1
    } catch {}
  }
  return { fds: fds.length, sockets }
}

function sample(done) {
  global.gc()
  global.gc()
  const m = process.memoryUsage()
  return {
    done,
    rssMB: +(m.rss / 2 ** 20).toFixed(1),
    heapMB: +(m.heapUsed / 2 ** 20).toFixed(1),
    externalMB: +(m.external / 2 ** 20).toFixed(1),
    handles: process._getActiveHandles().length,
    ...descriptors(),
  }
}

async function main() {
  const baseline = sample(0)
  const redlock = new Redlock(urls, { retryCount: 3, retryDelay: 20, retryJitter: 10 })
  const samples = []
  const errors = {}
  let started = 0
  let done = 0
  let nextSample = every
  const t0 = Date.now()
  async function loop(slot) {
    const resource = `leak:{${slot}}`
    while (started < cycles) {
      started += 1
      try {
        const lock = await redlock.acquire([resource], 10000)
        await lock.release()
      } catch (error) {
        errors[error.code] = (errors[error.code] || 0) + 1
      }
      done += 1
      if (done >= nextSample) {
        nextSample += every
        samples.push(sample(done))
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, (_, i) => loop(i)))
  const seconds = (Date.now() - t0) / 1000
  const beforeQuit = sample(done)
  await redlock.quit()
  // The engine closes its sockets from its own threads: give it a moment.
  let afterQuit = sample(done)
  for (let i = 0; i < 60 && afterQuit.sockets > baseline.sockets; i++) {
    await new Promise((r) => setTimeout(r, 50))
    afterQuit = sample(done)
  }
  console.log(JSON.stringify({ cycles: done, seconds, errors, baseline, samples, beforeQuit, afterQuit }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
