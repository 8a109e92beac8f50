'use strict'

// The `redlock` command (bin/redlock.js) end to end, in child processes against the shared
// servers: exec's exit codes and environment, waiting for and losing a lock, exec on a
// semaphore's permit and on a read-write lock's sides, inspect's report (of plain locks,
// semaphores and read-write locks), release by id, and usage errors that name the bad argument.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const Redlock = require('..')
const { parseDuration } = require('../bin/redlock.js')
const { command, freePort, until, valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey, runNode, sleep } = require('./support/shared')

const BIN = path.resolve(__dirname, '..', 'bin', 'redlock.js')
const RESP = path.resolve(__dirname, '..', 'lib', 'resp.js')
const urls = sharedUrls()

/**
 * Runs `redlock ...args` with REDLOCK_SERVERS set to the shared servers. Resolves
 * { code, signal, stdout, stderr, ms }; `onSpawn(child, output)` sees the child and its
 * output so far as it runs.
 */
function redlock(args, { env = {}, onSpawn, timeout = 20000 } = {}) {
  return runNode([BIN, ...args], { env: { REDLOCK_SERVERS: urls.join(','), ...env }, onSpawn, timeout })
}

/** `node -e code` as the command for exec. */
const nodeCommand = (code) => ['--', process.execPath, '-e', code]

/**
 * A command for exec that appends { name, what: 'start' | 'end', at } lines to the file `log`,
 * `ms` apart; before the `ms`, it waits for the file `go` when one is named, and until `meet`
 * starts are in the log when that is given (each at most 15 s, then exit 3).
 */
const recorder = (log, name, { ms = 0, go, meet = 0 } = {}) =>
  nodeCommand(`
    const fs = require('node:fs')
    const note = (what) => fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify({ name: ${JSON.stringify(name)}, what, at: Date.now() }) + '\\n')
    note('start')
    console.log('started token=' + (process.env.REDLOCK_FENCING_TOKEN ?? 'none'))
    const go = ${JSON.stringify(go ?? null)}
    const starts = () => fs.readFileSync(${JSON.stringify(log)}, 'utf8').split('"start"').length - 1
    const until = Date.now() + 15000
    const wait = () => {
      if ((go && !fs.existsSync(go)) || starts() < ${meet}) {
        if (Date.now() > until) process.exit(3)
        return setTimeout(wait, 20)
      }
      setTimeout(() => note('end'), ${ms})
    }
    wait()
  `)

/** The lines a `recorder` wrote to `log`. */
const readLog = (log) =>
  fs.readFileSync(log, 'utf8').split('\n').filter(Boolean).map((line) => JSON.parse(line))

/** The most `recorder` commands of `events` that ran at once (an end at the same ms as a start counts first). */
function mostAtOnce(events) {
  const sorted = [...events].sort((a, b) => a.at - b.at || (a.what === 'end' ? -1 : 1))
  let running = 0
  let most = 0
  for (const e of sorted) {
    running += e.what === 'start' ? 1 : -1
    most = Math.max(most, running)
  }
  return most
}

