'use strict'

// Property-based bad input (fast-check): random values of every type at every public method
// and setting. Whatever comes in, the answer is a success, a TypeError/RangeError of this
// realm with Node's usual code, or (for valid input that cannot succeed, such as a 1 ms
// duration) an ExecutionError; never a crash, a hang, a rejection with a non-Error, or a key
// written for refused input. Resource names with spaces, braces, unicode, 10 KB, NUL bytes
// or Lua-looking text are valid and must lock like any other. Passwords in malformed URLs,
// wrong ports and refused logins never show up in errors, attempts or events.
//
// Runs against 5 redis-servers of its own, so that DBSIZE can prove nothing was written.
// FC_SEED=<n> replays a run; the seed is printed when a property fails. FC_RUNS=<n> sets the
// runs of a property (100 by default; the smaller properties scale with it): FC_RUNS=1100 is
// the nightly size, over 10,000 generated calls in all.

const util = require('node:util')
const fc = require('fast-check')
const Redlock = require('..')
const { ExecutionError, ResourceLockedError, Lock } = Redlock
const { RedisServer, startServers, stopServers, freePort, command, until, valuesOnAll } = require('./support/servers')

const ARG_CODES = { ERR_INVALID_ARG_TYPE: TypeError, ERR_INVALID_ARG_VALUE: TypeError, ERR_OUT_OF_RANGE: RangeError }
const HANG_MS = 8000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const RUNS = Number(process.env.FC_RUNS) > 0 ? Math.floor(Number(process.env.FC_RUNS)) : 100
const FC = { numRuns: RUNS, ...(process.env.FC_SEED && { seed: Number(process.env.FC_SEED) }) }
/** `n` runs at the default size, scaled to FC_RUNS. */
const runs = (n) => Math.max(1, Math.round((n * RUNS) / 100))
// Jest's per-test limit, scaled too: a bound against hangs, not a timing.
jest.setTimeout(30000 * Math.max(1, RUNS / 100))

let servers = []
let urls = []
let redlock
let other
let guarded
let closedPort
const tried = Object.create(null)
const outcomes = Object.create(null)
const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)

beforeAll(async () => {
  servers = await startServers(5)
  urls = servers.map((s) => s.url)
  guarded = new RedisServer({ port: await freePort() })
  await guarded.start()
  await command(guarded.url, 'CONFIG', 'SET', 'requirepass', 'the-real-one')
  closedPort = await freePort()
  // Retries short enough that a valid call which cannot succeed ends quickly.
  redlock = new Redlock(urls, { retryCount: 1, retryDelay: 10, retryJitter: 0, requestTimeout: 1000 })
  other = new Redlock(urls, { retryCount: 0 })
  process.on('unhandledRejection', onUnhandled)
})

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  await redlock.quit()
  await other.quit()
  await stopServers([...servers, guarded])
  const total = Object.values(tried).reduce((a, b) => a + b, 0)
  const kinds = Object.entries(outcomes).map(([what, k]) => `${what}: ${Object.entries(k).map(([kind, n]) => `${kind} ${n}`).join(' ')}`)
  console.log(`properties: ${total} generated inputs (${Object.entries(tried).map(([k, n]) => `${k} ${n}`).join(', ')})\n${kinds.join('\n')}`)
})

afterEach(() => {
  expect(unhandled).toEqual([])
})

// ---------------------------------------------------------------------------------------------
// Arbitraries

const anything = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withMap: true,
  withSet: true,
  withDate: true,
  withTypedArray: true,
  withSparseArray: true,
  withNullPrototype: true,
  withObjectString: true,
  withUnicodeString: true,
})

const edgeValues = fc.constantFrom(
  undefined, null, NaN, Infinity, -Infinity, -0, 0, -1, 0.5, 1.5, 1e21, 2 ** 31, 2 ** 31 - 1, 2 ** 53,
  Number.MAX_VALUE, Number.MIN_VALUE, -(2 ** 31), '', ' ', '0', '1000', 'NaN', true, false,
  Symbol('s'), 10n, -1n, [], [[]], {}, Object.create(null), new Date(NaN), /re/, new Error('e'),
  () => {}, async () => {}, new Proxy({}, {}), new Proxy([], {}), Promise.resolve(1),
  new Map(), new Set(), new Uint8Array(4), Buffer.from('x'), new String('s'), new Number(5),
)

