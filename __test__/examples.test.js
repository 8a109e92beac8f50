'use strict'

// The programs in examples/ run here, so that they cannot rot: the scheduler and the HTTP
// handler against the shared servers, the demo (quick) with its own servers, and the demo
// stopped by Ctrl-C. Each program checks its own outcome and says so in its exit status. The
// README's JavaScript snippets run too, as ES modules importing 'redlock-rs'.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { pidAlive } = require('../scripts/redis-servers.js')
const { until } = require('./support/servers')
const { linkedProject, sharedUrls, runNode } = require('./support/shared')

const EXAMPLES = path.resolve(__dirname, '..', 'examples')
const urls = sharedUrls()
const canStartServers = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0

/** Runs examples/`file`; resolves { code, signal, stdout, stderr }. */
function runExample(file, args = [], { env = {}, onSpawn, timeout = 60000 } = {}) {
  return runNode([path.join(EXAMPLES, file), ...args], { env, onSpawn, timeout })
}

test('scheduler.js: three scheduler processes run each job exactly once per slot', async () => {
  const result = await runExample('scheduler.js', [], { env: { REDLOCK_SERVERS: urls.join(',') } })
  expect(result.stderr).toBe('')
  expect(result.stdout).toContain('12 of 12 job slots ran; 0 ran more than once.')
  expect(result.code).toBe(0)
}, 30000)

test('http-handler.js: concurrent deposits through two instances lose nothing; busy answers are 409', async () => {
  const result = await runExample('http-handler.js', [], { env: { REDLOCK_SERVERS: urls.join(',') } })
  expect(result.stderr).toBe('')
  expect(result.stdout).toMatch(/60 deposits of 1 through two instances; answers: 60× 200/)
  expect(result.stdout).toContain('balance: 60 (expected 60)')
  expect(result.code).toBe(0)
}, 30000)

const withServers = canStartServers ? test : test.skip

withServers('cluster.js: a hash-tagged lock on a cluster member, the RangeError without a tag, and no lost increment through a slot move', async () => {
  const result = await runExample('cluster.js')
  expect(result.stderr).toBe('')
  expect(result.stdout).toMatch(/^members: 127\.0\.0\.1:\d+\/0 \| 127\.0\.0\.1:\d+\/0 \| cluster\[/m)
  expect(result.stdout).toMatch(/locked \{order:42\}:payment \+ \{order:42\}:invoice on the cluster's master :\d+ \(slot 8691\)/)
  expect(result.stdout).toContain('without a hash tag: RangeError ERR_REDLOCK_CROSS_SLOT')
  const moved = /slot 8691 moved :(\d+) -> :(\d+) during the run/.exec(result.stdout)
  expect(moved && moved[1]).not.toBe(moved && moved[2])
  const counted = /(\d+) increments under the lock, counter = (\d+)/.exec(result.stdout)
  expect(Number(counted[1])).toBeGreaterThan(0)
  expect(counted[2]).toBe(counted[1])
  expect(result.stdout).toContain('lock keys left behind: 0')
  expect(result.code).toBe(0)
}, 60000)

withServers('demo.js --quick: locks survive 2 of 5 nodes down, fail cleanly without a quorum, recover; nothing lost', async () => {
  const started = Date.now()
  const result = await runExample('demo.js', ['--quick', '--json'], { env: { REDLOCK_DEMO_SERVERS: '' } })
  const elapsed = Date.now() - started
  expect(result.stderr).toBe('')
  const summary = JSON.parse(result.stdout.trim().split('\n').pop())

  const [allUp, twoDown, threeDown, restarted] = summary.phases
  expect(summary.phases).toHaveLength(4)
  expect(allUp).toMatchObject({ nodesUp: 5, failures: {} })
  expect(twoDown.nodesUp).toBe(3)
  expect(threeDown).toMatchObject({ nodesUp: 2, granted: 0 })
  expect(threeDown.failures.ERR_REDLOCK_QUORUM).toBeGreaterThan(0)
  expect(restarted.nodesUp).toBe(5)
  for (const phase of [allUp, twoDown, restarted]) {
    expect(phase.granted).toBeGreaterThan(0)
    // Hand-offs: a worker that was waiting is granted the resource after its holder finished
    // (the holder releases after its update), each hand-off one of the phase's grants.
    const { p50, p99, count } = phase.handoffMs
    expect(count).toBeGreaterThan(0)
    expect(count).toBeLessThanOrEqual(phase.granted)
    expect(p50).toBeGreaterThan(0)
    expect(p99).toBeGreaterThanOrEqual(p50)
  }
  expect(summary.errors.ERR_REDLOCK_QUORUM.name).toBe('ExecutionError')
  // Each worker's redlock.stats(): its grants, and the quorum failures of the phase with 3 down.
  expect(summary.engine.workers).toBe(summary.workers)
  expect(summary.engine.acquire.outcomes.ok).toBe(summary.granted)
  expect(summary.engine.acquire.outcomes.ERR_REDLOCK_QUORUM).toBeGreaterThan(0)
  expect(Object.keys(summary.engine.nodes)).toHaveLength(5)
  for (const node of Object.values(summary.engine.nodes)) expect(node.requests).toBeGreaterThan(0)

  // Each shared counter equals the number of increments made under its lock.
  expect(summary.lostUpdates).toBe(0)
  for (const { counter, increments } of Object.values(summary.counters)) {
    expect(increments).toBeGreaterThan(0)
    expect(counter).toBe(increments)
  }

  // Five servers, three of them restarted: eight processes, all gone.
  expect(summary.serverPids).toHaveLength(8)
  expect(summary.serverPids.filter(pidAlive)).toEqual([])
  expect(summary.ok).toBe(true)
  expect(result.code).toBe(0)
  expect(elapsed).toBeLessThan(20000)
}, 60000)

withServers('demo.js stops every server it started on Ctrl-C (SIGINT)', async () => {
  let pids = []
  const result = await runExample('demo.js', [], {
    env: { REDLOCK_DEMO_SERVERS: '' },
    onSpawn: async (child, output) => {
      await until(() => /worker processes contend/.test(output.stdout), { timeout: 20000 })
      pids = [...output.stdout.matchAll(/\(pid (\d+)\)/g)].map((m) => Number(m[1]))
      child.kill('SIGINT')
    },
  })
  expect(pids).toHaveLength(5)
  expect(result.code).toBe(130)
  expect(result.stdout).toMatch(/Interrupted\. Stopped the demo's redis-servers/)
  expect(pids.filter(pidAlive)).toEqual([])
}, 60000)

describe("the README's snippets", () => {
  const readme = fs.readFileSync(path.resolve(__dirname, '..', 'README.md'), 'utf8')
  const snippets = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1])
  let dir

  beforeAll(() => {
    dir = linkedProject('redlock-rs-readme-')
  })
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

  test('there are snippets for the three API shapes', () => {
    expect(snippets.length).toBeGreaterThanOrEqual(3)
  })

  test.each(snippets.map((code, i) => [i + 1, code]))('snippet %i runs', (i, code) => {
    const file = path.join(dir, `snippet-${i}.mjs`)
    fs.writeFileSync(file, code)
    const result = spawnSync(process.execPath, [file], {
      env: { ...process.env, REDLOCK_SERVERS: urls.join(',') },
      encoding: 'utf8',
      timeout: 20000,
    })
    expect(result.stderr).toBe('')
    expect(result.status).toBe(0)
  })
})
