'use strict'
// Turns worker results into the report: medians and ranges over repetitions, a markdown
// table per scenario with each row's ratio to the best, the targets of issue 14, and an SVG
// chart drawn here by hand (one panel of bars per scenario).

const { METRICS } = require('./scenarios')

function median(values) {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

/** Median, min and max of `metric` over a contender's repetitions (null when none apply). */
function spread(results, metric) {
  const values = results.map(METRICS[metric].of).filter((v) => v !== null && Number.isFinite(v))
  if (!values.length) return null
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) }
}

/** Tables of medians, ratios to the best and targets, from raw results by scenario and contender. */
function summarize(raw, scenarios, meta) {
  const tables = scenarios.map((scenario) => {
    const headline = METRICS[scenario.headline]
    const rows = meta.contenders
      .filter((c) => raw[scenario.id] && raw[scenario.id][c.id])
      .map((c) => {
        const results = raw[scenario.id][c.id]
        const values = {}
        for (const metric of scenario.columns) values[metric] = spread(results, metric)
        values[scenario.headline] ??= spread(results, scenario.headline)
        return { ...c, values, stalled: results.some((r) => r.stalled > 0) }
      })
    const heads = rows.map((r) => r.values[scenario.headline]?.median).filter((v) => v > 0)
    const best = headline.better === 'lower' ? Math.min(...heads) : Math.max(...heads)
    for (const row of rows) {
      const v = row.values[scenario.headline]?.median
      row.ratio = v > 0 && heads.length ? (headline.better === 'lower' ? v / best : best / v) : null
    }
    return { scenario, rows }
  })
  return { meta, tables, targets: targets(tables) }
}

/** The Rust floors, each on its runtime; the targets compare with the faster of them. */
const RUST_FLOORS = ['floor-rust-mt', 'floor-rust-ct']

/**
 * Issue 14's targets, for every redlock-rs mode measured: `lines` (the subject, the target, the
 * measured value, the comparison and its limit, met or not) and `skipped` (targets whose
 * inputs were not measured in this run, with what was missing). Every input is a median over
 * the repetitions of one run.
 */
