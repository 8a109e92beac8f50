'use strict'

// What a user sees when nodes fail: 5 redis-servers of this file's own, each reached through
// a fault proxy (support/faults.js). Bounds on time are generous on purpose (a 2-core machine
// shared with other work); they catch hangs and per-request timeouts that are not applied,
// not milliseconds.

const path = require('node:path')
const Redlock = require('..')
const { ExecutionError, ResourceLockedError, LockExpiredError } = Redlock
const { command, freePort, until, valuesOnAll } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey, runNode } = require('./support/shared')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const SLACK = 2500

let fleet = []
let urls = []
let direct = []
const redlocks = []
const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)

function redlock(settings, clients = urls) {
  const rl = new Redlock(clients, settings)
  redlocks.push(rl)
  return rl
}

async function warm(rl) {
  const lock = await rl.acquire([uniqueKey('fm-warm')], 5000, { retryCount: 5, retryDelay: 50 })
  await lock.release()
}

/**
 * Waits until every node holds `value` under `key`: an operation is decided at quorum, and
 * the nodes it did not wait for get there a moment later.
 */
function heldEverywhere(key, value) {
  return until(async () => (await valuesOnAll(direct, key)).every((v) => v === value), {
    timeout: 3000,
    message: `${key} held on all 5 nodes`,
  })
}

/** Resolves with [error or null, elapsed ms]. */
async function timed(promise) {
  const started = Date.now()
  try {
    await promise
    return [null, Date.now() - started]
  } catch (error) {
    return [error, Date.now() - started]
  }
}

beforeAll(async () => {
  fleet = await startFleet(5, { proxied: true, persistent: false })
  urls = fleet.map((n) => n.url)
  direct = fleet.map((n) => n.directUrl)
  process.on('unhandledRejection', onUnhandled)
})

afterEach(async () => {
  await Promise.all(fleet.map((n) => n.heal()))
  expect(unhandled).toEqual([])
})

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  for (const rl of redlocks) await rl.quit()
  await stopFleet(fleet)
})

describe('nodes killed mid-run', () => {
  test('2 of 5 killed while 4 loops acquire and release: every acquisition keeps succeeding', async () => {
    const rl = redlock({ retryCount: 2, retryDelay: 50, requestTimeout: 300 })
    await warm(rl)
    let stop = false
    const failures = []
    let afterKill = 0
    let killed = false
    const loop = async () => {
      while (!stop) {
        try {
          const lock = await rl.acquire([uniqueKey('fm-minority')], 5000)
          await lock.release()
          if (killed) afterKill += 1
        } catch (error) {
          failures.push(error)
        }
      }
    }
    const loops = [loop(), loop(), loop(), loop()]
    await sleep(500)
    await Promise.all([fleet[1].kill(), fleet[3].kill()])
    killed = true
    await sleep(1500)
    stop = true
    await Promise.all(loops)
    expect(failures).toEqual([])
    expect(afterKill).toBeGreaterThan(10)
  })

  test('3 of 5 killed: ExecutionError within the retry window; after a restart on the same ports, success again', async () => {
    const settings = { retryCount: 2, retryDelay: 100, retryJitter: 0, requestTimeout: 200 }
    const rl = redlock(settings)
    await warm(rl)
    await Promise.all([fleet[0].kill(), fleet[2].kill(), fleet[4].kill()])
    const key = uniqueKey('fm-majority')
    const [error, ms] = await timed(rl.acquire([key], 5000))
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error).not.toBeInstanceOf(ResourceLockedError)
    expect(error.code).toBe('ERR_REDLOCK_QUORUM')
    expect(error.attempts).toHaveLength(3)
    // 3 attempts of at most requestTimeout each, 2 pauses of 100 ms.
    expect(ms).toBeLessThan(3 * 200 + 2 * 100 + SLACK)
    await Promise.all([fleet[0].start(), fleet[2].start(), fleet[4].start()])
    const lock = await rl.acquire([key], 5000, { retryCount: 5 })
    // Held on a quorum at least: a server just back may still be in the client's 100 ms
    // reconnect pause when the grant is decided, and get no key.
    const held = (await valuesOnAll(direct, key)).filter((v) => v === lock.value)
    expect(held.length).toBeGreaterThanOrEqual(3)
    await lock.release()
  })

  test('3 of 5 killed and restarted while an acquire is retrying: that same acquire succeeds', async () => {
    const rl = redlock({ retryCount: 40, retryDelay: 100, retryJitter: 0, requestTimeout: 200 })
    await warm(rl)
    await Promise.all([fleet[1].kill(), fleet[2].kill(), fleet[3].kill()])
    const pending = rl.acquire([uniqueKey('fm-comeback')], 5000)
    await sleep(600)
    await Promise.all([fleet[1].start(), fleet[2].start(), fleet[3].start()])
    const lock = await pending
    expect(lock.attempts.length).toBeGreaterThan(1)
    await lock.release()
  })
})

