#!/usr/bin/env node
'use strict'
// A job scheduler that runs each job once per time slot, however many processes run it.
//
// Every scheduler process wakes up at the start of each slot and, for each job, tries once to
// lock "<job>:<slot>". The winner runs the job; the others get ResourceLockedError and skip it.
// The lock is not released after the run: it lives until the slot is over, so a scheduler that
// wakes up late in the same slot cannot run the job a second time.
//
//   node examples/scheduler.js
//
// starts three scheduler processes for four one-second slots and checks that each job ran
// exactly once per slot. Servers: REDLOCK_SERVERS (comma-separated redis:// URLs), or three
// throwaway redis-servers started for the run.

const { fork } = require('node:child_process')
const Redlock = require('..')
const { ResourceLockedError, ExecutionError } = Redlock

const JOBS = ['send-digest', 'rotate-logs', 'refresh-cache']
const SLOT_MS = 1000
const SLOTS = 4
const SCHEDULERS = 3

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** One scheduler process: per slot, claim and run the jobs no other scheduler has claimed. */
async function scheduler(id, urls, namespace, firstSlot) {
  const redlock = new Redlock(urls)
  for (let slot = firstSlot; slot < firstSlot + SLOTS; slot++) {
    // Wake up at the start of the slot, give or take some clock skew.
    await sleep(Math.max(0, slot * SLOT_MS - Date.now()) + Math.random() * 100)
    for (const job of JOBS) {
      const untilSlotEnds = (slot + 1) * SLOT_MS - Date.now()
      if (untilSlotEnds <= 0) break // woke up too late for this slot
      try {
        await redlock.acquire([`${namespace}:${job}:${slot}`], untilSlotEnds + SLOT_MS, { retryCount: 0 })
      } catch (error) {
        if (error instanceof ResourceLockedError) continue // another scheduler runs it
        if (error instanceof ExecutionError) {
          console.log(`scheduler ${id}: skipped ${job} in slot ${slot}: ${error.code}`)
          continue
        }
        throw error
      }
      await sleep(20) // the job's work
      await new Promise((resolve) => process.send({ job, slot, scheduler: id }, resolve))
    }
  }
  await redlock.quit()
}

async function main() {
  const { serversFor } = require('../scripts/redis-servers.js')
  const servers = await serversFor('REDLOCK_SERVERS', 3)
  const namespace = `scheduler-example:${process.pid}:${Date.now()}`
  const runs = new Map()
  let firstSlot
  try {
    const children = Array.from({ length: SCHEDULERS }, (_, i) => {
      const child = fork(__filename, ['--scheduler', String(i + 1), namespace], {
        env: { ...process.env, SCHEDULER_URLS: servers.urls.join(',') },
      })
      child.ready = new Promise((resolve) => child.once('message', resolve))
      child.exited = new Promise((resolve, reject) =>
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`scheduler ${i + 1} exited with ${code}`)))),
      )
      return child
    })
    // The schedulers start together, at the next slot once they are all up.
    await Promise.all(children.map((child) => child.ready))
    firstSlot = Math.ceil((Date.now() + 300) / SLOT_MS)
    for (const child of children) {
      child.on('message', ({ job, slot, scheduler: by }) => {
        const key = `${job} in slot ${slot - firstSlot + 1}`
        runs.set(key, [...(runs.get(key) || []), by])
        console.log(`${key}: run by scheduler ${by}`)
      })
      child.send({ firstSlot })
    }
    await Promise.all(children.map((child) => child.exited))
  } finally {
    await servers.stop()
  }
  const expected = JOBS.length * SLOTS
  const twice = [...runs].filter(([, by]) => by.length > 1)
  console.log(`${runs.size} of ${expected} job slots ran; ${twice.length} ran more than once.`)
  process.exitCode = runs.size === expected && twice.length === 0 ? 0 : 1
}

if (process.argv[2] === '--scheduler') {
  const [, , , id, namespace] = process.argv
  process.send({ ready: true })
  process.once('message', ({ firstSlot }) => {
    scheduler(Number(id), process.env.SCHEDULER_URLS.split(','), namespace, firstSlot).then(
      () => process.disconnect(),
      (error) => {
        console.error(error)
        process.exit(1)
      },
    )
  })
} else {
  main().catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