describe('redlock exec', () => {
  let client
  beforeAll(() => {
    client = new Redlock(urls, { retryCount: 0 })
  })
  afterAll(() => client.quit())

  test('runs the command holding the lock, gives it REDLOCK_LOCK_ID, and releases the lock afterwards', async () => {
    const key = uniqueKey('cli-exec')
    const result = await redlock([
      'exec',
      '--resource',
      key,
      ...nodeCommand(`
        const { command } = require(${JSON.stringify(RESP)})
        const urls = process.env.REDLOCK_SERVERS.split(',')
        Promise.all(urls.map((u) => command(u, 'GET', ${JSON.stringify(key)}))).then((values) =>
          console.log(JSON.stringify({ id: process.env.REDLOCK_LOCK_ID, token: process.env.REDLOCK_FENCING_TOKEN ?? null, values })))
      `),
    ])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const seen = JSON.parse(result.stdout)
    expect(seen.id).toMatch(/^[0-9a-f]{32}$/)
    expect(seen.values.filter((v) => v === seen.id).length).toBeGreaterThanOrEqual(3)
    await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => null))
  })

  test("passes the command's exit status through, and 128+N when a signal N killed it", async () => {
    const key = uniqueKey('cli-status')
    const exited = await redlock(['exec', '--resource', key, ...nodeCommand('process.exit(7)')])
    expect(exited.code).toBe(7)
    const killed = await redlock(['exec', '--resource', key, ...nodeCommand("process.kill(process.pid, 'SIGKILL')")])
    expect(killed.code).toBe(128 + 9)
    await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => null))
  })

  test('the command may come without "--", keeping its own options', async () => {
    const key = uniqueKey('cli-no-dashes')
    const result = await redlock(['exec', '--resource', key, 'sh', '-c', 'printf "%s|" "$@"', 'sh', '--ttl', 'x', '--'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('--ttl|x|--|')
  })

  test('everything after "--" reaches the command untouched, options like redlock\'s own included', async () => {
    const key = uniqueKey('cli-passthrough')
    const theirs = ['--resource', 'x', '--help', '-h', '--version', '--ttl=1s', '--frobnicate', '--', '-', '']
    const result = await redlock(['exec', '--resource', key, '--', 'sh', '-c', 'printf "%s|" "$@"', 'sh', ...theirs])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(theirs.map((arg) => `${arg}|`).join(''))
  })

  test('without "--", the options end at the command: a --help or -h after it is the command\'s', async () => {
    const key = uniqueKey('cli-command-help')
    const result = await redlock(['exec', '--resource', key, 'sh', '-c', 'printf "%s|" "$@"', 'sh', '--help', '-h'])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toBe('--help|-h|')
  })

  test('--name=value is --name value; a value that begins with "-" is a value', async () => {
    // A resource whose name begins with "-", given both ways; inspect reads it after "--".
    const key = `-${uniqueKey('cli-inline')}`
    for (const resource of [['--resource', key], [`--resource=${key}`]]) {
      const result = await redlock(['exec', ...resource, '--ttl=5s', '--wait=0', '--', process.execPath, BIN, 'inspect', '--json', '--', key])
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      const [report] = JSON.parse(result.stdout)
      expect(report).toMatchObject({ resource: key, status: 'locked' })
      const held = report.perNode.filter((node) => node.state === 'held')
      expect(held.length).toBeGreaterThanOrEqual(3)
      for (const node of held) expect(node.ttlMs).toBeLessThanOrEqual(5000)
    }
    await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => null))
  })

  test('exits 127 when the command does not exist, and releases the lock', async () => {
    const key = uniqueKey('cli-missing')
    const result = await redlock(['exec', '--resource', key, '--', 'redlock-no-such-command-here'])
    expect(result.code).toBe(127)
    expect(result.stderr).toMatch(/redlock-no-such-command-here: command not found/)
    await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => null))
  })

  test('exits 75 without running the command when the lock stays held elsewhere through --wait', async () => {
    const key = uniqueKey('cli-held')
    const held = await client.acquire([key], 10000)
    try {
      const result = await redlock(['exec', '--resource', key, '--wait', '300ms', ...nodeCommand("console.log('ran')")])
      expect(result.code).toBe(75)
      expect(result.stdout).toBe('')
      expect(result.stderr).toMatch(new RegExp(`could not lock ${key} within 300ms: .*ERR_REDLOCK_(ACQUIRE_TIMEOUT|RESOURCE_LOCKED)`))
      expect(result.ms).toBeLessThan(5000)
      await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => held.value))
    } finally {
      await held.release()
    }
  })

  test('--wait 0 tries once: a free resource is taken, a held one is not', async () => {
    const key = uniqueKey('cli-wait-0')
    const free = await redlock(['exec', '--resource', key, '--wait', '0', '--', process.execPath, '-e', 'console.log("ran")'])
    expect(free.stderr).toBe('')
    expect(free.stdout).toBe('ran\n')
    expect(free.code).toBe(0)
    const held = await client.acquire([key], 10000)
    try {
      const result = await redlock(['exec', '--resource', key, '--wait', '0', '--', 'true'])
      expect(result.code).toBe(75)
      expect(result.stderr).toMatch(/\(one attempt\)/)
      expect(result.stderr).toContain('ERR_REDLOCK_RESOURCE_LOCKED')
    } finally {
      await held.release()
    }
  })

  test('without --wait, waits until the holder releases, then runs the command', async () => {
    const key = uniqueKey('cli-waits')
    const held = await client.acquire([key], 10000)
    setTimeout(() => held.release(), 700)
    const result = await redlock(['exec', '--resource', key, ...nodeCommand("console.log('ran')")])
    expect(result.code).toBe(0)
    expect(result.stdout.trim()).toBe('ran')
    expect(result.ms).toBeGreaterThanOrEqual(600)
  })

  test('locks several resources at once, all or none', async () => {
    const [a, b] = [uniqueKey('cli-multi-a'), uniqueKey('cli-multi-b')]
    const held = await client.acquire([b], 10000)
    try {
      const refused = await redlock(['exec', '--resource', a, '--resource', b, '--wait', '0', '--', 'true'])
      expect(refused.code).toBe(75)
      await expect(valuesOnAll(urls, a)).resolves.toEqual(urls.map(() => null))
    } finally {
      await held.release()
    }
    const both = await redlock([
      'exec', '--resource', a, '--resource', b,
      ...nodeCommand(`
        const { command } = require(${JSON.stringify(RESP)})
        // The lock is granted at quorum: read a node that has both keys (a straggling node
        // may not have them yet).
        const urls = process.env.REDLOCK_SERVERS.split(',')
        Promise.all(urls.map((url) => Promise.all([command(url, 'GET', ${JSON.stringify(a)}), command(url, 'GET', ${JSON.stringify(b)})])))
          .then((all) => console.log(JSON.stringify(all.find(([x, y]) => x && y) || [null, null])))
      `),
    ])
    expect(both.code).toBe(0)
    const [va, vb] = JSON.parse(both.stdout)
    expect(va).toMatch(/^[0-9a-f]{32}$/)
    expect(vb).toBe(va)
  })

  /** Runs `script` under exec with a 1 s TTL, then deletes the lock's keys on a majority. */
  async function loseLockDuring(script, grace) {
    const key = uniqueKey('cli-lost')
    let deletedAt
    const result = await redlock(['exec', '--resource', key, '--ttl', '1s', '--grace', grace, ...nodeCommand(script)], {
      onSpawn: async (child, output) => {
        await until(() => output.stdout.includes('started'), { timeout: 10000 })
        const values = await valuesOnAll(urls, key)
        expect(values.filter((v) => v !== null).length).toBeGreaterThanOrEqual(3)
        await Promise.all(urls.slice(0, 3).map((u) => command(u, 'DEL', key)))
        deletedAt = Date.now()
      },
    })
    return { ...result, sinceDelete: Date.now() - deletedAt }
  }

  test('a lock taken away mid-run: the command gets SIGTERM and redlock exits 76', async () => {
    const result = await loseLockDuring(
      `process.on('SIGTERM', () => { console.log('terminated'); process.exit(0) })
       console.log('started'); setInterval(() => {}, 1000)`,
      '5s',
    )
    expect(result.code).toBe(76)
    expect(result.stdout).toMatch(/started\s+terminated/)
    expect(result.stderr).toMatch(/lost the lock on .*ERR_REDLOCK_LOCK_EXPIRED.*sending SIGTERM/)
    // The 1 s lock is extended every 500 ms: the loss is noticed at the next extension.
    expect(result.sinceDelete).toBeLessThan(3000)
  })

  test('a command that ignores SIGTERM is killed after --grace, and redlock still exits 76', async () => {
    const result = await loseLockDuring(
      `process.on('SIGTERM', () => console.log('ignoring SIGTERM'))
       console.log('started'); setInterval(() => {}, 1000)`,
      '300ms',
    )
    expect(result.code).toBe(76)
    expect(result.stdout).toMatch(/ignoring SIGTERM/)
    expect(result.sinceDelete).toBeLessThan(3500)
  })

  test('SIGTERM to redlock is passed on to the command; the lock is released', async () => {
    const key = uniqueKey('cli-forward')
    const result = await redlock(['exec', '--resource', key, ...nodeCommand("console.log('started'); setInterval(() => {}, 1000)")], {
      onSpawn: async (child, output) => {
        await until(() => output.stdout.includes('started'), { timeout: 10000 })
        child.kill('SIGTERM')
      },
    })
    expect(result.code).toBe(128 + 15)
    await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => null))
  })

  test('SIGINT while waiting for the lock gives up with 130', async () => {
    const key = uniqueKey('cli-interrupt')
    const held = await client.acquire([key], 10000)
    try {
      const result = await redlock(['exec', '--resource', key, '--', 'true'], {
        onSpawn: (child) => setTimeout(() => child.kill('SIGINT'), 800),
      })
      expect(result.code).toBe(130)
    } finally {
      await held.release()
    }
  })
})