describe('paused (SIGSTOP) and blackholed nodes cost at most requestTimeout', () => {
  const requestTimeout = 300

  test('a paused minority: 10 acquisitions, none delayed by more than requestTimeout', async () => {
    const rl = redlock({ retryCount: 0, requestTimeout })
    await warm(rl)
    fleet[0].pause()
    fleet[4].pause()
    for (let i = 0; i < 10; i++) {
      const [error, ms] = await timed(rl.acquire([uniqueKey('fm-paused')], 5000).then((l) => l.release()))
      expect(error).toBeNull()
      expect(ms).toBeLessThan(requestTimeout + SLACK)
    }
  })

  test('a paused node that decides the quorum: the acquire rejects after about requestTimeout, not later', async () => {
    const rl = redlock({ retryCount: 0, requestTimeout })
    await warm(rl)
    await Promise.all([fleet[3].kill(), fleet[4].kill()])
    fleet[0].pause()
    const [error, ms] = await timed(rl.acquire([uniqueKey('fm-paused-decisive')], 5000))
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_QUORUM')
    expect(ms).toBeGreaterThanOrEqual(requestTimeout - 20)
    expect(ms).toBeLessThan(requestTimeout + SLACK)
    const codes = [...error.attempts[0].votesAgainst.values()].map((e) => e.code)
    expect(codes).toContain('ERR_REDLOCK_NODE_TIMEOUT')
  })

  test('a blackholed node (connections accepted, never answered) costs nothing while a quorum answers', async () => {
    const rl = redlock({ retryCount: 0, requestTimeout })
    await warm(rl)
    fleet[2].proxy.blackhole()
    for (let i = 0; i < 5; i++) {
      const [error, ms] = await timed(rl.acquire([uniqueKey('fm-blackhole-one')], 5000).then((l) => l.release()))
      expect(error).toBeNull()
      expect(ms).toBeLessThan(requestTimeout + SLACK)
    }
  })

  test('a blackholed majority: acquire, extend and release each end within requestTimeout per attempt', async () => {
    const rl = redlock({ retryCount: 1, retryDelay: 50, retryJitter: 0, requestTimeout })
    await warm(rl)
    const key = uniqueKey('fm-blackhole-majority')
    const lock = await rl.acquire([key], 10000)
    for (const n of fleet.slice(0, 3)) n.proxy.blackhole()
    const bound = 2 * requestTimeout + 50 + SLACK
    const [acquireError, acquireMs] = await timed(rl.acquire([uniqueKey('fm-bh')], 5000))
    expect(acquireError).toBeInstanceOf(ExecutionError)
    expect(acquireMs).toBeLessThan(bound)
    const [extendError, extendMs] = await timed(lock.extend(10000))
    expect(extendError).toBeInstanceOf(ExecutionError)
    expect(extendError.code).toBe('ERR_REDLOCK_QUORUM')
    expect(extendMs).toBeLessThan(bound)
    const [releaseError, releaseMs] = await timed(lock.release())
    expect(releaseError).toBeInstanceOf(ExecutionError)
    expect(releaseMs).toBeLessThan(bound)
    for (const n of fleet.slice(0, 3)) n.proxy.heal()
    // What waited behind the partition is delivered in order: the release ends up removing
    // the key everywhere.
    await until(async () => (await valuesOnAll(direct, key)).every((v) => v === null), {
      timeout: 3000,
      message: 'no key left once the partition heals',
    })
  })

  test('a fresh client whose majority is blackholed from the first connect: rejected in time, then works once healed', async () => {
    for (const n of fleet.slice(2)) n.proxy.blackhole()
    const rl = redlock({ retryCount: 0, requestTimeout })
    const [error, ms] = await timed(rl.acquire([uniqueKey('fm-bh-fresh')], 5000))
    expect(error).toBeInstanceOf(ExecutionError)
    expect(ms).toBeLessThan(requestTimeout + SLACK)
    for (const n of fleet.slice(2)) {
      n.proxy.drop()
      n.proxy.heal()
    }
    const lock = await rl.acquire([uniqueKey('fm-bh-fresh')], 5000, { retryCount: 3 })
    await lock.release()
  })
})

