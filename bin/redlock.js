#!/usr/bin/env node
'use strict'
// The `redlock` command: flock(1) across machines. `exec` runs a command while holding a
// Redlock on N Redis masters, `inspect` shows what each node holds, `release` frees a lock by
// its id. Every failure of redlock's own ends in a line on stderr and a documented exit code,
// so that scripts can tell "not acquired" and "lost" from the command's own status.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { parseArgs } = require('node:util')
const Redlock = require('../index.js')
const { ExecutionError } = Redlock
const { Conn, parseRedisUrl } = require('../lib/resp.js')

/** redlock's own exit codes; any other status is the command's. */
const EXIT = {
  USAGE: 2,
  /** EX_SOFTWARE: a bug. */
  INTERNAL: 70,
  /** EX_TEMPFAIL: the lock was not acquired (held elsewhere, or no quorum reachable). */
  NOT_ACQUIRED: 75,
  /** The lock was lost while the command ran; the command was terminated. */
  LOST: 76,
  CANNOT_EXECUTE: 126,
  NOT_FOUND: 127,
}

const MAX_MS = 2147483647
const UNITS = { ms: 1, s: 1000, m: 60000, h: 3600000 }
/** Pause between acquisition attempts while waiting for a lock, ± RETRY_JITTER. */
const RETRY_DELAY = 100
const RETRY_JITTER = 50

const SERVERS_HELP = `  --servers URLS        comma-separated redis://[user[:password]@]host[:port][/db]
                        (host:port is enough); default: $REDLOCK_SERVERS
  --cluster URLS        the startup nodes of a Redis Cluster, comma-separated: the
                        whole cluster is one member of the quorum; repeat it for
                        several; default: $REDLOCK_CLUSTERS (clusters separated by ;)
  --tls-ca FILE         for rediss:// servers: the CA certificates (PEM) to trust
                        instead of the system's; default: $REDLOCK_TLS_CA
  --tls-cert FILE, --tls-key FILE
                        a client certificate and its unencrypted key (PEM), for
                        servers that ask for one; default: $REDLOCK_TLS_CERT, _KEY`

const HELP = {
  redlock: `Usage: redlock <command> [options]

Distributed locks over N independent Redis masters (the Redlock algorithm).

Commands:
  exec      run a command while holding a lock (or a semaphore's permit, or one side
            of a read-write lock)
  inspect   show, per node, who holds a resource (a semaphore's permits, a read-write
            lock's writer and readers) and for how long
  release   release a lock by its id

Options:
  --help                this text; 'redlock <command> --help' for a command's options
  --version             print the version`,

  exec: `Usage: redlock exec [options] [--] COMMAND [ARGS...]

Runs COMMAND while holding a lock on every --resource, like flock(1) across machines; with
--permits, one permit of a semaphore instead (at most K such commands at once), with --read
or --write one side of a read-write lock. The lock is extended while the command runs and
released when it exits. If the lock is lost (extension failed: expired, taken away, or too
few nodes answer), the command gets SIGTERM, then SIGKILL after --grace, and redlock exits
with 76.

Options:
${SERVERS_HELP}
  --resource NAME       the resource to lock; repeat it to lock several at once
                        (all or none)
  --permits K           hold one permit of the semaphore of K permits on the one
                        --resource: at most K commands hold one at a time
  --read, --write       hold the read side (together with other readers) or the write
                        side (alone) of the read-write lock on the one --resource
  --ttl DURATION        the lock's time to live, renewed every ttl/2 (default 30s,
                        at least 200ms)
  --wait DURATION       how long to keep trying while the resource is held elsewhere;
                        0 tries once (default: wait until acquired)
  --grace DURATION      from SIGTERM to SIGKILL when the lock is lost (default 5s)

Durations: 500ms, 30s, 2m, 1h.

The command's environment gets REDLOCK_LOCK_ID (the lock's id, which 'redlock release' takes
for a plain lock) and, when the lock has one, REDLOCK_FENCING_TOKEN (a read lock has none).
SIGINT, SIGTERM and SIGHUP are passed on to it.

Exit status:
  the command's own   the command ran and exited (128+N when killed by signal N)
  75                  the lock was not acquired: held elsewhere after --wait, or no
                      quorum of nodes reachable
  76                  the lock was lost while the command ran; it was terminated
  126, 127            the command could not be executed / was not found
  2                   usage error
Whenever redlock itself decides the status, it says why on stderr.`,

  inspect: `Usage: redlock inspect [options] NAME...
       redlock inspect [options] --permits K NAME
       redlock inspect [options] --rw NAME

Shows, for each resource NAME and each node, whether the key is held, the first
characters of its value (the lock id) and its remaining time to live, then whether a
quorum holds one lock. Reads the keys (redlock.inspect()); takes no lock.

Options:
${SERVERS_HELP}
  --permits K           NAME is a semaphore of K permits: per node, which permit holds
                        which value and its TTL; then how many permits a quorum holds
  --rw                  NAME is a read-write lock: per node the writer (value, TTL), the
                        readers (value, time left by that server's clock; read with
                        ZRANGE and TIME) and a waiting writer's intent; then who holds
                        it on a quorum
  --timeout DURATION    how long to wait for each node (default 1s)
  --restart-window DURATION
                        the restart guard's window: a server up for less is shown as
                        young (default 60s, the guard's default)
  --json                print one JSON object instead of a table
  --watch               read again every --interval until Ctrl-C: on a terminal the
                        table is redrawn in place, otherwise each reading follows a
                        line with its time (with --json, one JSON line per reading)
  --interval DURATION   how often --watch reads (default 1s, at least 100ms)

It then lists each plain server's uptime, marking as young one up for less than the
window: it may have forgotten locks it granted, and while young servers are a minority,
their votes for an acquisition do not count.

Exit status: 0; 75 when fewer than a quorum of nodes answered (not with --watch);
2 usage error.`,

  release: `Usage: redlock release [options] --resource NAME --id ID

Releases the lock whose id is ID (REDLOCK_LOCK_ID in a command run by 'redlock exec') on
every node that still holds it. A lock that already expired or was released is left as is.

Options:
${SERVERS_HELP}
  --resource NAME       the locked resource; repeat it for a multi-resource lock
  --id ID               the lock's id

Exit status: 0 released, or nothing held with that id; 75 when fewer than a quorum
of nodes answered; 2 usage error.`,
}

