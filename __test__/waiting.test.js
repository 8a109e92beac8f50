'use strict'

// Waiting for a held lock (issue 3): wake-on-release hands a lock over as soon as the holder
// releases it, polling (`wakeOnRelease: false`) still works, the retry timer still catches
// locks that expire or are let go without a notice, wake-up storms never break mutual
// exclusion, the process-wide line keeps re-acquiring loops fair, and `lock.timeLeft` /
// `lock.valid` tell the state of a lock without a round trip.

const path = require('node:path')
const Redlock = require('..')
const { ResourceLockedError } = require('..')
const { Conn, command, until, valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey, spawnNode } = require('./support/shared')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const now = () => performance.timeOrigin + performance.now()

const urls = sharedUrls()
const PKG = path.resolve(__dirname, '..')
const CHANNEL_PREFIX = 'redlock-rs:released:'

const made = []
/** A Redlock quit in afterAll. */
function redlockWith(settings) {
  const r = new Redlock(urls, settings)
  made.push(r)
  return r
}

let conns
beforeAll(() => {
  conns = urls.map((u) => new Conn(u))
})
afterAll(async () => {
  await Promise.all(made.map((r) => r.quit()))
  for (const c of conns) c.close()
})

function goneEverywhere(key) {
  return until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), {
    timeout: 3000,
    message: `${key} gone from every node`,
  })
}

/** How many nodes hold `value` under `key` (one persistent connection per node). */
async function nodesHolding(key, value) {
  const values = await Promise.all(conns.map((c) => c.send('GET', key)))
  return values.filter((v) => v === value).length
}