describe('connections dropped by the proxy mid-request', () => {
  test.each([
    ['passed on to the server, answer lost', { forward: true }],
    ['never reaching the server', { forward: false }],
  ])('request %s on a majority: no hang, ExecutionError, the next operation reconnects, no key left', async (_, how) => {
    const rl = redlock({ retryCount: 0, requestTimeout: 500 })
    const events = []
    rl.on('error', (e) => events.push(e))
    await warm(rl)
    const key = uniqueKey('fm-cut')
    const cuts = fleet.slice(0, 3).map((n) => n.proxy.dropNextRequest(how))
    const [error, ms] = await timed(rl.acquire([key], 5000))
    expect(await Promise.all(cuts)).toEqual([true, true, true])
    expect(error).toBeInstanceOf(ExecutionError)
    expect(ms).toBeLessThan(500 + SLACK)
    const codes = [...error.attempts[0].votesAgainst.values()].map((e) => e.code)
    expect(codes).toContain('ERR_REDLOCK_NODE_CONNECTION')
    // The failed attempt's undo reaches the nodes on new connections.
    await until(async () => (await valuesOnAll(direct, key)).every((v) => v === null), {
      timeout: 3000,
      message: 'the cut-off attempt undone everywhere',
    })
    const lock = await rl.acquire([key], 5000)
    await heldEverywhere(key, lock.value)
    await lock.release()
    expect(events.some((e) => e.code === 'ERR_REDLOCK_NODE_CONNECTION')).toBe(true)
  })

  test('connections reset (RST) mid-extend and mid-release: each settles, the next one succeeds', async () => {
    const rl = redlock({ retryCount: 0, requestTimeout: 500 })
    await warm(rl)
    const key = uniqueKey('fm-cut-extend')
    const lock = await rl.acquire([key], 5000)
    await heldEverywhere(key, lock.value)
    let cuts = fleet.slice(1, 4).map((n) => n.proxy.dropNextRequest({ forward: false }))
    const [extendError] = await timed(lock.extend(8000))
    await Promise.all(cuts)
    expect(extendError).toBeInstanceOf(ExecutionError)
    await lock.extend(8000)
    // Let the extension's stragglers (reconnecting nodes the quorum did not wait for) land,
    // so that the next cut hits the release and not one of them.
    await sleep(300)
    cuts = fleet.slice(1, 4).map((n) => n.proxy.dropNextRequest({ forward: false }))
    const [releaseError] = await timed(lock.release())
    await Promise.all(cuts)
    expect(releaseError).toBeInstanceOf(ExecutionError)
    // The cut-off release deleted the key on nodes 0 and 4 (once their answers land) and
    // never reached 1-3, which still hold it.
    await until(async () => {
      const values = await valuesOnAll(direct, key)
      return values[0] === null && values[4] === null
    }, { timeout: 3000, message: 'the key deleted on the 2 nodes the cut-off release reached' })
    expect(await valuesOnAll(direct, key)).toEqual([null, lock.value, lock.value, lock.value, null])
    const released = await lock.release()
    // Decided at the first 3 answers (every node that answers counts, holding the key or
    // not): those of them among nodes 1-3 held it and deleted it, at least one of any 3. The
    // stragglers still delete the key where it is left.
    expect(released.attempts).toHaveLength(1)
    const answered = [...released.attempts[0].votesFor]
    expect(answered.length).toBeGreaterThanOrEqual(3)
    const holders = rl.nodes.slice(1, 4)
    expect(released.nodesHeld).toBe(answered.filter((node) => holders.includes(node)).length)
    expect(released.nodesHeld).toBeGreaterThanOrEqual(1)
    await until(async () => (await valuesOnAll(direct, key)).every((v) => v === null), {
      timeout: 3000,
      message: 'the key released everywhere',
    })
    // Idle connections reset by the network are replaced on the next use.
    for (const n of fleet) n.proxy.drop({ reset: true })
    const again = await rl.acquire([key], 5000, { retryCount: 2, retryDelay: 50 })
    await again.release()
  })
})

