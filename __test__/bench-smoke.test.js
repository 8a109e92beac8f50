'use strict'

// The benchmark must keep working: its smoke mode runs every contender through every scenario
// very briefly, on servers of its own, and must produce a table row for each of them.

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

/** The rows of each `### title` table in the report, by title. */
function tables(markdown) {
  const byTitle = new Map()
  for (const section of markdown.split(/^### /m).slice(1)) {
    const [title, ...lines] = section.split('\n')
    const rows = lines.filter((l) => /^\| [^-]/.test(l) && !l.startsWith('| contender')).map((l) => l.split('|')[1].trim())
    byTitle.set(title.trim(), rows)
  }
  return byTitle
}

test(
  'the smoke benchmark produces a table row for every contender in every scenario',
  async () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-bench-smoke-'))
    try {
      const { code, output } = await runSmoke(out)
      if (code !== 0) throw new Error(`bench/run.js --smoke exited with ${code}:\n${output}`)
      const found = tables(fs.readFileSync(path.join(out, 'results.md'), 'utf8'))
      for (const scenario of SCENARIOS) {
        const expected = contenders()
          .filter((c) => !scenario.multiResource || c.multiResource !== false)
          .map((c) => c.label)
        expect({ scenario: scenario.title, rows: found.get(scenario.title) }).toEqual({
          scenario: scenario.title,
          rows: expected,
        })
      }
      const svg = fs.readFileSync(path.join(out, 'chart.svg'), 'utf8')
      expect(svg.startsWith('<svg')).toBe(true)
      for (const c of contenders()) expect(svg).toContain(c.label)
      const json = JSON.parse(fs.readFileSync(path.join(out, 'results.json'), 'utf8'))
      expect(json.raw.latency['redlock-rs'][0].cycles).toBeGreaterThan(0)
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