/** A mistake in the command line: exit 2, naming the argument. */
class UsageError extends Error {}

/** Each command's options, for node:util parseArgs; --help (-h) is every command's. */
const COMMON = {
  servers: { type: 'string' },
  cluster: { type: 'string', multiple: true },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
}
const OPTIONS = {
  exec: {
    ...COMMON,
    resource: { type: 'string', multiple: true },
    permits: { type: 'string' },
    read: { type: 'boolean' },
    write: { type: 'boolean' },
    ttl: { type: 'string' },
    wait: { type: 'string' },
    grace: { type: 'string' },
  },
  inspect: {
    ...COMMON,
    timeout: { type: 'string' },
    json: { type: 'boolean' },
    'restart-window': { type: 'string' },
    permits: { type: 'string' },
    rw: { type: 'boolean' },
    watch: { type: 'boolean' },
    interval: { type: 'string' },
  },
  release: { ...COMMON, resource: { type: 'string', multiple: true }, id: { type: 'string' } },
}

/**
 * Reads `args` by `options` with node:util parseArgs (strict): { values, positionals, command },
 * or { help: true } when --help or -h is among the options. With `commandFollows`, the first
 * positional or `--` ends the options, and `command` is the rest, untouched, so that the command
 * keeps its own options (`redlock exec --resource r ls -l`). A mistake is a UsageError naming it.
 */
function readArgs(args, options, { commandFollows = false } = {}) {
  // A lenient pass first: its tokens say where the options end and which one is wrong.
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true })
  const stop = commandFollows ? tokens.find((t) => t.kind !== 'option') : undefined
  const own = stop ? tokens.slice(0, tokens.indexOf(stop)) : tokens
  if (own.some((t) => t.kind === 'option' && t.name === 'help')) return { help: true }
  // The argument after an option that takes a value is its value unless it begins with "--"
  // (`--grace -1s` is then refused as not a duration); parseArgs wants such a value after "=".
  const ownArgs = args.slice(0, stop ? stop.index : args.length)
  const dashed = own.filter(
    (t) => t.kind === 'option' && t.value !== undefined && !t.inlineValue && /^-[^-]/.test(t.value),
  )
  for (const t of dashed.reverse()) ownArgs.splice(t.index, 2, `${t.rawName}=${t.value}`)
  const command = stop ? args.slice(stop.kind === 'option-terminator' ? stop.index + 1 : stop.index) : []
  try {
    const { values, positionals } = parseArgs({ args: ownArgs, options, strict: true, allowPositionals: true })
    return { values, positionals, command }
  } catch (error) {
    if (!/^ERR_PARSE_ARGS_/.test(error.code)) throw error
    throw new UsageError(mistake(own, args, options) ?? error.message)
  }
}

/** The first wrong option among `tokens` (parsed leniently from `args`), in a sentence. */
function mistake(tokens, args, options) {
  for (const token of tokens) {
    if (token.kind !== 'option') continue
    const { rawName: name, value } = token
    const type = Object.hasOwn(options, token.name) ? options[token.name].type : undefined
    // A group of short options (-abc) is named as it was written.
    if (!type) return `unknown option ${name.startsWith('--') ? name : args[token.index]}`
    if (type === 'boolean' && token.inlineValue) return `${name} takes no value`
    // Nothing after it, or another option (parseArgs took that for the value).
    if (type === 'string' && (value === undefined || (!token.inlineValue && value.startsWith('--')))) {
      return `${name} needs a value`
    }
  }
  return undefined
}

