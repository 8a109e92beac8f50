'use strict'

// `using` and `lock.autoExtend` (issue 3): the engine's watchdog keeps the lock extended
// whatever the event loop is doing, aborts the routine's signal when the lock is lost,
// stops and releases when the routine settles (never replacing its result or error), caps
// the hold with `maxHold`, and leaves nothing behind that would keep a process alive.

const { spawnSync } = require('node:child_process')
const path = require('node:path')
const Redlock = require('..')
const { LockExpiredError, MaxHoldError, ExecutionError } = require('..')
const { Conn, command, startServers, stopServers, until, valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey, spawnNode } = require('./support/shared')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const urls = sharedUrls()
const PKG = path.resolve(__dirname, '..')
// A 600 ms lock, extended 300 ms before it expires.
const TTL = 600
const FAST = { automaticExtensionThreshold: 300 }

let redlock
let conns
beforeAll(() => {
  redlock = new Redlock(urls, { retryCount: 3, retryDelay: 50, retryJitter: 0 })
  conns = urls.map((u) => new Conn(u))
})
afterAll(async () => {
  await redlock.quit()
  for (const c of conns) c.close()
})

const values = (key) => Promise.all(conns.map((c) => c.send('GET', key)))
const pttls = (key) => Promise.all(conns.map((c) => c.send('PTTL', key)))

/** The value held under `key` by a majority of the nodes, or null. */
async function majorityValue(key) {
  const vs = await values(key)
  const counts = new Map()
  for (const v of vs) if (v !== null) counts.set(v, (counts.get(v) || 0) + 1)
  for (const [v, n] of counts) if (n >= 3) return v
  return null
}

function goneEverywhere(key, timeout = 3000) {
  return until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), {
    timeout,
    message: `${key} gone from every node`,
  })
}