const any = fc.oneof(anything, edgeValues, fc.func(anything))

const durations = fc.oneof(any, fc.integer({ min: 1, max: 120000 }), fc.integer({ min: -5, max: 5 }))

/** Settings drawn from anything, or a safe valid value per field. */
const settingFields = {
  driftFactor: fc.oneof(any, fc.double({ min: 0, max: 0.99, noNaN: true })),
  retryCount: fc.oneof(any, fc.integer({ min: 0, max: 1 })),
  retryDelay: fc.oneof(any, fc.integer({ min: 0, max: 50 })),
  retryJitter: fc.oneof(any, fc.integer({ min: 0, max: 50 })),
  retryStrategy: fc.oneof(any, fc.constantFrom('fixed', 'exponential', 'Fixed', 'linear')),
  maxRetryDelay: fc.oneof(any, fc.integer({ min: 0, max: 10000 })),
  requestTimeout: fc.oneof(any, fc.integer({ min: 1, max: 5000 })),
  automaticExtensionThreshold: fc.oneof(any, fc.integer({ min: 0, max: 5000 })),
  restartGuard: fc.oneof(any, fc.constantFrom(true, false, 'strict', 'loose')),
  restartGuardWindow: fc.oneof(any, fc.integer({ min: 0, max: 120000 })),
}

const isNum = (v) => typeof v === 'number' && !Number.isNaN(v)

/**
 * Whether settings are valid in a way that may legitimately take long (many retries, long
 * pauses): those are left out, as a hang could not be told from a user's own choice.
 */
function slowButValid(s) {
  if (!s || typeof s !== 'object') return false
  const count = s.retryCount
  if (isNum(count) && Number.isInteger(count) && (count === -1 || count > 1) && count <= 2147483647) return true
  for (const k of ['retryDelay', 'retryJitter']) {
    if (isNum(s[k]) && s[k] > 50 && s[k] <= 2147483647) return true
  }
  return false
}

const validSettings = fc.record(
  Object.fromEntries(Object.entries(settingFields).map(([k, arb]) => [k, arb.filter((v) => isNum(v) || typeof v === 'string')])),
  { requiredKeys: [] },
)

const settingsArb = fc
  .oneof(any, fc.record(settingFields, { requiredKeys: [] }), fc.constant(undefined), validSettings)
  .filter((s) => !slowButValid(s))

/** Resource names that are valid and must lock correctly. */
const oddNames = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 40 }),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }),
  fc.constantFrom(
    ' ', 'a b c', '{braces}', '{a}:{b}', '}{', '\t\n\r', '\0', 'a\0b', 'ü→😀', '\u{10FFFF}', 'é'.normalize('NFD'),
    "return redis.call('FLUSHALL')", "]] redis.call('DEL', KEYS[1]) --[[", 'KEYS[1]', 'ARGV[1]', '*1\r\n$4\r\nPING\r\n',
    'x'.repeat(10 * 1024), '🔒'.repeat(2600),
  ),
  fc.string({ unit: 'binary', minLength: 10 * 1024, maxLength: 10 * 1024 + 8 }),
)

const resourcesArb = fc.oneof(
  any,
  oddNames,
  fc.array(oddNames, { minLength: 1, maxLength: 4 }),
  fc.array(fc.oneof(any, oddNames), { minLength: 0, maxLength: 4 }),
)

// ---------------------------------------------------------------------------------------------
// What may come out

/** Settles `call()` (sync throw, rejection, value) within HANG_MS. */
async function outcome(call) {
  let promise
  try {
    promise = call()
  } catch (error) {
    return classify(error, true)
  }
  if (!promise || typeof promise.then !== 'function') return { kind: 'value', value: promise }
  let timer
  const hang = new Promise((resolve) => {
    timer = setTimeout(() => resolve({ kind: 'hang' }), HANG_MS)
  })
  const settled = await Promise.race([
    promise.then(
      (value) => ({ kind: 'ok', value }),
      (error) => classify(error, false),
    ),
    hang,
  ])
  clearTimeout(timer)
  return settled
}