/** Milliseconds in `text` (`500ms`, `30s`, `1.5m`, `2h`; `0` where `zero` is allowed). */
function parseDuration(text, name, { zero = false, min = 1 } = {}) {
  if (zero && /^0+(\.0+)?(ms|s|m|h)?$/.test(text)) return 0
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text)
  if (!match) {
    throw new UsageError(`${name}: "${text}" is not a duration; use a number and a unit: 500ms, 30s, 2m, 1h`)
  }
  const ms = Math.round(Number(match[1]) * UNITS[match[2]])
  if (ms < min || ms > MAX_MS) {
    throw new UsageError(`${name}: ${text} is out of range; it must be from ${formatMs(min)} to ${formatMs(MAX_MS)}`)
  }
  return ms
}

function formatMs(ms) {
  if (ms < 1000) return `${ms}ms`
  if (ms < 60000) return `${+(ms / 1000).toFixed(1)}s`
  if (ms < 3600000) return `${+(ms / 60000).toFixed(1)}m`
  return `${+(ms / 3600000).toFixed(1)}h`
}

/**
 * The members of the quorum: the servers from --servers or REDLOCK_SERVERS, as redis:// URLs,
 * then each cluster from --cluster or REDLOCK_CLUSTERS, as a list of URLs.
 */
function members(options) {
  const clusterFrom = options.cluster !== undefined ? '--cluster' : 'REDLOCK_CLUSTERS'
  const clusterLists = options.cluster ?? (process.env.REDLOCK_CLUSTERS ?? '').split(';').filter((l) => l.trim())
  const clusters = clusterLists.map((list) => urlList(list, clusterFrom))
  // An empty REDLOCK_SERVERS beside clusters counts as none; an empty --servers is a mistake.
  const serversGiven = options.servers !== undefined || Boolean(process.env.REDLOCK_SERVERS)
  return [...(serversGiven || clusters.length === 0 ? serverUrls(options) : []), ...clusters]
}

/** The TLS files from --tls-ca, --tls-cert, --tls-key (or REDLOCK_TLS_*), read; {} if none. */
function tlsFiles(options) {
  const tls = {}
  for (const [field, flag, variable] of [
    ['ca', '--tls-ca', 'REDLOCK_TLS_CA'],
    ['cert', '--tls-cert', 'REDLOCK_TLS_CERT'],
    ['key', '--tls-key', 'REDLOCK_TLS_KEY'],
  ]) {
    const file = options[flag.slice(2)] ?? process.env[variable]
    if (!file) continue
    try {
      tls[field] = fs.readFileSync(file)
    } catch (error) {
      throw new UsageError(`${options[flag.slice(2)] !== undefined ? flag : variable}: cannot read ${file}: ${error.code || error.message}`)
    }
  }
  return tls
}

/** The client entries for the engine: TLS members get the TLS files as options. */
function clientEntries(list, tls) {
  if (Object.keys(tls).length === 0) return list
  const secure = (url) => url.startsWith('rediss://')
  return list.map((member) => {
    if (Array.isArray(member)) return member.some(secure) ? { cluster: true, nodes: member, tls } : member
    return secure(member) ? { url: member, tls } : member
  })
}

/** The servers from --servers or REDLOCK_SERVERS, as redis:// URLs. */
function serverUrls(options) {
  const from = options.servers !== undefined ? '--servers' : 'REDLOCK_SERVERS'
  const list = options.servers ?? process.env.REDLOCK_SERVERS
  if (list === undefined) {
    throw new UsageError(
      '--servers: no servers given; pass --servers redis://host:port,... (or --cluster) or set REDLOCK_SERVERS',
    )
  }
  return urlList(list, from)
}

/** A comma-separated list of servers as redis:// URLs; `from` names where it came from. */
function urlList(list, from) {
  const urls = list
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) ? s : `redis://${s}`))
  if (urls.length === 0) throw new UsageError(`${from}: the list of servers is empty`)
  urls.forEach((url, index) => {
    try {
      parseRedisUrl(url)
    } catch (error) {
      // The entry itself is not repeated: it may hold a password.
      throw new UsageError(`${from}: entry ${index + 1} is not a usable redis:// URL: ${error.message}`)
    }
  })
  return urls
}

function requireResources(options) {
  const resources = options.resource || []
  if (resources.length === 0) throw new UsageError('--resource: missing; name the resource to lock')
  if (resources.some((r) => r === '')) throw new UsageError('--resource: a resource name cannot be empty')
  return resources
}

/** The most permits a semaphore has (the library's limit, as redlock.semaphore() checks it). */
const MAX_PERMITS = 1024

/** The number of permits of --permits: a whole number from 1 to MAX_PERMITS. */
function parsePermits(text) {
  if (!/^\d+$/.test(text) || Number(text) < 1 || Number(text) > MAX_PERMITS) {
    throw new UsageError(`--permits: "${text}" is not a number of permits; use a whole number from 1 to ${MAX_PERMITS}`)
  }
  return Number(text)
}

/**
 * How exec holds its resources, the one place that picks it: `holder(redlock)` has the
 * library's `using(duration, settings, routine)` for a plain lock on every --resource, one
 * permit of the --permits semaphore, or the --read or --write side of the read-write lock;
 * `what` names it in messages ("could not lock WHAT", "lost the lock on WHAT").
 */
