#!/usr/bin/env node
'use strict'
// A Redis Cluster as one member of the quorum, beside two plain masters, all throwaway
// servers started here: where a lock's keys land, why the keys of one lock need a hash tag,
// and locks that keep working while the cluster moves their slot to another master.

const Redlock = require('..')
const { startServers, stopServers, command } = require('../__test__/support/servers.js')
const { startCluster } = require('../__test__/support/cluster.js')

async function main() {
  const [plain, cluster] = await Promise.all([startServers(2), startCluster({ masters: 3 })])
  // Two plain masters and one cluster: three votes, two make a quorum.
  const redlock = new Redlock([plain[0].url, plain[1].url, cluster.seeds])
  try {
    console.log(`members: ${redlock.nodes.join(' | ')}`)

    // One order's resources share the hash tag {order:42}: one slot, one master, one script.
    const resources = ['{order:42}:payment', '{order:42}:invoice']
    const lock = await redlock.acquire(resources, 5000)
    const master = await cluster.masterFor(resources[0])
    console.log(`locked ${resources.join(' + ')} on the cluster's master :${master.port} (slot ${cluster.slotOf(resources[0])})`)
    await lock.release()

    // Without a common tag the keys fall in different slots: refused before anything is sent.
    try {
      await redlock.acquire(['payment', 'invoice'], 5000)
    } catch (error) {
      console.log(`without a hash tag: ${error.name} ${error.code}`)
    }

    // Four workers add to a counter under the lock while the slot moves to another master.
    const counter = '{order:42}:total'
    let increments = 0
    let stop = false
    const worker = async () => {
      const own = new Redlock([plain[0].url, plain[1].url, cluster.seeds], { retryDelay: 20, retryJitter: 10 })
      while (!stop) {
        await own.using(resources, 2000, async () => {
          const total = Number(await cluster.command(counter, 'GET', counter)) || 0
          await cluster.command(counter, 'SET', counter, String(total + 1))
          increments += 1
        })
      }
      await own.quit()
    }
    // A worker's failure is kept for later, so that it cannot crash the example before the
    // servers are stopped.
    let failure
    const workers = Array.from({ length: 4 }, () => worker().catch((error) => (failure = failure || error)))
    const slot = cluster.slotOf(resources[0])
    const target = (await cluster.masters()).find((m) => m.port !== master.port)
    await new Promise((resolve) => setTimeout(resolve, 300))
    await cluster.migrateSlot(slot, target.port, { pauseMs: 300 })
    await new Promise((resolve) => setTimeout(resolve, 300))
    stop = true
    await Promise.all(workers)
    if (failure) throw failure
    const total = Number(await cluster.command(counter, 'GET', counter))
    const now = await cluster.masterFor(resources[0])
    console.log(`slot ${slot} moved :${master.port} -> :${now.port} during the run`)
    console.log(`${increments} increments under the lock, counter = ${total}`)
    const plainTotal = await command(plain[0].url, 'EXISTS', resources[0])
    console.log(`lock keys left behind: ${plainTotal + (await cluster.keysEverywhere('{order:42}:[pi]*')).length}`)
  } finally {
    await redlock.quit()
    await Promise.all([stopServers(plain), cluster.stop()])
  }
}

main().catch((error) => {
  console.error(error)
  process.exitCode = 1
})
