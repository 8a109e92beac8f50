#!/usr/bin/env node
'use strict'
// The peers' own test suites against this package: node-redlock's `src/single.test.ts` and
// `src/multi.test.ts` (AVA, TypeScript compiled with their tsconfig) and
// @sesamecare-oss/redlock's `src/system.spec.ts` (vitest), read at run time from their git
// repositories, with only the connection set-up changed:
//
//   - the import of their own library (`./index.js`, `./index`) names redlock-rs instead
//     (`redlock-rs`, and `redlock-rs/sesame` for sesame's suite), or with --against-peer the
//     peer's own published package (`redlock@<their version>`, `@sesamecare-oss/redlock`),
//     which proves the runner: those should pass;
//   - their docker-compose host names (`redis-single-instance`, `redis-single-cluster-1`,
//     ...) become `127.0.0.1` plus the port of a loopback redis-server or Redis Cluster
//     started here, one fresh set per suite run;
//   - the "unreachable" client (127.0.0.1 on the default port 6379, or 6380) gets a port on
//     which nothing listens, since a real Redis may be on 6379.
//
// Every assertion, timing and test body stays as the peers wrote it. The rules applied are
// printed, and the rewrite is checked line by line: no other line may change.
//
//   node scripts/peer-suites.js [--node-redlock <git-dir>] [--sesame <git-dir>]
//                               [--against-peer | --both] [--only <name>] [--keep] [--verbose]
//
// Each repository is a clone or a bare git dir (`git clone https://github.com/mike-marcacci/
// node-redlock`, `git clone https://github.com/sesamecare/redlock`), given by the flags or
// $REDLOCK_PEER_NODE_REDLOCK / $REDLOCK_PEER_SESAME. The test runners and the peers' dependencies are installed with npm (under
// `flock /tmp/npm.lock`) into os.tmpdir()/redlock-rs-peer-suites-cache, keyed by what the
// peers' package.json asks for, so a rerun installs nothing. Each run works in a fresh
// temporary directory, removed at the end (kept with --keep). Exit status: 0 when every test
// passed, 1 when a test failed, 2 when the runner itself could not do its job.

const { spawn, spawnSync } = require('node:child_process')
const crypto = require('node:crypto')
const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const util = require('node:util')

const REPO = path.resolve(__dirname, '..')
const PKG_NAME = 'redlock-rs'
const CACHE_ROOT = path.join(os.tmpdir(), 'redlock-rs-peer-suites-cache')
/** Bumped when what goes into a cached install changes. */
const CACHE_FORMAT = 1
const NPM_LOCK = '/tmp/npm.lock'
/** A whole suite run (compile + test) is stopped after this long. */
const SUITE_TIMEOUT_MS = 15 * 60 * 1000
const FAILURE_LINES = 4

const DEFAULT_DIRS = {
  'node-redlock': process.env.REDLOCK_PEER_NODE_REDLOCK,
  sesame: process.env.REDLOCK_PEER_SESAME,
}

// ---------------------------------------------------------------------------
// Command line

function usage() {
  return `usage: node scripts/peer-suites.js [options]
  --node-redlock <dir>      node-redlock's repository, a clone or a git dir
                            (default $REDLOCK_PEER_NODE_REDLOCK)
  --sesame <dir>            @sesamecare-oss/redlock's repository, a clone or a git dir
                            (default $REDLOCK_PEER_SESAME)
  --against-peer            run the suites against the peers' own published packages instead
  --both                    run them against redlock-rs and against the peers' packages
  --only <text>             only the suites whose name contains <text> (e.g. single, multi, sesame)
  --keep                    keep the temporary work directory (its path is printed)
  --verbose                 also print the test runners' own output
  --help`
}

