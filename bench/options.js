'use strict'
// Command-line options of the stand-alone bench scripts (cluster.js, fencing.js, handoff.js):
// node:util's parseArgs in strict mode, as bench/run.js uses it, plus number checks. A wrong
// or unknown option ends the script with its usage line on stderr and exit code 2.

const path = require('node:path')
const { parseArgs } = require('node:util')

/**
 * Parses `argv` by `spec`: `{ name: { type: 'boolean' | 'integer' | 'number', default } }`.
 * Integers and numbers must be positive. Returns the values by name.
 */
function readOptions(spec, usage, argv = process.argv.slice(2)) {
  const script = path.relative(path.join(__dirname, '..'), process.argv[1] || 'bench')
  const fail = (message) => {
    process.stderr.write(`${script}: ${message}\nusage: ${usage}\n`)
    process.exit(2)
  }
  const options = {}
  for (const [name, { type }] of Object.entries(spec)) {
    options[name] = { type: type === 'boolean' ? 'boolean' : 'string' }
  }
  let values
  try {
    ;({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }))
  } catch (error) {
    fail(error.message)
  }
  const out = {}
  for (const [name, { type, default: fallback }] of Object.entries(spec)) {
    const given = values[name]
    if (given === undefined) {
      out[name] = type === 'boolean' ? (fallback ?? false) : fallback
      continue
    }
    if (type === 'boolean') {
      out[name] = given
      continue
    }
    const value = Number(given)
    const ok = given.trim() !== '' && Number.isFinite(value) && value > 0 && (type !== 'integer' || Number.isInteger(value))
    if (!ok) fail(`--${name} must be a positive ${type === 'integer' ? 'integer' : 'number'}, not "${given}"`)
    out[name] = value
  }
  return out
}

module.exports = { readOptions }