function classify(error, sync) {
  const Expected = error && ARG_CODES[error.code]
  if (Expected && error instanceof Expected && error instanceof Error) return { kind: 'refused', error, sync }
  if (error instanceof ExecutionError && /^ERR_REDLOCK_[A-Z_]+$/.test(error.code)) return { kind: 'failed', error, sync }
  return { kind: 'bad', error, sync }
}

/** Fails the property on a crash-like outcome; returns the outcome otherwise. */
function allowed(result, what) {
  const tally = (outcomes[what] = outcomes[what] || Object.create(null))
  tally[result.kind] = (tally[result.kind] || 0) + 1
  if (result.kind === 'hang') throw new Error(`${what}: no answer within ${HANG_MS} ms`)
  if (result.kind === 'bad') {
    const e = result.error
    throw new Error(`${what}: ${result.sync ? 'threw' : 'rejected with'} ${e instanceof Error ? `${e.name} ${e.code} ${e.message}` : `a non-Error: ${util.inspect(e)}`}`)
  }
  return result
}

async function dbsizes() {
  return Promise.all(urls.map((u) => command(u, 'DBSIZE')))
}

async function expectEmpty() {
  const sizes = await dbsizes()
  if (sizes.some((n) => n !== 0)) throw new Error(`keys were written: DBSIZE ${sizes}`)
}

async function eventuallyEmpty() {
  await until(async () => (await dbsizes()).every((n) => n === 0), { timeout: 3000, message: 'every server empty' })
}

/** After a call: a refusal wrote nothing; a granted lock is released; all servers end empty. */
async function cleanUp(result) {
  if (result.kind === 'refused') {
    await sleep(5)
    await expectEmpty()
  }
  if (result.kind === 'ok' && result.value instanceof Lock) await result.value.release()
  await eventuallyEmpty()
}

function count(name, n = FC.numRuns) {
  tried[name] = (tried[name] || 0) + n
}

/** Everything a user could print about a value. */
function everything(value) {
  const parts = [util.inspect(value, { depth: Infinity, showHidden: true })]
  if (value instanceof Error) parts.push(String(value), value.message, value.stack || '')
  return parts.join('\n')
}

// ---------------------------------------------------------------------------------------------