describe('wake-on-release', () => {
  test('4 waiters (separate Redlock instances) with retryDelay 5000 get the lock one after another, far sooner than the retry delay', async () => {
    const key = uniqueKey('wait-handoff')
    const holder = redlockWith()
    const settings = { retryDelay: 5000, retryJitter: 0, retryCount: 5 }
    const waiters = [0, 1, 2, 3].map(() => redlockWith(settings))

    const first = await holder.acquire([key], 20000)
    const grants = []
    let holding = 0
    let overlap = false
    const runs = waiters.map(async (w, i) => {
      const lock = await w.acquire([key], 20000)
      holding += 1
      if (holding > 1) overlap = true
      grants.push({ i, at: now() })
      await sleep(50)
      holding -= 1
      await lock.release()
    })
    // Let every waiter make its first attempt (and subscribe) against the held lock.
    await sleep(700)
    expect(grants).toEqual([])
    const released = now()
    await first.release()
    await Promise.all(runs)
    const total = Math.max(...grants.map((g) => g.at)) - released
    expect(grants.map((g) => g.i).sort()).toEqual([0, 1, 2, 3])
    expect(overlap).toBe(false)
    // Polling would take at least 4 × 5000 ms; notices make it a few round trips each.
    expect(total).toBeLessThan(3000)
    await goneEverywhere(key)
  })

  test('4 waiters in 4 separate child processes with retryDelay 5000 get the lock one after another within 3 s of the release', async () => {
    const key = uniqueKey('wait-handoff-procs')
    const holder = redlockWith()
    const first = await holder.acquire([key], 30000)
    const child = `
      const Redlock = require(process.env.REDLOCK_PKG)
      const now = () => performance.timeOrigin + performance.now()
      // Every attempt counts against retryCount, those a notice prompts too: the default
      // (10) leaves room for the last waiter's attempts at each of the 3 hand-offs before it.
      const redlock = new Redlock(process.env.REDLOCK_URLS.split(','),
        { retryDelay: 5000, retryJitter: 0 })
      console.log('ready')
      redlock.acquire([process.env.KEY], 20000).then(async (lock) => {
        const acquired = now()
        await new Promise((r) => setTimeout(r, 50))
        // The section ends when the release begins: the next holder may be granted before
        // this process hears its release answered.
        const released = now()
        await lock.release()
        console.log(JSON.stringify({ acquired, released }))
        // Linger a little before leaving, so that this test checks hand-offs only (exiting
        // right after a release is covered in using.test.js).
        await new Promise((r) => setTimeout(r, 500))
        await redlock.quit()
      }, (e) => { console.log('failed ' + e.name + ' ' + e.message); process.exitCode = 2 })
    `
    const env = { REDLOCK_PKG: PKG, REDLOCK_URLS: urls.join(','), KEY: key }
    const children = [0, 1, 2, 3].map(() => spawnNode(['-e', child], { env, timeout: 25000 }))
    await until(() => children.every((c) => c.output.stdout.includes('ready')), {
      timeout: 15000,
      message: 'every child started',
    })
    // Give each child's first attempt (and its subscription) time to happen.
    await sleep(1500)
    const released = now()
    await first.release()
    const exits = (await Promise.all(children.map((c) => c.exited))).map(({ code, signal }) => ({ code, signal }))
    const info = children.map((c) => `${c.output.stdout}${c.output.stderr}`).join('\n---\n')
    for (const exit of exits) expect({ exit, info }).toEqual({ exit: { code: 0, signal: null }, info })
    const grants = children
      .map((c) => JSON.parse(c.output.stdout.split('\n').find((l) => l.startsWith('{'))))
      .sort((a, b) => a.acquired - b.acquired)
    // Never two holders at once, by the cross-process clock.
    for (let i = 1; i < grants.length; i++) {
      expect(grants[i].acquired).toBeGreaterThanOrEqual(grants[i - 1].released - 5)
    }
    expect(grants[grants.length - 1].acquired - released).toBeLessThan(3000)
    await goneEverywhere(key)
  }, 45000)

  // Regression: across processes (no shared line), a release wakes every waiter at once;
  // their attempts can split the nodes (e.g. 2 + 2 + 1) so that nobody wins. If each took the
  // others' keys on a quorum for a real holder and undid its own without a notice, all would
  // wait for a notice that never comes and the lock would sit free until a retry timer fired.
  // With retryDelay 3000 such a stall shows as a gap between a release and the next grant.
  test('no lost wake-up after contended attempts: 6 processes × 15 rounds, the lock is never left free for a retry delay', async () => {
    const key = uniqueKey('wait-split-procs')
    const child = `
      const Redlock = require(process.env.REDLOCK_PKG)
      const now = () => performance.timeOrigin + performance.now()
      const redlock = new Redlock(process.env.REDLOCK_URLS.split(','),
        { retryDelay: 3000, retryJitter: 0, retryCount: -1 })
      ;(async () => {
        const warm = await redlock.acquire([process.env.KEY + ':warm:' + process.pid], 1000)
        await warm.release()
        console.log('ready')
        await new Promise((r) => process.stdin.once('data', r))
        const grants = []
        for (let i = 0; i < 15; i++) {
          const lock = await redlock.acquire([process.env.KEY], 10000)
          const acquired = now()
          await new Promise((r) => setTimeout(r, 1))
          const releasing = now()
          await lock.release()
          grants.push({ acquired, releasing, released: now() })
        }
        console.log(JSON.stringify(grants))
        await redlock.quit()
        process.stdin.destroy()
      })()
    `
    const env = { REDLOCK_PKG: PKG, REDLOCK_URLS: urls.join(','), KEY: key }
    const children = Array.from({ length: 6 }, () => spawnNode(['-e', child], { env, stdin: 'pipe', timeout: 50000 }))
    await until(() => children.every((c) => c.output.stdout.includes('ready')), {
      timeout: 15000,
      message: 'every child started',
    })
    for (const c of children) c.proc.stdin.write('go\n')
    const exits = (await Promise.all(children.map((c) => c.exited))).map(({ code, signal }) => ({ code, signal }))
    const info = children.map((c) => `${c.output.stdout}${c.output.stderr}`).join('\n---\n').slice(0, 4000)
    for (const exit of exits) expect({ exit, info }).toEqual({ exit: { code: 0, signal: null }, info })
    const grants = children
      .flatMap((c) => JSON.parse(c.output.stdout.split('\n').find((l) => l.startsWith('['))))
      .sort((a, b) => a.acquired - b.acquired)
    expect(grants).toHaveLength(90)
    let overlaps = 0
    const gaps = []
    for (let i = 1; i < grants.length; i++) {
      if (grants[i].acquired < grants[i - 1].releasing) overlaps += 1
      gaps.push(Math.round(grants[i].acquired - grants[i - 1].released))
    }
    expect(overlaps).toBe(0)
    const longest = Math.max(...gaps)
    const stalls = gaps.filter((g) => g >= 1500).length
    // The lock was free (released, nobody holding) for `longest` ms at a stretch.
    expect({ longest, stalls, under1500: longest < 1500 }).toEqual({ longest, stalls, under1500: true })
  }, 60000)

  test('a waiter subscribes on every node while it waits; with wakeOnRelease false it does not', async () => {
    const holder = redlockWith()
    for (const wakeOnRelease of [true, false]) {
      const key = uniqueKey(`wait-numsub-${wakeOnRelease}`)
      const waiter = redlockWith({ wakeOnRelease, retryDelay: 300, retryJitter: 0, retryCount: 50 })
      const first = await holder.acquire([key], 10000)
      const waiting = waiter.acquire([key], 10000)
      // The channel carries the key's hash tag, the whole key when it has no braces.
      const channel = `${CHANNEL_PREFIX}{${key}}`
      if (wakeOnRelease) {
        await until(
          async () => {
            const counts = await Promise.all(urls.map((u) => command(u, 'PUBSUB', 'NUMSUB', channel)))
            return counts.every((c) => c[1] >= 1)
          },
          { timeout: 5000, message: `${channel} subscribed on every node` },
        )
      } else {
        await sleep(700)
        const counts = await Promise.all(urls.map((u) => command(u, 'PUBSUB', 'NUMSUB', channel)))
        expect(counts.map((c) => c[1])).toEqual(urls.map(() => 0))
      }
      await first.release()
      const lock = await waiting
      expect(await nodesHolding(key, lock.value)).toBeGreaterThanOrEqual(3)
      await lock.release()
      // Once nobody waits, the subscription is dropped.
      await until(
        async () => {
          const counts = await Promise.all(urls.map((u) => command(u, 'PUBSUB', 'NUMSUB', channel)))
          return counts.every((c) => c[1] === 0)
        },
        { timeout: 5000, message: `${channel} unsubscribed everywhere` },
      )
    }
  })

  test('polling (wakeOnRelease false, retryDelay 300) still hands the lock over', async () => {
    const key = uniqueKey('wait-polling')
    const holder = redlockWith()
    const waiter = redlockWith({ wakeOnRelease: false, retryDelay: 300, retryJitter: 0, retryCount: 30 })
    const first = await holder.acquire([key], 10000)
    const t0 = Date.now()
    const waiting = waiter.acquire([key], 10000)
    await sleep(500)
    await first.release()
    const lock = await waiting
    const waited = Date.now() - t0
    expect(waited).toBeGreaterThanOrEqual(500)
    expect(waited).toBeLessThan(5000)
    expect(lock.attempts.length).toBeGreaterThanOrEqual(2)
    expect(await nodesHolding(key, lock.value)).toBeGreaterThanOrEqual(3)
    await lock.release()
    await goneEverywhere(key)
  })

  test('polling counts every retry: a held lock rejects ResourceLockedError after retryCount + 1 attempts', async () => {
    const key = uniqueKey('wait-polling-count')
    const holder = redlockWith()
    const waiter = redlockWith({ wakeOnRelease: false, retryDelay: 100, retryJitter: 0 })
    const first = await holder.acquire([key], 10000)
    // The acquisition was decided at a quorum; its other requests land a moment later, and
    // on a busy machine the waiter's first attempt could reach a node before them.
    await until(async () => (await nodesHolding(key, first.value)) === 5, { message: 'held on all 5 nodes' })
    const error = await waiter.acquire([key], 10000, { retryCount: 3 }).catch((e) => e)
    expect(error).toBeInstanceOf(ResourceLockedError)
    expect(error.attempts.length).toBe(4)
    expect(await nodesHolding(key, first.value)).toBe(5)
    await first.release()
  })

  test('no lost wake-up: a lock that EXPIRES (never released, no notice) is taken via the retry timer', async () => {
    const key = uniqueKey('wait-expiry')
    const holder = redlockWith()
    const waiter = redlockWith({ retryDelay: 200, retryJitter: 0, retryCount: 50 })
    const first = await holder.acquire([key], 700)
    const t0 = Date.now()
    const lock = await waiter.acquire([key], 10000)
    const waited = Date.now() - t0
    expect(waited).toBeLessThan(5000)
    expect(lock.attempts.length).toBeGreaterThanOrEqual(2)
    expect(first.valid).toBe(false)
    expect(await nodesHolding(key, lock.value)).toBeGreaterThanOrEqual(3)
    await lock.release()
  })

  test('no lost wake-up: a node-redlock-like holder (raw SET PX, raw DEL, no notice) is taken via the retry timer', async () => {
    const key = uniqueKey('wait-foreign')
    const waiter = redlockWith({ retryDelay: 200, retryJitter: 0, retryCount: 100 })
    await Promise.all(urls.map((u) => command(u, 'SET', key, 'foreign-holder', 'PX', 20000)))
    let taken = 0
    const waiting = waiter.acquire([key], 10000).then((lock) => {
      taken = Date.now()
      return lock
    })
    await sleep(600)
    expect(taken).toBe(0)
    const deleted = Date.now()
    await Promise.all(urls.map((u) => command(u, 'DEL', key)))
    const lock = await waiting
    expect(taken - deleted).toBeLessThan(3000)
    expect(await nodesHolding(key, lock.value)).toBeGreaterThanOrEqual(3)
    await lock.release()
    await goneEverywhere(key)
  })

  test('mutual exclusion under wake-up storms: 10 waiters × 20 rounds, hold ~1 ms, never two holders, every acquire succeeds', async () => {
    const key = uniqueKey('wait-storm')
    const waiters = Array.from({ length: 10 }, () =>
      redlockWith({ retryCount: -1, retryDelay: 200, retryJitter: 50 }),
    )
    let holders = 0
    let maxHolders = 0
    let rawViolations = 0
    let grants = 0
    const failures = []
    await Promise.all(
      waiters.map(async (w) => {
        for (let round = 0; round < 20; round++) {
          let lock
          try {
            lock = await w.acquire([key], 10000)
          } catch (error) {
            failures.push(error)
            continue
          }
          holders += 1
          maxHolders = Math.max(maxHolders, holders)
          grants += 1
          // Our value is on a quorum, and no other value is on a majority.
          const values = await Promise.all(conns.map((c) => c.send('GET', key)))
          if (values.filter((v) => v === lock.value).length < 3) rawViolations += 1
          await sleep(1)
          holders -= 1
          await lock.release()
        }
      }),
    )
    expect(failures).toEqual([])
    expect(grants).toBe(200)
    expect(maxHolders).toBe(1)
    expect(rawViolations).toBe(0)
    await goneEverywhere(key)
  }, 60000)

  test('fairness: 8 loops (own Redlock each) that release and re-acquire at once all get the lock, round-robin', async () => {
    const key = uniqueKey('wait-fair')
    const loops = Array.from({ length: 8 }, () =>
      redlockWith({ retryCount: -1, retryDelay: 200, retryJitter: 50 }),
    )
    const order = []
    let holders = 0
    let maxHolders = 0
    const TARGET = 200
    await Promise.all(
      loops.map(async (r, id) => {
        while (order.length < TARGET) {
          const lock = await r.acquire([key], 10000)
          holders += 1
          maxHolders = Math.max(maxHolders, holders)
          order.push(id)
          holders -= 1
          await lock.release()
        }
      }),
    )
    const wins = new Array(8).fill(0)
    let streak = 0
    let maxStreak = 0
    for (let i = 0; i < order.length; i++) {
      wins[order[i]] += 1
      streak = i > 0 && order[i] === order[i - 1] ? streak + 1 : 1
      maxStreak = Math.max(maxStreak, streak)
    }
    console.log(`fairness: ${order.length} grants, wins per loop ${wins.join(',')}, max streak ${maxStreak}`)
    expect(maxHolders).toBe(1)
    for (const w of wins) expect(w).toBeGreaterThan(0)
    expect(maxStreak).toBeLessThanOrEqual(3)
    await goneEverywhere(key)
  }, 60000)
})

