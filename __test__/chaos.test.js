'use strict'

// The mutual-exclusion check under faults (support/chaos.js), in its bounded form: 4 processes
// with their own Redlock contend for 3 resources for 40 s while nodes are killed and
// restarted, paused, slowed, blackholed and cut off on a seeded schedule. CHAOS_SEED=<n>
// replays a schedule; `npm run chaos -- --minutes 10` is the long form.
//
// Then three shorter runs with no persistence at all and every kill restarted at once: a
// minority of nodes restarted within the window under the default restart guard, any number
// (majorities included) under 'strict', and the minority plan without the guard, which must
// show overlaps. CHAOS_RESTART_SECONDS sets their length.

const { runChaos, formatReport, planFaults, restartsOf, findViolations, YOUNG_MARGIN, OLD_AFTER } = require('./support/chaos')
const { seededRandom } = require('./support/faults')

const SECONDS = Number(process.env.CHAOS_SECONDS || 40)
// The immediate-restart runs: each about this long, so that the file stays within its timeouts.
const RESTART_SECONDS = Number(process.env.CHAOS_RESTART_SECONDS || 20)
const randomSeed = () => (process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31))

describe('the checker', () => {
  const section = (w, r, ...cp) => ({ w, r, v: `${w}-${cp[0][0]}`, cp })

  test('finds two holders of one resource whose valid sections overlap, and only those', () => {
    const far = 10 ** 13
    const { violations } = findViolations([
      section(1, 'a', [1, 0, far], [5, 0, far]),
      section(2, 'a', [3, 0, far], [8, 0, far]), // starts inside 1's section
      section(3, 'b', [4, 0, far], [6, 0, far]), // another resource
      section(4, 'a', [9, 0, far], [10, 0, far]), // after both
    ])
    expect(violations).toHaveLength(1)
    expect(violations[0].first.worker).toBe(1)
    expect(violations[0].second.worker).toBe(2)
  })

  test('with K permits, finds the K+1-th holder at once, counting a holder of n permits n times', () => {
    const far = 10 ** 13
    const permits = (w, n, ...cp) => ({ ...section(w, 's', ...cp), n })
    const two = [permits(1, 1, [1, 0, far], [9, 0, far]), permits(2, 1, [2, 0, far], [8, 0, far])]
    expect(findViolations(two, 2).violations).toEqual([])
    const third = permits(3, 1, [3, 0, far], [4, 0, far])
    const { violations } = findViolations([...two, third], 2)
    expect(violations).toHaveLength(1)
    expect(violations[0]).toMatchObject({ holders: 3, second: { worker: 3 } })
    // One holder of 2 permits and one of 1: three permits of two.
    expect(findViolations([permits(1, 2, [1, 0, far], [5, 0, far]), permits(2, 1, [2, 0, far], [3, 0, far])], 2).violations).toHaveLength(1)
    // After the first ended, a third holder is within the limit.
    expect(findViolations([...two, permits(3, 1, [10, 0, far], [11, 0, far])], 2).violations).toEqual([])
  })

  test('with read-write locks, finds a writer overlapping anyone, and lets readers overlap', () => {
    const far = 10 ** 13
    const as = (w, mode, ...cp) => ({ ...section(w, 'd', ...cp), mode })
    const readers = [as(1, 'r', [1, 0, far], [9, 0, far]), as(2, 'r', [2, 0, far], [8, 0, far])]
    expect(findViolations(readers).violations).toEqual([])
    expect(findViolations([...readers, as(3, 'w', [3, 0, far], [4, 0, far])]).violations).toHaveLength(1)
    expect(findViolations([as(1, 'w', [1, 0, far], [5, 0, far]), as(2, 'r', [2, 0, far], [3, 0, far])]).violations).toHaveLength(1)
    expect(findViolations([...readers, as(3, 'w', [10, 0, far], [11, 0, far])]).violations).toEqual([])
  })

  test("a section counts only up to the holder's expiration", () => {
    const { violations, truncated, lateStarts } = findViolations([
      // Holder 1's last checkpoint came after its expiration (local 200 > 150): its valid
      // part ends at seq 2, before holder 2 starts at seq 3.
      section(1, 'a', [1, 100, 150], [2, 120, 150], [7, 200, 150]),
      section(2, 'a', [3, 160, 900], [4, 170, 900]),
      // Started after its own expiration: nothing of it is valid.
      section(3, 'a', [5, 1000, 999], [6, 1001, 999]),
    ])
    expect(violations).toEqual([])
    expect(truncated).toBe(1)
    expect(lateStarts).toBe(1)
  })

  test('the fault plan is a function of the seed and keeps to the rules', () => {
    const persistent = (i) => i < 3
    for (const seed of [1, 2, 3, 42, 2 ** 31 - 1]) {
      const plan = planFaults(seededRandom(seed), 60000, { maxTtl: 2000, persistent })
      expect(planFaults(seededRandom(seed), 60000, { maxTtl: 2000, persistent })).toEqual(plan)
      expect(plan.length).toBeGreaterThan(30)
      for (const f of plan) {
        expect(f.at + f.ms).toBeLessThanOrEqual(59000)
        if (f.kind === 'kill+delayed restart') expect(f.ms).toBeGreaterThanOrEqual(2500)
        if (f.kind.startsWith('kill')) expect(f.kind === 'kill+restart').toBe(persistent(f.node))
      }
      // Never more than 3 nodes faulty at once (a restarting node counts for 400 ms more).
      const busyUntil = (g) => g.at + g.ms + (g.kind.startsWith('kill') ? 400 : 50)
      for (const f of plan) {
        const overlapping = plan.filter((g) => g.at <= f.at && f.at < busyUntil(g))
        expect(new Set(overlapping.map((g) => g.node)).size).toBeLessThanOrEqual(3)
      }
    }
  })

  test('the immediate-restart plans are functions of the seed and keep to their rules', () => {
    const window = 2000
    const kinds = { minority: {}, any: {} }
    for (const restarts of ['minority', 'any']) {
      for (const seed of [1, 2, 3, 42, 2 ** 31 - 1]) {
        const plan = planFaults(seededRandom(seed), 60000, { maxTtl: 2000, restarts, window })
        expect(planFaults(seededRandom(seed), 60000, { maxTtl: 2000, restarts, window })).toEqual(plan)
        expect(plan.length).toBeGreaterThan(30)
        const all = [0, 1, 2, 3, 4]
        // Which nodes a fault takes, and until when (a restarting node for 400 ms more).
        const taken = (f) => {
          const made = restartsOf(f)
          const nodes = f.kind === 'kill+immediate restart' || !made.length ? [f.node] : all
          return { nodes, from: f.at, until: f.at + f.ms + (made.length ? 400 : 50) }
        }
        const young = []
        for (const f of plan) {
          kinds[restarts][f.kind] = (kinds[restarts][f.kind] || 0) + 1
          expect(f.at + f.ms).toBeLessThanOrEqual(59000)
          expect(f.kind).not.toMatch(/delayed|^kill\+restart$/)
          if (f.kind === 'partition+immediate restart') {
            expect(new Set([f.node, ...f.cut]).size).toBe(3)
            expect(f.ms).toBe(f.before + f.down + f.after)
          }
          if (f.kind === 'majority kill+immediate restart') expect(new Set(f.nodes).size).toBe(3)
          for (const r of restartsOf(f)) {
            // Down for 0.1-1.5 s, and never while the fleet (started before the run) is young.
            expect(r.restartAt - r.killAt).toBeGreaterThanOrEqual(100)
            expect(r.restartAt - r.killAt).toBeLessThanOrEqual(1500)
            expect(r.killAt).toBeGreaterThanOrEqual(window + OLD_AFTER)
            young.push({ node: r.node, from: r.killAt, until: r.restartAt + window + YOUNG_MARGIN })
          }
        }
        for (const f of plan) {
          const mine = taken(f)
          const during = plan.filter((g) => g !== f && taken(g).from <= f.at && f.at < taken(g).until)
          // A compound fault runs alone; other faults leave at most 2 nodes faulty at once
          // ('any': sometimes 3).
          if (mine.nodes.length === 5) expect(during).toEqual([])
          const faulty = new Set([...mine.nodes, ...during.flatMap((g) => taken(g).nodes)])
          expect(faulty.size).toBeLessThanOrEqual(mine.nodes.length === 5 ? 5 : restarts === 'minority' ? 2 : 3)
        }
        if (restarts === 'minority') {
          expect(plan.some((f) => f.kind === 'majority kill+immediate restart')).toBe(false)
          // At most 2 distinct nodes young at once: from the kill to window + margin after the restart.
          for (const y of young) {
            const now = young.filter((z) => z.from <= y.from && y.from < z.until)
            expect(new Set(now.map((z) => z.node)).size).toBeLessThanOrEqual(2)
          }
        }
        expect(plan.filter((f) => f.kind === 'partition+immediate restart').length).toBeGreaterThanOrEqual(restarts === 'minority' ? 8 : 3)
      }
    }
    // 'any' restarts majorities as well, and nodes whatever the others' age.
    expect(kinds.any['majority kill+immediate restart']).toBeGreaterThan(0)
    expect(kinds.minority['kill+immediate restart']).toBeGreaterThan(10)
    expect(kinds.any['kill+immediate restart']).toBeGreaterThan(20)
  })
})