describe('using', () => {
  test('a routine running ~4 TTLs keeps the lock: PTTL stays positive on a quorum throughout, signal not aborted', async () => {
    const key = uniqueKey('using-long')
    let samples = 0
    let lowest = Infinity
    const result = await redlock.using([key], TTL, FAST, async (signal) => {
      const end = Date.now() + 4 * TTL
      while (Date.now() < end) {
        const ps = await pttls(key)
        const alive = ps.filter((p) => p > 0).length
        lowest = Math.min(lowest, alive)
        samples += 1
        expect(signal.aborted).toBe(false)
        await sleep(40)
      }
      return { aborted: signal.aborted }
    })
    expect(result).toEqual({ aborted: false })
    expect(samples).toBeGreaterThan(10)
    expect(lowest).toBeGreaterThanOrEqual(3)
    expect(await majorityValue(key)).toBeNull()
  })

  test('a routine that blocks the event loop for 3 × TTL still keeps the lock (the watchdog is a Rust task)', async () => {
    const key = uniqueKey('using-busy')
    const outcome = await redlock.using([key], TTL, FAST, async (signal) => {
      const ours = await majorityValue(key)
      expect(ours).not.toBeNull()
      const end = Date.now() + 3 * TTL
      while (Date.now() < end) {
        // busy: no timer, no I/O callback runs here
      }
      const afterValues = await values(key)
      const afterPttls = await pttls(key)
      return {
        ours,
        held: afterValues.filter((v) => v === ours).length,
        alive: afterPttls.filter((p) => p > 0).length,
        aborted: signal.aborted,
      }
    })
    expect(outcome.held).toBeGreaterThanOrEqual(3)
    expect(outcome.alive).toBeGreaterThanOrEqual(3)
    expect(outcome.aborted).toBe(false)
    await goneEverywhere(key)
  })

  test('a lock taken away on a majority aborts the signal with a LockExpiredError before the routine finishes', async () => {
    const key = uniqueKey('using-stolen')
    const stolenOn = urls.slice(0, 3)
    const seen = {}
    const result = await redlock.using([key], TTL, FAST, async (signal) => {
      seen.ours = await majorityValue(key)
      await Promise.all(stolenOn.map((u) => command(u, 'SET', key, 'thief', 'PX', 20000)))
      const stolenAt = Date.now()
      if (!signal.aborted) {
        await new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('signal not aborted within 5000 ms')), 5000)
          signal.addEventListener('abort', () => {
            clearTimeout(timer)
            resolve()
          })
        })
      }
      seen.after = Date.now() - stolenAt
      seen.error = signal.error
      seen.reason = signal.reason
      return 'finished'
    })
    expect(result).toBe('finished')
    expect(seen.ours).not.toBeNull()
    expect(seen.error).toBeInstanceOf(LockExpiredError)
    expect(seen.error).toBeInstanceOf(ExecutionError)
    expect(seen.error.code).toBe('ERR_REDLOCK_LOCK_EXPIRED')
    expect(seen.reason).toBe(seen.error)
    // One extension period (TTL - threshold) and a round trip, with room for a loaded machine.
    expect(seen.after).toBeLessThan(3000)
    // The thief keeps its keys; ours are gone from the other nodes.
    const after = await valuesOnAll(urls, key)
    expect(after.slice(0, 3)).toEqual(['thief', 'thief', 'thief'])
    await until(async () => (await valuesOnAll(urls, key)).slice(3).every((v) => v === null), {
      timeout: 3000,
    })
    await Promise.all(urls.map((u) => command(u, 'DEL', key)))
  })

  test('the release happens after the routine: key present during, gone after', async () => {
    const key = uniqueKey('using-release')
    let during
    let given
    const result = await redlock.using([key], 5000, async (signal, context) => {
      given = context.lock
      await sleep(100)
      during = await values(key)
      return 42
    })
    expect(result).toBe(42)
    expect(during[0]).not.toBeNull()
    // The routine is handed its lock (in its second argument, sesame's context).
    expect(given).toBeInstanceOf(Redlock.Lock)
    expect(given.value).toBe(during[0])
    expect(during.every((v) => v === during[0])).toBe(true)
    // Released on a quorum before `using` resolved, and everywhere soon after.
    expect((await values(key)).filter((v) => v === null).length).toBeGreaterThanOrEqual(3)
    await goneEverywhere(key)
  })

  test("a throwing routine's error reaches the caller unchanged (same object) and the lock is released", async () => {
    const key = uniqueKey('using-throw')
    const mine = new Error('routine failed')
    mine.code = 'MINE'
    let held
    const error = await redlock
      .using([key], TTL, FAST, async () => {
        held = await majorityValue(key)
        await sleep(50)
        throw mine
      })
      .catch((e) => e)
    expect(error).toBe(mine)
    expect(held).not.toBeNull()
    await goneEverywhere(key)
    // And the resource can be taken again at once.
    const lock = await redlock.acquire([key], 1000, { retryCount: 0 })
    await lock.release()
  })

  test('a synchronously throwing (non-async) routine is handled the same way', async () => {
    const key = uniqueKey('using-throw-sync')
    const mine = new TypeError('sync failure')
    const error = await redlock
      .using([key], TTL, FAST, () => {
        throw mine
      })
      .catch((e) => e)
    expect(error).toBe(mine)
    await goneEverywhere(key)
  })
})

