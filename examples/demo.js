#!/usr/bin/env node
'use strict'
// The demo: five throwaway redis-servers, eight workers that each take a lock before a
// read-modify-write of one shared balance, then two servers killed and the work going on.
// Without the lock, the workers' updates would overwrite each other; with it, none is lost.

const Redlock = require('..')
const { startServers, stopServers } = require('../__test__/support/servers.js')

const WORKERS = 8
const ROUNDS = 25

async function work(redlock, account, stats) {
  for (let round = 0; round < ROUNDS; round++) {
    const started = process.hrtime.bigint()
    const lock = await redlock.acquire(['account:demo'], 2000)
    stats.waits.push(Number(process.hrtime.bigint() - started) / 1e6)
    const balance = account.balance
    await new Promise((resolve) => setTimeout(resolve, 1)) // the "slow" part of the update
    account.balance = balance + 1
    await lock.release()
  }
}

async function phase(title, redlock) {
  const account = { balance: 0 }
  const stats = { waits: [] }
  const started = Date.now()
  await Promise.all(Array.from({ length: WORKERS }, () => work(redlock, account, stats)))
  const waits = stats.waits.sort((a, b) => a - b)
  const at = (q) => waits[Math.min(waits.length - 1, Math.floor(q * waits.length))].toFixed(1)
  return {
    phase: title,
    updates: WORKERS * ROUNDS,
    balance: account.balance,
    'lost updates': WORKERS * ROUNDS - account.balance,
    'wait p50 ms': at(0.5),
    'wait p99 ms': at(0.99),
    'seconds': ((Date.now() - started) / 1000).toFixed(2),
  }
}

async function main() {
  console.log('Starting 5 throwaway redis-server processes on free loopback ports...')
  const servers = await startServers(5)
  const redlock = new Redlock(
    servers.map((s) => s.url),
    { retryCount: -1, retryDelay: 5, retryJitter: 5 },
  )
  redlock.on('error', () => {}) // node failures are expected once servers are killed
  try {
    console.log(`Quorum members: ${redlock.nodes.join(', ')}`)
    const rows = [await phase('all 5 nodes up', redlock)]
    await servers[0].kill()
    await servers[1].kill()
    console.log('Killed 2 of the 5 servers: a quorum of 3 remains.')
    rows.push(await phase('2 of 5 nodes down', redlock))
    console.table(rows)
    const lost = rows.reduce((n, row) => n + row['lost updates'], 0)
    console.log(lost === 0 ? 'No update was lost: every read-modify-write held the lock.' : `${lost} updates were lost.`)
    process.exitCode = lost === 0 ? 0 : 1
  } finally {
    await redlock.quit()
    await stopServers(servers)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