function parseArgs(argv) {
  let parsed
  try {
    parsed = util.parseArgs({
      args: argv,
      options: {
        'node-redlock': { type: 'string' },
        sesame: { type: 'string' },
        'against-peer': { type: 'boolean' },
        both: { type: 'boolean' },
        only: { type: 'string' },
        keep: { type: 'boolean' },
        verbose: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values
  } catch (error) {
    throw new UsageError(error.message)
  }
  if (parsed.help) {
    console.log(usage())
    process.exit(0)
  }
  const dirs = { ...DEFAULT_DIRS }
  for (const name of Object.keys(dirs)) {
    if (parsed[name] !== undefined) dirs[name] = parsed[name]
    if (!dirs[name]) throw new UsageError(`where is ${name}'s repository? Give --${name} <dir>`)
    // A clone's git dir is its .git.
    if (fs.existsSync(path.join(dirs[name], '.git'))) dirs[name] = path.join(dirs[name], '.git')
  }
  const targets = parsed.both ? ['redlock-rs', 'peer'] : parsed['against-peer'] ? ['peer'] : ['redlock-rs']
  return { dirs, targets, only: parsed.only ?? null, keep: Boolean(parsed.keep), verbose: Boolean(parsed.verbose) }
}

class UsageError extends Error {}

// ---------------------------------------------------------------------------
// Small helpers

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

function git(gitDir, args) {
  const r = spawnSync('git', ['--git-dir', gitDir, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 })
  if (r.error) throw new Error(`git ${args.join(' ')}: ${r.error.message}`)
  if (r.status !== 0) throw new Error(`git --git-dir ${gitDir} ${args.join(' ')}: ${r.stderr.trim()}`)
  return r.stdout
}

function sha(value) {
  return crypto.createHash('sha256').update(typeof value === 'string' ? value : JSON.stringify(value)).digest('hex')
}

function escapeRegExp(s) {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')
}

function indent(text, prefix) {
  return String(text)
    .split('\n')
    .map((l) => prefix + l)
    .join('\n')
}

/** Resolves true when something accepts a TCP connection on 127.0.0.1:port. */
function listening(port) {
  return new Promise((resolve) => {
    const sock = net.createConnection({ host: '127.0.0.1', port })
    const done = (v) => {
      sock.destroy()
      resolve(v)
    }
    sock.setTimeout(1000, () => done(true)) // something is there, just slow
    sock.once('connect', () => done(true))
    sock.once('error', () => done(false))
  })
}

// ---------------------------------------------------------------------------
// The peers: where their suites are, what they install, what their library is called

/** Parsed once per run from the peers' own package.json. */
function describePeers(dirs, needed) {
  const peers = {}
  for (const [name, gitDir] of Object.entries(dirs)) {
    if (!needed.includes(name)) continue
    if (!fs.existsSync(gitDir)) throw new UsageError(`${name}: no git dir at ${gitDir} (pass --${name} <git-dir>)`)
    const commit = git(gitDir, ['rev-parse', 'HEAD']).trim()
    const pkg = JSON.parse(git(gitDir, ['show', 'HEAD:package.json']))
    peers[name] = { name, gitDir, commit, pkg }
  }
  const nr = peers['node-redlock'] || { pkg: { devDependencies: {} } }
  const nrDev = nr.pkg.devDependencies || {}
  nr.published = { name: nr.pkg.name, spec: String(nr.pkg.version).replace(/^v/, '') }
  nr.deps = {
    ava: nrDev.ava,
    typescript: nrDev.typescript,
    ioredis: nrDev.ioredis,
    '@types/ioredis': nrDev['@types/ioredis'],
    '@types/node': nrDev['@types/node'],
    [nr.published.name]: nr.published.spec,
  }
  const se = peers.sesame || { pkg: { devDependencies: {} } }
  const seDev = se.pkg.devDependencies || {}
  // Their package.json's version field is not what npm has (semantic-release publishes), so
  // the newest published version is taken and its shipped src/index.ts compared with theirs.
  se.published = { name: se.pkg.name, spec: 'latest' }
  se.deps = {
    vitest: seDev.vitest,
    ioredis: seDev.ioredis,
    [se.published.name]: se.published.spec,
  }
  for (const p of Object.values(peers)) {
    for (const [dep, spec] of Object.entries(p.deps)) {
      if (!spec) throw new Error(`${p.name}: its package.json names no version of ${dep}`)
    }
  }
  return peers
}

const SUITES = [
  { id: 'node-redlock single.test', peer: 'node-redlock', file: 'src/single.test.ts', runner: 'ava' },
  { id: 'node-redlock multi.test', peer: 'node-redlock', file: 'src/multi.test.ts', runner: 'ava' },
  { id: 'sesame system.spec', peer: 'sesame', file: 'src/system.spec.ts', runner: 'vitest' },
]

/** The module a suite imports instead of its own `./index`. */
function targetSpecifier(suite, target, peers) {
  if (target === 'peer') return peers[suite.peer].published.name
  if (suite.peer === 'sesame') {
    // redlock-rs/sesame: the entry point for code coming from sesame (db defaults to 0),
    // when the package has one.
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO, 'package.json'), 'utf8'))
    if (pkg.exports && pkg.exports['./sesame']) return `${PKG_NAME}/sesame`
  }
  return PKG_NAME
}

// ---------------------------------------------------------------------------
// Installing the runners (cached)