describe('a node restarted without persistence while a lock is held', () => {
  test("3 of 5 restarted at once (against the spec's delayed-restart rule): extend rejects LockExpiredError, and the resource can be taken by another client", async () => {
    const rl = redlock({ retryCount: 0 })
    const other = redlock({ retryCount: 0 })
    const key = uniqueKey('fm-amnesia')
    const lock = await rl.acquire([key], 10000)
    await heldEverywhere(key, lock.value)
    for (const n of fleet.slice(0, 3)) await n.restart()
    expect(await valuesOnAll(direct, key)).toEqual([null, null, null, lock.value, lock.value])
    // The documented hazard: the restarted majority no longer knows the lock.
    const intruder = await other.acquire([key], 10000)
    const [error] = await timed(lock.extend(10000, { retryCount: 3, retryDelay: 50 }))
    expect(error).toBeInstanceOf(LockExpiredError)
    expect(error).toBeInstanceOf(ExecutionError)
    expect(error.code).toBe('ERR_REDLOCK_LOCK_EXPIRED')
    // The failed extension did not touch the intruder's keys.
    expect((await valuesOnAll(direct, key)).slice(0, 3)).toEqual([intruder.value, intruder.value, intruder.value])
    await intruder.release()
    await lock.release()
  })

  test('2 of 5 restarted: the lock still holds on 3, extend succeeds', async () => {
    const rl = redlock({ retryCount: 0 })
    const key = uniqueKey('fm-amnesia-minority')
    const lock = await rl.acquire([key], 10000)
    for (const n of fleet.slice(3)) await n.restart()
    await lock.extend(10000, { retryCount: 3, retryDelay: 50 })
    const values = await valuesOnAll(direct, key)
    expect(values.filter((v) => v === lock.value).length).toBeGreaterThanOrEqual(3)
    await lock.release()
  })

  test('the delayed restart: a majority down for longer than the TTL comes back empty, and the lock has expired by then', async () => {
    const rl = redlock({ retryCount: 0 })
    const key = uniqueKey('fm-delayed')
    const lock = await rl.acquire([key], 1000)
    await Promise.all(fleet.slice(0, 3).map((n) => n.kill()))
    await sleep(1300)
    await Promise.all(fleet.slice(0, 3).map((n) => n.start()))
    expect(Date.now()).toBeGreaterThan(lock.expiration)
    const [error] = await timed(lock.extend(1000))
    expect(error).toBeInstanceOf(LockExpiredError)
    const next = await rl.acquire([key], 1000, { retryCount: 3 })
    await next.release()
  })

  test('with persistence (appendonly yes, appendfsync always) the keys survive kill -9 of a majority and extend succeeds', async () => {
    const restarted = fleet.slice(0, 3)
    for (const n of restarted) n.server.persistence = true
    try {
      for (const n of restarted) await n.restart()
      const rl = redlock({ retryCount: 0 })
      const key = uniqueKey('fm-aof')
      const lock = await rl.acquire([key], 10000, { retryCount: 3 })
      await heldEverywhere(key, lock.value)
      for (const n of restarted) await n.restart()
      expect((await valuesOnAll(direct, key)).slice(0, 3)).toEqual([lock.value, lock.value, lock.value])
      await lock.extend(10000, { retryCount: 3, retryDelay: 50 })
      await lock.release()
    } finally {
      for (const n of restarted) {
        n.server.persistence = false
        await n.restart()
      }
    }
  })

  test.each([
    ['FLUSHALL on 3 of 5', (key) => Promise.all(direct.slice(0, 3).map((u) => command(u, 'FLUSHALL')))],
    ['the key deleted on 3 of 5', (key) => Promise.all(direct.slice(2).map((u) => command(u, 'DEL', key)))],
  ])('%s: extend rejects LockExpiredError rather than succeed on a quorum that no longer holds the key', async (_, forget) => {
    const rl = redlock({ retryCount: 0 })
    const key = uniqueKey('fm-forget')
    const lock = await rl.acquire([key], 10000)
    await heldEverywhere(key, lock.value)
    await forget(key)
    const [error] = await timed(lock.extend(10000, { retryCount: 5, retryDelay: 50 }))
    expect(error).toBeInstanceOf(LockExpiredError)
    expect(error.attempts).toHaveLength(1)
    // No node got a longer TTL out of it.
    for (const u of direct) expect(await command(u, 'PTTL', key)).toBeLessThanOrEqual(10000)
    await lock.release()
  })
})

