'use strict'

// Bun and Deno load the addon from a consumer project (redlock-rs laid out under node_modules
// as npm installs it) and pass smoke.mjs against real redis-servers: import and require,
// acquire (the value is on every server), a second acquire refused with ResourceLockedError,
// extend, release (the key is gone), using, `await using`, quit, and the process exits on its
// own. Both runtimes come from the npm packages `bun` and `deno`, whose binaries are in the
// platform packages npm installs as their optional dependencies: no install script is needed.

const fs = require('node:fs')
const path = require('node:path')
const { startServers, stopServers } = require('../support/servers')
const { locateRuntime, makeConsumer, runLoad, runSmoke } = require('./support')

jest.setTimeout(90000)

const STEPS = ['acquired', 'refused', 'extended', 'released', 'using', 'used', 'await-using', 'disposed', 'done']

const bun = locateRuntime('bun')
const deno = locateRuntime('deno')
// A runtime's tests are skipped, with the reason printed, only when npm has no binary of it for
// this platform (or the package is not a devDependency at all); declared but not installed, or
// installed and not running, fails. REDLOCK_TEST_RUNTIMES=require makes every absence fail.
const required = process.env.REDLOCK_TEST_RUNTIMES === 'require'
for (const [name, runtime] of [['Bun', bun], ['Deno', deno]]) {
  if (runtime.path) continue
  if (runtime.fatal || required) throw new Error(`${name}: ${runtime.reason}`)
  console.warn(`${name} runtime tests SKIPPED: ${runtime.reason}`)
}
const withBun = bun.path ? test : test.skip
const withDeno = deno.path ? test : test.skip

// Deno's permissions for loading the addon (FFI bypasses --allow-net: the engine's own
// sockets need no flag). binding.js reads three NAPI_RS_* variables, and on Linux tells glibc
// from musl by reading /usr/bin/ldd (without it, it asks process.report, which needs
// --allow-sys instead).
const isLinux = process.platform === 'linux'
const DENO_FLAGS = ['--allow-ffi', '--allow-env', ...(isLinux ? ['--allow-read=/usr/bin/ldd'] : [])]
const DENO_NARROWEST = [
  '--allow-ffi=./node_modules/redlock-rs',
  '--allow-env=NAPI_RS_NATIVE_LIBRARY_PATH,NAPI_RS_WASI_FLAVOR,NAPI_RS_FORCE_WASI',
  ...(isLinux ? ['--allow-read=/usr/bin/ldd'] : []),
]

let servers
let urls
let app
let bare // the same consumer project without the .node file

beforeAll(async () => {
  servers = await startServers(3)
  urls = servers.map((s) => s.url)
  app = makeConsumer()
  bare = makeConsumer({ exclude: (file) => file.endsWith('.node') })
}, 60000)