describe('random input at every method', () => {
  test('new Redlock(clients, settings): a Redlock or a synchronous TypeError/RangeError', () => {
    const clientEntry = fc.oneof(
      any,
      fc.integer({ min: 1, max: 65535 }).map((p) => `redis://127.0.0.1:${p}`),
      fc.integer({ min: 1, max: 65535 }).map((p) => ({ host: 'localhost', port: p, db: p % 16 })),
      fc.record({ host: any, port: any, db: any, password: any, username: any, keyPrefix: any, tls: any }, { requiredKeys: [] }),
    )
    const clientsArb = fc.oneof(any, fc.array(clientEntry, { minLength: 0, maxLength: 4 }))
    fc.assert(
      fc.property(clientsArb, settingsArb, (clients, settings) => {
        let made
        try {
          made = new Redlock(clients, settings)
        } catch (error) {
          allowed(classify(error, true), 'constructor')
          return
        }
        expect(made).toBeInstanceOf(Redlock)
        allowed({ kind: 'ok' }, 'constructor')
        made.quit()
      }),
      FC,
    )
    count('constructor')
  })

  test('acquire(resources, duration, settings)', async () => {
    await fc.assert(
      fc.asyncProperty(resourcesArb, durations, settingsArb, async (resources, duration, settings) => {
        const result = allowed(await outcome(() => redlock.acquire(resources, duration, settings)), 'acquire')
        await cleanUp(result)
      }),
      FC,
    )
    count('acquire')
  })

  test('lock(resource, ttl, callback), acquireLock(resource, ttl)', async () => {
    await fc.assert(
      fc.asyncProperty(resourcesArb, durations, any, fc.boolean(), async (resource, ttl, callback, v4) => {
        const result = allowed(
          await outcome(() => (v4 ? redlock.lock(resource, ttl, callback) : redlock.acquireLock(resource, ttl))),
          v4 ? 'lock' : 'acquireLock',
        )
        await cleanUp(result)
      }),
      FC,
    )
    count('lock/acquireLock')
  })

  describe('on a held lock', () => {
    const key = 'held:{props}'
    let lock

    beforeEach(async () => {
      lock = await redlock.acquire([key], 10000)
    })

    afterEach(async () => {
      await lock.release()
      await eventuallyEmpty()
    })

    async function renew() {
      await lock.release()
      await eventuallyEmpty()
      lock = await redlock.acquire([key], 10000)
    }

    /** A refused call left the held key alone: same value everywhere, no longer TTL. */
    async function untouched() {
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
      for (const u of urls) expect(await command(u, 'PTTL', key)).toBeLessThanOrEqual(10000)
    }

    const lockOrNot = fc.oneof(fc.constant('the lock'), any)

    test('extend(lock, duration, settings) and lock.extend(duration, settings)', async () => {
      await fc.assert(
        fc.asyncProperty(lockOrNot, durations, settingsArb, fc.boolean(), async (target, duration, settings, method) => {
          const subject = target === 'the lock' ? lock : target
          const result = allowed(
            await outcome(() => (method ? lock.extend(duration, settings) : redlock.extend(subject, duration, settings))),
            'extend',
          )
          if (result.kind === 'refused') {
            await untouched()
          } else {
            // Put the lock back to the 10 s the other checks expect (an extension, even a
            // failed one, may have given the keys a shorter TTL).
            await renew()
          }
        }),
        FC,
      )
      count('extend')
    })

    test('release(lock, settings), unlock(lock, callback), lock.release(settings), lock.unlock(callback)', async () => {
      await fc.assert(
        fc.asyncProperty(lockOrNot, any, settingsArb, fc.integer({ min: 0, max: 3 }), async (target, callback, settings, method) => {
          const subject = target === 'the lock' ? lock : target
          const calls = [
            () => redlock.release(subject, settings),
            () => redlock.unlock(subject, callback),
            () => lock.release(settings),
            () => lock.unlock(callback),
          ]
          const result = allowed(await outcome(calls[method]), 'release')
          if (result.kind === 'refused') await untouched()
          if (result.kind === 'ok') {
            await until(async () => (await valuesOnAll(urls, key)).every((v) => v === null), { timeout: 2000 })
            lock = await redlock.acquire([key], 10000)
          }
        }),
        FC,
      )
      count('release/unlock')
    })

    test('releaseLock(resource, lockId), renewLock(resource, lockId, ttl)', async () => {
      const ids = fc.oneof(any, fc.constant('the id'), fc.string())
      const resources = fc.oneof(resourcesArb, fc.constant(key))
      await fc.assert(
        fc.asyncProperty(resources, ids, durations, fc.boolean(), async (resource, id, ttl, renewing) => {
          const lockId = id === 'the id' ? lock.id : id
          const ours = resource === key && lockId === lock.id
          const result = allowed(
            await outcome(() => (renewing ? redlock.renewLock(resource, lockId, ttl) : redlock.releaseLock(resource, lockId))),
            renewing ? 'renewLock' : 'releaseLock',
          )
          if (result.kind === 'refused') await untouched()
          if (ours && result.kind !== 'refused') {
            await renew()
          } else if (!ours) {
            // Another id or resource never touches our key.
            expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
          }
        }),
        FC,
      )
      count('releaseLock/renewLock')
    })
  })

  test('using(resources, duration, settings, routine)', async () => {
    const routines = fc.oneof(any, fc.constant('a function'))
    await fc.assert(
      fc.asyncProperty(resourcesArb, durations, settingsArb, routines, fc.boolean(), async (resources, duration, settings, routine, three) => {
        let ran = 0
        const fn = routine === 'a function' ? async () => (ran += 1) : routine
        const result = allowed(
          await outcome(() => (three ? redlock.using(resources, duration, fn) : redlock.using(resources, duration, settings, fn))),
          'using',
        )
        if (result.kind === 'refused' && typeof fn === 'function' && fn !== settings) expect(ran).toBe(0)
        await cleanUp(result)
      }),
      FC,
    )
    count('using')
  })
})