function targets(tables) {
  const table = (id) => tables.find((t) => t.scenario.id === id)
  const value = (t, id, metric) => t?.rows.find((r) => r.id === id)?.values[metric]?.median
  /** Of `rows` with a finite `metric`, the best one (lowest or highest), or undefined. */
  const best = (rows, metric, better) =>
    rows
      .filter((r) => Number.isFinite(r.values[metric]?.median))
      .reduce((a, b) => {
        if (!a) return b
        const [x, y] = [a.values[metric].median, b.values[metric].median]
        return (better === 'lower' ? y < x : y > x) ? b : a
      }, undefined)
  const rustFloor = (t, metric, better) => best((t?.rows || []).filter((r) => RUST_FLOORS.includes(r.id)), metric, better)
  const bestPeer = (t, metric, better) => best((t?.rows || []).filter((r) => r.role === 'library'), metric, better)
  /** a ÷ b, or NaN (not measured) unless both are figures and b is above zero. */
  const ratio = (a, b) => (Number.isFinite(a) && Number.isFinite(b) && b > 0 ? a / b : NaN)

  const latency = table('latency')
  const t64 = table('throughput-64')
  const t512 = table('throughput-512')
  const contention = table('contention-default')
  const s1Floor = rustFloor(latency, 'p50', 'lower')
  const s2Floor = rustFloor(t64, 'rate', 'higher')
  const peerRate = bestPeer(t64, 'rate', 'higher')
  const peerCpu = bestPeer(t64, 'cpu', 'lower')
  const autoPipelined = t64?.rows.find((r) => r.id === 'floor-ioredis-ap')
  const hold = contention?.scenario.workload.hold

  const subjects = []
  for (const t of tables) {
    for (const r of t.rows) if (r.role === 'subject' && !subjects.some((s) => s.id === r.id)) subjects.push(r)
  }
  const lines = []
  const skipped = new Map() // target id → what it needs
  for (const subject of subjects) {
    const mine = (t, metric) => value(t, subject.id, metric)
    const grants = mine(contention, 'grants')
    // One holder at a time: a grant takes 1000 ms ÷ grants/s, of which the hold is the
    // holder's; the rest is the hand-off. The hold counts as measured (a 1 ms timer lasts
    // 1.1 ms or more), or as `hold` ms where a contender does not measure it; no grant at all
    // in the window is an endless overhead.
    const measuredHold = mine(contention, 'hold')
    const heldMs = Number.isFinite(measuredHold) ? measuredHold / 1000 : hold
    const holdWords = Number.isFinite(measuredHold) ? `${heldMs.toFixed(2)} ms held, measured` : `${hold} ms`
    const overhead = Number.isFinite(grants) ? (grants > 0 ? 1000 / grants - heldMs : Infinity) : NaN
    // `measured` is a ratio (unit '×') or in ms; NaN when an input was not measured.
    const checks = [
      {
        id: 'S1 p50',
        name: `S1, 1 loop: p50 ÷ the faster Rust floor's (${s1Floor?.label})`,
        measured: ratio(mine(latency, 'p50'), s1Floor?.values.p50.median),
        op: '≤',
        limit: 1.2,
        needs: 'scenario 1 with a Rust floor',
      },
      {
        id: 'S1 p99',
        name: "S1, 1 loop: p99 ÷ that floor's p99",
        measured: ratio(mine(latency, 'p99'), s1Floor?.values.p99?.median),
        op: '≤',
        limit: 1.5,
        needs: 'scenario 1 with a Rust floor',
      },
      {
        id: 'S2 floor',
        name: `S2, 64 loops: cycles/s ÷ the faster Rust floor's (${s2Floor?.label})`,
        measured: ratio(mine(t64, 'rate'), s2Floor?.values.rate.median),
        op: '≥',
        limit: 0.6,
        needs: 'scenario 2a with a Rust floor',
      },
      {
        id: 'S2 JS peer',
        name: `S2, 64 loops: cycles/s ÷ the best JS peer's (${peerRate?.label})`,
        measured: ratio(mine(t64, 'rate'), peerRate?.values.rate.median),
        op: '≥',
        limit: 2.5,
        needs: 'scenario 2a with a JS peer',
      },
      {
        id: 'S2 ioredis-ap',
        name: "S2, 64 loops: cycles/s ÷ the auto-pipelined ioredis floor's",
        measured: ratio(mine(t64, 'rate'), autoPipelined?.values.rate?.median),
        op: '>',
        limit: 1,
        needs: 'scenario 2a with floor-ioredis-ap',
      },
      {
        id: 'S2 client CPU',
        name: `S2, 64 loops: client CPU per 1000 cycles ÷ the best JS peer's (${peerCpu?.label})`,
        measured: ratio(mine(t64, 'cpu'), peerCpu?.values.cpu.median),
        op: '≤',
        limit: 0.5,
        needs: 'scenario 2a with a JS peer',
      },
      {
        id: 'S2 redis CPU',
        name: `S2, 64 loops: redis CPU per 1000 cycles ÷ that Rust floor's`,
        measured: ratio(mine(t64, 'redisCpu'), s2Floor?.values.redisCpu?.median),
        op: '≤',
        limit: 1.3,
        needs: "scenario 2a with a Rust floor and the servers' CPU",
      },
      {
        id: 'S2 512 loops',
        name: 'S2, 512 loops: cycles/s ÷ its own at 64 loops',
        measured: ratio(mine(t512, 'rate'), mine(t64, 'rate')),
        op: '≥',
        limit: 0.9,
        needs: 'scenarios 2a and 2b',
      },
      {
        id: 'S3',
        name: `S3, 8 loops on one key: overhead per grant beyond the ${hold} ms hold (1000 ms ÷ ${grants?.toFixed(0)} grants/s − ${holdWords})`,
        measured: overhead,
        unit: 'ms',
        op: '≤',
        limit: 0.5,
        needs: 'scenario 3a',
      },
    ]
    for (const { needs, ...check } of checks) {
      if (Number.isNaN(check.measured)) {
        if (!skipped.has(check.id)) skipped.set(check.id, needs)
        continue
      }
      const { measured, op, limit } = check
      const met = op === '≤' ? measured <= limit : op === '≥' ? measured >= limit : measured > limit
      lines.push({ subject: subject.label, unit: '×', ...check, met })
    }
  }
  // A target measured for some mode is not reported as skipped for another.
  const unmeasured = [...skipped].filter(([id]) => !lines.some((l) => l.id === id))
  return { lines, skipped: unmeasured.map(([id, missing]) => ({ id, missing })) }
}