describe('redlock exec --permits, --read, --write', () => {
  let dir
  let client
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-cli-'))
    client = new Redlock(urls, { retryCount: 0 })
  })
  afterAll(async () => {
    fs.rmSync(dir, { recursive: true, force: true })
    await client.quit()
  })

  test('--permits 2: of three commands started together, two run at once, never three, and all three run', async () => {
    const key = uniqueKey('cli-permits')
    const log = path.join(dir, 'permits.log')
    // Each command waits until two have started (the third finds them in the log): were one
    // permit all there is, the first would wait alone and exit 3.
    const results = await Promise.all(
      ['a', 'b', 'c'].map((name) =>
        redlock(['exec', '--permits', '2', '--resource', key, '--wait', '20s', ...recorder(log, name, { ms: 300, meet: 2 })], {
          timeout: 40000,
        }),
      ),
    )
    for (const result of results) {
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      expect(result.stdout).toMatch(/^started token=\d+$/m)
    }
    const events = readLog(log)
    expect(events.filter((e) => e.what === 'start').map((e) => e.name).sort()).toEqual(['a', 'b', 'c'])
    expect(events.filter((e) => e.what === 'end').map((e) => e.name).sort()).toEqual(['a', 'b', 'c'])
    expect(mostAtOnce(events)).toBe(2)
    for (const slot of [1, 2]) await expect(valuesOnAll(urls, `{${key}}:permit:${slot}`)).resolves.toEqual(urls.map(() => null))
  }, 60000)

  test('--permits: every permit held elsewhere exits 75 after --wait without running the command', async () => {
    const key = uniqueKey('cli-permits-full')
    const held = await client.semaphore(key, 2).acquire(10000, { count: 2 })
    try {
      const result = await redlock(['exec', '--permits', '2', '--resource', key, '--wait', '0', ...nodeCommand("console.log('ran')")])
      expect(result.code).toBe(75)
      expect(result.stdout).toBe('')
      expect(result.stderr).toMatch(new RegExp(`could not lock ${key} \\(one of 2 permits\\) \\(one attempt\\): .*ERR_REDLOCK_RESOURCE_LOCKED`))
    } finally {
      await held.release()
    }
  })

  test('--permits: a permit taken away mid-run ends like a lost lock: SIGTERM to the command, exit 76', async () => {
    const key = uniqueKey('cli-permits-lost')
    const slots = [1, 2].map((slot) => `{${key}}:permit:${slot}`)
    const script = `process.on('SIGTERM', () => { console.log('terminated'); process.exit(0) })
      console.log('started'); setInterval(() => {}, 1000)`
    const result = await redlock(['exec', '--permits', '2', '--resource', key, '--ttl', '1s', ...nodeCommand(script)], {
      onSpawn: async (child, output) => {
        await until(() => output.stdout.includes('started'), { timeout: 10000 })
        await Promise.all(urls.slice(0, 3).map((u) => command(u, 'DEL', ...slots)))
      },
    })
    expect(result.code).toBe(76)
    expect(result.stdout).toMatch(/started\s+terminated/)
    expect(result.stderr).toMatch(new RegExp(`lost the lock on ${key} \\(one of 2 permits\\): .*sending SIGTERM`))
  })

  test('--write excludes a --read: one attempt is refused with 75, a waiting reader runs once the writer is done', async () => {
    const key = uniqueKey('cli-rw-write')
    const log = path.join(dir, 'write.log')
    const go = path.join(dir, 'write.go')
    let steps
    let waiting
    const writer = await redlock(['exec', '--write', '--resource', key, ...recorder(log, 'writer', { go })], {
      timeout: 40000,
      onSpawn: (child, output) => {
        steps = (async () => {
          await until(() => output.stdout.includes('started'), { timeout: 15000 })
          const refused = await redlock(['exec', '--read', '--resource', key, '--wait', '0', ...nodeCommand("console.log('ran')")])
          waiting = redlock(['exec', '--read', '--resource', key, '--wait', '20s', ...recorder(log, 'reader')], { timeout: 40000 })
          // Give the reader a moment to start asking (if it is slower, it just asks later).
          await sleep(1000)
          return refused
        })().finally(() => fs.writeFileSync(go, ''))
      },
    })
    const refused = await steps
    const reader = await waiting
    expect(writer.stderr).toBe('')
    expect(writer.code).toBe(0)
    // A write lock gets a fencing token; a read lock none.
    expect(writer.stdout).toMatch(/^started token=\d+$/m)
    expect(refused.code).toBe(75)
    expect(refused.stdout).toBe('')
    expect(refused.stderr).toMatch(new RegExp(`could not lock ${key} for reading \\(one attempt\\): .*ERR_REDLOCK_RESOURCE_LOCKED`))
    expect(reader.stderr).toBe('')
    expect(reader.code).toBe(0)
    expect(reader.stdout).toMatch(/^started token=none$/m)
    const events = readLog(log)
    const at = (name, what) => events.find((e) => e.name === name && e.what === what).at
    expect(at('reader', 'start')).toBeGreaterThanOrEqual(at('writer', 'end'))
  }, 60000)

  test('two --read commands hold the lock together: each waits until the other runs, and both exit 0', async () => {
    const key = uniqueKey('cli-rw-read')
    // Each reader waits (at most 15 s, then exits 3) for the file the other writes once it runs.
    const reader = (mine, theirs) =>
      redlock(
        [
          'exec', '--read', '--resource', key, '--wait', '20s',
          ...nodeCommand(`
            const fs = require('node:fs')
            fs.writeFileSync(${JSON.stringify(path.join(dir, mine))}, '')
            const until = Date.now() + 15000
            const wait = () => fs.existsSync(${JSON.stringify(path.join(dir, theirs))}) ? console.log('together')
              : Date.now() > until ? process.exit(3) : setTimeout(wait, 20)
            wait()
          `),
        ],
        { timeout: 40000 },
      )
    const [first, second] = await Promise.all([reader('read-1', 'read-2'), reader('read-2', 'read-1')])
    for (const result of [first, second]) {
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      expect(result.stdout).toBe('together\n')
    }
    await expect(Promise.all(urls.map((u) => command(u, 'ZCARD', `{${key}}:readers`)))).resolves.toEqual(urls.map(() => 0))
  }, 60000)
})

