'use strict'

// Read-write locks against real servers: readers together, a writer alone, write preference
// that a stream of readers cannot starve and that ends with the writer, and the Lock semantics
// of a mutex on each side.

const { spawn } = require('node:child_process')
const Redlock = require('..')
const { ExecutionError, ResourceLockedError, Lock, ReadWriteLock } = Redlock
const { command, until, valuesOnAll } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey } = require('./support/shared')

const TTL = 10000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

let fleet = []
let urls = []
let direct = []
const redlocks = []

function redlock(settings) {
  const rl = new Redlock(urls, { retryCount: 0, requestTimeout: 300, ...settings })
  redlocks.push(rl)
  return rl
}

const keys = (resource) => ({ write: `{${resource}}:write`, readers: `{${resource}}:readers`, intent: `{${resource}}:intent` })

/** The readers each node holds for `resource`, sorted. */
async function readersOnAll(resource) {
  return Promise.all(direct.map(async (url) => ((await command(url, 'ZRANGE', keys(resource).readers, 0, -1)) || []).sort()))
}

beforeAll(async () => {
  fleet = await startFleet(5, { proxied: true, persistent: false })
  urls = fleet.map((n) => n.url)
  direct = fleet.map((n) => n.directUrl)
}, 30000)

afterEach(async () => {
  await Promise.all(redlocks.splice(0).map((rl) => rl.quit()))
  for (const node of fleet) await node.heal()
})

afterAll(async () => {
  await stopFleet(fleet)
})

describe('readers together, a writer alone', () => {
  test('any number of readers hold at once, from several clients', async () => {
    const resource = uniqueKey('rw-readers')
    const [a, b] = [redlock(), redlock()]
    const readers = await Promise.all([
      a.readWriteLock(resource).read.acquire(TTL),
      a.readWriteLock(resource).read.acquire(TTL),
      b.readWriteLock(resource).read.acquire(TTL),
    ])
    for (const r of readers) expect(r).toBeInstanceOf(Lock)
    const values = readers.map((r) => r.value).sort()
    await until(async () => (await readersOnAll(resource)).every((held) => held.join() === values.join()))
    await Promise.all(readers.map((r) => r.release()))
    await until(async () => (await readersOnAll(resource)).every((held) => held.length === 0))
  })

  test('a writer is refused while a reader holds, and a reader while a writer holds', async () => {
    const resource = uniqueKey('rw-exclusive')
    const rw = redlock().readWriteLock(resource)
    expect(rw).toBeInstanceOf(ReadWriteLock)
    expect(rw.resource).toBe(resource)
    const reader = await rw.read.acquire(TTL)
    await expect(redlock().readWriteLock(resource).write.acquire(TTL)).rejects.toThrow(ResourceLockedError)
    await reader.release()
    // Another writer is not held back by the refused one's intent.
    const writer = await redlock({ retryCount: 20, retryDelay: 50 }).readWriteLock(resource).write.acquire(TTL)
    await until(async () => (await valuesOnAll(direct, keys(resource).write)).every((v) => v === writer.value))
    await expect(redlock().readWriteLock(resource).read.acquire(TTL)).rejects.toThrow(ResourceLockedError)
    await expect(redlock().readWriteLock(resource).write.acquire(TTL)).rejects.toThrow(ResourceLockedError)
    await writer.release()
    const after = await redlock({ retryCount: 20, retryDelay: 50 }).readWriteLock(resource).read.acquire(TTL)
    expect(after.valid).toBe(true)
  })

  test('with a minority of nodes down, both sides are still granted', async () => {
    const resource = uniqueKey('rw-minority')
    const rw = redlock().readWriteLock(resource)
    await fleet[1].proxy.blackhole()
    await fleet[4].proxy.blackhole()
    const reader = await rw.read.acquire(TTL)
    await reader.release()
    const writer = await rw.write.acquire(TTL)
    expect(writer.valid).toBe(true)
    await writer.release()
  })
})