function holding(options, resources) {
  if (options.read && options.write) {
    throw new UsageError('--read and --write exclude each other; a command holds one side of the read-write lock')
  }
  const side = options.read ? 'read' : options.write ? 'write' : undefined
  const permits = options.permits === undefined ? undefined : parsePermits(options.permits)
  if (permits !== undefined && side) {
    throw new UsageError(`--permits and --${side} exclude each other: a semaphore, or a side of a read-write lock`)
  }
  const flag = permits !== undefined ? '--permits' : side && `--${side}`
  if (flag && resources.length !== 1) {
    throw new UsageError(`${flag} takes exactly one --resource, not ${resources.length}`)
  }
  const [name] = resources
  if (permits !== undefined) return { what: `${name} (one of ${permits} permits)`, holder: (redlock) => redlock.semaphore(name, permits) }
  if (side) return { what: `${name} for ${side === 'read' ? 'reading' : 'writing'}`, holder: (redlock) => redlock.readWriteLock(name)[side] }
  const holder = (redlock) => ({ using: (duration, settings, routine) => redlock.using(resources, duration, settings, routine) })
  return { what: resources.join(', '), holder }
}

/** A Redlock over `clients`; a refused list (duplicates, ...) is a usage error. */
function connect(clients) {
  let redlock
  try {
    redlock = new Redlock(clients)
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) {
      throw new UsageError(`--servers: ${error.message}`)
    }
    throw error
  }
  // Node failures are expected while some nodes are down; the outcome says what matters.
  redlock.on('error', () => {})
  return redlock
}

const say = (line) => process.stderr.write(`redlock: ${line}\n`)

async function exec({ values: options, command }) {
  const resources = requireResources(options)
  const { what: names, holder } = holding(options, resources)
  const ttl = parseDuration(options.ttl ?? '30s', '--ttl', { min: 200 })
  const wait = options.wait === undefined ? Infinity : parseDuration(options.wait, '--wait', { zero: true })
  const grace = parseDuration(options.grace ?? '5s', '--grace', { zero: true })
  if (command.length === 0) {
    throw new UsageError('no command given; put it after the options, e.g. redlock exec --resource nightly -- ./job.sh')
  }
  const [file, ...fileArgs] = command
  const redlock = connect(clientEntries(members(options), tlsFiles(options)))

  const settings = {
    retryCount: wait === Infinity ? -1 : Math.floor(wait / RETRY_DELAY),
    retryDelay: RETRY_DELAY,
    retryJitter: RETRY_JITTER,
    automaticExtensionThreshold: Math.floor(ttl / 2),
  }
  // --wait bounds the acquisition exactly (--wait 0 is the one attempt of retryCount 0: a
  // timeout of 0 would end it before any node answered); the command's environment gets a
  // fencing token.
  if (wait !== Infinity && wait > 0) settings.acquireTimeout = wait
  settings.fencing = true
  // A signal while waiting for the lock stops the acquisition, which leaves no key behind.
  const waiting = new AbortController()
  settings.signal = waiting.signal

  let child
  let interrupted
  const onSignal = (signal) => {
    if (child) {
      child.kill(signal)
    } else if (!interrupted) {
      // Still waiting for the lock: give up; the acquisition undoes what it set.
      interrupted = signal
      waiting.abort()
    }
  }
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP']
  for (const s of signals) process.on(s, onSignal)

  const run = (signal, { lock }) =>
    new Promise((resolve) => {
      if (interrupted) return resolve(128 + os.constants.signals[interrupted])
      const env = { ...process.env }
      delete env.REDLOCK_FENCING_TOKEN
      if (lock) {
        env.REDLOCK_LOCK_ID = lock.id
        if (lock.fencingToken !== undefined) env.REDLOCK_FENCING_TOKEN = String(lock.fencingToken)
      }
      let lost = false
      let killer
      const onLost = () => {
        lost = true
        const reason = signal.error ? `${signal.error.message} (${signal.error.code})` : 'the extension failed'
        say(`lost the lock on ${names}: ${reason}; sending SIGTERM to ${file}` + (grace ? `, SIGKILL in ${formatMs(grace)}` : ''))
        child.kill(grace ? 'SIGTERM' : 'SIGKILL')
        if (grace) killer = setTimeout(() => child.kill('SIGKILL'), grace)
      }
      child = spawn(file, fileArgs, { stdio: 'inherit', env })
      child.on('error', (error) => {
        if (child.pid !== undefined) return // a failed kill(); 'exit' still follows
        signal.removeEventListener('abort', onLost)
        const notFound = error.code === 'ENOENT'
        say(`cannot run ${file}: ${notFound ? 'command not found' : error.message}`)
        resolve(notFound ? EXIT.NOT_FOUND : EXIT.CANNOT_EXECUTE)
      })
      child.on('exit', (code, killedBy) => {
        clearTimeout(killer)
        signal.removeEventListener('abort', onLost)
        if (lost) resolve(EXIT.LOST)
        else resolve(killedBy ? 128 + os.constants.signals[killedBy] : code)
      })
      if (signal.aborted) onLost()
      else signal.addEventListener('abort', onLost, { once: true })
    })

  try {
    return await holder(redlock).using(ttl, settings, run)
  } catch (error) {
    // Interrupted while waiting: whatever the unfinished acquisition reports, the status is the
    // signal's.
    if (interrupted) return 128 + os.constants.signals[interrupted]
    if (error instanceof TypeError || error instanceof RangeError) throw new UsageError(error.message)
    if (!(error instanceof ExecutionError)) throw error
    const within = wait === Infinity ? '' : wait === 0 ? ' (one attempt)' : ` within ${formatMs(wait)}`
    say(`could not lock ${names}${within}: ${error.message} (${error.code})`)
    return EXIT.NOT_ACQUIRED
  } finally {
    for (const s of signals) process.off(s, onSignal)
    await redlock.quit()
  }
}