describe('retry budget with notices and the line (only timer-driven retries count)', () => {
  // With polling, retryCount 1 / retryDelay 3000 waits 3 s and gets a lock released after
  // 1 s. Wake-on-release must not make the same call give up sooner than polling would.
  test('retryCount 1, retryDelay 3000: a lock released after 1 s is acquired (as with polling)', async () => {
    const holder = redlockWith()
    const waiter = redlockWith()
    for (const wakeOnRelease of [false, true]) {
      const key = uniqueKey(`wait-budget-${wakeOnRelease}`)
      const first = await holder.acquire([key], 10000)
      const timer = setTimeout(() => first.release(), 1000)
      const t0 = Date.now()
      const outcome = await waiter
        .acquire([key], 10000, { retryCount: 1, retryDelay: 3000, retryJitter: 0, wakeOnRelease })
        .then(
          (lock) => ({ ok: true, lock }),
          (error) => ({ ok: false, error }),
        )
      const waited = Date.now() - t0
      clearTimeout(timer)
      await first.release()
      const summary = outcome.ok
        ? 'acquired'
        : `${outcome.error.name} after ${waited} ms, ${outcome.error.attempts.length} attempts`
      expect({ wakeOnRelease, summary }).toEqual({ wakeOnRelease, summary: 'acquired' })
      await outcome.lock.release()
    }
  }, 20000)

  // A try-lock (retryCount 0) must answer after one attempt, even while another acquirer of
  // this process waits for the same resource (the line must not stretch its retry window).
  test('retryCount 0 answers promptly while another acquirer of this process waits for the same resource', async () => {
    const key = uniqueKey('wait-trylock')
    const holder = redlockWith()
    const patient = redlockWith({ retryCount: -1, retryDelay: 5000, retryJitter: 0 })
    const impatient = redlockWith()
    const first = await holder.acquire([key], 15000)
    const waiting = patient.acquire([key], 15000)
    await sleep(300)
    const t0 = Date.now()
    const tryLock = impatient.acquire([key], 15000, { retryCount: 0 }).then(
      () => 'acquired',
      (e) => e.name,
    )
    const answer = await Promise.race([tryLock, sleep(2000).then(() => 'no answer within 2000 ms')])
    const took = Date.now() - t0
    await first.release()
    const lock = await waiting
    await lock.release()
    await tryLock
    expect({ answer, within2s: took < 2000 }).toEqual({ answer: 'ResourceLockedError', within2s: true })
  }, 30000)

  test('8 waiters with retryCount 2 / retryDelay 500 on a held lock all give up within ~their own retry window', async () => {
    const key = uniqueKey('wait-window')
    const holder = redlockWith()
    const waiter = redlockWith({ retryCount: 2, retryDelay: 500, retryJitter: 0 })
    const first = await holder.acquire([key], 20000)
    const t0 = Date.now()
    const times = await Promise.all(
      Array.from({ length: 8 }, () =>
        waiter.acquire([key], 10000).then(
          () => -1,
          () => Date.now() - t0,
        ),
      ),
    )
    await first.release()
    // node-redlock: every waiter gives up after 2 × 500 ms, in parallel.
    expect(times.every((t) => t >= 0)).toBe(true)
    expect({ times: times.join(", "), slowestUnder3s: Math.max(...times) < 3000 }).toEqual({ times: times.join(", "), slowestUnder3s: true })
  }, 30000)
})