describe('write preference', () => {
  test('a writer waiting behind a stream of readers gets the lock, and new readers wait behind it', async () => {
    const resource = uniqueKey('rw-stream')
    const readerClient = redlock({ retryCount: -1, retryDelay: 20, retryJitter: 10 })
    let stop = false
    let readsAfterWriter = 0
    let writerGranted = null
    // Four loops keep the read side held at every moment: each holds 60 ms and asks again.
    const loop = async () => {
      while (!stop) {
        const lock = await readerClient.readWriteLock(resource).read.acquire(TTL)
        if (writerGranted !== null) readsAfterWriter += 1
        await sleep(60)
        await lock.release()
      }
    }
    const loops = [loop(), sleep(15).then(loop), sleep(30).then(loop), sleep(45).then(loop)]
    await sleep(300)
    const writer = redlock({ retryCount: -1, retryDelay: 50, retryJitter: 10 }).readWriteLock(resource).write
    // A generous bound against a hang: readers that held when it asked finish within 60 ms.
    const lock = await Promise.race([
      writer.acquire(TTL),
      sleep(20000).then(() => Promise.reject(new Error('the writer starved'))),
    ])
    writerGranted = Date.now()
    // While the writer holds, no reader gets in.
    await sleep(200)
    expect(readsAfterWriter).toBe(0)
    await lock.release()
    await until(() => readsAfterWriter > 0, { timeout: 5000 })
    stop = true
    await Promise.all(loops)
  }, 40000)

  test('a writer that gives up clears its intent at once', async () => {
    const resource = uniqueKey('rw-gave-up')
    const rl = redlock()
    const rw = rl.readWriteLock(resource)
    const reader = await rw.read.acquire(TTL)
    await expect(rw.write.acquire(TTL)).rejects.toThrow(ResourceLockedError)
    expect(await valuesOnAll(direct, keys(resource).intent)).toEqual(Array(5).fill(null))
    const next = await rw.read.acquire(TTL)
    await Promise.all([reader.release(), next.release()])
  })

  test('a writer that crashed while waiting keeps readers out only until its intent expires', async () => {
    const resource = uniqueKey('rw-crashed-writer')
    const rl = redlock({ retryDelay: 100, retryJitter: 0 })
    const reader = await rl.readWriteLock(resource).read.acquire(TTL)
    // A writer in a process of its own waits behind the reader, then dies without a word.
    const program = `
      const Redlock = require(${JSON.stringify(require.resolve('..'))})
      const rl = new Redlock(${JSON.stringify(urls)}, { retryCount: -1, retryDelay: 100, retryJitter: 0, requestTimeout: 300 })
      rl.readWriteLock(${JSON.stringify(resource)}).write.acquire(${TTL})
      setInterval(() => {}, 1000)
    `
    const writer = spawn(process.execPath, ['-e', program], { stdio: 'ignore' })
    try {
      await until(async () => (await valuesOnAll(direct, keys(resource).intent)).every((v) => v !== null), { timeout: 10000 })
    } finally {
      writer.kill('SIGKILL')
    }
    await expect(rl.readWriteLock(resource).read.acquire(TTL, { retryCount: 0 })).rejects.toThrow(ResourceLockedError)
    // Twice its longest pause (100 ms) plus its request timeout (300 ms): about 800 ms.
    const intentTtl = await command(direct[0], 'PTTL', keys(resource).intent)
    expect(intentTtl).toBeGreaterThan(0)
    expect(intentTtl).toBeLessThanOrEqual(800)
    const late = await rl.readWriteLock(resource).read.acquire(TTL, { retryCount: -1 })
    expect(late.valid).toBe(true)
    await Promise.all([reader.release(), late.release()])
  }, 30000)
})