describe('redlock inspect', () => {
  test('shows, per node, the holder, its id prefix and the remaining TTL', async () => {
    const key = uniqueKey('cli-inspect')
    const free = uniqueKey('cli-inspect-free')
    const client = new Redlock(urls)
    const held = await client.acquire([key], 10000)
    try {
      const text = await redlock(['inspect', key, free])
      expect(text.code).toBe(0)
      const prefix = held.value.slice(0, 8)
      expect(text.stdout).toContain(`${key}: locked by ${prefix}… (5 of 5 nodes hold it, quorum 3)`)
      expect(text.stdout).toContain(`${free}: free (0 of 5 nodes hold it, quorum 3)`)
      const heldLines = text.stdout.split('\n').filter((l) => l.includes(`held  ${prefix}…`))
      expect(heldLines).toHaveLength(5)
      for (const line of heldLines) expect(line).toMatch(/ttl \d+(\.\d)?s$/)

      const json = await redlock(['inspect', '--json', key, free])
      const [lock, none] = JSON.parse(json.stdout)
      expect(lock).toMatchObject({ resource: key, status: 'locked', value: held.value, nodes: 5, quorum: 3 })
      for (const node of lock.perNode) {
        expect(node.state).toBe('held')
        expect(node.ttlMs).toBeGreaterThan(5000)
        expect(node.ttlMs).toBeLessThanOrEqual(10000)
      }
      expect(none.perNode.map((n) => n.state)).toEqual(urls.map(() => 'free'))
    } finally {
      await held.release()
      await client.quit()
    }
  })

  test('reports a node that does not answer as down, and a key held on a minority as partly held', async () => {
    const key = uniqueKey('cli-inspect-down')
    await command(urls[0], 'SET', key, 'someone-else', 'PX', 10000)
    const dead = `redis://127.0.0.1:${await freePort()}`
    const result = await redlock(['inspect', '--servers', [...urls, dead].join(','), key])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`${key}: partly held (1 of 6 nodes hold it, quorum 4)`)
    expect(result.stdout).toMatch(/127\.0\.0\.1:\d+\/0\s+down\s+ERR_REDLOCK_NODE_CONNECTION: connection failed: Connection refused/)
    await command(urls[0], 'DEL', key)
  })

  test('reads the database a URL names', async () => {
    const key = uniqueKey('cli-inspect-db')
    const inDb3 = urls.map((u) => `${u}/3`)
    await Promise.all(inDb3.map((u) => command(u, 'SET', key, 'in-db-3', 'PX', 10000)))
    try {
      const result = await redlock(['inspect', '--servers', inDb3.join(','), key])
      expect(result.stdout).toContain(`${key}: locked by in-db-3 (5 of 5 nodes hold it, quorum 3)`)
      expect(result.stdout).toMatch(/127\.0\.0\.1:\d+\/3\s+held/)
      const db0 = await redlock(['inspect', key])
      expect(db0.stdout).toContain(`${key}: free`)
    } finally {
      await Promise.all(inDb3.map((u) => command(u, 'DEL', key)))
    }
  })

  test("lists each server's uptime and marks the ones the restart guard finds young", async () => {
    const key = uniqueKey('cli-inspect-young')
    // The test servers have been up for less than an hour, and for at least 0 ms.
    const young = await redlock(['inspect', '--restart-window', '1h', key])
    expect(young.code).toBe(0)
    const lines = young.stdout.split('\n')
    const servers = lines.slice(lines.indexOf('servers:') + 1).filter((l) => l.trim())
    expect(servers).toHaveLength(urls.length)
    for (const line of servers) expect(line).toMatch(/^ {2}127\.0\.0\.1:\d+\/0\s+up \S+ {2}young: up less than 1h/)
    const json = JSON.parse((await redlock(['inspect', '--json', '--restart-window', '0', key])).stdout)
    for (const node of json[0].perNode) {
      expect(node.uptimeS).toBeGreaterThanOrEqual(0)
      expect(node.young).toBe(false)
    }
    const bad = await redlock(['inspect', '--restart-window', 'soon', key])
    expect(bad.code).toBe(2)
    expect(bad.stderr).toMatch(/--restart-window/)
  })

  test('--watch reads again every --interval until interrupted: a lock taken meanwhile shows up', async () => {
    const key = uniqueKey('cli-inspect-watch')
    const client = new Redlock(urls)
    let lock
    try {
      let steps
      const result = await redlock(['inspect', '--watch', '--interval', '200ms', '--json', key], {
        onSpawn: (child, output) => {
          const readings = () => output.stdout.split('\n').filter((l) => l.startsWith('[')).length
          steps = (async () => {
            await until(() => readings() >= 2, { timeout: 10000 })
            lock = await client.acquire([key], 10000)
            await until(() => output.stdout.includes(lock.value), { timeout: 10000 })
          })().finally(() => child.kill('SIGINT'))
        },
      })
      await steps
      expect(result.code).toBe(0)
      expect(result.stderr).toBe('')
      const readings = result.stdout.split('\n').filter((l) => l.startsWith('['))
      const statuses = readings.map((l) => JSON.parse(l)[0].status)
      expect(statuses[0]).toBe('free')
      expect(statuses[statuses.length - 1]).toBe('locked')
      // Each JSON reading follows a line with its time (stdout is not a terminal here).
      expect(result.stdout).toMatch(/^--- \d{4}-\d\d-\d\dT/m)
      expect(result.stdout).not.toContain('\x1b[')
    } finally {
      if (lock) await lock.release()
      await client.quit()
    }
  })

  test('--permits K: per node, the permit slot a holder has, its id and TTL; --json as one object', async () => {
    const key = uniqueKey('cli-inspect-permits')
    const client = new Redlock(urls)
    const lock = await client.semaphore(key, 3).acquire(10000)
    try {
      const [slotKey] = lock.resources
      const slot = Number(slotKey.split(':').pop())
      expect(slotKey).toBe(`{${key}}:permit:${slot}`)
      await until(async () => (await valuesOnAll(urls, slotKey)).every((v) => v === lock.value))
      const text = await redlock(['inspect', '--permits', '3', key])
      expect(text.stderr).toBe('')
      expect(text.code).toBe(0)
      expect(text.stdout).toContain(`${key}: 1 of 3 permits held (quorum 3)\n`)
      const rows = text.stdout.split('\n').filter((l) => l.includes(`permit ${slot}`))
      expect(rows).toHaveLength(5)
      for (const line of rows) expect(line).toMatch(new RegExp(`permit ${slot}\\s+${lock.value.slice(0, 8)}…\\s+ttl \\d+(\\.\\d)?s$`))

      const json = await redlock(['inspect', '--permits', '3', '--json', key])
      expect(json.code).toBe(0)
      const report = JSON.parse(json.stdout)
      expect(report).toMatchObject({ resource: key, permits: 3, quorum: 3, held: 1, status: 'in use' })
      expect(report.slots.map((s) => s.status)).toEqual([1, 2, 3].map((i) => (i === slot ? 'locked' : 'free')))
      expect(report.slots[slot - 1]).toMatchObject({ key: slotKey, value: lock.value, nodes: 5 })
      expect(report.perNode).toHaveLength(5)
      for (const node of report.perNode) {
        expect(node.state).toBe('held')
        expect(node.permits).toEqual([{ slot, value: lock.value, ttlMs: expect.any(Number) }])
        expect(node.permits[0].ttlMs).toBeGreaterThan(0)
        expect(node.permits[0].ttlMs).toBeLessThanOrEqual(10000)
      }
    } finally {
      await lock.release()
      await client.quit()
    }
  })

  test('--rw: the readers with their time left, a waiting writer\'s intent, then the writer', async () => {
    const key = uniqueKey('cli-inspect-rw')
    const client = new Redlock(urls)
    const writers = new Redlock(urls, { retryCount: -1, retryDelay: 100 })
    const rw = client.readWriteLock(key)
    const readers = await Promise.all([rw.read.acquire(10000), rw.read.acquire(10000)])
    const values = readers.map((r) => r.value).sort()
    let writing
    try {
      const zcards = () => Promise.all(urls.map((u) => command(u, 'ZCARD', `{${key}}:readers`)))
      await until(async () => (await zcards()).every((n) => n === 2))
      const json = await redlock(['inspect', '--rw', '--json', key])
      expect(json.stderr).toBe('')
      expect(json.code).toBe(0)
      const report = JSON.parse(json.stdout)
      expect(report).toMatchObject({ resource: key, quorum: 3, status: 'read-locked', writer: null, writerWaiting: false })
      expect(report.readers.sort()).toEqual(values)
      expect(report.keys).toEqual({ write: `{${key}}:write`, readers: `{${key}}:readers`, intent: `{${key}}:intent` })
      for (const node of report.perNode) {
        expect(node).toMatchObject({ state: 'held', writer: null, intent: null })
        expect(node.readers.map((r) => r.value).sort()).toEqual(values)
        // Scored by the node's clock: the node's time at the grant plus the TTL.
        for (const r of node.readers) {
          expect(r.remainingMs).toBeGreaterThan(0)
          expect(r.remainingMs).toBeLessThanOrEqual(10000)
        }
      }

      // A writer asks: its intent shows on the nodes while the readers hold.
      writing = writers.readWriteLock(key).write.acquire(10000)
      await until(async () => (await valuesOnAll(urls, `{${key}}:intent`)).some((v) => v !== null), { timeout: 10000 })
      const waits = JSON.parse((await redlock(['inspect', '--rw', '--json', key])).stdout)
      expect(waits).toMatchObject({ status: 'read-locked', writerWaiting: true })
      const intents = waits.perNode.map((n) => n.intent).filter(Boolean)
      expect(intents.length).toBeGreaterThan(0)

      await Promise.all(readers.map((r) => r.release()))
      const writer = await writing
      for (const i of intents) expect(i.value).toBe(writer.value)
      await until(async () => (await valuesOnAll(urls, `{${key}}:write`)).every((v) => v === writer.value))
      const text = await redlock(['inspect', '--rw', key])
      expect(text.code).toBe(0)
      expect(text.stdout).toMatch(new RegExp(`^${key}: write-locked by ${writer.value.slice(0, 8)}… \\(5 of 5 nodes hold it, quorum 3\\)`))
      const rows = text.stdout.split('\n').filter((l) => / writer /.test(l))
      expect(rows).toHaveLength(5)
      for (const line of rows) expect(line).toMatch(/ttl \d+(\.\d)?s$/)
      await writer.release()
    } finally {
      await Promise.all(readers.map((r) => r.release()))
      if (writing) await writing.then((w) => w.release()).catch(() => {})
      await writers.quit()
      await client.quit()
    }
  })

  test('exits 75 when fewer than a quorum of nodes answer', async () => {
    const dead = await Promise.all([freePort(), freePort()])
    const list = [urls[0], ...dead.map((p) => `127.0.0.1:${p}`)].join(',')
    const result = await redlock(['inspect', '--servers', list, uniqueKey('cli-inspect-quorum')])
    expect(result.code).toBe(75)
    expect(result.stdout).toMatch(/: unknown/)
  })
})