describe('odd resource names are valid and lock like any other', () => {
  test('acquire, excluded for another Redlock, stored as-is on every node, released', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(oddNames, { minLength: 1, maxLength: 3 }), async (names) => {
        const lock = await redlock.acquire(names, 10000)
        for (const name of new Set(names)) {
          expect(await valuesOnAll(urls, name)).toEqual(urls.map(() => lock.value))
        }
        const refused = await other.acquire(names, 10000).then(
          () => null,
          (e) => e,
        )
        expect(refused).toBeInstanceOf(ResourceLockedError)
        await lock.extend(10000)
        await lock.release()
        await eventuallyEmpty()
      }),
      { ...FC, numRuns: runs(60) },
    )
    count('odd names', runs(60))
  })

  test('names with lone surrogates: refused with a TypeError or locked and released', async () => {
    const lone = fc.stringMatching(/^[a-z]{0,3}$/).chain((s) =>
      fc.constantFrom('\uD800', '\uDFFF', '\uDBFF\uDBFF', 'a\uDC00b').map((x) => s + x),
    )
    await fc.assert(
      fc.asyncProperty(lone, async (name) => {
        const result = allowed(await outcome(() => redlock.acquire([name], 10000)), 'acquire')
        if (result.kind === 'ok') {
          const refused = await other.acquire([name], 10000).then(
            () => null,
            (e) => e,
          )
          expect(refused).toBeInstanceOf(ResourceLockedError)
        }
        await cleanUp(result)
      }),
      { ...FC, numRuns: runs(20) },
    )
    count('lone surrogates', runs(20))
  })
})