describe('using: a release failure never replaces the routine outcome (own servers, nodes paused)', () => {
  let servers
  let own
  let ownUrls
  const nodeErrors = []
  beforeAll(async () => {
    servers = await startServers(5)
    ownUrls = servers.map((s) => s.url)
    own = new Redlock(ownUrls, { requestTimeout: 200, retryCount: 1, retryDelay: 50, retryJitter: 0 })
    own.on('error', (e) => nodeErrors.push(e))
  }, 30000)
  afterAll(async () => {
    for (const s of servers || []) s.resume()
    if (own) await own.quit()
    await stopServers(servers)
  })

  for (const kind of ['result', 'error']) {
    test(`routine ${kind} survives a failed release`, async () => {
      const key = uniqueKey(`using-relfail-${kind}`)
      const mine = new Error('routine error')
      const paused = servers.slice(0, 3)
      nodeErrors.length = 0
      const outcome = own
        .using([key], 5000, async () => {
          for (const s of paused) s.pause()
          if (kind === 'error') throw mine
          return 'routine result'
        })
        .then(
          (value) => ({ value }),
          (error) => ({ error }),
        )
      try {
        const settled = await outcome
        if (kind === 'error') expect(settled.error).toBe(mine)
        else expect(settled).toEqual({ value: 'routine result' })
        // The release did fail (and was reported as an 'error' event, not thrown).
        expect(nodeErrors.some((e) => e instanceof ExecutionError)).toBe(true)
      } finally {
        for (const s of paused) s.resume()
      }
      // The key on the paused nodes expires or is released once they resume; clean up.
      await Promise.all(ownUrls.map((u) => command(u, 'DEL', key)))
    }, 20000)
  }

  // Regression: a process that exits (or quits) right after `release()` must not drop the
  // release's stragglers. On a slow node the release waits behind the lock's own SET (the
  // per-node lane); if it is never written, the SET lands alone and the key stays for the
  // whole TTL. node-redlock (v4) waits for every node before it resolves a release.
  for (const quit of [false, true]) {
    test(`a process that releases and then exits${quit ? ' after quit()' : ''} leaves no key behind on a slow node`, async () => {
      const key = uniqueKey(`using-exit-release-${quit}`)
      const code = `
        const Redlock = require(process.env.REDLOCK_PKG)
        const redlock = new Redlock(process.env.REDLOCK_URLS.split(','))
        ;(async () => {
          const warm = await redlock.acquire([process.env.KEY + ':warm'], 1000)
          await warm.release()
          console.log('ready')
          await new Promise((r) => process.stdin.once('data', r))
          const lock = await redlock.acquire([process.env.KEY], 30000)
          await lock.release()
          console.log('released')
          if (process.env.QUIT === '1') await redlock.quit()
          process.stdin.destroy()
        })()
      `
      const { proc: child, output, exited } = spawnNode(['-e', code], {
        env: { REDLOCK_PKG: PKG, REDLOCK_URLS: ownUrls.join(','), KEY: key, QUIT: quit ? '1' : '0' },
        stdin: 'pipe',
        timeout: 20000,
      })
      const out = () => output.stdout + output.stderr
      try {
        await until(() => out().includes('ready'), { timeout: 15000, message: 'child ready' })
        servers[0].pause() // a slow node: answers only after the child is gone
        child.stdin.write('go\n')
        expect((await exited).code).toBe(0)
      } finally {
        servers[0].resume()
      }
      expect(out()).toContain('released')
      await sleep(1500)
      const left = await valuesOnAll(ownUrls, key)
      await Promise.all(ownUrls.map((u) => command(u, 'DEL', key)))
      expect(left).toEqual(ownUrls.map(() => null))
    }, 30000)
  }
})

