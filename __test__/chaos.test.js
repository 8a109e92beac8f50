'use strict'

// The mutual-exclusion check under faults (support/chaos.js), in its bounded form: 4 processes
// with their own Redlock contend for 3 resources for 40 s while nodes are killed and
// restarted, paused, slowed, blackholed and cut off on a seeded schedule. CHAOS_SEED=<n>
// replays a schedule; `npm run chaos -- --minutes 10` is the long form.

const { runChaos, formatReport, planFaults, findViolations } = require('./support/chaos')
const { seededRandom } = require('./support/faults')

const SECONDS = Number(process.env.CHAOS_SECONDS || 40)

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