function number(v, metric) {
  if (v === null || v === undefined || !Number.isFinite(v)) return '–'
  const { unit, digits: fixed } = METRICS[metric]
  const digits = fixed ?? (unit === 'ms' || (metric === 'failures' && v < 100) ? 1 : 0)
  return v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

function cell(spreadValue, metric, ranged, stalled) {
  if (!spreadValue) return 'n/a'
  const lowerBound = stalled && (metric === 'p50' || metric === 'p99') ? '≥ ' : ''
  const main = lowerBound + number(spreadValue.median, metric)
  if (!ranged || spreadValue.min === spreadValue.max) return main
  return `${main} (${number(spreadValue.min, metric)}–${number(spreadValue.max, metric)})`
}

function markdown(summary) {
  const { meta, tables } = summary
  const out = []
  out.push(
    `Measured ${meta.date.slice(0, 16).replace('T', ' ')} UTC on ${meta.cores} cores (${meta.cpu}), ` +
      `load ${meta.load} at start; Node ${meta.node}; ${meta.redis.replace(/ sha=.*/, '')}; ${meta.rustc}; ` +
      `commit ${meta.commit}. ${meta.reps} repetition(s), ${meta.mode} timing: warm-up ${meta.timing.warmupMs} ms, ` +
      `windows of ${meta.timing.durationMs} ms (contention ${meta.timing.contentionMs} ms); ` +
      `cells are the median over repetitions, with (min–max) for the main figures; ` +
      `"× best" is how many times worse than the best row on the table's first figure.`,
    '',
    'Contenders: ' + meta.contenders.map((c) => `${c.label} = ${c.version}`).join('; ') + '.',
    '',
  )
  for (const { scenario, rows } of tables) {
    out.push(`### ${scenario.title}`, '', `${scenario.about}.`, '')
    const head = scenario.columns.map((m) => {
      const { title, unit } = METRICS[m]
      return unit ? `${title} (${unit})` : title
    })
    out.push(`| contender | ${head[0]} | × best | ${head.slice(1).join(' | ')} |`)
    out.push(`|---|${scenario.columns.map(() => '--:|').join('')}--:|`)
    for (const row of rows) {
      const cells = scenario.columns.map((m) => cell(row.values[m], m, scenario.ranged.includes(m), row.stalled))
      const ratio = row.ratio ? `${row.ratio.toFixed(2)}×` : '–'
      out.push(`| ${row.label} | ${cells[0]} | ${ratio} | ${cells.slice(1).join(' | ')} |`)
    }
    if (rows.some((r) => r.stalled) && scenario.columns.includes('p50')) {
      out.push('', '≥: some cycles had not finished a second after the window closed; they count with the time they had taken by then.')
    }
    if (scenario.columns.includes('redisCpu') || scenario.columns.includes('switches')) {
      out.push('', COUNTS_NOTE)
    }
    out.push('')
  }
  const { lines, skipped } = summary.targets
  if (lines.length || skipped.length) {
    out.push('### Targets of issue 14', '')
    out.push(
      'Medians of this run; each target compares redlock-rs with the figure named, measured in the same run.',
      '',
    )
  }
  if (lines.length) {
    out.push('| redlock-rs | target | measured | limit | |', '|---|---|--:|--:|:-:|')
    const figure = (v, unit) => {
      const text = Number.isFinite(v) ? v.toFixed(2) : '∞'
      return unit === 'ms' ? `${text} ms` : `${text}×`
    }
    for (const t of lines) {
      out.push(
        `| ${t.subject} | ${t.name} | ${figure(t.measured, t.unit)} | ${t.op} ${figure(t.limit, t.unit)} | ${t.met ? '✓' : '✗'} |`,
      )
    }
    out.push('')
  }
  if (skipped.length) {
    out.push(`Not evaluated (inputs not measured in this run): ${skipped.map((s) => `${s.id} (needs ${s.missing})`).join('; ')}.`, '')
  }
  return out.join('\n')
}

/** How the per-cycle counts were taken, under each table that shows them. */
const COUNTS_NOTE =
  'Client CPU: user + system time of the contender\'s process over the window. Redis CPU: the 5 servers\' ' +
  '`used_cpu_sys + used_cpu_user` (INFO cpu), read by the runner when the contender reports that its window ' +
  'opens and closes; the load keeps running while they are read, so the span matches the window to within ' +
  'the events\' delivery (about a millisecond), and it is scaled to the window\'s length. Context switches: ' +
  'voluntary + involuntary, summed over all threads of the contender\'s process ' +
  '(/proc/self/task/*/status at the window\'s start and end).'

const COLORS = { subject: '#d9480f', library: '#1971c2', floor: '#868e96' }

function escape(text) {
  return String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/** One panel per scenario: a bar per contender for the scenario's headline metric. */
function svg(summary) {
  const width = 880
  const labelWidth = 270
  const barWidth = 470
  const rowHeight = 20
  const parts = []
  let y = 30
  parts.push(
    `<text x="16" y="22" font-size="15" font-weight="bold">redlock-rs benchmark — ${escape(summary.meta.date.slice(0, 10))}, ${summary.meta.cores} cores, median of ${summary.meta.reps}</text>`,
  )
  let x = 16
  y += 10
  for (const [role, name] of [['subject', 'redlock-rs'], ['library', 'JavaScript libraries'], ['floor', 'floors']]) {
    parts.push(`<rect x="${x}" y="${y - 10}" width="12" height="12" fill="${COLORS[role]}"/>`)
    parts.push(`<text x="${x + 18}" y="${y}" font-size="12">${name}</text>`)
    x += 40 + name.length * 7
  }
  y += 16
  for (const { scenario, rows } of summary.tables) {
    const metric = METRICS[scenario.headline]
    const values = rows.map((r) => r.values[scenario.headline]).filter(Boolean)
    const top = Math.max(...values.map((v) => v.max), 1)
    const bottom = Math.max(Math.min(...values.map((v) => v.min).filter((v) => v > 0)), 1e-9)
    const log = top / bottom > 50
    const scale = (v) => {
      if (!(v > 0)) return 0
      if (!log) return (v / top) * barWidth
      const floor = Math.log10(bottom) - 0.3
      return ((Math.log10(v) - floor) / (Math.log10(top) - floor)) * barWidth
    }
    const unit = metric.unit ? ` (${metric.unit})` : ''
    y += 22
    parts.push(
      `<text x="16" y="${y}" font-size="13" font-weight="bold">${escape(scenario.title)}: ${escape(metric.title + unit)}, ${metric.better} is better${log ? ', log scale' : ''}</text>`,
    )
    y += 8
    for (const row of rows) {
      const v = row.values[scenario.headline]
      y += rowHeight
      parts.push(`<text x="${labelWidth - 6}" y="${y - 5}" font-size="12" text-anchor="end">${escape(row.label)}</text>`)
      if (!v) {
        parts.push(`<text x="${labelWidth + 4}" y="${y - 5}" font-size="12" fill="#868e96">n/a</text>`)
        continue
      }
      const w = Math.max(scale(v.median), 1)
      parts.push(`<rect x="${labelWidth}" y="${y - 15}" width="${w.toFixed(1)}" height="14" fill="${COLORS[row.role]}"/>`)
      if (v.max > v.min) {
        const a = labelWidth + scale(v.min)
        const b = labelWidth + scale(v.max)
        parts.push(`<line x1="${a.toFixed(1)}" x2="${b.toFixed(1)}" y1="${y - 8}" y2="${y - 8}" stroke="#212529" stroke-width="1.5"/>`)
      }
      const stalled = row.stalled && metric.unit === 'µs' ? '≥ ' : ''
      parts.push(
        `<text x="${(labelWidth + Math.max(w, scale(v.max)) + 6).toFixed(1)}" y="${y - 4}" font-size="12">${stalled}${escape(number(v.median, scenario.headline))}</text>`,
      )
    }
    y += 6
  }
  y += 14
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${y}" viewBox="0 0 ${width} ${y}" font-family="sans-serif">\n` +
    `<rect width="100%" height="100%" fill="#ffffff"/>\n${parts.join('\n')}\n</svg>\n`
  )
}

const START = '<!-- results:start -->'
const END = '<!-- results:end -->'

/** `doc` with the part between the results markers replaced by `markdown`. */
function intoDocument(doc, markdown) {
  const from = doc.indexOf(START)
  const to = doc.indexOf(END)
  if (from < 0 || to < from) return doc
  return `${doc.slice(0, from + START.length)}\n\n${markdown}\n${doc.slice(to)}`
}

module.exports = { summarize, markdown, svg, intoDocument }