describe('redlock release', () => {
  test('releases a lock by its id; a second release finds nothing to release', async () => {
    const key = uniqueKey('cli-release')
    const client = new Redlock(urls)
    const held = await client.acquire([key], 10000)
    try {
      const first = await redlock(['release', '--resource', key, '--id', held.id])
      expect(first.code).toBe(0)
      expect(first.stdout).toMatch(new RegExp(`^released ${key} \\(it was held on \\d of the \\d nodes that answered\\)`))
      await until(async () => (await valuesOnAll(urls, key)).every((v) => v === null))
      const second = await redlock(['release', '--resource', key, '--id', held.id])
      expect(second.code).toBe(0)
      expect(second.stdout).toMatch(/nothing to release/)
    } finally {
      await client.quit()
    }
  })

  test('--resource repeated releases a lock on several resources', async () => {
    const [a, b] = [uniqueKey('cli-release-a'), uniqueKey('cli-release-b')]
    const client = new Redlock(urls)
    const held = await client.acquire([a, b], 10000)
    try {
      const result = await redlock(['release', '--resource', a, '--resource', b, '--id', held.id])
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      expect(result.stdout).toMatch(new RegExp(`^released ${a}, ${b} \\(it was held on [345] of the [345] nodes that answered\\)`))
      await until(async () => [...(await valuesOnAll(urls, a)), ...(await valuesOnAll(urls, b))].every((v) => v === null))
    } finally {
      await client.quit()
    }
  })

  test('does not release a lock whose id differs', async () => {
    const key = uniqueKey('cli-release-other')
    const client = new Redlock(urls)
    const held = await client.acquire([key], 10000)
    try {
      const result = await redlock(['release', '--resource', key, '--id', 'not-the-id'])
      expect(result.code).toBe(0)
      expect(result.stdout).toMatch(/nothing to release/)
      await expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => held.value))
    } finally {
      await held.release()
      await client.quit()
    }
  })
})