/**
 * How long a plain server has been up, and whether it persists every write, as the restart
 * guard reads them (INFO, CONFIG GET); null when it will not say.
 */
async function readHealth(conn) {
  const [server, persistence, fsync] = await Promise.all([
    conn.send('INFO', 'server'),
    conn.send('INFO', 'persistence').catch(() => ''),
    conn.send('CONFIG', 'GET', 'appendfsync').catch(() => []),
  ])
  const field = (text, name) => new RegExp(`^${name}:(.*)$`, 'm').exec(String(text))?.[1]?.trim()
  const uptime = Number(field(server, 'uptime_in_seconds'))
  if (!Number.isFinite(uptime)) return null
  const durable = field(persistence, 'aof_enabled') === '1' && Array.isArray(fsync) && fsync[1] === 'always'
  return { uptimeS: uptime, durable }
}

const prefix = (value) => (value === null ? '(not a string)' : value.length > 8 ? `${value.slice(0, 8)}…` : value)

/** The command's words for the verdicts of `redlock.inspect()`. */
const STATUS = { held: 'locked', free: 'free', split: 'partly held', unknown: 'unknown' }

/** One node's entry of a resource, as `--json` prints it and the table shows it. */
function nodeEntry(n) {
  if (!n.reachable) return { node: n.node, state: 'down', error: n.code, message: n.message }
  if (n.otherType) return { node: n.node, state: 'held', value: null, ttlMs: n.ttlMs ?? -1 }
  if (n.value === null) return { node: n.node, state: 'free' }
  return { node: n.node, state: 'held', value: n.value, ttlMs: n.ttlMs ?? -1, fencingCounter: n.fencingCounter?.toString() }
}

/** Each member's health for the servers list: { uptimeS, young } of a plain server, else {}. */
function readHealths(urls, timeout, tls, window) {
  return Promise.all(
    urls.map(async (member) => {
      if (Array.isArray(member)) return {}
      const conn = new Conn(member, { timeout, tls })
      try {
        const h = await readHealth(conn)
        return h ? { uptimeS: h.uptimeS, young: !h.durable && h.uptimeS * 1000 < window } : {}
      } catch {
        return {}
      } finally {
        conn.close()
      }
    }),
  )
}

/** One reading: `redlock.inspect()` of every resource, and each plain server's health. */
async function readInspection(redlock, urls, resources, timeout, tls, window) {
  const [reports, healths] = await Promise.all([
    redlock.inspect(resources, { requestTimeout: timeout }),
    readHealths(urls, timeout, tls, window),
  ])
  return reports.map((r) => {
    const perNode = r.nodes.map((n, i) => ({ ...nodeEntry(n), ...healths[i] }))
    const holding = perNode.filter((e) => e.state === 'held')
    const nodes =
      r.verdict === 'held' ? holding.filter((e) => e.value === r.value).length : r.verdict === 'free' ? 0 : holding.length
    return { resource: r.resource, quorum: r.quorum, status: STATUS[r.verdict], ...(r.value !== null && { value: r.value }), nodes, perNode }
  })
}

/**
 * A key of a semaphore or read-write lock on `resource`, as the library names it: under the
 * resource's own Redis Cluster hash tag when it has a non-empty one, else the resource in braces.
 */
function partKey(resource, part) {
  const open = resource.indexOf('{')
  const close = open === -1 ? -1 : resource.indexOf('}', open + 1)
  return `${close > open + 1 ? resource : `{${resource}}`}:${part}`
}

/**
 * One reading of semaphore `name` with `permits` permits: per slot (`name`'s `permit:i` key)
 * whether a quorum holds it, and per node the slots it holds, with value and TTL.
 */