describe('each side behaves as a lock', () => {
  test('extend and release; a reader extended outlives its first TTL', async () => {
    const resource = uniqueKey('rw-extend')
    const rw = redlock().readWriteLock(resource)
    const reader = await rw.read.acquire(300)
    await reader.extend(TTL)
    await sleep(500)
    expect(reader.valid).toBe(true)
    await expect(rw.write.acquire(TTL)).rejects.toThrow(ResourceLockedError)
    await reader.release()
    const writer = await rw.write.acquire(300, { retryCount: 20, retryDelay: 50 })
    await writer.extend(TTL)
    expect(await command(direct[0], 'PTTL', keys(resource).write)).toBeGreaterThan(5000)
    await writer.release()
    await until(async () => (await valuesOnAll(direct, keys(resource).write)).every((v) => v === null))
  })

  test('using holds either side while the routine runs', async () => {
    const resource = uniqueKey('rw-using')
    const rw = redlock({ retryCount: 20, retryDelay: 50 }).readWriteLock(resource)
    const inside = await rw.read.using(TTL, async (signal, { lock }) => {
      expect(signal.aborted).toBe(false)
      return (await readersOnAll(resource)).some((held) => held.includes(lock.value))
    })
    expect(inside).toBe(true)
    const wrote = await rw.write.using(TTL, { retryCount: 20 }, async (_, { lock }) => lock.value)
    expect(typeof wrote).toBe('string')
    await until(async () => (await valuesOnAll(direct, keys(resource).write)).every((v) => v === null))
  })

  test('write locks take fencing tokens that grow; read locks take none', async () => {
    const resource = uniqueKey('rw-fence')
    const rw = redlock({ fencing: true, retryCount: 20, retryDelay: 50 }).readWriteLock(resource)
    const first = await rw.write.acquire(TTL)
    await first.release()
    const reader = await rw.read.acquire(TTL)
    expect(reader.fencingToken).toBeUndefined()
    await reader.release()
    const second = await rw.write.acquire(TTL)
    expect(typeof first.fencingToken).toBe('bigint')
    expect(second.fencingToken).toBeGreaterThan(first.fencingToken)
    await second.release()
  })

  test('an aborted writer rejects with AbortError', async () => {
    const resource = uniqueKey('rw-abort')
    const rl = redlock()
    const reader = await rl.readWriteLock(resource).read.acquire(TTL)
    const controller = new AbortController()
    const waiting = rl.readWriteLock(resource).write.acquire(TTL, { retryCount: -1, signal: controller.signal })
    setTimeout(() => controller.abort(), 100)
    await expect(waiting).rejects.toThrow(Redlock.AbortError)
    expect(await valuesOnAll(direct, keys(resource).write)).toEqual(Array(5).fill(null))
    // Its intent went with it: readers are not kept out by a writer that stopped.
    expect(await valuesOnAll(direct, keys(resource).intent)).toEqual(Array(5).fill(null))
    await reader.release()
  })
})

describe('bad input', () => {
  test.each([
    ['an empty resource', ''],
    ['a resource not a string', 42],
    ['a list of resources', ['a', 'b']],
  ])('%s throws a TypeError naming it', (_, resource) => {
    const rl = redlock()
    expect(() => rl.readWriteLock(resource)).toThrow(TypeError)
    expect(() => rl.readWriteLock(resource)).toThrow('resource')
  })

  test('a bad duration rejects with a RangeError, and nothing reaches the servers', async () => {
    const rl = redlock()
    const rw = rl.readWriteLock(uniqueKey('rw-bad'))
    await expect(rw.write.acquire(0)).rejects.toThrow(RangeError)
    await expect(rw.read.acquire(1.5)).rejects.toThrow(RangeError)
    expect(rl.stats().nodes.every((n) => n.requests === 0)).toBe(true)
  })
})

test('a refused acquisition is an ExecutionError', async () => {
  const resource = uniqueKey('rw-error')
  const rl = redlock()
  const writer = await rl.readWriteLock(resource).write.acquire(TTL)
  const refused = await rl.readWriteLock(resource).read.acquire(TTL).catch((e) => e)
  expect(refused).toBeInstanceOf(ExecutionError)
  expect(refused.code).toBe('ERR_REDLOCK_RESOURCE_LOCKED')
  await writer.release()
})
