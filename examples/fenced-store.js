#!/usr/bin/env node
'use strict'
// Fencing tokens at the protected resource (docs/SAFETY.md), against five throwaway
// redis-servers: a holder pauses past its lock's expiry, a second holder takes the lock and
// writes, and the first holder's late write is refused by the store.
//
//   node examples/fenced-store.js
//
// Exits with status 0 when the stale write was refused, 1 otherwise.

const Redlock = require('..')
const { startServers, stopServers } = require('../__test__/support/servers.js')

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/**
 * The resource a lock protects: here an in-process key-value store, in real life a database,
 * a file service or an API. It remembers the highest token it has accepted per resource and
 * refuses a write whose token is not higher. The check and the write must be one atomic step
 * in the store (here, one synchronous function; in SQL, a conditional UPDATE).
 */
class FencedStore {
  #values = new Map()
  #highest = new Map()

  write(resource, token, value) {
    if (typeof token !== 'bigint') throw new TypeError('a fencing token is required')
    const highest = this.#highest.get(resource)
    if (highest !== undefined && token <= highest) {
      return { ok: false, reason: `token ${token} <= highest seen ${highest}` }
    }
    this.#highest.set(resource, token)
    this.#values.set(resource, value)
    return { ok: true }
  }

  read(resource) {
    return this.#values.get(resource)
  }
}

async function main() {
  const servers = await startServers(5)
  const urls = servers.map((s) => s.url)
  const store = new FencedStore()
  // Two clients, as if in two processes; fencing on for every acquisition.
  const alice = new Redlock(urls, { fencing: true, retryCount: 50, retryDelay: 50 })
  const bob = new Redlock(urls, { fencing: true, retryCount: 50, retryDelay: 50 })
  const resource = 'invoice:1001'
  const ttl = 300
  let staleRefused = false
  try {
    const first = await alice.acquire([resource], ttl)
    console.log(`alice: acquired ${resource} with token ${first.fencingToken} for ${ttl} ms`)

    // Alice stalls (a GC pause, a swapped-out process, a slow disk) for longer than the TTL.
    // Her lock expires meanwhile; she does not know it yet.
    console.log(`alice: pauses for ${ttl * 2} ms...`)
    const alicePause = sleep(ttl * 2)

    // Bob gets the lock as soon as it expires, and writes.
    const second = await bob.acquire([resource], 5000)
    console.log(`bob:   acquired ${resource} with token ${second.fencingToken}`)
    const bobWrite = store.write(resource, second.fencingToken, 'paid by bob')
    console.log(`bob:   write with token ${second.fencingToken}: ${bobWrite.ok ? 'accepted' : 'REFUSED'}`)

    // Alice wakes up and writes with the token of the lock she no longer holds.
    await alicePause
    const aliceWrite = store.write(resource, first.fencingToken, 'paid by alice')
    if (aliceWrite.ok) {
      console.log(`alice: stale write with token ${first.fencingToken}: ACCEPTED (unsafe)`)
    } else {
      staleRefused = true
      console.log(`alice: stale write with token ${first.fencingToken}: rejected (${aliceWrite.reason})`)
    }
    console.log(`store: ${resource} = ${JSON.stringify(store.read(resource))}`)
    await second.release()
    await first.release() // resolves: releasing an expired lock is harmless
  } finally {
    await alice.quit()
    await bob.quit()
    await stopServers(servers)
  }
  if (!staleRefused || store.read(resource) !== 'paid by bob') process.exitCode = 1
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
