'use strict'

// The soak in its bounded form (support/soak.js): one process of its own, 64 loops of acquire / extend /
// release for 30 s under the chaos fault plan, memory and descriptors sampled every 3 s.
// `npm run soak -- --minutes 10` is the long form; docs/RELIABILITY.md has a run's figures.

const { formatSoak, flatness, Referee } = require('./support/soak')
const { runNode } = require('./support/shared')

const SECONDS = Number(process.env.SOAK_SECONDS || 30)

describe('the soak checks', () => {
  test('the referee finds sections of one resource that overlap, and only those', () => {
    const referee = new Referee()
    referee.add('a', { start: 1, end: 4 })
    referee.add('a', { start: 5, end: 9 })
    referee.add('b', { start: 6, end: 7 }) // another resource
    referee.add('a', { start: 8, end: 12 }) // starts inside the second
    expect(referee.checked).toBe(4)
    expect(referee.violations).toHaveLength(1)
    expect(referee.violations[0].first).toEqual({ start: 5, end: 9 })
  })

  test('flatness: a descriptor or memory leak after warm-up is not flat', () => {
    const at = (t, rss, fds) => ({ t, rss, fds })
    const steady = [at(0, 50e6, 20), at(10, 80e6, 40), at(20, 82e6, 41), at(30, 81e6, 39), at(40, 83e6, 42)]
    expect(flatness(steady, 10).flat).toBe(true)
    const leakingFds = steady.map((s, i) => ({ ...s, fds: s.fds + i * 10 }))
    expect(flatness(leakingFds, 10).flat).toBe(false)
    const leakingRss = steady.map((s, i) => ({ ...s, rss: s.rss * (1 + i * 0.3) }))
    expect(flatness(leakingRss, 10).flat).toBe(false)
    expect(flatness(steady.slice(0, 2), 10).judged).toBe(false)
    // A low point at warm-up (a node down, its sockets closed) is not a leak.
    const dip = steady.map((s, i) => ({ ...s, fds: i === 1 ? 20 : s.fds }))
    expect(flatness(dip, 10, { fdSlack: 10 }).flat).toBe(true)
  })
})

test(
  `64 loops for ${SECONDS} s under faults: no overlap, no problem, memory and descriptors flat`,
  async () => {
    const seed = process.env.SOAK_SEED ? Number(process.env.SOAK_SEED) : Math.floor(Math.random() * 2 ** 31)
    // In a process of its own: its memory and descriptors are the soak's alone, not those of
    // a Jest worker that has run other suites.
    const program = `
      const { runSoak } = require(${JSON.stringify(require.resolve('./support/soak'))})
      runSoak({ seconds: ${SECONDS}, seed: ${seed}, everyMs: 3000, warmUpMs: 10000 }).then((report) =>
        process.stdout.write(JSON.stringify(report)))
    `
    const child = await runNode(['-e', program], { timeout: (SECONDS + 100) * 1000 })
    expect(child.stderr).toBe('')
    const report = JSON.parse(child.stdout)
    console.log(`soak (replay with SOAK_SEED=${seed}):\n${formatSoak(report)}`)
    expect(report.violations).toEqual([])
    expect(report.problems).toEqual([])
    expect(report.cycles).toBeGreaterThan(SECONDS * 20)
    expect(report.faultsInjected).toBeGreaterThanOrEqual(SECONDS / 2)
    expect(report.flatness).toMatchObject({ judged: true, flat: true })
    // Once quit, the Redlock holds no descriptor: back to where the process began.
    expect(report.afterQuit.fds).toBeLessThanOrEqual(report.samples[0].fds)
  },
  (SECONDS + 120) * 1000,
)
