'use strict'

// Every failure subset: for N = 3, 5 and 7 members and every subset of them made unavailable
// (killed, paused with SIGSTOP, or blackholed through the proxy: one mode per subset, in
// rotation), acquire, extend and release succeed exactly when the remaining members form a
// quorum, and fail with ERR_REDLOCK_QUORUM otherwise, within one request timeout (plus
// slack: a bound against hangs, not a benchmark). A failed acquisition leaves no key on the
// members that answered.

const Redlock = require('..')
const { ExecutionError } = require('..')
const { until, valuesOnAll } = require('./support/servers')
const { startFleet, stopFleet } = require('./support/faults')
const { uniqueKey } = require('./support/shared')

const REQUEST_TIMEOUT = 150
// One attempt and its undo: at most two request timeouts, plus slack for a loaded machine.
const BOUND = 2 * REQUEST_TIMEOUT + 2500
const MODES = ['kill', 'pause', 'blackhole']
// A lock's extend and release retry as its acquisition asked; these ask for one attempt.
const ONE_ATTEMPT = { retryCount: 0 }

let fleet = []
const unhandled = []
const onUnhandled = (reason) => unhandled.push(reason)

beforeAll(async () => {
  fleet = await startFleet(7, { proxied: true, persistent: false })
  process.on('unhandledRejection', onUnhandled)
})

afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  await stopFleet(fleet)
})

/** Every subset of {0, …, n − 1}, as arrays of indexes, smallest first. */
function subsets(n) {
  const all = []
  for (let mask = 0; mask < 1 << n; mask++) {
    all.push([...Array(n).keys()].filter((i) => mask & (1 << i)))
  }
  return all.sort((a, b) => a.length - b.length)
}

async function makeUnavailable(node, mode) {
  if (mode === 'kill') await node.kill()
  else if (mode === 'pause') node.pause()
  else node.proxy.blackhole()
}

/** Resolves with [error or null, value, elapsed ms]. */
async function timed(promise) {
  const started = Date.now()
  try {
    const value = await promise
    return [null, value, Date.now() - started]
  } catch (error) {
    return [error, undefined, Date.now() - started]
  }
}

/**
 * A lock held on every one of `members`: the members a Redlock reaches again after a restart
 * come back one by one, so this retries until all of them took it.
 */
async function heldOnAll(rl, members) {
  const direct = members.map((n) => n.directUrl)
  for (let tries = 0; tries < 40; tries++) {
    const lock = await rl.acquire([uniqueKey('qs-held')], 30000, { retryCount: 20, retryDelay: 50 })
    const key = lock.resources[0]
    const everywhere = await until(
      async () => (await valuesOnAll(direct, key)).every((v) => v === lock.value),
      { timeout: 500, message: 'held on every member' },
    ).then(
      () => true,
      () => false,
    )
    if (everywhere) return lock
    await lock.release().catch(() => {})
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error('no lock on every member after 40 tries')
}

/** What an operation that must succeed or fail with ERR_REDLOCK_QUORUM came to. */
function expectOutcome([error, , ms], succeeds, what) {
  if (succeeds) {
    expect({ what, error: error && `${error.code}: ${error.message}` }).toEqual({ what, error: null })
  } else {
    expect({ what, instance: error instanceof ExecutionError, code: error && error.code }).toEqual({
      what,
      instance: true,
      code: 'ERR_REDLOCK_QUORUM',
    })
  }
  expect({ what, ms: ms <= BOUND ? "within bound" : ms }).toEqual({ what, ms: "within bound" })
}

describe.each([3, 5, 7])('%i members, every subset unavailable', (n) => {
  test(`acquire, extend and release succeed exactly when a quorum of ${n} remains`, async () => {
    const members = fleet.slice(0, n)
    const quorum = Math.floor(n / 2) + 1
    const rl = new Redlock(
      members.map((m) => m.url),
      { retryCount: 0, requestTimeout: REQUEST_TIMEOUT },
    )
    rl.on('error', () => {})
    const seen = { succeeded: 0, refused: 0 }
    try {
      let rotation = 0
      for (const down of subsets(n)) {
        const mode = MODES[rotation++ % MODES.length]
        const healthy = members.filter((_, i) => !down.includes(i))
        const succeeds = healthy.length >= quorum
        const label = `${n} members, ${down.length ? `{${down.join(',')}} ${mode}` : 'none down'}`

        const held = await heldOnAll(rl, members)
        await Promise.all(down.map((i) => makeUnavailable(members[i], mode)))
        try {
          expectOutcome(await timed(rl.extend(held, 30000, ONE_ATTEMPT)), succeeds, `${label}: extend`)

          const key = uniqueKey('qs-new')
          const acquired = await timed(rl.acquire([key], 30000))
          expectOutcome(acquired, succeeds, `${label}: acquire`)
          if (!succeeds) {
            // The attempt is undone on the members that answered: no key is left there.
            const healthyUrls = healthy.map((m) => m.directUrl)
            await until(async () => (await valuesOnAll(healthyUrls, key)).every((v) => v === null), {
              timeout: 3000,
              message: `${label}: no key left by the failed acquire`,
            })
          }

          expectOutcome(await timed(rl.release(held, ONE_ATTEMPT)), succeeds, `${label}: release`)
          if (acquired[1]) await acquired[1].release()
          seen[succeeds ? 'succeeded' : 'refused'] += 1
        } finally {
          await Promise.all(members.map((m) => m.heal()))
        }
      }
    } finally {
      await rl.quit()
    }
    const expected = subsets(n).filter((s) => n - s.length >= quorum).length
    expect(seen).toEqual({ succeeded: expected, refused: 2 ** n - expected })
    expect(unhandled).toEqual([])
  }, 600000)
})