describe('a Redis Cluster member (--cluster, REDLOCK_CLUSTERS)', () => {
  const { startCluster } = require('./support/cluster')
  const { startServers, stopServers } = require('./support/servers')
  let cluster
  let plain = []
  let env
  beforeAll(async () => {
    ;[cluster, plain] = await Promise.all([startCluster({ masters: 3 }), startServers(2)])
    env = { REDLOCK_SERVERS: plain.map((p) => p.url).join(','), REDLOCK_CLUSTERS: cluster.seeds.join(',') }
  }, 60000)
  afterAll(async () => {
    await Promise.all([cluster && cluster.stop(), stopServers(plain)])
  })

  /** A key that the first startup node does not serve: reading it takes a MOVED. */
  async function movedKey(base) {
    let key = uniqueKey(base)
    while ((await cluster.masterFor(key)).port === cluster.nodes[0].port) key = uniqueKey(base)
    return key
  }

  test('exec holds the lock on the cluster too, and inspect follows the cluster to the key', async () => {
    const key = await movedKey('cli-cluster')
    const result = await redlock(
      ['exec', '--resource', key, '--', process.execPath, BIN, 'inspect', '--json', key],
      { env },
    )
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    const [report] = JSON.parse(result.stdout)
    expect(report).toMatchObject({ resource: key, status: 'locked', nodes: 3, quorum: 2 })
    const member = report.perNode[2]
    expect(member.node).toBe(`cluster[${cluster.seeds.map((u) => u.slice('redis://'.length)).join(',')}]`)
    expect(member).toMatchObject({ state: 'held', value: report.value })
    await until(async () => (await cluster.command(key, 'EXISTS', key)) === 0)
  })

  test('--cluster on its own, and release by id', async () => {
    const client = new Redlock([...plain.map((p) => p.url), cluster.seeds])
    const key = await movedKey('cli-cluster-release')
    const held = await client.acquire([key], 10000)
    try {
      await until(async () => (await cluster.command(key, 'GET', key)) === held.value)
      const seen = await redlock(['inspect', '--cluster', cluster.seeds.join(','), key], { env: { REDLOCK_SERVERS: '' } })
      expect(seen.stdout).toContain(`${key}: locked by ${held.value.slice(0, 8)}… (1 of 1 nodes hold it, quorum 1)`)
      const released = await redlock(['release', '--resource', key, '--id', held.id], { env })
      expect(released.code).toBe(0)
      expect(released.stdout).toMatch(/^released /)
      await until(async () => (await cluster.command(key, 'EXISTS', key)) === 0)
    } finally {
      await client.quit()
    }
  })

  test('inspect --rw reads the readers on the master that serves them, following MOVED', async () => {
    const client = new Redlock([...plain.map((p) => p.url), cluster.seeds])
    const key = await movedKey('cli-cluster-rw')
    const reader = await client.readWriteLock(key).read.acquire(10000)
    try {
      const readers = `{${key}}:readers`
      await until(async () => (await cluster.command(readers, 'ZSCORE', readers, reader.value)) !== null)
      const result = await redlock(['inspect', '--rw', '--json', key], { env })
      expect(result.stderr).toBe('')
      expect(result.code).toBe(0)
      const report = JSON.parse(result.stdout)
      expect(report).toMatchObject({ status: 'read-locked', readers: [reader.value], quorum: 2 })
      const member = report.perNode[2]
      expect(member.node).toMatch(/^cluster\[/)
      expect(member.readers).toEqual([{ value: reader.value, remainingMs: expect.any(Number) }])
      expect(member.readers[0].remainingMs).toBeGreaterThan(0)
    } finally {
      await reader.release()
      await client.quit()
    }
  })

  test('resources in different slots are a usage error that explains hash tags', async () => {
    const result = await redlock(['exec', '--resource', 'payment', '--resource', 'invoice', '--', 'true'], { env })
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/hash tag/)
  })
})