async function readPermits(redlock, urls, name, permits, timeout, tls, window) {
  const keys = Array.from({ length: permits }, (_, i) => partKey(name, `permit:${i + 1}`))
  const reports = await readInspection(redlock, urls, keys, timeout, tls, window)
  const slots = reports.map((r, i) => ({ slot: i + 1, key: r.resource, status: r.status, ...(r.value && { value: r.value }), nodes: r.nodes }))
  const perNode = reports[0].perNode.map((first, i) => {
    const down = reports.map((r) => r.perNode[i]).find((e) => e.state === 'down')
    if (down) return down
    const held = reports.flatMap((r, slot) => {
      const e = r.perNode[i]
      return e.state === 'held' ? [{ slot: slot + 1, value: e.value, ttlMs: e.ttlMs }] : []
    })
    const { value, ttlMs, fencingCounter, ...node } = first
    return { ...node, state: held.length ? 'held' : 'free', permits: held }
  })
  const held = slots.filter((s) => s.status === 'locked').length
  const status = reports[0].status === 'unknown' ? 'unknown' : held === 0 ? 'free' : held === permits ? 'full' : 'in use'
  return { resource: name, permits, quorum: reports[0].quorum, status, held, slots, perNode }
}

/**
 * The readers of a read-write lock on one member: [{ value, remainingMs }], the remaining
 * time by that server's clock (ZRANGE … WITHSCORES and TIME on one connection). A cluster is
 * read on a startup node that answers, following its MOVED to the key's master.
 */
async function readReaders(member, key, timeout, tls) {
  const seeds = Array.isArray(member) ? member : [member]
  let failure
  for (let url of seeds) {
    for (let hops = 0; hops < 3; hops++) {
      const conn = new Conn(url, { timeout, tls })
      try {
        const [entries, time] = await Promise.all([conn.send('ZRANGE', key, 0, -1, 'WITHSCORES'), conn.send('TIME')])
        const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000)
        const readers = []
        for (let j = 0; j < entries.length; j += 2) readers.push({ value: entries[j], remainingMs: Number(entries[j + 1]) - now })
        return readers
      } catch (error) {
        failure = error
        const moved = /^MOVED \d+ (.+):(\d+)$/.exec(error.message)
        if (!moved) break
        const next = new URL(url)
        next.hostname = moved[1].includes(':') ? `[${moved[1]}]` : moved[1]
        next.port = moved[2]
        url = next.toString()
      } finally {
        conn.close()
      }
    }
  }
  throw failure
}

/**
 * One reading of the read-write lock on `name`: per node the writer (value, TTL), the readers
 * (value, remaining ms by the node's clock) and a waiting writer's intent; then who holds it
 * on a quorum.
 */
async function readReadWrite(redlock, urls, name, timeout, tls, window) {
  const keys = { write: partKey(name, 'write'), readers: partKey(name, 'readers'), intent: partKey(name, 'intent') }
  const [[write, intent], readers] = await Promise.all([
    readInspection(redlock, urls, [keys.write, keys.intent], timeout, tls, window),
    Promise.all(urls.map((member) => readReaders(member, keys.readers, timeout, tls).catch((error) => error))),
  ])
  const holder = (e) => (e.state === 'held' ? { value: e.value, ttlMs: e.ttlMs } : null)
  const perNode = write.perNode.map((w, i) => {
    const { value, ttlMs, fencingCounter, ...node } = w
    if (w.state === 'down') return w
    const read = readers[i] instanceof Error ? null : readers[i]
    const entry = { ...node, writer: holder(w), readers: read, intent: holder(intent.perNode[i]) }
    if (!read) entry.readersError = readers[i].message
    entry.state = entry.writer || (read && read.some((r) => r.remainingMs > 0)) ? 'held' : 'free'
    return entry
  })
  // The readers that a quorum of nodes hold, unexpired.
  const counts = new Map()
  for (const e of perNode) {
    for (const r of e.readers || []) if (r.remainingMs > 0) counts.set(r.value, (counts.get(r.value) || 0) + 1)
  }
  const quorumReaders = [...counts].filter(([, n]) => n >= write.quorum).map(([value]) => value)
  const status =
    write.status === 'unknown'
      ? 'unknown'
      : write.status === 'locked'
        ? 'write-locked'
        : quorumReaders.length
          ? 'read-locked'
          : perNode.some((e) => e.state === 'held')
            ? 'partly held'
            : 'free'
  return {
    resource: name,
    quorum: write.quorum,
    status,
    writer: write.status === 'locked' ? write.value : null,
    ...(write.status === 'locked' && { nodes: write.nodes }),
    readers: quorumReaders,
    writerWaiting: perNode.some((e) => e.intent),
    keys,
    perNode,
  }
}

/** One table row: the node, what it holds (or free, down), the value's prefix and its TTL. */
function row(node, width, label, value, ttlMs) {
  const ttl = ttlMs === undefined ? '' : ttlMs > 0 ? `ttl ${formatMs(ttlMs)}` : ttlMs < 0 ? 'ttl none' : 'expired'
  return `  ${node.padEnd(width)}  ${label.padEnd(8)}  ${value === undefined ? '' : `${prefix(value).padEnd(10)} ${ttl}`}`.trimEnd()
}

/** The rows of a node that did not answer. */
const downRow = (e, width) => `  ${e.node.padEnd(width)}  ${'down'.padEnd(8)}  ${e.error}: ${e.message}`

