#!/usr/bin/env node
'use strict'
// The examples of docs/WAITING.md, run against five throwaway redis-servers:
// wake-on-release, using, autoExtend with maxHold, and cancellation.

const Redlock = require('..')
const { startServers, stopServers } = require('../__test__/support/servers.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function main() {
  const servers = await startServers(5)
  const urls = servers.map((s) => s.url)
  const redlock = new Redlock(urls, { retryCount: 20, retryDelay: 1000 })
  try {
    // Wake-on-release: the waiter would poll once a second, but wakes on the release.
    const held = await redlock.acquire(['report'], 10_000)
    const started = Date.now()
    const waiting = redlock.acquire(['report'], 10_000)
    await sleep(50)
    await held.release()
    const next = await waiting
    console.log(`wake-on-release: handed over ${Date.now() - started - 50} ms after the release`)
    await next.release()

    // using: the engine extends the lock while the routine runs, busy event loop or not.
    const result = await redlock.using(['account:42'], 1000, async (signal) => {
      const until = Date.now() + 2500
      while (Date.now() < until) {} // blocks the event loop for 2.5 lock durations
      return signal.aborted ? 'lost' : 'still held'
    })
    console.log(`using: after blocking the event loop, the lock was ${result}`)

    // autoExtend with maxHold: extended until maxHold, then lost on purpose.
    const lock = await redlock.acquire(['job:7'], 600)
    const lost = new Promise((resolve) => {
      lock.autoExtend({ duration: 600, settings: { automaticExtensionThreshold: 300 }, maxHold: 1500, onLost: resolve })
    })
    const reason = await lost
    console.log(`autoExtend: released its hold after maxHold with ${reason.name} (${reason.code})`)
    await lock.release()

    // Cancellation and deadlines.
    const blocker = await redlock.acquire(['cache:rebuild'], 30_000)
    try {
      await redlock.acquire(['cache:rebuild'], 30_000, { signal: AbortSignal.timeout(300) })
    } catch (error) {
      console.log(`signal: ${error.name} (${error.code})`)
    }
    try {
      await redlock.acquire(['cache:rebuild'], 30_000, { acquireTimeout: 300 })
    } catch (error) {
      console.log(`acquireTimeout: ${error.name} (${error.code})`)
    }
    console.log(`validity: ${blocker.valid ? 'valid' : 'expired'}, ${blocker.timeLeft} ms left`)
    await blocker.release()
    console.log(`after release: ${blocker.valid ? 'valid' : 'not valid'}, ${blocker.timeLeft} ms left`)
  } finally {
    await redlock.quit()
    await stopServers(servers)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
