'use strict'

// The import lines a migrating user writes, in plain Node (no bundler, no Jest interop):
// `import Redlock from`, `import { Redlock, ExecutionError, … } from`, `require` with and
// without `.default`, for `redlock-rs` and `redlock-rs/sesame`.

const fs = require('node:fs')
const path = require('node:path')
const { linkedProject, runNode } = require('../support/shared')

const NAMES = [
  'AbortError', 'AcquireTimeoutError', 'ExecutionError', 'Lock', 'LockError', 'LockExpiredError',
  'MaxHoldError', 'ReadWriteLock', 'Redlock', 'RedlockClosedError', 'ResourceLockedError', 'Semaphore', 'default',
]

let dir

beforeAll(() => {
  dir = linkedProject('redlock-rs-entry-')
})

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))

async function run(name, code) {
  const file = path.join(dir, name)
  fs.writeFileSync(file, code)
  const result = await runNode([file], { cwd: dir, timeout: 20000 })
  expect(result.stderr).toBe('')
  expect(result.code).toBe(0)
  return JSON.parse(result.stdout)
}

test.each(['redlock-rs', 'redlock-rs/sesame'])('ES modules see every export of %s by name', async (entry) => {
  const seen = await run(
    `named-${entry.replace('/', '-')}.mjs`,
    `import * as all from '${entry}'
     import Redlock, { Redlock as Named, ExecutionError, ResourceLockedError } from '${entry}'
     console.log(JSON.stringify({
       names: Object.keys(all).sort(),
       sameClass: Redlock === Named && Redlock === all.default,
       subclass: ResourceLockedError.prototype instanceof ExecutionError,
     }))`,
  )
  expect(seen).toEqual({ names: NAMES, sameClass: true, subclass: true })
})

test('require works with and without .default; both entry points share the error classes', async () => {
  const seen = await run(
    'require.cjs',
    `const Main = require('redlock-rs')
     const Sesame = require('redlock-rs/sesame')
     console.log(JSON.stringify({
       main: Main === Main.default && Main === Main.Redlock,
       sesame: Sesame === Sesame.default && Sesame === Sesame.Redlock && Sesame.prototype instanceof Main,
       errors: Sesame.ExecutionError === Main.ExecutionError && Sesame.Lock === Main.Lock,
       sesameDb: new Sesame(['redis://127.0.0.1:1']).settings.db,
       mainDb: new Main(['redis://127.0.0.1:1']).settings.db ?? null,
     }))`,
  )
  expect(seen).toEqual({ main: true, sesame: true, errors: true, sesameDb: 0, mainDb: null })
})
