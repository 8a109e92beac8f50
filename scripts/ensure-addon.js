#!/usr/bin/env node
'use strict'
// Builds the native addon when this machine cannot load the one in the tree, or a Rust source
// is newer than it. `npm run demo` and `npm test` start with it, so a fresh clone needs only
// `npm install` (which runs no script of this package: it has none that npm runs on install)
// and a Rust toolchain. The packed tarball carries the built binary and none of this.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const root = path.join(__dirname, '..')

function newest(paths) {
  let latest = 0
  for (const p of paths) {
    let stat
    try {
      stat = fs.statSync(p)
    } catch {
      continue
    }
    if (stat.isDirectory()) {
      latest = Math.max(latest, newest(fs.readdirSync(p).map((name) => path.join(p, name))))
    } else {
      latest = Math.max(latest, stat.mtimeMs)
    }
  }
  return latest
}

function loads() {
  const probe = spawnSync(process.execPath, ['-e', `require(${JSON.stringify(path.join(root, 'binding.js'))})`], {
    stdio: 'ignore',
  })
  return probe.status === 0
}

/** Why the addon must be built, or null when the one in the tree will do. */
function staleness() {
  if (!loads()) return 'no native addon for this platform in the tree'
  const binaries = fs.readdirSync(root).filter((name) => /^redlock-rs\..+\.node$/.test(name))
  const sources = newest(['Cargo.toml', 'Cargo.lock', 'build.rs', 'src', 'crates'].map((p) => path.join(root, p)))
  const built = newest(binaries.map((name) => path.join(root, name)))
  return sources > built ? 'a Rust source is newer than the native addon' : null
}

/** Builds the addon if it is missing or stale; exits the process if the build fails. */
function ensureAddon() {
  const reason = staleness()
  if (!reason) return
  console.log(`Building the native addon (${reason}); this needs a Rust toolchain and takes a minute or two.`)
  const result = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  if (result.status !== 0) {
    console.error(
      result.error
        ? `Could not run npm: ${result.error.message}`
        : 'The build failed. Install Rust from https://rustup.rs if cargo is missing, then run `npm run build`.',
    )
    process.exit(result.status || 1)
  }
}

if (require.main === module) ensureAddon()

module.exports = { ensureAddon }