describe('TLS servers (rediss://, --tls-ca, --tls-cert, --tls-key)', () => {
  const { startRedis, makeCertificates, tlsArgs, haveOpenssl } = require('./support/deploy')
  const withTls = haveOpenssl() ? test : test.skip
  let certs
  let servers = []
  let plainTls
  let clientAuth
  beforeAll(async () => {
    if (!haveOpenssl()) return
    certs = makeCertificates()
    const ports = [await freePort(), await freePort()]
    servers = await Promise.all([startRedis(tlsArgs(certs, ports[0])), startRedis(tlsArgs(certs, ports[1], { authClients: true }))])
    plainTls = `rediss://127.0.0.1:${ports[0]}`
    clientAuth = `rediss://localhost:${ports[1]}`
  }, 30000)
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()))
    if (certs) certs.cleanup()
  })

  withTls('with the CA, exec holds the lock and inspect reads it; without, both say the certificate is not trusted', async () => {
    const key = uniqueKey('cli-tls')
    const env = { REDLOCK_SERVERS: plainTls, REDLOCK_TLS_CA: certs.file('ca.crt') }
    const result = await redlock(['exec', '--resource', key, '--', process.execPath, BIN, 'inspect', key], { env })
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(new RegExp(`${key}: locked by [0-9a-f]{8}… \\(1 of 1 nodes hold it, quorum 1\\)`))

    const untrusted = { REDLOCK_SERVERS: plainTls }
    const refused = await redlock(['exec', '--resource', key, '--wait', '0', '--', 'true'], { env: untrusted })
    expect(refused.code).toBe(75)
    expect(refused.stderr).toContain('not signed by a trusted CA')
    const down = await redlock(['inspect', key], { env: untrusted })
    expect(down.code).toBe(75)
    expect(down.stdout).toMatch(/127\.0\.0\.1:\d+\/0\s+down\s+ERR_REDLOCK_NODE_CONNECTION: .*not signed by a trusted CA/)
  })

  withTls('a server that asks for a client certificate gets one from --tls-cert and --tls-key', async () => {
    const key = uniqueKey('cli-mtls')
    const ca = ['--servers', clientAuth, '--tls-ca', certs.file('ca.crt')]
    const without = await redlock(['exec', ...ca, '--resource', key, '--wait', '0', '--', 'true'])
    expect(without.code).toBe(75)
    const identity = ['--tls-cert', certs.file('client.crt'), '--tls-key', certs.file('client.key')]
    const inspect = [BIN, 'inspect', ...ca, ...identity, key]
    const result = await redlock(['exec', ...ca, ...identity, '--resource', key, '--', process.execPath, ...inspect])
    expect(result.stderr).toBe('')
    expect(result.code).toBe(0)
    expect(result.stdout).toMatch(new RegExp(`${key}: locked by [0-9a-f]{8}… \\(1 of 1 nodes hold it, quorum 1\\)`))
  })
})