afterAll(async () => {
  await stopServers(servers)
  for (const dir of [app, bare]) if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

let prefixes = 0
const prefix = (name) => `runtimes:${name}:${process.pid}:${Date.now().toString(36)}:${++prefixes}`

/** What a smoke run must have done; on a failure the child's stderr is in the diff. */
function expectSmoke(result, runtime) {
  const failure = result.code === 0 && result.signal === null ? null : `${result.stderr}\n${result.stdout}`.trim()
  expect({ failure, problems: result.problems, steps: result.names }).toEqual({ failure: null, problems: [], steps: STEPS })

  const values = (step) => result.steps.find((s) => s.step === step).value
  expect(result.observed.acquired.values).toEqual(urls.map(() => values('acquired')))
  // Extended from 10 s to 30 s: every server's TTL shows it.
  for (const pttl of result.observed.extended.pttls) expect(pttl).toBeGreaterThan(10000)
  expect(result.observed.using.values).toEqual(urls.map(() => values('using')))
  expect(result.observed['await-using'].values).toEqual(urls.map(() => values('await-using')))
  for (const step of ['released', 'used', 'disposed']) expect(result.observed[step].values).toEqual(urls.map(() => null))
  expect(result.steps.find((s) => s.step === 'refused')).toMatchObject({
    name: 'ResourceLockedError',
    code: 'ERR_REDLOCK_RESOURCE_LOCKED',
    attempts: 1,
  })
  expect(result.steps.find((s) => s.step === 'done').runtime).toBe(runtime)
  // Nobody killed it and it did not call process.exit: after quit() nothing kept it alive.
  expect(result.exitAfterDone).toBeLessThan(5000)
}

/** load.mjs in the project without the .node file: lib/native.js's error, not napi's. */
function expectMissing({ status, result, stderr }) {
  expect({ status, stderr, loaded: result && result.loaded, code: result && result.code }).toEqual({
    status: 1,
    stderr: '',
    loaded: false,
    code: 'ERR_REDLOCK_NATIVE_MISSING',
  })
  const dir = path.join(bare, 'node_modules', 'redlock-rs')
  expect(result.message).toContain(`the native addon for ${process.platform}-${process.arch}`)
  expect(result.files.length).toBeGreaterThan(0)
  for (const file of result.files) {
    expect(path.dirname(file)).toBe(dir)
    expect(result.message).toContain(`${file} (not found)`)
  }
  expect(result.message).toContain('npm run build')
  expect(result.message).not.toContain('npm has a bug')
  expect(result.cause).toMatch(/^Cannot find native binding/)
}

test('smoke.mjs never ends the process itself', () => {
  const source = fs.readFileSync(path.join(__dirname, 'smoke.mjs'), 'utf8')
  expect(source).not.toMatch(/process\.exit\(|Deno\.exit\(/)
})

describe('Bun', () => {
  withBun(`bun ${bun.version} loads the addon and passes the smoke suite`, async () => {
    const result = await runSmoke(bun.path, [], { cwd: app, urls, prefix: prefix('bun') })
    expectSmoke(result, `bun ${bun.version}`)
  })

  withBun('bun: without the binary, importing the package throws the loader error', () => {
    expectMissing(runLoad(bun.path, [], { cwd: bare }))
  })
})

describe('Deno', () => {
  withDeno(`deno ${deno.version} loads the addon with ${DENO_FLAGS.join(' ')} and passes the smoke suite`, async () => {
    const result = await runSmoke(deno.path, ['run', ...DENO_FLAGS], { cwd: app, urls, prefix: prefix('deno') })
    expectSmoke(result, `deno ${deno.version}`)
  })

  withDeno(`deno passes with the narrowest permissions: ${DENO_NARROWEST.join(' ')}`, async () => {
    const result = await runSmoke(deno.path, ['run', ...DENO_NARROWEST], { cwd: app, urls, prefix: prefix('deno-narrow') })
    expectSmoke(result, `deno ${deno.version}`)
  })

  withDeno('deno: each of those permissions is needed, and the loader error names the one refused', () => {
    const refused = {
      '--allow-ffi': /Requires ffi access/,
      '--allow-env': /Requires env access to "NAPI_RS_/,
      '--allow-read': /Requires sys access/, // without /usr/bin/ldd, binding.js asks process.report
    }
    for (const flag of DENO_NARROWEST) {
      const name = flag.split('=')[0]
      const flags = DENO_NARROWEST.filter((f) => f !== flag)
      const { status, result, stderr } = runLoad(deno.path, ['run', ...flags], { cwd: app })
      expect({ flags, status, stderr, code: result && result.code }).toEqual({
        flags,
        status: 1,
        stderr: '',
        code: 'ERR_REDLOCK_NATIVE_LOAD',
      })
      expect(result.message).toMatch(refused[name])
      expect(result.message).toContain('Under Deno, run with --allow-ffi --allow-env --allow-read')
    }
    // And with all of them it loads.
    expect(runLoad(deno.path, ['run', ...DENO_NARROWEST], { cwd: app }).result).toEqual({ loaded: true })
  })

  withDeno('deno: without the binary, importing the package throws the loader error', () => {
    expectMissing(runLoad(deno.path, ['run', ...DENO_FLAGS], { cwd: bare }))
  })
})