test(
  `no two holders overlap under ${SECONDS} s of seeded faults`,
  async () => {
    const seed = process.env.CHAOS_SEED ? Number(process.env.CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31)
    const report = await runChaos({ seconds: SECONDS, seed })
    console.log(`chaos (replay with CHAOS_SEED=${seed}):\n${formatReport(report)}`)
    expect(report.violations).toEqual([])
    expect(report.problems).toEqual([])
    expect(report.faultsInjected).toBeGreaterThanOrEqual(SECONDS / 2)
    expect(report.granted).toBeGreaterThan(SECONDS * 3)
    expect(report.sectionsChecked).toBeGreaterThan(SECONDS * 3)
  },
  (SECONDS + 120) * 1000,
)

test(
  'the check is not vacuous: breaking the rules (a majority flushed again and again) shows overlaps',
  async () => {
    const report = await runChaos({ seconds: 8, seed: 5, unsafe: true, workers: 3 })
    expect(report.violations.length).toBeGreaterThan(0)
  },
  120000,
)

describe('semaphores', () => {
  test(
    `never more than K holders under ${RESTART_SECONDS} s of seeded faults (2 permits, 1 or 2 at a time)`,
    async () => {
      const seed = randomSeed()
      const report = await runChaos({ seconds: RESTART_SECONDS, seed, permits: 2, maxCount: 2, resources: 2 })
      console.log(`chaos, semaphores (replay with CHAOS_SEED=${seed}):\n${formatReport(report)}`)
      expect(report.violations).toEqual([])
      expect(report.problems).toEqual([])
      expect(report.faultsInjected).toBeGreaterThanOrEqual(RESTART_SECONDS / 2)
      expect(report.granted).toBeGreaterThan(RESTART_SECONDS * 3)
    },
    (RESTART_SECONDS + 90) * 1000,
  )

  test(
    'the check is not vacuous: a majority flushed again and again shows more than K holders',
    async () => {
      const report = await runChaos({ seconds: 8, seed: 5, unsafe: true, workers: 3, permits: 2, maxCount: 2, resources: 1 })
      expect(report.violations.length).toBeGreaterThan(0)
      expect(Math.max(...report.violations.map((v) => v.holders))).toBeGreaterThan(1)
    },
    120000,
  )
})