describe('lock.timeLeft and lock.valid', () => {
  test('valid after acquire with timeLeft ≤ duration; invalid with timeLeft 0 after release', async () => {
    const redlock = redlockWith()
    const key = uniqueKey('wait-timeleft')
    const before = Date.now()
    const lock = await redlock.acquire([key], 5000)
    expect(lock.valid).toBe(true)
    expect(lock.timeLeft).toBeGreaterThan(0)
    expect(lock.timeLeft).toBeLessThanOrEqual(5000)
    expect(lock.timeLeft).toBeGreaterThan(3000)
    expect(lock.expiration).toBeGreaterThan(before)
    expect(lock.expiration).toBeLessThanOrEqual(Date.now() + 5000)
    await lock.release()
    expect(lock.valid).toBe(false)
    expect(lock.timeLeft).toBe(0)
  })

  test('invalid with timeLeft 0 once the lock expires', async () => {
    const redlock = redlockWith()
    const key = uniqueKey('wait-timeleft-expiry')
    const lock = await redlock.acquire([key], 300)
    expect(lock.valid).toBe(true)
    expect(lock.timeLeft).toBeLessThanOrEqual(300)
    await sleep(450)
    expect(lock.valid).toBe(false)
    expect(lock.timeLeft).toBe(0)
    await lock.release()
  })

  test('expiration follows every extension exactly (duration minus elapsed and drift)', async () => {
    const redlock = redlockWith()
    const key = uniqueKey('wait-timeleft-extend')
    const lock = await redlock.acquire([key], 1000)
    for (const duration of [5000, 2000, 8000]) {
      const before = Date.now()
      await lock.extend(duration)
      const after = Date.now()
      // validity = duration - elapsed - (duration × 0.01 + 2): ends before `after + duration`
      // and no earlier than `before + duration - drift - elapsed`.
      expect(lock.expiration).toBeLessThanOrEqual(after + duration)
      expect(lock.expiration).toBeGreaterThanOrEqual(before + duration - duration * 0.01 - 2 - (after - before) - 1)
      expect(lock.timeLeft).toBeLessThanOrEqual(duration)
      expect(lock.valid).toBe(true)
      // Extended at quorum: a node beyond it may take its PEXPIRE a moment later.
      const extended = async () => (await Promise.all(urls.map((u) => command(u, 'PTTL', key)))).every((p) => p > lock.timeLeft - 50)
      await until(extended, { message: 'every node has the new TTL' })
    }
    await lock.release()
    expect(lock.valid).toBe(false)
  })
})