describe('lock.autoExtend', () => {
  test('maxHold 1500 on a 600 ms lock: extended past its TTL, then onLost gets MaxHoldError and the key is gone by ~maxHold + TTL', async () => {
    const key = uniqueKey('auto-maxhold')
    // The default threshold (500 ms before expiry) leaves room for a starved machine.
    const lock = await redlock.acquire([key], TTL)
    const t0 = Date.now()
    const lost = []
    const { signal } = lock.autoExtend({
      duration: TTL,
      maxHold: 1500,
      onLost: (error) => lost.push({ error, at: Date.now() - t0 }),
    })
    await sleep(1000)
    // Past the original TTL, still held thanks to the watchdog.
    expect(await majorityValue(key)).toBe(lock.value)
    await goneEverywhere(key, 1500 + TTL + 2000)
    const goneAt = Date.now() - t0
    expect(goneAt).toBeLessThan(1500 + TTL + 2000)
    await until(() => lost.length > 0, { timeout: 3000, message: 'onLost called' })
    expect(lost.length).toBe(1)
    expect({ name: lost[0].error.name, at: lost[0].at }).toEqual({ name: 'MaxHoldError', at: lost[0].at })
    expect(lost[0].error).toBeInstanceOf(MaxHoldError)
    expect(lost[0].error).toBeInstanceOf(ExecutionError)
    expect(lost[0].error.code).toBe('ERR_REDLOCK_MAX_HOLD')
    // The hold lasted about maxHold, not less.
    expect(lost[0].at).toBeGreaterThanOrEqual(1300)
    expect(signal.aborted).toBe(true)
    expect(signal.error).toBe(lost[0].error)
    expect(lock.valid).toBe(false)
    await lock.release()
  })

  test('autoExtend().stop() keeps the lock until release; after stop it is no longer extended', async () => {
    const key = uniqueKey('auto-stop')
    const lock = await redlock.acquire([key], TTL, FAST)
    let lostCalls = 0
    const watch = lock.autoExtend({ duration: TTL, settings: FAST, onLost: () => (lostCalls += 1) })
    await sleep(1200)
    expect(await majorityValue(key)).toBe(lock.value)
    expect(lock.valid).toBe(true)
    await watch.stop()
    expect(watch.signal.aborted).toBe(false)
    expect(await majorityValue(key)).toBe(lock.value)
    await lock.release()
    await goneEverywhere(key)
    expect(lostCalls).toBe(0)

    // Stopped and not released: the lock simply expires after at most one TTL.
    const key2 = uniqueKey('auto-stop-expire')
    const lock2 = await redlock.acquire([key2], TTL, FAST)
    const watch2 = lock2.autoExtend({ duration: TTL, settings: FAST })
    await sleep(700)
    await watch2.stop()
    const stoppedAt = Date.now()
    await goneEverywhere(key2, 3000)
    expect(Date.now() - stoppedAt).toBeLessThan(TTL + 1500)
    await lock2.release()
  })

  test('lock.release() stops the watchdog: the key stays gone and onLost is never called', async () => {
    const key = uniqueKey('auto-release')
    const lock = await redlock.acquire([key], TTL, FAST)
    let lostCalls = 0
    const watch = lock.autoExtend({ duration: TTL, settings: FAST, onLost: () => (lostCalls += 1) })
    await sleep(400)
    await lock.release()
    expect((await values(key)).filter((v) => v === null).length).toBeGreaterThanOrEqual(3)
    await sleep(2 * TTL)
    expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
    expect(lostCalls).toBe(0)
    expect(watch.signal.aborted).toBe(false)
    await watch.stop() // stopping again is harmless
  })
})

describe('process lifetime', () => {
  const runChild = (code) =>
    spawnSync(process.execPath, ['-e', code], {
      env: { ...process.env, REDLOCK_PKG: PKG, REDLOCK_URLS: urls.join(','), KEY: uniqueKey('using-child') },
      timeout: 20000,
      encoding: 'utf8',
    })

  test('a child that runs a `using` (several extensions) and then does nothing exits by itself, code 0', () => {
    const started = Date.now()
    const result = runChild(`
      const Redlock = require(process.env.REDLOCK_PKG)
      process.on('unhandledRejection', (r) => { console.log('UNHANDLED', r); process.exitCode = 3 })
      const redlock = new Redlock(process.env.REDLOCK_URLS.split(','))
      redlock.using([process.env.KEY], 600, { automaticExtensionThreshold: 300 }, async (signal) => {
        await new Promise((r) => setTimeout(r, 1500))
        return signal.aborted ? 'aborted' : 'ok'
      }).then((v) => console.log('using resolved ' + v))
    `)
    const info = `status ${result.status} signal ${result.signal} after ${Date.now() - started} ms\n${result.stdout}\n${result.stderr}`
    expect({ status: result.status, signal: result.signal, info }).toEqual({ status: 0, signal: null, info })
    expect(result.stdout).toContain('using resolved ok')
    expect(result.stdout).not.toContain('UNHANDLED')
  }, 30000)

  test('a child that autoExtends, stops, releases and then does nothing exits by itself, code 0', () => {
    const result = runChild(`
      const Redlock = require(process.env.REDLOCK_PKG)
      const redlock = new Redlock(process.env.REDLOCK_URLS.split(','))
      redlock.acquire([process.env.KEY], 600).then(async (lock) => {
        const watch = lock.autoExtend({ duration: 600, settings: { automaticExtensionThreshold: 300 } })
        await new Promise((r) => setTimeout(r, 1000))
        await watch.stop()
        await lock.release()
        console.log('done')
      })
    `)
    const info = `status ${result.status} signal ${result.signal}\n${result.stdout}\n${result.stderr}`
    expect({ status: result.status, signal: result.signal, info }).toEqual({ status: 0, signal: null, info })
    expect(result.stdout).toContain('done')
  }, 30000)
})