describe('read-write locks', () => {
  test(
    `a writer never overlaps another holder under ${RESTART_SECONDS} s of seeded faults`,
    async () => {
      const seed = randomSeed()
      const report = await runChaos({ seconds: RESTART_SECONDS, seed, rw: true, resources: 2 })
      console.log(`chaos, read-write locks (replay with CHAOS_SEED=${seed}):\n${formatReport(report)}`)
      expect(report.violations).toEqual([])
      expect(report.problems).toEqual([])
      expect(report.faultsInjected).toBeGreaterThanOrEqual(RESTART_SECONDS / 2)
      expect(report.granted).toBeGreaterThan(RESTART_SECONDS * 3)
    },
    (RESTART_SECONDS + 90) * 1000,
  )

  test(
    'the check is not vacuous: a majority flushed again and again shows a writer overlapping',
    async () => {
      const report = await runChaos({ seconds: 8, seed: 5, unsafe: true, workers: 3, rw: true, writeChance: 0.5, resources: 1 })
      expect(report.violations.length).toBeGreaterThan(0)
    },
    120000,
  )
})

describe('nodes without persistence, restarted at once', () => {
  // Fixed, so that the guard-off runs replay the same plan; any seed shows overlaps there.
  const UNGUARDED_SEED = 15

  test(
    `a minority restarted within the window: the default restart guard keeps exclusion (${RESTART_SECONDS} s)`,
    async () => {
      const seed = randomSeed()
      const report = await runChaos({ seconds: RESTART_SECONDS, seed, restarts: 'minority' })
      console.log(`chaos, minority restarts, guard on (replay with CHAOS_SEED=${seed}):\n${formatReport(report)}`)
      expect(report.violations).toEqual([])
      expect(report.problems).toEqual([])
      expect(report.faults['partition+immediate restart']).toBeGreaterThan(0)
      expect(report.nodeEvents.ERR_REDLOCK_NODE_RESTARTED).toBeGreaterThan(0)
      expect(report.granted).toBeGreaterThan(RESTART_SECONDS * 3)
    },
    (RESTART_SECONDS + 90) * 1000,
  )

  test(
    `any number restarted at once, majorities included: 'strict' keeps exclusion (${RESTART_SECONDS} s)`,
    async () => {
      const seed = randomSeed()
      const report = await runChaos({ seconds: RESTART_SECONDS, seed, restarts: 'any', guard: 'strict' })
      console.log(`chaos, any restarts, guard strict (replay with CHAOS_SEED=${seed}):\n${formatReport(report)}`)
      expect(report.violations).toEqual([])
      expect(report.problems).toEqual([])
      expect(report.nodeEvents.ERR_REDLOCK_NODE_RESTARTED).toBeGreaterThan(0)
      expect(report.granted).toBeGreaterThan(RESTART_SECONDS)
    },
    (RESTART_SECONDS + 90) * 1000,
  )

  test(
    `the check is not vacuous: the same minority plan with restartGuard false shows overlaps (seed ${UNGUARDED_SEED})`,
    async () => {
      const report = await runChaos({ seconds: RESTART_SECONDS, seed: UNGUARDED_SEED, restarts: 'minority', guard: false })
      console.log(`chaos, minority restarts, guard off:\n${formatReport(report)}`)
      expect(report.violations.length).toBeGreaterThan(0)
      expect(report.nodeEvents.ERR_REDLOCK_NODE_RESTARTED || 0).toBe(0)
    },
    (RESTART_SECONDS + 90) * 1000,
  )
})
