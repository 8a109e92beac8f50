'use strict'

// Every bad input of SPEC §4: a TypeError or RangeError of this (Jest) realm, with Node's
// usual code and a message naming the argument; thrown synchronously by the constructor,
// as a rejection by the methods; and nothing written to any node.

const net = require('node:net')
const util = require('node:util')
const Redlock = require('..')
const { command, valuesOnAll, pttlsOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey } = require('./support/shared')

const TYPE = 'ERR_INVALID_ARG_TYPE'
const RANGE = 'ERR_OUT_OF_RANGE'
const VALUE = 'ERR_INVALID_ARG_VALUE'
const PASSWORD = 'hunter2-pw'
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

const urls = sharedUrls()
const port = Number(new URL(urls[0]).port) || 6379
const host = new URL(urls[0]).hostname

/** Everything a user could print about an error. */
function everything(error) {
  return [String(error), error && error.message, error && error.stack, util.inspect(error, { depth: 5 })].join(
    '\n',
  )
}

/** Checks an argument error: realm class, code, the argument named, no password shown. */
function checkArgumentError(error, Type, codes, arg) {
  expect(error).toBeInstanceOf(Type)
  expect(error).toBeInstanceOf(Error)
  expect([].concat(codes)).toContain(error.code)
  const named = error.message.includes(`"${arg}"`) || error.message.includes(`'${arg}'`)
  if (!named) throw new Error(`message does not name "${arg}": ${error.message}`)
  expect(everything(error)).not.toContain(PASSWORD)
}

function syncError(fn) {
  try {
    fn()
  } catch (error) {
    return error
  }
  throw new Error('expected a synchronous throw, nothing was thrown')
}

/** Calls `fn`, which must not throw synchronously, and returns its rejection reason. */
async function rejection(fn) {
  let promise
  try {
    promise = fn()
  } catch (error) {
    throw new Error(`expected a rejection, got a synchronous throw: ${error && error.message}`)
  }
  expect(typeof (promise && promise.then)).toBe('function')
  return promise.then(
    () => {
      throw new Error('expected a rejection, the promise resolved')
    },
    (error) => error,
  )
}

/** Polls briefly that none of `keys` exists on any shared node. */
async function expectNothingWritten(keys) {
  await sleep(30)
  for (const key of keys) expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => null))
}

// -------------------------------------------------------------------------------------------
// The constructor: synchronous throws. A counting TCP server is among the nodes, to show no
// connection is opened for a refused construction.

