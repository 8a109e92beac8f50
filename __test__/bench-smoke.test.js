'use strict'

// The benchmark must keep working: its smoke mode runs every contender through every scenario
// very briefly, on servers of its own, and must produce a table row for each of them, the
// per-cycle counts (redis CPU, context switches) and the targets of issue 14.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { contenders } = require('../bench/contenders')
const { SCENARIOS } = require('../bench/scenarios')
const { runNode } = require('./support/shared')

const root = path.join(__dirname, '..')

async function runSmoke(out) {
  const run = await runNode([path.join(root, 'bench', 'run.js'), '--smoke', '--out', out], { cwd: root, timeout: 180000 })
  return { code: run.code, output: run.stdout + run.stderr }
}

/** The cells of a markdown table line. */
const cellsOf = (line) => line.split('|').slice(1, -1).map((c) => c.trim())

/** Each `### title` section's table (its header and its rows' cells) and text, by title. */
function sections(markdown) {
  const byTitle = new Map()
  for (const section of markdown.split(/^### /m).slice(1)) {
    const [title, ...lines] = section.split('\n')
    const table = lines.filter((l) => l.startsWith('|') && !l.startsWith('|---'))
    byTitle.set(title.trim(), {
      header: table.length ? cellsOf(table[0]) : [],
      rows: table.slice(1).map(cellsOf),
      text: lines.join('\n'),
    })
  }
  return byTitle
}

/** The rows' first cells of each `### title` table in the report, by title. */
function tables(markdown) {
  return new Map([...sections(markdown)].map(([title, { rows }]) => [title, rows.map((r) => r[0])]))
}

/** The targets of issue 14 the report checks for each redlock-rs mode, in order. */
const TARGETS = [
  "S1, 1 loop: p50 ÷ the faster Rust floor's",
  "S1, 1 loop: p99 ÷ that floor's p99",
  "S2, 64 loops: cycles/s ÷ the faster Rust floor's",
  "S2, 64 loops: cycles/s ÷ the best JS peer's",
  "S2, 64 loops: cycles/s ÷ the auto-pipelined ioredis floor's",
  "S2, 64 loops: client CPU per 1000 cycles ÷ the best JS peer's",
  "S2, 64 loops: redis CPU per 1000 cycles ÷ that Rust floor's",
  'S2, 512 loops: cycles/s ÷ its own at 64 loops',
  'S3, 8 loops on one key: overhead per grant beyond the 1 ms hold',
]

test(
  'the smoke benchmark produces a table row for every contender in every scenario',
  async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-bench-smoke-'))
    try {
      const { code, output } = await runSmoke(out)
      if (code !== 0) throw new Error(`bench/run.js --smoke exited with ${code}:\n${output}`)
      const markdown = fs.readFileSync(path.join(out, 'results.md'), 'utf8')
      const found = tables(markdown)
      for (const scenario of SCENARIOS) {
        const expected = contenders()
          .filter((c) => !scenario.multiResource || c.multiResource !== false)
          .map((c) => c.label)
        expect({ scenario: scenario.title, rows: found.get(scenario.title) }).toEqual({
          scenario: scenario.title,
          rows: expected,
        })
      }

      // The per-cycle counts: in the latency and throughput tables, a figure for every contender
      // that completed cycles in its window (at 512 loops a slow library may complete none in
      // the smoke mode's 120 ms, and then has no per-cycle figures).
      const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'))
      const idOf = new Map(contenders().map((c) => [c.label, c.id]))
      const bySection = sections(markdown)
      for (const scenario of SCENARIOS.filter((s) => ['latency', 'throughput-64', 'throughput-512'].includes(s.id))) {
        const { header, rows, text } = bySection.get(scenario.title)
        for (const column of ['redis CPU per 1000 cycles (ms)', 'context switches per cycle']) {
          const at = header.indexOf(column)
          expect({ scenario: scenario.title, column, at: at > 0 }).toEqual({ scenario: scenario.title, column, at: true })
          for (const row of rows) {
            const cycles = json.raw[scenario.id][idOf.get(row[0])][0].cycles
            expect({ scenario: scenario.title, row: row.join(' | '), column, cell: row[at] }).toEqual({
              scenario: scenario.title,
              row: row.join(' | '),
              column,
              cell: cycles > 0 ? expect.stringMatching(/^\d[\d,]*(\.\d)?$/) : 'n/a',
            })
          }
        }
        expect(text).toContain('Context switches: voluntary + involuntary')
      }

      // The targets of issue 14, every one evaluated for every redlock-rs mode, with ✓ or ✗.
      const block = bySection.get('Targets of issue 14')
      expect(block).toBeDefined()
      expect(block.header).toEqual(['redlock-rs', 'target', 'measured', 'limit', ''])
      for (const subject of contenders().filter((c) => c.role === 'subject')) {
        const mine = block.rows.filter((r) => r[0] === subject.label)
        expect({ subject: subject.label, targets: mine.map((r) => TARGETS.find((t) => r[1].startsWith(t))) }).toEqual({
          subject: subject.label,
          targets: TARGETS,
        })
        for (const [, target, measured, limit, verdict] of mine) {
          expect({ target, measured, limit, verdict }).toEqual({
            target,
            measured: expect.stringMatching(/^(-?\d+\.\d\d|∞)( ms|×)$/),
            limit: expect.stringMatching(/^(≤|≥|>) \d+\.\d\d( ms|×)$/),
            verdict: expect.stringMatching(/^(✓|✗)$/),
          })
        }
      }
      expect(block.text).not.toContain('Not evaluated')

      const svg = fs.readFileSync(path.join(out, 'chart.svg'), 'utf8')
      expect(svg.startsWith('<svg')).toBe(true)
      for (const c of contenders()) expect(svg).toContain(c.label)
      expect(json.raw.latency['redlock-rs'][0].cycles).toBeGreaterThan(0)
      expect(json.raw.latency['redlock-rs'][0].ctx_switches).toBeGreaterThan(0)
      expect(json.raw.latency['floor-rust-ct'][0].redis_cpu_ms).toBeGreaterThan(0)
    } finally {
      fs.rmSync(out, { recursive: true, force: true })
    }
  },
  10 * 60 * 1000,
)

test('the cluster benchmark, very briefly, prints a row for each setup', async () => {
  const args = ['--cycles', '20', '--seconds', '0.3', '--loops', '4', '--reps', '1']
  const { code, stdout, stderr } = await runNode([path.join(root, 'bench', 'cluster.js'), ...args], { cwd: root })
  if (code !== 0) throw new Error(`bench/cluster.js exited with ${code}:\n${stderr}`)
  for (const setup of ['3 plain masters', '2 plain + 1 cluster', '3 clusters']) {
    const name = setup.replace(/[+]/g, '\\+')
    expect(stdout).toMatch(new RegExp(`^\\| ${name} \\| \\d+ \\(\\d+–\\d+\\) \\|`, 'm'))
  }
}, 60000)