/** What npm prints is kept for the error message; npm runs under flock /tmp/npm.lock. */
function runNpm(args, cwd) {
  const hasFlock = spawnSync('flock', ['--version'], { stdio: 'ignore' }).status === 0
  const cmd = hasFlock ? 'flock' : 'npm'
  const full = hasFlock ? [NPM_LOCK, 'npm', ...args] : args
  return new Promise((resolve, reject) => {
    let out = ''
    const child = spawn(cmd, full, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
    children.add(child)
    child.stdout.on('data', (d) => (out += d))
    child.stderr.on('data', (d) => (out += d))
    child.once('error', (err) => {
      children.delete(child)
      reject(err)
    })
    child.once('close', (code, signal) => {
      children.delete(child)
      if (code === 0) resolve(out)
      else reject(new Error(`npm ${args.join(' ')} failed (${signal || `exit ${code}`}):\n${out.slice(-4000)}`))
    })
  })
}

/** node_modules for one peer's suites, installed once per set of versions. */
async function ensureInstall(peer) {
  const spec = {
    format: CACHE_FORMAT,
    node: process.versions.node.split('.')[0],
    peer: peer.name,
    deps: peer.deps,
  }
  const key = `${peer.name}-${sha(spec).slice(0, 16)}`
  const dir = path.join(CACHE_ROOT, key)
  const intact = () => Object.keys(peer.deps).every((d) => fs.existsSync(path.join(dir, 'node_modules', d, 'package.json')))
  if (fs.existsSync(path.join(dir, '.complete'))) {
    if (intact()) return { dir, cached: true }
    // Something removed part of it: set it aside (another run may still use it) and install anew.
    console.log(`  the cached install in ${dir} is incomplete: installing again`)
    try {
      fs.renameSync(dir, `${dir}.tmp-${process.pid}-broken`)
    } catch {}
  }

  fs.mkdirSync(CACHE_ROOT, { recursive: true })
  const tmp = fs.mkdtempSync(path.join(CACHE_ROOT, `${key}.tmp-${process.pid}-`))
  tempDirs.add(tmp)
  try {
    fs.writeFileSync(
      path.join(tmp, 'package.json'),
      JSON.stringify({ name: `peer-suites-${peer.name}`, private: true, dependencies: peer.deps }, null, 2) + '\n',
    )
    console.log(`  installing ${Object.entries(peer.deps).map(([d, v]) => `${d}@${v}`).join(' ')} (npm, once)`)
    await runNpm(['install', '--no-audit', '--no-fund', '--loglevel=error'], tmp)
    fs.writeFileSync(path.join(tmp, 'cache-key.json'), JSON.stringify({ ...spec, commit: peer.commit }, null, 2) + '\n')
    fs.writeFileSync(path.join(tmp, '.complete'), new Date().toISOString() + '\n')
    try {
      fs.renameSync(tmp, dir)
    } catch (err) {
      // Another run finished the same install first: use theirs.
      if (!fs.existsSync(path.join(dir, '.complete'))) throw err
      fs.rmSync(tmp, { recursive: true, force: true })
    }
  } finally {
    tempDirs.delete(tmp)
    if (fs.existsSync(tmp)) fs.rmSync(tmp, { recursive: true, force: true })
  }
  return { dir, cached: false }
}

function installedVersion(installDir, name) {
  try {
    return JSON.parse(fs.readFileSync(path.join(installDir, 'node_modules', name, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

/** Size and mtime of the built addon(s), to notice a rebuild during a suite. */
function addonStamp() {
  try {
    return fs
      .readdirSync(REPO)
      .filter((f) => f.endsWith('.node'))
      .map((f) => {
        const st = fs.statSync(path.join(REPO, f))
        return `${f}:${st.size}:${st.mtimeMs}`
      })
      .join(',')
  } catch {
    return ''
  }
}

/** Removes run dirs and half-done installs left by runs that were killed. */
function sweepStale() {
  const sweep = (parent, re) => {
    let names = []
    try {
      names = fs.readdirSync(parent)
    } catch {
      return
    }
    for (const name of names) {
      const m = re.exec(name)
      if (!m) continue
      const pid = Number(m[1])
      let alive = false
      try {
        process.kill(pid, 0)
        alive = true
      } catch (err) {
        alive = err.code === 'EPERM'
      }
      if (!alive) fs.rmSync(path.join(parent, name), { recursive: true, force: true })
    }
  }
  sweep(CACHE_ROOT, /\.tmp-(\d+)-/)
  sweep(os.tmpdir(), /^redlock-rs-peer-suites-run-(\d+)-/)
}

// ---------------------------------------------------------------------------
// Servers

/** Every server and cluster started, so that a failure or a signal stops them all. */
const started = { servers: [], clusters: [] }
/** Child processes (npm, tsc, the test runners), each the leader of its own process group. */
const children = new Set()
const tempDirs = new Set()

/**
 * The host names a suite connects to, from its text. `redis-*-cluster-<x>-<n>` /
 * `redis-single-cluster-<n>` are node n of a cluster; any other `redis-*` name is a plain
 * server. Clusters are shaped as in the peers' docker-compose: the single cluster has 3
 * masters with a replica each, the multi clusters 3 masters each.
 */
function hostsOf(text) {
  const names = new Set()
  for (const m of text.matchAll(/\bhost:\s*(["'])(redis-[a-z0-9-]+)\1/g)) names.add(m[2])
  const instances = []
  const clusters = new Map()
  for (const name of names) {
    const m = /^(redis-.*cluster(?:-[a-z])?)-(\d+)$/.exec(name)
    if (m) {
      const c = clusters.get(m[1]) || { name: m[1], seeds: [], replicas: /single-cluster/.test(m[1]) ? 1 : 0 }
      c.seeds.push({ host: name, index: Number(m[2]) - 1 })
      clusters.set(m[1], c)
    } else if (/cluster/.test(name)) {
      throw new Error(`do not know how to set up host ${name}`)
    } else instances.push(name)
  }
  return { instances, clusters: [...clusters.values()] }
}

/** A port on 127.0.0.1 where nothing listens (for the "unreachable" client). */
async function deadPort() {
  const { freePort } = require('./redis-servers.js')
  for (let i = 0; i < 20; i++) {
    const port = await freePort()
    if (port !== 6379 && port !== 6380 && !(await listening(port))) return port
  }
  throw new Error('could not find a port where nothing listens')
}

/**
 * Starts what one suite run needs (plain servers, clusters, in parallel); resolves with host
 * name -> port. If any of it fails to start, what did start is stopped before the error.
 */
async function startFor(hosts) {
  const { startServers } = require('./redis-servers.js')
  const { startCluster } = require('../__test__/support/cluster.js')
  const set = { ports: {}, desc: [], servers: [], clusters: [] }
  const [plain, ...clustered] = await Promise.allSettled([
    startServers(hosts.instances.length).then((servers) => {
      set.servers.push(...servers)
      started.servers.push(...servers)
      return servers
    }),
    ...hosts.clusters.map((c) =>
      startCluster({ masters: 3, replicas: c.replicas, nodeTimeout: 5000, timeout: 60000 }).then((cluster) => {
        set.clusters.push(cluster)
        started.clusters.push(cluster)
        return cluster
      }),
    ),
  ])
  try {
    const failed = [plain, ...clustered].find((r) => r.status === 'rejected')
    if (failed) throw failed.reason
    hosts.instances.forEach((h, i) => {
      const server = plain.value[i]
      set.ports[h] = server.port
      set.desc.push(`${h} -> 127.0.0.1:${server.port} (redis-server pid ${server.pid})`)
    })
    hosts.clusters.forEach((c, i) => {
      const cluster = clustered[i].value
      for (const seed of c.seeds) {
        const node = cluster.nodes[seed.index]
        if (!node) throw new Error(`${seed.host}: the cluster has no node ${seed.index + 1}`)
        set.ports[seed.host] = node.port
      }
      set.desc.push(
        `${c.name}-* -> Redis Cluster of ${cluster.nodes.length} nodes (3 masters, ${c.replicas} replica each), ` +
          `seed ${c.seeds.map((s) => `${s.host}=127.0.0.1:${set.ports[s.host]}`).join(', ')}; ` +
          `pids ${cluster.nodes.map((n) => n.server.pid).join(' ')}`,
      )
    })
  } catch (err) {
    await stopSet(set).catch(() => {})
    throw err
  }
  return set
}

async function stopSet(set) {
  if (!set) return
  const { stopServers } = require('./redis-servers.js')
  await Promise.all([stopServers(set.servers), ...set.clusters.map((c) => c.stop())])
  started.servers = started.servers.filter((s) => !set.servers.includes(s))
  started.clusters = started.clusters.filter((c) => !set.clusters.includes(c))
}

async function stopEverything() {
  const { stopServers } = require('./redis-servers.js')
  const servers = started.servers.splice(0)
  const clusters = started.clusters.splice(0)
  await Promise.all([stopServers(servers), ...clusters.map((c) => c.stop().catch(() => {}))])
}

// ---------------------------------------------------------------------------
// The rewrite: imports and host/port literals, nothing else

/**
 * Rules for one suite. Each is a regular expression over the file and what replaces a
 * match; `required` rules must match at least once (a peer file that moved on is an error,
 * not a silent no-op).
 */
function rulesFor(suite, text, { specifier, ports, dead }) {
  const rules = []
  // 1. Their own library.
  rules.push({
    what: 'import of their own library',
    re: /(\bfrom\s+)(["'])\.\/index(?:\.js)?\2/g,
    replace: (m, from, q) => `${from}${q}${specifier}${q}`,
    required: true,
  })
  // 2. docker-compose host names -> loopback servers started here.
  rules.push({
    what: 'docker-compose host names',
    re: /\bhost:\s*(["'])(redis-[a-z0-9-]+)\1/g,
    replace: (m, q, host) => {
      if (!ports[host]) throw new Error(`no server was started for host ${host}`)
      return `host: ${q}127.0.0.1${q}, port: ${ports[host]}`
    },
    required: true,
  })
  // 3. The "unreachable" client: 127.0.0.1 on the default port (node-redlock) or on 6380
  //    (sesame). A real Redis may listen there; a port where nothing does keeps the test's
  //    meaning.
  rules.push({
    what: 'unreachable client, default port 6379',
    re: /\bhost:\s*(["'])127\.0\.0\.1\1,(?!\s*port\s*:)/g,
    replace: (m, q) => `host: ${q}127.0.0.1${q}, port: ${dead},`,
    required: false,
  })
  rules.push({
    what: 'unreachable client, port 6380',
    re: /(?<=\bhost:\s*["']127\.0\.0\.1["'],\s*)port:\s*6380\b/g,
    replace: () => `port: ${dead}`,
    required: false,
  })
  return rules
}

function applyRules(text, rules) {
  let out = text
  const applied = []
  for (const rule of rules) {
    const examples = new Map()
    let count = 0
    out = out.replace(rule.re, (...args) => {
      count++
      const replacement = rule.replace(...args)
      examples.set(args[0], replacement)
      return replacement
    })
    if (!count && rule.required) throw new Error(`rewrite rule "${rule.what}" matched nothing: has the peer file changed?`)
    if (count) applied.push({ what: rule.what, count, examples: [...examples] })
  }
  // Nothing of their set-up may be left.
  const leftovers = [
    [/["']redis-(?:single|multi)-[a-z0-9-]+["']/, 'a docker-compose host name'],
    [/\bfrom\s+["']\.\/index(?:\.js)?["']/, 'an import of ./index'],
    [/\bhost:\s*["']127\.0\.0\.1["'],(?!\s*port\s*:)/, 'a client on the default port'],
    [/\bport:\s*63(?:79|80)\b/, 'port 6379/6380'],
  ]
  for (const [re, what] of leftovers) {
    const m = re.exec(out)
    if (m) throw new Error(`after the rewrite the file still has ${what}: ${m[0]}`)
  }
  // Line by line, only lines holding a match may differ (the rewrite adds no line).
  const a = text.split('\n')
  const b = out.split('\n')
  if (a.length !== b.length) throw new Error('the rewrite changed the number of lines')
  let changed = 0
  for (let i = 0; i < a.length; i++) {
    if (a[i] === b[i]) continue
    changed++
    const ok = applied.some((r) => r.examples.some(([from, to]) => a[i].includes(from) && b[i].includes(to)))
    if (!ok) throw new Error(`the rewrite changed line ${i + 1} unexpectedly:\n- ${a[i]}\n+ ${b[i]}`)
  }
  return { text: out, applied, changed }
}

// ---------------------------------------------------------------------------
// Work directory

function makeRunDir() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `redlock-rs-peer-suites-run-${process.pid}-`))
  tempDirs.add(dir)
  return dir
}

/**
 * `<dir>/node_modules`: a symlink to each package of the cached install, and for the
 * redlock-rs target `redlock-rs` -> this repository.
 */
function linkNodeModules(dir, installDir, target) {
  const nm = path.join(dir, 'node_modules')
  fs.mkdirSync(nm, { recursive: true })
  const src = path.join(installDir, 'node_modules')
  for (const name of fs.readdirSync(src)) {
    if (name === '.package-lock.json' || name === '.cache') continue
    fs.symlinkSync(path.join(src, name), path.join(nm, name))
  }
  if (target === 'redlock-rs') {
    if (fs.existsSync(path.join(nm, PKG_NAME))) fs.unlinkSync(path.join(nm, PKG_NAME))
    fs.symlinkSync(REPO, path.join(nm, PKG_NAME), 'dir')
  }
}

// ---------------------------------------------------------------------------
// Running a child and collecting its output

function runChild(cmd, args, { cwd, env, verbose, timeoutMs = SUITE_TIMEOUT_MS, label }) {
  return new Promise((resolve) => {
    let out = ''
    const child = spawn(cmd, args, {
      cwd,
      env: { ...process.env, FORCE_COLOR: '0', NO_COLOR: '1', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true, // its own process group: stopped as a whole, and spared the terminal's ^C
    })
    children.add(child)
    const onData = (d) => {
      out += d
      if (verbose) process.stderr.write(indent(String(d).replace(/\n$/, ''), `    [${label}] `) + '\n')
    }
    child.stdout.on('data', onData)
    child.stderr.on('data', onData)
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child)
    }, timeoutMs)
    child.once('error', (err) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code: null, signal: null, out: out + `\n${err.message}`, error: err, timedOut })
    })
    child.once('close', (code, signal) => {
      clearTimeout(timer)
      children.delete(child)
      resolve({ code, signal, out, timedOut })
    })
  })
}

function killGroup(child, signal = 'SIGTERM') {
  if (child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {}
  if (signal !== 'SIGKILL') {
    setTimeout(() => {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }, 3000).unref()
  }
}

// ---------------------------------------------------------------------------
// AVA (node-redlock)

/**
 * As node-redlock does it: `tsc` with their tsconfig.json (src -> dist/esm), then, in
 * dist/esm (whose package.json is theirs), `ava <file>.test.js`, with the TAP reporter here
 * (their script says --verbose) so that results can be read.
 */
async function runAva(suite, ctx) {
  const { dir, peer, installDir, rewritten, verbose } = ctx
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'src', path.basename(suite.file)), rewritten)
  fs.writeFileSync(path.join(dir, 'tsconfig.json'), git(peer.gitDir, ['show', 'HEAD:tsconfig.json']))
  let tsconfig
  try {
    tsconfig = JSON.parse(fs.readFileSync(path.join(dir, 'tsconfig.json'), 'utf8'))
  } catch {
    tsconfig = { compilerOptions: { outDir: './dist/esm' } }
  }
  const outDir = path.join(dir, (tsconfig.compilerOptions && tsconfig.compilerOptions.outDir) || './dist/esm')
  fs.mkdirSync(outDir, { recursive: true })
  let esmPkg = '{ "type": "module" }\n'
  try {
    esmPkg = git(peer.gitDir, ['show', 'HEAD:dist/esm/package.json'])
  } catch {}
  fs.writeFileSync(path.join(outDir, 'package.json'), esmPkg)

  const tsc = path.join(installDir, 'node_modules', 'typescript', 'bin', 'tsc')
  const compiled = await runChild(process.execPath, [tsc, '-p', 'tsconfig.json', '--pretty', 'false'], {
    cwd: dir,
    verbose,
    label: 'tsc',
  })
  const typeErrors = compiled.out
    .split('\n')
    .filter((l) => /error TS\d+/.test(l))
    .map((l) => l.replace(dir + path.sep, ''))
  const js = path.join(outDir, path.basename(suite.file).replace(/\.ts$/, '.js'))
  if (!fs.existsSync(js)) {
    return { runnerError: `tsc emitted no ${path.relative(dir, js)} (exit ${compiled.code}):\n${compiled.out.slice(-3000)}`, typeErrors }
  }

  const avaDir = path.join(installDir, 'node_modules', 'ava')
  const watching = writeLateFailureWatch(outDir, avaDir, esmPkg)
  console.log(
    `  ran: tsc ${installedVersion(installDir, 'typescript')} -p tsconfig.json (theirs), then in ${path.relative(dir, outDir)} ` +
      `(their package.json there) ava ${installedVersion(installDir, 'ava')} --tap ${path.basename(js)}` +
      (watching ? ' (+ ava.config.mjs: a watch for dropped late t.fail() calls)' : ''),
  )
  const run = await runChild(process.execPath, [path.join(avaDir, 'entrypoints', 'cli.mjs'), '--tap', path.basename(js)], {
    cwd: outDir,
    verbose,
    label: 'ava',
  })
  fs.writeFileSync(path.join(dir, 'ava-output.txt'), run.out)
  const out = run.out.split(dir + path.sep).join('')
  const parsed = parseTap(out)
  for (const m of out.matchAll(new RegExp(`^${escapeRegExp(LATE_MARK)} (.*)$`, 'gm'))) {
    let late
    try {
      late = JSON.parse(m[1])
    } catch {
      continue
    }
    const t = parsed.tests.find((x) => x.title === late.title)
    if (t && t.ok) {
      t.hidden = t.hidden || []
      t.hidden.push(...String(late.message).split('\n').filter((l) => l.trim() && l.trim() !== '---').slice(0, 2))
    }
  }
  return { ...parsed, run, typeErrors, watching }
}

const LATE_MARK = '[peer-suites] late t.fail'

/**
 * node-redlock's tests end in `catch (error) { fail(t, error) }` without `await`, and
 * `fail` awaits the error's attempts before `t.fail(...)`; AVA 4 ignores an assertion that
 * comes after the test has finished, so such a failure can go unseen and the test counts as
 * passed. A module AVA loads before the tests (its `require` option) notes, on stderr, any
 * t.fail() that AVA drops; verdicts stay AVA's, those passes are flagged. Returns false when
 * their dist/esm/package.json has an AVA configuration of its own (then nothing is added).
 */
function writeLateFailureWatch(outDir, avaDir, esmPkg) {
  try {
    if (JSON.parse(esmPkg).ava) return false
  } catch {}
  const testModule = require('node:url').pathToFileURL(path.join(fs.realpathSync(avaDir), 'lib', 'test.js')).href
  fs.writeFileSync(
    path.join(outDir, 'peer-suites-late-failures.mjs'),
    `// written by redlock-rs scripts/peer-suites.js: reports t.fail() calls that AVA drops\n` +
      `// because they come after their test finished (the verdicts stay AVA's).\n` +
      `import { writeSync } from 'node:fs'\n` +
      `import Test from ${JSON.stringify(testModule)}\n` +
      `const finish = Test.prototype.finish\n` +
      `Test.prototype.finish = async function (...args) {\n` +
      `  const result = await finish.apply(this, args)\n` +
      `  this.peerSuitesFinished = true\n` +
      `  return result\n` +
      `}\n` +
      `const addFailedAssertion = Test.prototype.addFailedAssertion\n` +
      `Test.prototype.addFailedAssertion = function (error) {\n` +
      `  if (this.peerSuitesFinished) {\n` +
      `    const message = String((error && error.message) || error)\n` +
      `    writeSync(2, '\\n' + ${JSON.stringify(LATE_MARK)} + ' ' + JSON.stringify({ title: this.title, message }) + '\\n')\n` +
      `  }\n` +
      `  return addFailedAssertion.call(this, error)\n` +
      `}\n`,
  )
  fs.writeFileSync(
    path.join(outDir, 'ava.config.mjs'),
    `// written by redlock-rs scripts/peer-suites.js\nexport default { require: ['./peer-suites-late-failures.mjs'] }\n`,
  )
  return true
}

/** Reads AVA 4's TAP: `ok N - title`, `not ok N - title` with a YAML block after it. */
function parseTap(out) {
  const lines = out.split('\n')
  const tests = []
  const extra = [] // unhandled rejections, uncaught exceptions, timeouts: not tests
  let planned
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    let m
    if ((m = /^1\.\.(\d+)/.exec(line))) planned = Number(m[1])
    if (!(m = /^(not ok|ok) (\d+) - (.*?)(?:\s+# (SKIP|TODO)\b.*)?$/.exec(line))) continue
    const entry = { title: m[3], ok: m[1] === 'ok', skip: !!m[4] }
    if (!entry.ok) {
      const yaml = []
      if (lines[i + 1] && /^\s+---\s*$/.test(lines[i + 1])) {
        let j = i + 2
        for (; j < lines.length && !/^\s+\.\.\.\s*$/.test(lines[j]); j++) yaml.push(lines[j])
        i = j
      }
      entry.details = yamlSummary(yaml)
    }
    // AVA reports errors outside a test as `not ok N - <ErrorName>: <message>` (uncaught
    // exception, unhandled rejection) or `not ok N - Timed out ...`.
    if (!entry.ok && /^(Unhandled rejection|Uncaught exception|Timed out|\w*(Error|Exception)(\s*\[\w+\])?: )/.test(entry.title)) {
      extra.push(entry)
    } else tests.push(entry)
  }
  return { tests, extra, planned }
}

/**
 * The YAML block AVA writes after `not ok`: `key: value` pairs, `|-` / `>-` block scalars,
 * and `values:` holding `'Label:': |-` blocks. Read just enough of it for a summary.
 */
function parseTapYaml(lines) {
  const text = lines.map((l) => l.replace(/^ {4}/, ''))
  const unquote = (v) => v.trim().replace(/^'(.*)'$/, '$1').replace(/''/g, "'")
  const fields = {}
  const values = []
  for (let i = 0; i < text.length; i++) {
    const m = /^([A-Za-z]+):\s*(.*)$/.exec(text[i])
    if (!m) continue
    const [, key, rest] = m
    const block = []
    let j = i + 1
    for (; j < text.length && /^\s/.test(text[j]); j++) block.push(text[j])
    i = j - 1
    if (key === 'values') {
      for (let k = 0; k < block.length; k++) {
        const vm = /^\s{2}('(?:[^']|'')*'|[^:]+):\s*(\|-|>-|\||>)?\s*(.*)$/.exec(block[k])
        if (!vm || /^\s{3}/.test(block[k])) continue
        const body = []
        if (vm[3]) body.push(unquote(vm[3]))
        for (let n = k + 1; n < block.length && /^\s{4}/.test(block[n]); n++) body.push(block[n].trim())
        values.push({ label: unquote(vm[1]).replace(/:$/, ''), body })
      }
    } else if (/^[|>]-?$/.test(rest)) {
      fields[key] = block.map((l) => l.trim()).join(rest.startsWith('>') ? ' ' : '\n')
    } else fields[key] = unquote(rest)
  }
  return { fields, values }
}

/** The first few meaningful lines of a TAP YAML error block. */
function yamlSummary(yaml) {
  const { fields, values } = parseTapYaml(yaml)
  const pick = []
  const name = fields.name && !/^(AssertionError|Error)$/.test(fields.name) ? `${fields.name}: ` : ''
  const assertion = fields.assertion ? `t.${fields.assertion} failed` : ''
  if (fields.message) {
    const lines = fields.message.split('\n').filter((l) => l.trim() && l.trim() !== '---')
    pick.push(`${name}${lines[0]}${assertion ? ` (${assertion})` : ''}`, ...lines.slice(1, 2))
  }
  else pick.push(`${name || fields.name || 'failed'}${assertion ? ` ${assertion}` : ''}`.trim())
  for (const v of values.slice(0, 2)) {
    const body = v.body.filter((l) => l.trim())
    if (/^Difference$/.test(v.label)) pick.push(`${v.label}: ${body.join('  ')}`)
    else pick.push(`${v.label}: ${body.slice(0, 3).join(' ')}`)
  }
  if (fields.at) {
    const at = fields.at.split('\n').map((l) => l.trim()).filter(Boolean).find((l) => /\.[cm]?[jt]s:\d+/.test(l))
    if (at) pick.push(`at ${at}`)
  }
  return pick.slice(0, FAILURE_LINES)
}

// ---------------------------------------------------------------------------
// vitest (sesame)

/**
 * `vitest run src/system.spec.ts` with vitest's defaults (sesame's own vitest.config.ts is
 * generated from a preset that npm no longer has) and one setting: redlock-rs, linked into
 * node_modules from outside it, is loaded by Node like any package instead of being
 * transformed by vite. The JSON reporter's file is read for the results.
 */
async function runVitest(suite, ctx) {
  const { dir, installDir, rewritten, verbose, pkgRealpath } = ctx
  fs.mkdirSync(path.join(dir, 'src'), { recursive: true })
  fs.writeFileSync(path.join(dir, 'src', path.basename(suite.file)), rewritten)
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'peer-suite-sesame', private: true }) + '\n')
  const external = pkgRealpath ? `[new RegExp(${JSON.stringify('^' + escapeRegExp(pkgRealpath + path.sep))})]` : '[]'
  fs.writeFileSync(
    path.join(dir, 'vitest.config.mjs'),
    `// written by redlock-rs scripts/peer-suites.js\n` +
      `export default {\n` +
      `  test: {\n` +
      `    // redlock-rs lives outside node_modules (a symlink): Node loads it, vite does not transform it.\n` +
      `    server: { deps: { external: ${external} } },\n` +
      `    // Whole values in failure messages (chai cuts them at 40 characters); no assertion changes.\n` +
      `    chaiConfig: { truncateThreshold: 0 },\n` +
      `  },\n` +
      `}\n`,
  )
  const json = path.join(dir, 'vitest-results.json')
  const cli = path.join(installDir, 'node_modules', 'vitest', 'vitest.mjs')
  console.log(
    `  ran: vitest ${installedVersion(installDir, 'vitest')} run src/${path.basename(suite.file)} --reporter=json ` +
      `(vitest's defaults + vitest.config.mjs: ${pkgRealpath ? 'redlock-rs loaded by Node (server.deps.external), ' : ''}` +
      `untruncated values in messages)`,
  )
  const run = await runChild(
    process.execPath,
    [cli, 'run', `src/${path.basename(suite.file)}`, '--reporter=json', `--outputFile=${json}`],
    { cwd: dir, verbose, label: 'vitest' },
  )
  fs.writeFileSync(path.join(dir, 'vitest-output.txt'), run.out)
  let report
  try {
    report = JSON.parse(fs.readFileSync(json, 'utf8'))
  } catch (err) {
    return { runnerError: `vitest wrote no readable ${path.basename(json)} (${run.signal || `exit ${run.code}`}):\n${run.out.slice(-3000)}`, run }
  }
  const tests = []
  const extra = []
  for (const file of report.testResults || []) {
    for (const a of file.assertionResults || []) {
      const title = [...(a.ancestorTitles || []).map((t) => String(t).replace(/^'(.*)'$/, '$1')), a.title].filter(Boolean).join(' > ')
      const entry = { title: a.title ? title : a.fullName, ok: a.status === 'passed', skip: a.status === 'skipped' || a.status === 'pending' || a.status === 'todo' }
      if (!entry.ok && !entry.skip) entry.details = vitestSummary(a.failureMessages || [])
      tests.push(entry)
    }
    if (file.status === 'failed' && !(file.assertionResults || []).length) {
      extra.push({ title: `${path.basename(file.name)} failed to run`, ok: false, details: vitestSummary([file.message || '']) })
    }
  }
  const unhandled = /Unhandled (Errors?|Rejection)[\s\S]*$/.exec(run.out)
  if (unhandled) extra.push({ title: 'unhandled error reported by vitest', ok: false, details: unhandled[0].split('\n').filter((l) => l.trim() && !/^[⎯-]+$/.test(l.trim())).slice(0, FAILURE_LINES) })
  return { tests, extra, run }
}

function vitestSummary(messages) {
  const lines = String(messages[0] || '')
    .split('\n')
    .map((l) => l.trimEnd())
    .filter((l) => l.trim())
  const head = lines.filter((l) => !/^\s+at /.test(l)).slice(0, FAILURE_LINES - 1)
  const at = lines.find((l) => /^\s+at .*system\.spec/.test(l))
  if (at) head.push(at.trim())
  return head.length ? head : ['(no message)']
}

// ---------------------------------------------------------------------------
// One suite against one target

async function runSuite(suite, target, peers, opts) {
  const peer = peers[suite.peer]
  const label = `${suite.id} (against ${target === 'peer' ? `${peer.published.name}@${installedVersion(peer.install.dir, peer.published.name)}` : PKG_NAME})`
  console.log(`\n=== ${label}`)
  const original = git(peer.gitDir, ['show', `HEAD:${suite.file}`])
  const hosts = hostsOf(original)
  const result = { suite, target, label, tests: [], extra: [] }
  let set
  const dir = makeRunDir()
  try {
    set = await startFor(hosts)
    const dead = await deadPort()
    const specifier = targetSpecifier(suite, target, peers)
    const rules = rulesFor(suite, original, { specifier, ports: set.ports, dead })
    const { text, applied, changed } = applyRules(original, rules)
    console.log(`  ${suite.file} at ${peer.commit.slice(0, 12)} (${peer.gitDir})`)
    console.log(`  servers:`)
    for (const d of set.desc) console.log(`    ${d}`)
    if (applied.some((r) => /unreachable/.test(r.what))) {
      console.log(`    unreachable client -> 127.0.0.1:${dead} (nothing listens there)`)
    }
    console.log(`  rewrite rules applied (${changed} line${changed === 1 ? '' : 's'} changed, nothing else):`)
    for (const r of applied) {
      console.log(`    ${r.what} (${r.count}x):`)
      for (const [from, to] of r.examples) console.log(`      ${from}  ->  ${to}`)
    }
    linkNodeModules(dir, peer.install.dir, target)
    if (opts.keep) console.log(`  work dir: ${dir}`)
    const ctx = {
      dir,
      peer,
      installDir: peer.install.dir,
      rewritten: text,
      verbose: opts.verbose,
      pkgRealpath: target === 'redlock-rs' ? fs.realpathSync(REPO) : null,
    }
    const addonBefore = addonStamp()
    const r = suite.runner === 'ava' ? await runAva(suite, ctx) : await runVitest(suite, ctx)
    Object.assign(result, r)
    if (target === 'redlock-rs' && addonStamp() !== addonBefore) {
      console.log(`  note: the native addon in ${REPO} changed while this suite ran (rebuilt?): rerun before trusting a failure`)
    }
    if (r.typeErrors && r.typeErrors.length) {
      console.log(`  type check (tsc ${installedVersion(peer.install.dir, 'typescript')}, their tsconfig): ${r.typeErrors.length} error(s); the JS is emitted anyway and run as is:`)
      for (const l of r.typeErrors.slice(0, 10)) console.log(`    ${l}`)
      if (r.typeErrors.length > 10) console.log(`    ... and ${r.typeErrors.length - 10} more`)
    }
    if (r.run && r.run.timedOut) result.runnerError = `the test runner was stopped after ${SUITE_TIMEOUT_MS / 60000} minutes`
    else if (!r.runnerError && r.run && !result.tests.length && !result.extra.length) {
      result.runnerError = `the test runner reported no test (${r.run.signal || `exit ${r.run.code}`}):\n${r.run.out.slice(-3000)}`
    }
    const failedTests = result.tests.filter((t) => !t.ok && !t.skip).length
    if (!result.runnerError && r.run && r.run.code !== 0 && !failedTests && !result.extra.length) {
      result.extra.push({ title: `the test runner exited ${r.run.signal || r.run.code} with every test passing`, ok: false, details: r.run.out.trim().split('\n').slice(-FAILURE_LINES) })
    }
  } catch (err) {
    result.runnerError = err.stack || String(err)
  } finally {
    await stopSet(set).catch((err) => console.error(`  stopping the servers: ${err.message}`))
    if (!opts.keep) fs.rmSync(dir, { recursive: true, force: true })
    tempDirs.delete(dir)
  }
  if (!stopping) report(result)
  return result
}

function report(result) {
  if (result.runnerError) {
    console.log(`  RUNNER ERROR (not a verdict on the package):\n${indent(result.runnerError, '    ')}`)
  }
  const tests = result.tests
  const skipped = tests.filter((t) => t.skip).length
  const passed = tests.filter((t) => t.ok && !t.skip).length
  const failed = tests.length - passed - skipped
  const hidden = tests.filter((t) => t.ok && t.hidden).length
  result.counts = { passed, failed, skipped, hidden, total: tests.length }
  if (!result.runnerError || tests.length) {
    console.log(
      `  result: ${passed}/${tests.length} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}` +
        (hidden ? `; ${hidden} of the passes had a t.fail() that AVA dropped (see LATE)` : ''),
    )
  }
  if (result.watching === false) console.log('  (their AVA configuration is kept as is: late t.fail() calls are not watched)')
  for (const t of tests.filter((t) => !t.ok && !t.skip)) {
    console.log(`  FAIL ${t.title}`)
    for (const l of t.details || []) console.log(`       ${l}`)
  }
  for (const t of tests.filter((t) => t.ok && t.hidden)) {
    console.log(`  LATE ${t.title} (AVA: passed; its t.fail() came after the test had finished)`)
    for (const l of t.hidden) console.log(`       ${l}`)
  }
  for (const e of result.extra) {
    console.log(`  ALSO ${e.title}`)
    for (const l of e.details || []) console.log(`       ${l}`)
  }
}

// ---------------------------------------------------------------------------
// Main

let stopping = null
async function shutdown(code) {
  if (!stopping) {
    stopping = (async () => {
      for (const child of children) killGroup(child, 'SIGKILL')
      await stopEverything().catch(() => {})
      for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
      tempDirs.clear()
    })()
  }
  await stopping
  process.exit(code)
}

function installSignalHandlers() {
  for (const [sig, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]]) {
    process.on(sig, () => {
      console.error(`\n${sig}: stopping the test runner, the servers and removing the work directories`)
      shutdown(code)
    })
  }
  // Last resort if the process goes down some other way: SIGKILL what is still running
  // (cluster.js does the same for its clusters).
  process.on('exit', () => {
    for (const child of children) {
      try {
        process.kill(-child.pid, 'SIGKILL')
      } catch {}
    }
    for (const s of started.servers) {
      if (s.pid === undefined) continue
      try {
        process.kill(s.pid, 'SIGKILL')
      } catch {}
      try {
        s.cleanup()
      } catch {}
    }
    for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true })
  })
}

function compareSesameSource(peer) {
  // sesame's package ships its src/: compare it with the repository's, so that a pass against
  // the package says something about the repository the suite came from.
  try {
    const shipped = fs.readFileSync(path.join(peer.install.dir, 'node_modules', peer.published.name, 'src', 'index.ts'), 'utf8')
    const theirs = git(peer.gitDir, ['show', 'HEAD:src/index.ts'])
    return shipped === theirs ? 'its shipped src/index.ts is the repository\'s' : 'its shipped src/index.ts DIFFERS from the repository\'s'
  } catch {
    return 'it ships no src/index.ts to compare'
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2))
  installSignalHandlers()
  sweepStale()
  const suites = SUITES.filter((s) => !opts.only || s.id.includes(opts.only))
  if (!suites.length) throw new UsageError(`no suite matches --only ${opts.only}`)
  const peers = describePeers(opts.dirs, [...new Set(suites.map((s) => s.peer))])

  console.log(`peer suites against ${opts.targets.map((t) => (t === 'peer' ? "the peers' published packages" : `${PKG_NAME} (${REPO})`)).join(' and ')}`)
  for (const peer of Object.values(peers)) {
    if (!suites.some((s) => s.peer === peer.name)) continue
    console.log(`- ${peer.name}: ${peer.gitDir} at ${peer.commit.slice(0, 12)}`)
    peer.install = await ensureInstall(peer)
    const v = (n) => `${n}@${installedVersion(peer.install.dir, n)}`
    console.log(
      `  runners and deps (${peer.install.cached ? 'cached' : 'installed'} in ${peer.install.dir}): ` +
        Object.keys(peer.deps).filter((d) => d !== peer.published.name).map(v).join(', '),
    )
    if (opts.targets.includes('peer')) {
      const extra = peer.name === 'sesame' ? `; ${compareSesameSource(peer)}` : ` (their package.json says ${peer.pkg.version})`
      console.log(`  their published package: ${v(peer.published.name)}${extra}`)
    }
  }

  const results = []
  for (const target of opts.targets) {
    for (const suite of suites) {
      if (stopping) break
      results.push(await runSuite(suite, target, peers, opts))
    }
  }

  if (stopping) return stopping // shutdown() exits

  console.log('\n=== summary')
  let passed = 0
  let failed = 0
  let runnerErrors = 0
  for (const r of results) {
    const c = r.counts
    passed += c.passed
    failed += c.failed
    const against = r.target === 'peer' ? `against ${peers[r.suite.peer].published.name}` : `against ${PKG_NAME}`
    let line = `${r.suite.id} (${against}): ${c.passed}/${c.total} passed`
    if (c.skipped) line += `, ${c.skipped} skipped`
    if (c.hidden) line += ` (${c.hidden} of them with a late t.fail() that AVA dropped)`
    if (r.extra.length) line += ` (+${r.extra.length} error${r.extra.length === 1 ? '' : 's'} outside tests)`
    if (r.runnerError) {
      runnerErrors++
      line += '  [RUNNER ERROR]'
    }
    console.log(line)
  }
  console.log(`total: ${passed} passed, ${failed} failed`)
  const anyFailed = failed > 0 || results.some((r) => r.extra.length || r.counts.hidden)
  await stopEverything()
  process.exitCode = runnerErrors ? 2 : anyFailed ? 1 : 0
}

main().catch(async (err) => {
  if (err instanceof UsageError) {
    console.error(`${err.message}\n\n${usage()}`)
    await shutdown(2)
  }
  console.error(err.stack || String(err))
  await shutdown(2)
})