describe('a refused extension', () => {
  // An extension is a compare-and-expire that each node applies as soon as it gets it; when
  // the extension is then refused (no validity left, as here, or too few answers in time),
  // the nodes keep the new TTL. With a shorter duration than the time left, lock.expiration
  // must come down to it, or the holder would go on believing in validity the keys no
  // longer have while another client takes the resource.
  test('never leaves the holder believing in more time than the nodes still give it', async () => {
    const rl = redlock({ retryCount: 0 })
    const other = redlock({ retryCount: 0 })
    const key = uniqueKey('fm-short-extend')
    const lock = await rl.acquire([key], 10000)
    await heldEverywhere(key, lock.value)
    // driftFactor 0.99 leaves a 150 ms extension no validity: refused on every attempt, while
    // every node has ample time (150 ms) to apply it.
    const [error] = await timed(lock.extend(150, { driftFactor: 0.99 }))
    expect(error).toBeInstanceOf(ExecutionError)
    await sleep(400)
    const believed = lock.expiration - Date.now()
    const intruder = await other.acquire([key], 10000).then(
      (l) => l,
      () => null,
    )
    if (intruder) await intruder.release()
    // Safe: either the holder knows its lock is over, or nobody else can take the resource.
    expect({ believed: believed > 0, intruder: !!intruder }).not.toEqual({ believed: true, intruder: true })
  })
})

describe('using() whose lock is lost', () => {
  const duration = 2000
  const settings = { automaticExtensionThreshold: 600, requestTimeout: 200 }

  /**
   * Runs `using`; `lose(key)` is called as the routine starts and `restore()` once the signal
   * aborts (or the wait for it ends). Resolves with the times seen by the routine.
   */
  async function lostWhileUsing(lose, restore = () => {}) {
    const rl = redlock({ retryCount: 10, retryDelay: 200, retryJitter: 100 })
    await warm(rl)
    const key = uniqueKey('fm-using-lost')
    let routineStarted
    let abortedAt
    let signalError
    await rl.using([key], duration, settings, async (signal) => {
      routineStarted = Date.now()
      await lose(key)
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, duration + 3000)
        signal.addEventListener('abort', () => {
          abortedAt = Date.now()
          signalError = signal.error
          clearTimeout(timer)
          resolve()
        })
      })
      restore()
    }).catch(() => {})
    return { routineStarted, abortedAt, signalError }
  }

  test('the keys deleted on a majority: the signal aborts with LockExpiredError before the validity ends', async () => {
    const { routineStarted, abortedAt, signalError } = await lostWhileUsing(async (key) => {
      await until(async () => (await valuesOnAll(direct, key)).every((v) => v !== null), { timeout: 3000 })
      await Promise.all(direct.slice(0, 3).map((u) => command(u, 'DEL', key)))
    })
    expect(abortedAt).toBeDefined()
    expect(signalError).toBeInstanceOf(LockExpiredError)
    // The lock's validity ends before routineStarted + duration (it was granted before).
    expect(abortedAt).toBeLessThan(routineStarted + duration)
  })

  // With retries left, the extension keeps retrying through the partition; the watchdog
  // must still give up, and abort the routine's signal, while validity is left.
  test('a majority partitioned away (blackholed): the signal aborts before the validity ends', async () => {
    const { routineStarted, abortedAt, signalError } = await lostWhileUsing(
      async () => {
        for (const n of fleet.slice(0, 3)) n.proxy.blackhole()
      },
      () => {
        for (const n of fleet.slice(0, 3)) n.proxy.heal()
      },
    )
    expect(abortedAt).toBeDefined()
    expect(signalError).toBeInstanceOf(ExecutionError)
    expect(abortedAt).toBeLessThan(routineStarted + duration)
  })
})

describe('quit() with operations in flight', () => {
  // quit() ends operations already running: retry loops stop with ERR_REDLOCK_CLOSED, also
  // a release or a renewLock retrying forever (retryCount -1), and the process can exit.
  test('every pending operation settles soon after quit(), and the process exits by itself', async () => {
    const ports = [await freePort(), await freePort(), await freePort()]
    const script = `
      const Redlock = require(process.env.PKG)
      const rl = new Redlock(process.env.PORTS.split(',').map((p) => 'redis://127.0.0.1:' + p),
        { retryCount: -1, retryDelay: 100, retryJitter: 0, requestTimeout: 100 })
      const state = {}
      const track = (name, p) => {
        state[name] = 'pending'
        p.then(() => (state[name] = 'resolved'), (e) => (state[name] = e.code))
      }
      track('acquire', rl.acquire(['in-flight'], 5000))
      track('releaseLock', rl.releaseLock('in-flight', 'some-id'))
      track('renewLock', rl.renewLock('in-flight', 'some-id', 5000))
      setTimeout(() => rl.quit(), 300)
      setTimeout(() => console.log(JSON.stringify(state)), 2300).unref()
    `
    const result = await runNode(['-e', script], {
      env: { PKG: path.resolve(__dirname, '..'), PORTS: ports.join(',') },
      timeout: 6000,
    })
    expect(result.stdout).not.toContain('pending')
    expect(result.signal).toBeNull()
    expect(result.code).toBe(0)
  }, 15000)
})