describe('constructor', () => {
  let counter
  let connections = 0
  const sockets = new Set()
  let counterUrl

  beforeAll(async () => {
    counter = net.createServer((socket) => {
      connections += 1
      sockets.add(socket)
      socket.on('close', () => sockets.delete(socket))
    })
    await new Promise((resolve) => counter.listen(0, '127.0.0.1', resolve))
    counterUrl = `redis://127.0.0.1:${counter.address().port}`
  })

  afterAll(async () => {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => counter.close(resolve))
  })

  const good = () => [counterUrl, ...urls]
  const local = (p = port) => `redis://${host}:${p}`

  const cases = [
    // clients
    ['clients not an array (a URL string)', () => [local()], TypeError, TYPE, 'clients', true],
    ['clients not an array (an options object)', () => [{ host, port }], TypeError, TYPE, 'clients', true],
    ['clients undefined', () => [undefined], TypeError, TYPE, 'clients', true],
    ['clients null', () => [null], TypeError, TYPE, 'clients', true],
    ['clients empty', () => [[]], TypeError, VALUE, 'clients'],
    ['an entry of wrong type (number)', () => [[...good(), 42]], TypeError, TYPE, 'clients[6]'],
    ['an entry of wrong type (null)', () => [[null, ...good()]], TypeError, TYPE, 'clients[0]'],
    ['an entry of wrong type (boolean)', () => [[counterUrl, true]], TypeError, TYPE, 'clients[1]'],
    ['a cluster entry (a list) with a startup node of wrong type', () => [[counterUrl, [true]]], TypeError, TYPE, 'clients[1][0]'],
    ['an unparseable URL', () => [[counterUrl, 'redis://:::bad']], TypeError, VALUE, 'clients[1]'],
    ['not a URL at all', () => [[counterUrl, 'not a url']], TypeError, VALUE, 'clients[1]'],
    ['a URL with a non-numeric port', () => [[counterUrl, 'redis://127.0.0.1:abc']], TypeError, VALUE, 'clients[1]'],
    ['an http:// URL', () => [[counterUrl, `http://127.0.0.1:${port}`]], TypeError, VALUE, 'clients[1]'],
    [
      'duplicate servers: 127.0.0.1 and localhost',
      () => [[`redis://127.0.0.1:${port}`, `redis://localhost:${port}`, counterUrl]],
      TypeError,
      VALUE,
      'clients[1]',
    ],
    [
      'duplicate servers: the same URL twice',
      () => [[counterUrl, local(), local()]],
      TypeError,
      VALUE,
      'clients[2]',
    ],
    [
      'duplicate servers: explicit /0 and the default db',
      () => [[`redis://127.0.0.1:${port}/0`, `redis://127.0.0.1:${port}`]],
      TypeError,
      VALUE,
      'clients[1]',
    ],
    [
      'duplicate servers: an options object duplicating a URL',
      () => [[`redis://127.0.0.1:${port}`, counterUrl, { host: '127.0.0.1', port }]],
      TypeError,
      VALUE,
      'clients[2]',
    ],
    [
      'duplicate servers: a URL duplicating an options object (localhost)',
      () => [[{ host: 'localhost', port }, `redis://127.0.0.1:${port}`]],
      TypeError,
      VALUE,
      'clients[1]',
    ],
    ['port 0', () => [[counterUrl, { host, port: 0 }]], RangeError, RANGE, 'clients[1].port'],
    ['port 70000', () => [[counterUrl, { host, port: 70000 }]], RangeError, RANGE, 'clients[1].port'],
    ['port -1', () => [[counterUrl, { host, port: -1 }]], RangeError, RANGE, 'clients[1].port'],
    ['port 1.5', () => [[counterUrl, { host, port: 1.5 }]], RangeError, RANGE, 'clients[1].port'],
    ['port NaN', () => [[counterUrl, { host, port: NaN }]], RangeError, RANGE, 'clients[1].port'],
    ['port in a URL out of range', () => [[counterUrl, 'redis://127.0.0.1:70000']], TypeError, VALUE, 'clients[1]'],
    ['port as a string', () => [[counterUrl, { host, port: String(port) }]], TypeError, TYPE, 'clients[1].port'],
    ['host not a string', () => [[counterUrl, { host: 127001, port }]], TypeError, TYPE, 'clients[1].host'],
    ['db negative', () => [[counterUrl, { host, port, db: -1 }]], RangeError, RANGE, 'clients[1].db'],
    // settings
    ['settings a string', () => [good(), 'fast'], TypeError, TYPE, 'settings'],
    ['settings a number', () => [good(), 42], TypeError, TYPE, 'settings'],
    ['settings an array', () => [good(), []], TypeError, TYPE, 'settings'],
    ['settings a boolean', () => [good(), true], TypeError, TYPE, 'settings'],
    ['driftFactor negative', () => [good(), { driftFactor: -0.1 }], RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor 1', () => [good(), { driftFactor: 1 }], RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor 2', () => [good(), { driftFactor: 2 }], RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor NaN', () => [good(), { driftFactor: NaN }], RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor a string', () => [good(), { driftFactor: '0.01' }], TypeError, TYPE, 'settings.driftFactor'],
    ['retryCount -2', () => [good(), { retryCount: -2 }], RangeError, RANGE, 'settings.retryCount'],
    ['retryCount 1.5', () => [good(), { retryCount: 1.5 }], RangeError, RANGE, 'settings.retryCount'],
    ['retryCount a string', () => [good(), { retryCount: '3' }], TypeError, TYPE, 'settings.retryCount'],
    ['retryCount Infinity', () => [good(), { retryCount: Infinity }], RangeError, RANGE, 'settings.retryCount'],
    ['retryDelay negative', () => [good(), { retryDelay: -1 }], RangeError, RANGE, 'settings.retryDelay'],
    ['retryDelay Infinity', () => [good(), { retryDelay: Infinity }], RangeError, RANGE, 'settings.retryDelay'],
    ['retryJitter negative', () => [good(), { retryJitter: -1 }], RangeError, RANGE, 'settings.retryJitter'],
    ['requestTimeout 0', () => [good(), { requestTimeout: 0 }], RangeError, RANGE, 'settings.requestTimeout'],
    ['retryStrategy bogus', () => [good(), { retryStrategy: 'bogus' }], TypeError, VALUE, 'settings.retryStrategy'],
    // A setting that would change nothing is not dropped silently.
    ['an unknown setting', () => [good(), { retryCont: 3 }], TypeError, VALUE, 'settings.retryCont'],
    ["node-redlock v4's lockScript", () => [good(), { lockScript: 'return 1' }], TypeError, VALUE, 'settings.lockScript'],
    ['a signal given to the constructor', () => [good(), { signal: new AbortController().signal }], TypeError, VALUE, 'settings.signal'],
    ['db negative', () => [good(), { db: -1 }], RangeError, RANGE, 'settings.db'],
    ['db a string', () => [good(), { db: '2' }], TypeError, TYPE, 'settings.db'],
    ["node-redlock v5's custom scripts", () => [good(), {}, { acquireScript: 'return 1' }], TypeError, VALUE, 'scripts'],
  ]

  test.each(cases)('%s: throws synchronously', (_, args, Type, code, arg) => {
    const error = syncError(() => new Redlock(...args()))
    checkArgumentError(error, Type, code, arg)
  })

  test('`new Redlock(...)` refusals throw in Jest with toThrow(TypeError/RangeError)', () => {
    expect(() => new Redlock([])).toThrow(TypeError)
    expect(() => new Redlock(good(), { retryCount: -2 })).toThrow(RangeError)
  })

  const secretCases = [
    ['duplicate URLs with a password', [`redis://user:${PASSWORD}@127.0.0.1:1/0`, `redis://user:${PASSWORD}@localhost:1/0`]],
    ['a URL duplicating an options object with a password', [`redis://user:${PASSWORD}@127.0.0.1:1/0`, { host: '127.0.0.1', port: 1, password: PASSWORD }]],
    ['a URL with a bad port', [`redis://user:${PASSWORD}@127.0.0.1:99999/0`]],
    ['an http:// URL', [`http://user:${PASSWORD}@127.0.0.1:1/0`]],
    ['a rediss:// URL with a bad db', [`rediss://user:${PASSWORD}@127.0.0.1:1/notadb`]],
    ['a URL without host', [`redis://user:${PASSWORD}@:1/0`]],
    ['a URL with a bad db', [`redis://user:${PASSWORD}@127.0.0.1:1/notadb`]],
    ['a url field that is not redis://', [{ url: `http://user:${PASSWORD}@127.0.0.1:1` }]],
    ['an options object with a bad port', [{ host: '127.0.0.1', port: 'x', password: PASSWORD }]],
    ['an options object with an unusable tls.ca', [{ host: '127.0.0.1', port: 1, password: PASSWORD, tls: { ca: 'x' } }]],
    ['a password given as the port', [{ host: '127.0.0.1', port: PASSWORD }]],
    ['a password given as the host', [{ host: 42, port: 1, password: PASSWORD }]],
  ]

  test.each(secretCases)('no password in the error: %s', (_, clients) => {
    const error = syncError(() => new Redlock(clients))
    expect(error instanceof TypeError || error instanceof RangeError).toBe(true)
    expect([TYPE, RANGE, VALUE]).toContain(error.code)
    expect(error.message).toMatch(/clients/)
    expect(everything(error)).not.toContain(PASSWORD)
  })

  test('a password given as a setting is not echoed', () => {
    const error = syncError(() => new Redlock(good(), { retryStrategy: PASSWORD }))
    checkArgumentError(error, TypeError, VALUE, 'settings.retryStrategy')
  })

  test('no refused construction opened a connection', async () => {
    await sleep(100)
    expect(connections).toBe(0)
  })
})