/** The servers list under a table: each plain server's uptime, the young ones marked. */
function formatServers(perNode, width, window) {
  const servers = perNode.filter((e) => e.uptimeS !== undefined)
  if (!servers.length) return []
  const lines = ['servers:']
  for (const e of servers) {
    const young = e.young
      ? `  young: up less than ${formatMs(window)}, its votes for an acquisition do not count while a minority is young (restart guard)`
      : ''
    lines.push(`  ${e.node.padEnd(width)}  up ${formatMs(e.uptimeS * 1000)}${young}`)
  }
  return lines
}

/** The table of one reading. */
function formatInspection(report, memberCount, window) {
  const lines = []
  const width = Math.max(...report[0].perNode.map((e) => e.node.length))
  for (const r of report) {
    const who = r.status === 'locked' ? ` by ${prefix(r.value)}` : ''
    lines.push(`${r.resource}: ${r.status}${who} (${r.nodes} of ${memberCount} nodes hold it, quorum ${r.quorum})`)
    for (const e of r.perNode) {
      const detail =
        e.state === 'held'
          ? `${prefix(e.value).padEnd(10)} ttl ${e.ttlMs >= 0 ? formatMs(e.ttlMs) : 'none'}`
          : e.state === 'down'
            ? `${e.error}: ${e.message}`
            : ''
      lines.push(`  ${e.node.padEnd(width)}  ${e.state.padEnd(4)}  ${detail}`.trimEnd())
    }
  }
  lines.push(...formatServers(report[0].perNode, width, window))
  return lines.join('\n') + '\n'
}

/** The table of one reading of a semaphore: per node, each permit slot it holds. */
function formatPermits(report, window) {
  const width = Math.max(...report.perNode.map((e) => e.node.length))
  const summary =
    report.status === 'unknown'
      ? 'unknown: fewer than a quorum of nodes answered'
      : `${report.held} of ${report.permits} permits held`
  const lines = [`${report.resource}: ${summary} (quorum ${report.quorum})`]
  for (const e of report.perNode) {
    if (e.state === 'down') lines.push(downRow(e, width))
    else if (e.state === 'free') lines.push(row(e.node, width, 'free'))
    else for (const p of e.permits) lines.push(row(e.node, width, `permit ${p.slot}`, p.value, p.ttlMs))
  }
  lines.push(...formatServers(report.perNode, width, window))
  return lines.join('\n') + '\n'
}

/** The table of one reading of a read-write lock: per node the writer, the readers, the intent. */
function formatReadWrite(report, memberCount, window) {
  const width = Math.max(...report.perNode.map((e) => e.node.length))
  const who =
    report.status === 'write-locked'
      ? ` by ${prefix(report.writer)} (${report.nodes} of ${memberCount} nodes hold it, quorum ${report.quorum})`
      : report.status === 'read-locked'
        ? ` by ${report.readers.length} reader${report.readers.length === 1 ? '' : 's'}: ${report.readers.map(prefix).join(', ')} (quorum ${report.quorum})`
        : ` (quorum ${report.quorum})`
  const lines = [`${report.resource}: ${report.status}${who}${report.writerWaiting ? "; a writer's intent keeps new readers out" : ''}`]
  for (const e of report.perNode) {
    if (e.state === 'down') {
      lines.push(downRow(e, width))
      continue
    }
    const rows = []
    if (e.writer) rows.push(row(e.node, width, 'writer', e.writer.value, e.writer.ttlMs))
    if (e.readers) for (const r of e.readers) rows.push(row(e.node, width, 'reader', r.value, Math.max(0, r.remainingMs)))
    else rows.push(`  ${e.node.padEnd(width)}  ${'readers'.padEnd(8)}  unreadable: ${e.readersError}`)
    if (e.intent) rows.push(row(e.node, width, 'intent', e.intent.value, e.intent.ttlMs))
    lines.push(...(rows.length ? rows : [row(e.node, width, 'free')]))
  }
  lines.push(...formatServers(report.perNode, width, window))
  return lines.join('\n') + '\n'
}