describe('a release hands the lock on in this process before its answers are back', () => {
  test("the next waiter here is granted on the nodes while every reply to the release is held back", async () => {
    // Long per-node timeouts: nothing may time out while the replies wait in the proxies.
    const rl = redlock({ requestTimeout: 20000, retryCount: 1000, retryDelay: 5000 })
    await warm(rl)
    const key = uniqueKey('fm-handon')
    const first = await rl.acquire([key], 30000)
    await heldEverywhere(key, first.value)
    const next = rl.acquire([key], 30000)
    // The waiter was refused and listens for the release on every node.
    await until(
      async () => {
        const counts = await Promise.all(direct.map((u) => command(u, 'PUBSUB', 'NUMSUB', `redlock-rs:released:{${key}}`)))
        return counts.every((c) => c[1] >= 1)
      },
      { timeout: 5000, message: 'the waiter subscribed on every node' },
    )
    for (const node of fleet) node.proxy.holdReplies()
    let released = false
    const releasing = first.release().then((r) => {
      released = true
      return r
    })
    // The release ran on the nodes and the waiter's attempt ran right behind it, although no
    // node's reply (to the release, or its notice) has reached this process.
    const granted = await until(
      async () => {
        const values = await valuesOnAll(direct, key)
        return values.every((v) => v !== null && v !== first.value) && new Set(values).size === 1 && values[0]
      },
      { timeout: 5000, message: "the waiter's value on every node" },
    )
    expect(released).toBe(false)
    for (const node of fleet) node.proxy.heal()
    await releasing
    const lock = await next
    expect(lock.value).toBe(granted)
    await lock.release()
  }, 20000)
})

describe('node-error events and the operation they belong to', () => {
  test("a node's failure reaches 'error' listeners before the operation it failed settles", async () => {
    // 3 of 5 members refuse connections: the attempt fails on their 3 votes, and each of
    // those votes was told to the listeners first.
    const closed = [await freePort(), await freePort(), await freePort()]
    const clients = [...closed.map((p) => `redis://127.0.0.1:${p}`), ...urls.slice(0, 2)]
    const rl = redlock({ retryCount: 0 }, clients)
    const heard = []
    rl.on('error', (e) => heard.push(e.node))
    const settled = await rl.acquire([uniqueKey('fm-events')], 5000).then(
      () => null,
      (error) => ({ error, heardBySettle: [...heard] }),
    )
    expect(settled.error).toBeInstanceOf(ExecutionError)
    const against = [...settled.error.attempts[0].votesAgainst.keys()]
    expect(against).toHaveLength(3)
    expect(new Set(settled.heardBySettle)).toEqual(new Set(against))
  })

  test("an 'error' listener that throws is an uncaught exception, and later operations still settle", async () => {
    const port = await freePort()
    const script = `
      const Redlock = require(process.env.PKG)
      const rl = new Redlock(['redis://127.0.0.1:' + process.env.PORT], { retryCount: 0 })
      let thrown = 0
      process.on('uncaughtException', (e) => { thrown += 1; console.log('uncaught ' + e.message) })
      rl.on('error', () => { throw new Error('listener threw') })
      ;(async () => {
        for (let i = 0; i < 2; i++) await rl.acquire(['t'], 1000).catch((e) => console.log('settled ' + e.code))
        await rl.quit()
        console.log('thrown ' + thrown)
      })()
    `
    const result = await runNode(['-e', script], {
      env: { PKG: path.resolve(__dirname, '..'), PORT: String(port) },
      timeout: 6000,
    })
    expect(result.stdout).toContain('uncaught listener threw')
    expect(result.stdout.match(/settled ERR_REDLOCK_QUORUM/g)).toHaveLength(2)
    // Every failed request of both attempts (and of their undo) was told, and threw.
    expect(Number(/thrown (\d+)/.exec(result.stdout)[1])).toBeGreaterThanOrEqual(2)
    expect(result.code).toBe(0)
  }, 15000)
})