describe('what a failed attempt announces', () => {
  const IORedis = require('ioredis')

  /** Counts the release notices of `key` on each node while `during()` runs. */
  async function noticesDuring(key, during) {
    const subscribers = urls.map((u) => {
      const client = new IORedis(u)
      client.on('error', () => {})
      return client
    })
    const counts = urls.map(() => 0)
    try {
      await Promise.all(
        subscribers.map(async (s, i) => {
          await s.subscribe(`${CHANNEL_PREFIX}{${key}}`)
          s.on('message', () => (counts[i] += 1))
        }),
      )
      await during()
      await sleep(200)
      return counts
    } finally {
      for (const s of subscribers) s.disconnect()
    }
  }

  test('an undo stays silent when another lock holds a quorum: waking contenders would only spend their retries', async () => {
    const key = uniqueKey('undo-silent')
    // Another lock on nodes 1-3: a quorum. Our attempt takes nodes 4 and 5, then undoes them.
    await Promise.all(urls.slice(0, 3).map((u) => command(u, 'SET', key, 'winner', 'PX', 10000)))
    const redlock = redlockWith({ retryCount: 0 })
    const counts = await noticesDuring(key, async () => {
      await expect(redlock.acquire([key], 5000)).rejects.toBeInstanceOf(ResourceLockedError)
      await until(async () => (await valuesOnAll(urls.slice(3), key)).every((v) => v === null), { timeout: 2000 })
    })
    expect(counts).toEqual([0, 0, 0, 0, 0])
    await Promise.all(urls.map((u) => command(u, 'DEL', key)))
  })

  test('an undo announces the keys it frees when no other lock was seen on a quorum, so split contenders try again at once', async () => {
    const key = uniqueKey('undo-announce')
    // Two other locks share nodes 1-3 and nobody has a quorum: the undo of nodes 4 and 5 is
    // announced there.
    await Promise.all(urls.slice(0, 2).map((u) => command(u, 'SET', key, 'one', 'PX', 10000)))
    await command(urls[2], 'SET', key, 'two', 'PX', 10000)
    const redlock = redlockWith({ retryCount: 0 })
    const counts = await noticesDuring(key, async () => {
      await expect(redlock.acquire([key], 5000)).rejects.toBeInstanceOf(ResourceLockedError)
    })
    expect(counts).toEqual([0, 0, 0, 1, 1])
    await Promise.all(urls.map((u) => command(u, 'DEL', key)))
  })
})