async function inspect({ values: options, positionals }) {
  const urls = members(options)
  const tls = tlsFiles(options)
  const timeout = parseDuration(options.timeout ?? '1s', '--timeout')
  if (positionals.length === 0) throw new UsageError('no resource named; e.g. redlock inspect nightly-report')
  if (positionals.some((r) => r === '')) throw new UsageError('a resource name cannot be empty')
  const window = parseDuration(options['restart-window'] ?? '60s', '--restart-window', { zero: true })
  const interval = parseDuration(options.interval ?? '1s', '--interval', { min: 100 })
  if (options.interval !== undefined && !options.watch) throw new UsageError('--interval goes with --watch')
  const permits = options.permits === undefined ? undefined : parsePermits(options.permits)
  if (permits !== undefined && options.rw) throw new UsageError('--permits and --rw exclude each other: a semaphore, or a read-write lock')
  const flag = permits !== undefined ? '--permits' : options.rw && '--rw'
  if (flag && positionals.length !== 1) throw new UsageError(`${flag} takes exactly one NAME, not ${positionals.length}`)
  const [name] = positionals
  // What to read and how to show it: plain keys (a list of reports), a semaphore or a
  // read-write lock (one report each).
  const view =
    permits !== undefined
      ? {
          read: () => readPermits(redlock, urls, name, permits, timeout, tls, window),
          table: (report) => formatPermits(report, window),
          unknown: (report) => report.status === 'unknown',
        }
      : options.rw
        ? {
            read: () => readReadWrite(redlock, urls, name, timeout, tls, window),
            table: (report) => formatReadWrite(report, urls.length, window),
            unknown: (report) => report.status === 'unknown',
          }
        : {
            read: () => readInspection(redlock, urls, positionals, timeout, tls, window),
            table: (report) => formatInspection(report, urls.length, window),
            // Every resource was read of the same nodes.
            unknown: (report) => report[0].status === 'unknown',
          }
  const redlock = connect(clientEntries(urls, tls))
  const print = (report) => (options.json ? `${JSON.stringify(report)}\n` : view.table(report))
  try {
    if (!options.watch) {
      const report = await view.read()
      process.stdout.write(print(report))
      // Fewer than a quorum answered.
      return view.unknown(report) ? EXIT.NOT_ACQUIRED : 0
    }
    return await watch(view.read, print, interval)
  } finally {
    await redlock.quit()
  }
}

/**
 * Reads again every `interval` until SIGINT or SIGTERM. On a terminal the table is redrawn
 * in place; otherwise each reading is printed after a line with its time.
 */
async function watch(read, print, interval) {
  const tty = process.stdout.isTTY
  let stop
  const stopped = new Promise((resolve) => (stop = resolve))
  const signals = ['SIGINT', 'SIGTERM']
  for (const s of signals) process.once(s, stop)
  // A reader that went away (`| head`) ends the watch too.
  const gone = (error) => (error.code === 'EPIPE' ? stop() : undefined)
  process.stdout.on('error', gone)
  try {
    for (;;) {
      const report = await read()
      const text = print(report)
      process.stdout.write(tty ? `\x1b[H\x1b[2J${new Date().toISOString()}\n${text}` : `--- ${new Date().toISOString()}\n${text}`)
      let timer
      const next = new Promise((resolve) => (timer = setTimeout(resolve, interval)))
      const done = await Promise.race([next.then(() => false), stopped.then(() => true)])
      clearTimeout(timer)
      if (done) return 0
    }
  } finally {
    for (const s of signals) process.off(s, stop)
    process.stdout.off('error', gone)
  }
}

async function release({ values: options, positionals }) {
  if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`)
  const resources = requireResources(options)
  if (!options.id) throw new UsageError('--id: missing; give the lock id (REDLOCK_LOCK_ID of the command that held it)')
  const redlock = connect(clientEntries(members(options), tlsFiles(options)))
  const names = resources.join(', ')
  try {
    const released = await redlock.releaseLock(resources.length === 1 ? resources[0] : resources, options.id)
    const last = released.attempts[released.attempts.length - 1]
    const answered = last ? last.votesFor.size : redlock.nodes.length
    if (released.nodesHeld > 0) {
      process.stdout.write(`released ${names} (it was held on ${released.nodesHeld} of the ${answered} nodes that answered)\n`)
    } else {
      process.stdout.write(`nothing to release: no node holds ${names} with that id (expired, released or taken over)\n`)
    }
    return 0
  } catch (error) {
    if (error instanceof TypeError || error instanceof RangeError) throw new UsageError(error.message)
    if (!(error instanceof ExecutionError)) throw error
    say(`could not release ${names}: ${error.message} (${error.code})`)
    return EXIT.NOT_ACQUIRED
  } finally {
    await redlock.quit()
  }
}

const COMMANDS = { exec, inspect, release }

/** Runs the command line `argv` (without node and the script); resolves the exit status. */
async function main(argv) {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' && Object.hasOwn(COMMANDS, rest[0]) ? rest[0] : 'redlock'
    if (command === undefined) {
      process.stderr.write(`${HELP.redlock}\n`)
      return EXIT.USAGE
    }
    process.stdout.write(`${HELP[topic]}\n`)
    return 0
  }
  if (command === '--version') {
    process.stdout.write(`${require(path.join(__dirname, '..', 'package.json')).version}\n`)
    return 0
  }
  const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined
  if (!run) {
    say(`unknown command "${command}"; the commands are exec, inspect and release (see redlock --help)`)
    return EXIT.USAGE
  }
  try {
    const parsed = readArgs(rest, OPTIONS[command], { commandFollows: command === 'exec' })
    if (parsed.help) {
      process.stdout.write(`${HELP[command]}\n`)
      return 0
    }
    return await run(parsed)
  } catch (error) {
    if (!(error instanceof UsageError)) throw error
    say(`${command}: ${error.message}\nTry 'redlock ${command} --help'.`)
    return EXIT.USAGE
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (status) => {
      process.exitCode = status
    },
    (error) => {
      say(`internal error: ${(error && error.stack) || error}`)
      process.exitCode = EXIT.INTERNAL
    },
  )
}

module.exports = { main, parseDuration, EXIT }