// -------------------------------------------------------------------------------------------
// Methods: rejections, and nothing written.

describe('methods', () => {
  let redlock

  beforeAll(() => {
    redlock = new Redlock(urls, { retryCount: 0 })
  })

  afterAll(async () => {
    await redlock.quit()
  })

  const badSettings = [
    ['a string', 'fast', TypeError, TYPE, 'settings'],
    ['a number', 42, TypeError, TYPE, 'settings'],
    ['an array', [], TypeError, TYPE, 'settings'],
    ['driftFactor negative', { driftFactor: -0.1 }, RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor 1', { driftFactor: 1 }, RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor NaN', { driftFactor: NaN }, RangeError, RANGE, 'settings.driftFactor'],
    ['driftFactor a string', { driftFactor: '0.01' }, TypeError, TYPE, 'settings.driftFactor'],
    ['retryCount -2', { retryCount: -2 }, RangeError, RANGE, 'settings.retryCount'],
    ['retryCount 1.5', { retryCount: 1.5 }, RangeError, RANGE, 'settings.retryCount'],
    ['retryCount a string', { retryCount: '3' }, TypeError, TYPE, 'settings.retryCount'],
    ['retryDelay negative', { retryDelay: -1 }, RangeError, RANGE, 'settings.retryDelay'],
    ['retryJitter negative', { retryJitter: -1 }, RangeError, RANGE, 'settings.retryJitter'],
    ['requestTimeout 0', { requestTimeout: 0 }, RangeError, RANGE, 'settings.requestTimeout'],
    ['retryStrategy bogus', { retryStrategy: 'bogus' }, TypeError, VALUE, 'settings.retryStrategy'],
    ['restartGuard bogus', { restartGuard: 'loose' }, TypeError, VALUE, 'settings.restartGuard'],
    ['restartGuard a number', { restartGuard: 1 }, TypeError, TYPE, 'settings.restartGuard'],
    ['restartGuardWindow negative', { restartGuardWindow: -1 }, RangeError, RANGE, 'settings.restartGuardWindow'],
    ['an unknown setting', { retryDeley: 10 }, TypeError, VALUE, 'settings.retryDeley'],
    // The database is the constructor's: every connection is opened on it.
    ['a db of its own', { db: 3 }, TypeError, VALUE, 'settings.db'],
  ]

  test.each(badSettings)('acquire with per-call settings %s: rejects, nothing written', async (_, settings, Type, code, arg) => {
    const key = uniqueKey('bad-acquire-settings')
    checkArgumentError(await rejection(() => redlock.acquire([key], 1000, settings)), Type, code, arg)
    await expectNothingWritten([key])
  })

  test.each(badSettings)('using with per-call settings %s: rejects, routine not run', async (_, settings, Type, code, arg) => {
    const key = uniqueKey('bad-using-settings')
    const routine = jest.fn()
    checkArgumentError(await rejection(() => redlock.using([key], 1000, settings, routine)), Type, code, arg)
    expect(routine).not.toHaveBeenCalled()
    await expectNothingWritten([key])
  })

  describe('release and extend with bad per-call settings leave the lock alone', () => {
    let lock
    let key

    beforeAll(async () => {
      key = uniqueKey('bad-lock-settings')
      lock = await redlock.acquire([key], 5000)
    })

    afterAll(async () => {
      await lock.release()
    })

    test.each(badSettings)('release(lock, %s)', async (_, settings, Type, code, arg) => {
      checkArgumentError(await rejection(() => redlock.release(lock, settings)), Type, code, arg)
      checkArgumentError(await rejection(() => lock.release(settings)), Type, code, arg)
      await sleep(30)
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
    })

    test.each(badSettings)('extend(lock, 60000, %s)', async (_, settings, Type, code, arg) => {
      checkArgumentError(await rejection(() => redlock.extend(lock, 60000, settings)), Type, code, arg)
      checkArgumentError(await rejection(() => lock.extend(60000, settings)), Type, code, arg)
      await sleep(30)
      for (const pttl of await pttlsOnAll(urls, key)) expect(pttl).toBeLessThanOrEqual(5000)
    })
  })

  const badResources = [
    ['undefined', () => undefined, TypeError, TYPE, 'resources'],
    ['null', () => null, TypeError, TYPE, 'resources'],
    ['42', () => 42, TypeError, TYPE, 'resources'],
    ["''", () => '', TypeError, VALUE, 'resources'],
    ['[]', () => [], TypeError, VALUE, 'resources'],
    ["['']", () => [''], TypeError, VALUE, 'resources[0]'],
    ['[key, 3]', (key) => [key, 3], TypeError, TYPE, 'resources[1]'],
    ["[key, '']", (key) => [key, ''], TypeError, VALUE, 'resources[1]'],
    ['[key, null]', (key) => [key, null], TypeError, TYPE, 'resources[1]'],
    ['{}', () => ({}), TypeError, TYPE, 'resources'],
    ['a Set', (key) => new Set([key]), TypeError, TYPE, 'resources'],
  ]

  test.each(badResources)('acquire(%s, 1000): rejects, nothing written', async (_, make, Type, code, arg) => {
    const key = uniqueKey('bad-resources')
    checkArgumentError(await rejection(() => redlock.acquire(make(key), 1000)), Type, code, arg)
    await expectNothingWritten([key])
  })

  test.each(badResources)('using(%s, 1000, routine): rejects, routine not run', async (_, make, Type, code, arg) => {
    const key = uniqueKey('bad-using-resources')
    const routine = jest.fn()
    checkArgumentError(await rejection(() => redlock.using(make(key), 1000, routine)), Type, code, arg)
    expect(routine).not.toHaveBeenCalled()
    await expectNothingWritten([key])
  })

  // A number that is not an integer is refused in node-redlock's own words (its users' tests
  // match them); the others name the argument.
  const NOT_INTEGER = 'Duration must be an integer value in milliseconds.'
  const badDurations = [
    ['undefined', undefined, TypeError, TYPE, 'duration'],
    ['null', null, TypeError, TYPE, 'duration'],
    ["'1000'", '1000', TypeError, TYPE, 'duration'],
    ['0', 0, RangeError, RANGE, 'duration'],
    ['-5', -5, RangeError, RANGE, 'duration'],
    ['1.5', 1.5, RangeError, RANGE, NOT_INTEGER],
    ['NaN', NaN, RangeError, RANGE, NOT_INTEGER],
    ['Infinity', Infinity, RangeError, RANGE, NOT_INTEGER],
    ['MAX_SAFE_INTEGER / 10', Number.MAX_SAFE_INTEGER / 10, RangeError, RANGE, NOT_INTEGER],
    ['2 ** 53', 2 ** 53, RangeError, RANGE, 'duration'],
  ]

  function checkDurationError(error, Type, code, expected) {
    if (expected !== NOT_INTEGER) return checkArgumentError(error, Type, code, expected)
    expect(error).toBeInstanceOf(Type)
    expect(error.code).toBe(code)
    expect(error.message).toBe(NOT_INTEGER)
  }

  test.each(badDurations)('acquire(key, %s): rejects, nothing written', async (_, duration, Type, code, arg) => {
    const key = uniqueKey('bad-duration')
    checkDurationError(await rejection(() => redlock.acquire([key], duration)), Type, code, arg)
    await expectNothingWritten([key])
  })

  test.each(badDurations)('v4 lock(key, %s) and acquireLock: reject, nothing written', async (_, duration, Type, code, arg) => {
    const key = uniqueKey('bad-duration-v4')
    checkDurationError(await rejection(() => redlock.lock(key, duration)), Type, code, arg)
    checkDurationError(await rejection(() => redlock.acquireLock(key, duration)), Type, code, arg)
    await expectNothingWritten([key])
  })

  test.each(badDurations)('using(key, %s, routine): rejects naming the duration, routine not run', async (_, duration, Type, code, arg) => {
    const key = uniqueKey('bad-duration-using')
    const routine = jest.fn()
    checkDurationError(await rejection(() => redlock.using([key], duration, routine)), Type, code, arg)
    expect(routine).not.toHaveBeenCalled()
    await expectNothingWritten([key])
  })

  describe('extend with a bad duration leaves the lock alone', () => {
    let lock
    let key

    beforeAll(async () => {
      key = uniqueKey('bad-extend-duration')
      lock = await redlock.acquire([key], 5000)
    })

    afterAll(async () => {
      await lock.release()
    })

    test.each(badDurations)('extend(lock, %s)', async (_, duration, Type, code, arg) => {
      checkDurationError(await rejection(() => redlock.extend(lock, duration)), Type, code, arg)
      checkDurationError(await rejection(() => lock.extend(duration)), Type, code, arg)
      await sleep(30)
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => lock.value))
      for (const pttl of await pttlsOnAll(urls, key)) expect(pttl).toBeLessThanOrEqual(5000)
    })
  })

  describe('non-Lock values given as a lock', () => {
    let key
    beforeAll(async () => {
      key = uniqueKey('bad-lock')
      await Promise.all(urls.map((u) => command(u, 'SET', key, 'held', 'PX', 10000)))
    })

    const fakes = [
      ['{}', () => ({})],
      ['null', () => null],
      ['undefined', () => undefined],
      ['a lookalike object', () => ({ resources: [key], resource: key, value: 'held', id: 'held', expiration: Date.now() + 10000 })],
      ['a string', () => 'held'],
    ]

    test.each(fakes)('release and unlock with %s: reject, nothing deleted', async (_, make) => {
      checkArgumentError(await rejection(() => redlock.release(make())), TypeError, TYPE, 'lock')
      checkArgumentError(await rejection(() => redlock.unlock(make())), TypeError, TYPE, 'lock')
      await sleep(30)
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => 'held'))
    })

    test.each(fakes)('extend(%s, 60000): rejects, nothing extended', async (_, make) => {
      checkArgumentError(await rejection(() => redlock.extend(make(), 60000)), TypeError, TYPE, 'lock')
      await sleep(30)
      for (const pttl of await pttlsOnAll(urls, key)) expect(pttl).toBeLessThanOrEqual(10000)
    })
  })

  test.each([
    ['no routine', (key) => redlock.using([key], 1000)],
    ['settings but no routine', (key) => redlock.using([key], 1000, {})],
    ['a routine that is a string', (key) => redlock.using([key], 1000, {}, 'routine')],
    ['a routine that is an object', (key) => redlock.using([key], 1000, { routine() {} })],
  ])('using with %s: rejects naming "routine", nothing written', async (_, call) => {
    const key = uniqueKey('bad-using')
    checkArgumentError(await rejection(() => call(key)), TypeError, TYPE, 'routine')
    await expectNothingWritten([key])
  })

  describe('releaseLock / renewLock with a bad lockId or resource leave the key alone', () => {
    let key
    beforeAll(async () => {
      key = uniqueKey('bad-lockid')
      await Promise.all(urls.map((u) => command(u, 'SET', key, 'held', 'PX', 10000)))
    })

    const cases = [
      ["releaseLock(key, '')", (k) => redlock.releaseLock(k, ''), TypeError, VALUE, 'lockId'],
      ['releaseLock(key, 42)', (k) => redlock.releaseLock(k, 42), TypeError, TYPE, 'lockId'],
      ['releaseLock(key, undefined)', (k) => redlock.releaseLock(k), TypeError, TYPE, 'lockId'],
      ['releaseLock(key, null)', (k) => redlock.releaseLock(k, null), TypeError, TYPE, 'lockId'],
      ['releaseLock(key, {})', (k) => redlock.releaseLock(k, {}), TypeError, TYPE, 'lockId'],
      ["renewLock(key, '', 60000)", (k) => redlock.renewLock(k, '', 60000), TypeError, VALUE, 'lockId'],
      ['renewLock(key, 42, 60000)', (k) => redlock.renewLock(k, 42, 60000), TypeError, TYPE, 'lockId'],
      ["renewLock(key, 'held', 0)", (k) => redlock.renewLock(k, 'held', 0), RangeError, RANGE, 'duration'],
      ["renewLock(key, 'held', '60000')", (k) => redlock.renewLock(k, 'held', '60000'), TypeError, TYPE, 'duration'],
      ["releaseLock(undefined, 'held')", () => redlock.releaseLock(undefined, 'held'), TypeError, TYPE, 'resource'],
      ["releaseLock('', 'held')", () => redlock.releaseLock('', 'held'), TypeError, VALUE, 'resource'],
      ["renewLock(42, 'held', 60000)", () => redlock.renewLock(42, 'held', 60000), TypeError, TYPE, 'resource'],
    ]

    test.each(cases)('%s', async (_, call, Type, code, arg) => {
      checkArgumentError(await rejection(() => call(key)), Type, code, arg)
      await sleep(30)
      expect(await valuesOnAll(urls, key)).toEqual(urls.map(() => 'held'))
      for (const pttl of await pttlsOnAll(urls, key)) expect(pttl).toBeLessThanOrEqual(10000)
    })
  })

  test.each([
    ['inspect()', () => redlock.inspect(), TypeError, TYPE, 'resources'],
    ["inspect('')", () => redlock.inspect(''), TypeError, VALUE, 'resources'],
    ['inspect([])', () => redlock.inspect([]), TypeError, VALUE, 'resources'],
    ["inspect(['a', 42])", () => redlock.inspect(['a', 42]), TypeError, TYPE, 'resources[1]'],
    ["inspect('a', { requestTimeout: 0 })", () => redlock.inspect('a', { requestTimeout: 0 }), RangeError, RANGE, 'settings.requestTimeout'],
    ["inspect('a', { colour: 1 })", () => redlock.inspect('a', { colour: 1 }), TypeError, VALUE, 'settings.colour'],
    ['isLocked(null)', () => redlock.isLocked(null), TypeError, TYPE, 'resources'],
    ["isLocked('a', 5)", () => redlock.isLocked('a', 5), TypeError, TYPE, 'settings'],
  ])('%s rejects naming the argument', async (_, call, Type, code, arg) => {
    checkArgumentError(await rejection(call), Type, code, arg)
  })

  test('Jest matchers see the realm classes: rejects.toThrow(TypeError/RangeError)', async () => {
    const key = uniqueKey('bad-matchers')
    await expect(redlock.acquire([key], 0)).rejects.toThrow(RangeError)
    await expect(redlock.acquire(42, 1000)).rejects.toThrow(TypeError)
    await expect(redlock.release({})).rejects.toBeInstanceOf(TypeError)
    await expectNothingWritten([key])
  })
})