describe('clients: malformed URLs, wrong ports, wrong passwords', () => {
  const password = fc.stringMatching(/^[A-Za-z0-9]{10,16}$/).map((s) => `pw-${s}`)
  const hosts = fc.oneof(
    { arbitrary: fc.constantFrom('127.0.0.1', 'localhost'), weight: 4 },
    fc.constantFrom('', '[::1]', '127.0.0.1.', ' 127.0.0.1', '127.0.0.1:1', '%41', '[', '@'),
  )
  const schemes = fc.oneof(
    { arbitrary: fc.constant('redis://'), weight: 4 },
    fc.constantFrom('rediss://', 'http://', 'redis:/', 'redis:', '', 'REDIS://', 'unix://'),
  )
  const paths = fc.oneof(
    { arbitrary: fc.constantFrom('', '/', '/0', '/1', '/15'), weight: 3 },
    fc.constantFrom('/99999999999', '/x', '/-1', '?db=2', '#f', '/0?password=x'),
  )
  const users = fc.constantFrom('', 'default', 'alice', 'a:b', '%40')
  const ports = () =>
    fc.oneof(
      { arbitrary: fc.constantFrom('guarded', 'closed', 'good'), weight: 4 },
      fc.constantFrom('', '0', '65536', '-1', 'abc', '99999', '6379x', ' 1'),
    )

  test('each URL is refused (TypeError, no password in it) or, when it names a loopback server, fails without showing the password', async () => {
    await fc.assert(
      fc.asyncProperty(schemes, users, password, hosts, ports(), paths, fc.boolean(), async (scheme, user, pw, host, port, path, alone) => {
        const portText = { guarded: guarded.port, closed: closedPort, good: servers[0].port }[port] ?? port
        const url = `${scheme}${user}:${encodeURIComponent(pw)}@${host}${portText === '' ? '' : `:${portText}`}${path}`
        const clients = alone ? [url] : [url, urls[1], urls[2]]
        let rl
        try {
          rl = new Redlock(clients, { retryCount: 0, requestTimeout: 300 })
        } catch (error) {
          allowed(classify(error, true), 'constructor')
          expect(everything(error)).not.toContain(pw)
          return
        }
        try {
          expect(everything(rl.nodes)).not.toContain(pw)
          const loopback = rl.nodes.every((n) => /^(127\.0\.0\.1|localhost|\[?::1\]?):/.test(n))
          if (!loopback) return
          const events = []
          rl.on('error', (e) => events.push(e))
          const result = allowed(await outcome(() => rl.acquire(['pw:{props}'], 5000)), 'acquire')
          if (result.kind === 'ok') {
            expect(everything(result.value)).not.toContain(pw)
            await result.value.release()
          } else {
            expect(everything(result.error)).not.toContain(pw)
          }
          await sleep(20)
          for (const e of events) expect(everything(e)).not.toContain(pw)
        } finally {
          rl.quit()
        }
      }),
      { ...FC, numRuns: runs(150) },
    )
    count('client URLs', runs(150))
    await eventuallyEmpty()
  })

  test('options objects with a wrong password or port: the failure never shows the password', async () => {
    await fc.assert(
      fc.asyncProperty(password, fc.constantFrom('guarded', 'closed'), fc.option(fc.constantFrom('default', 'bob')), async (pw, which, username) => {
        const port = which === 'guarded' ? guarded.port : closedPort
        const rl = new Redlock([{ host: '127.0.0.1', port, password: pw, ...(username && { username }) }], {
          retryCount: 1,
          retryDelay: 10,
          requestTimeout: 300,
        })
        const events = []
        rl.on('error', (e) => events.push(e))
        rl.on('clientError', (e) => events.push(e))
        try {
          const result = allowed(await outcome(() => rl.acquire(['pw:{options}'], 5000)), 'acquire')
          expect(result.kind).toBe('failed')
          expect(result.error.code).toBe('ERR_REDLOCK_QUORUM')
          expect(everything(result.error)).not.toContain(pw)
          await sleep(20)
          expect(events.length).toBeGreaterThan(0)
          for (const e of events) expect(everything(e)).not.toContain(pw)
        } finally {
          rl.quit()
        }
      }),
      { ...FC, numRuns: runs(30) },
    )
    count('client options', runs(30))
  })
})

describe('hostile objects: getters and Proxies that throw', () => {
  class Boom extends Error {}
  // Made inside the property from plain generated values, so that fast-check never has to
  // print an object that throws.
  function hostile(field, how) {
    const error = new Boom(`boom from ${field}`)
    const value =
      how === 'getter'
        ? Object.defineProperty({}, field, { enumerable: true, get: () => { throw error } })
        : new Proxy({}, { get: () => { throw error }, has: () => { throw error }, ownKeys: () => { throw error } })
    return { error, value }
  }
  const fields = fc.constantFrom(...Object.keys(settingFields))

  // The user's own exception from a getter or Proxy trap comes back as itself (what Node's
  // own APIs do), or as a TypeError with a code, never as an internal error.
  test('settings whose getter throws: the call throws the user\'s own error (or a TypeError with a code), never an internal error', async () => {
    count('throwing getters/Proxies', runs(30))
    await fc.assert(
      fc.asyncProperty(fields, fc.constantFrom('getter', 'proxy'), fc.constantFrom('constructor', 'acquire', 'using', 'extend'), async (field, how, where) => {
        const { error, value } = hostile(field, how)
        const calls = {
          constructor: () => new Redlock(urls, value),
          acquire: () => redlock.acquire(['hostile:{a}'], 1000, value),
          using: () => redlock.using(['hostile:{u}'], 1000, value, async () => {}),
          extend: async () => {
            const lock = await redlock.acquire(['hostile:{e}'], 1000)
            try {
              await lock.extend(1000, value)
            } finally {
              await lock.release()
            }
          },
        }
        const result = await outcome(calls[where])
        const seen = result.error
        if (seen !== error && result.kind !== 'refused') {
          throw new Error(`${where}: got ${seen && seen.name} ${seen && seen.code} ${seen && seen.message}`)
        }
        await eventuallyEmpty()
      }),
      { ...FC, numRuns: runs(30) },
    )
  })
})