describe('arguments', () => {
  test.each([
    [['exec', '--resource', 'r', '--ttl', '30x', '--', 'true'], /--ttl: "30x" is not a duration/],
    [['exec', '--resource', 'r', '--ttl', '30', '--', 'true'], /--ttl: "30" is not a duration/],
    [['exec', '--resource', 'r', '--ttl', '100ms', '--', 'true'], /--ttl: 100ms is out of range/],
    [['exec', '--resource', 'r', '--wait', 'soon', '--', 'true'], /--wait: "soon" is not a duration/],
    [['exec', '--resource', 'r', '--grace', '-1s', '--', 'true'], /--grace: "-1s" is not a duration/],
    [['exec', '--ttl', '1s', '--', 'true'], /--resource: missing/],
    [['exec', '--resource', '', '--', 'true'], /--resource: a resource name cannot be empty/],
    [['exec', '--resource'], /--resource needs a value/],
    [['exec', '--resource', '--ttl', '1s', '--', 'true'], /--resource needs a value/],
    [['exec', '--resource', 'r', '--ttl', '--', 'true'], /--ttl needs a value/],
    [['inspect', '--timeout'], /--timeout needs a value/],
    [['release', '--resource', 'r', '--id'], /--id needs a value/],
    [['inspect', '--json=yes', 'r'], /--json takes no value/],
    [['exec', '--frobnicate=1', '--resource', 'r', '--', 'true'], /unknown option --frobnicate$/m],
    [['exec', '-x', '--resource', 'r', '--', 'true'], /unknown option -x$/m],
    [['exec', '-resource', 'r', '--', 'true'], /unknown option -resource$/m],
    [['inspect', '--resource', 'r', 'key'], /unknown option --resource$/m],
    [['release', '--json', '--resource', 'r', '--id', 'x'], /unknown option --json$/m],
    [['exec', '--resource', 'r'], /no command given/],
    [['exec', '--resource', 'r', '--frobnicate', '--', 'true'], /unknown option --frobnicate/],
    [['exec', '--servers', 'redis://127.0.0.1:1,redis://127.0.0.1:1', '--resource', 'r', '--', 'true'], /--servers: .*same server/],
    [['inspect', '--servers', 'http://127.0.0.1:1', 'r'], /--servers: entry 1 is not a usable redis:\/\/ URL: http:\/\/ URLs are not supported/],
    [['inspect', '--servers', 'rediss://127.0.0.1:1', '--tls-ca', '/nonexistent/ca.pem', 'r'], /--tls-ca: cannot read \/nonexistent\/ca.pem: ENOENT/],
    [['inspect', '--servers', ',', 'r'], /--servers: the list of servers is empty/],
    [['inspect'], /no resource named/],
    [['inspect', '--timeout', 'long', 'r'], /--timeout: "long" is not a duration/],
    [['release', '--resource', 'r'], /--id: missing/],
    [['release', '--resource', 'r', '--id', 'x', 'extra'], /unexpected argument "extra"/],
    [['frobnicate'], /unknown command "frobnicate"/],
    [['exec', '--permits', '0', '--resource', 'r', '--', 'true'], /--permits: "0" is not a number of permits/],
    [['exec', '--permits', 'two', '--resource', 'r', '--', 'true'], /--permits: "two" is not a number of permits/],
    [['exec', '--permits', '2', '--resource', 'a', '--resource', 'b', '--', 'true'], /--permits takes exactly one --resource, not 2/],
    [['exec', '--read', '--write', '--resource', 'r', '--', 'true'], /--read and --write exclude each other/],
    [['exec', '--permits', '2', '--read', '--resource', 'r', '--', 'true'], /--permits and --read exclude each other/],
    [['exec', '--write', '--resource', 'a', '--resource', 'b', '--', 'true'], /--write takes exactly one --resource, not 2/],
    [['inspect', '--permits', '0', 'r'], /--permits: "0" is not a number of permits/],
    [['inspect', '--rw', 'a', 'b'], /--rw takes exactly one NAME, not 2/],
    [['inspect', '--rw', '--permits', '2', 'r'], /--permits and --rw exclude each other/],
  ])('redlock %j exits 2 naming the problem', async (args, message) => {
    const result = await redlock(args)
    expect(result.stderr).toMatch(message)
    expect(result.code).toBe(2)
    expect(result.stdout).toBe('')
  })

  test('a usage error is one line naming the option, then where to look', async () => {
    const result = await redlock(['exec', '--resource', 'r', '--frobnicate', '--', 'true'])
    expect(result.code).toBe(2)
    expect(result.stderr).toBe("redlock: exec: unknown option --frobnicate\nTry 'redlock exec --help'.\n")
    expect(result.stdout).toBe('')
  })

  test('no servers: neither --servers nor REDLOCK_SERVERS', async () => {
    const result = await redlock(['inspect', 'r'], { env: { REDLOCK_SERVERS: undefined } })
    expect(result.code).toBe(2)
    expect(result.stderr).toMatch(/--servers: no servers given; .*REDLOCK_SERVERS/)
  })

  test('a password in --servers never appears in a message', async () => {
    const refused = await redlock(['inspect', '--servers', 'http://user:hunter2@127.0.0.1:1', 'r'])
    expect(refused.code).toBe(2)
    expect(refused.stderr).not.toContain('hunter2')
    const down = await redlock(['inspect', '--servers', 'rediss://user:hunter2@127.0.0.1:1', 'r'])
    expect(down.code).toBe(75)
    expect(down.stdout + down.stderr).not.toContain('hunter2')
  })

  test.each([['exec'], ['inspect'], ['release']])('redlock %s --help prints its usage and exits 0', async (name) => {
    const result = await redlock([name, '--help'])
    expect(result.code).toBe(0)
    expect(result.stdout).toContain(`Usage: redlock ${name}`)
    expect(result.stdout).toMatch(/--servers URLS/)
    // The same text from -h, from 'redlock help NAME', and with --help after other options,
    // a wrong one included.
    for (const args of [[name, '-h'], ['help', name], [name, '--frobnicate', '--resource', 'r', '--help']]) {
      const same = await redlock(args)
      expect(same.code).toBe(0)
      expect(same.stderr).toBe('')
      expect(same.stdout).toBe(result.stdout)
    }
  })

  test('--version prints the package version', async () => {
    const result = await redlock(['--version'])
    expect(result.code).toBe(0)
    expect(result.stdout).toBe(`${require('../package.json').version}\n`)
  })

  test('exec --help documents the exit codes', async () => {
    const { stdout } = await redlock(['exec', '--help'])
    for (const code of ['75', '76', '126, 127', '2 ']) expect(stdout).toContain(code)
  })

  test('redlock --help lists the commands; no arguments is a usage error', async () => {
    const help = await redlock(['--help'])
    expect(help.code).toBe(0)
    expect(help.stdout).toMatch(/exec[\s\S]*inspect[\s\S]*release/)
    const none = await redlock([])
    expect(none.code).toBe(2)
    expect(none.stderr).toContain('Usage: redlock <command>')
  })

  test('durations: ms, s, m, h, fractions', () => {
    expect(parseDuration('500ms', '--ttl')).toBe(500)
    expect(parseDuration('30s', '--ttl')).toBe(30000)
    expect(parseDuration('1.5s', '--ttl')).toBe(1500)
    expect(parseDuration('2m', '--ttl')).toBe(120000)
    expect(parseDuration('1h', '--ttl')).toBe(3600000)
    expect(parseDuration('0', '--wait', { zero: true })).toBe(0)
    expect(() => parseDuration('0', '--ttl')).toThrow(/--ttl/)
    expect(() => parseDuration('1 s', '--ttl')).toThrow(/not a duration/)
  })
})
