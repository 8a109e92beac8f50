'use strict'

// lib/native.js: the addon as binding.js loads it, and, when it cannot be loaded, an error that
// says what is missing and how to build it instead of napi's "Cannot find native binding. npm
// has a bug…". The failures are made in a copy of the package (index.js, lib/, binding.js,
// package.json) without the built .node file, or with a damaged one; the real binary is not
// touched.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { runNode } = require('../support/shared')

const ROOT = path.resolve(__dirname, '..', '..')
// The addon built on this machine, for this platform: the name the loader must look for.
const BUILT = fs.readdirSync(ROOT).find((f) => /^redlock-rs\.[\w-]+\.node$/.test(f))
const PROBE = `
  try {
    require(process.argv[1])
    console.log(JSON.stringify({ loaded: true }))
  } catch (error) {
    const chain = []
    for (let e = error.cause; e; e = e.cause) chain.push(e.message.split('\\n')[0])
    console.log(JSON.stringify({
      loaded: false,
      isError: error instanceof Error,
      name: error.name,
      code: error.code,
      message: error.message,
      platform: error.platform,
      arch: error.arch,
      libc: error.libc,
      files: error.files,
      cause: error.cause ? error.cause.message : null,
      chain,
    }))
  }
`

let dir

/** A copy of the package without any .node file; `binary` (bytes) is written as the addon. */
function copyPackage(binary) {
  const pkg = fs.mkdtempSync(path.join(dir, 'pkg-'))
  for (const file of ['index.js', 'binding.js', 'package.json', 'lib']) {
    fs.cpSync(path.join(ROOT, file), path.join(pkg, file), { recursive: true })
  }
  if (binary !== undefined) fs.writeFileSync(path.join(pkg, BUILT), binary)
  return pkg
}

async function load(pkg) {
  const out = await runNode(['-e', PROBE, path.join(pkg, 'index.js')], { cwd: pkg, timeout: 30000 })
  expect({ code: out.code, stderr: out.stderr }).toEqual({ code: 0, stderr: '' })
  return JSON.parse(out.stdout)
}

/** The libc as Node reports it ("glibc 2.36"), on Linux. */
function libcHere() {
  const glibc = process.report.getReport().header.glibcVersionRuntime
  return glibc ? `glibc ${glibc}` : 'musl'
}

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-loader-'))
})

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('the addon is built here (the other cases are made from this name)', () => {
  expect(BUILT).toBeDefined()
})

test('it exports what binding.js exports, and index.js loads the addon through it', () => {
  const native = require('../../lib/native.js')
  expect(native).toBe(require('../../binding.js'))
  for (const name of ['Redlock', 'Lock', 'Cancellation', 'Watchdog']) expect(typeof native[name]).toBe('function')
  expect(fs.readFileSync(path.join(ROOT, 'index.js'), 'utf8')).toMatch(/^const native = require\('\.\/lib\/native\.js'\)$/m)
})

test('a copy of the package with its binary loads (the copy is complete)', async () => {
  const pkg = copyPackage(fs.readFileSync(path.join(ROOT, BUILT)))
  expect(await load(pkg)).toEqual({ loaded: true })
})

test('without the binary: ERR_REDLOCK_NATIVE_MISSING naming the platform, the file, the cause and the build', async () => {
  const pkg = copyPackage()
  const error = await load(pkg)
  const file = path.join(pkg, BUILT)
  const target = BUILT.replace(/^redlock-rs\./, '').replace(/\.node$/, '')

  expect(error).toMatchObject({
    loaded: false,
    isError: true,
    name: 'Error',
    code: 'ERR_REDLOCK_NATIVE_MISSING',
    platform: process.platform,
    arch: process.arch,
  })
  const where = process.platform === 'linux' ? `${process.platform}-${process.arch} (${libcHere()})` : `${process.platform}-${process.arch}`
  expect(error.message.split('\n')[0]).toBe(`redlock-rs: the native addon for ${where} is missing.`)
  if (process.platform === 'linux') expect(error.libc).toBe(libcHere().split(' ')[0])
  expect(error.files).toContain(file)
  expect(error.message).toContain(`  - ${file} (not found)`)
  expect(error.message).toContain(`  - the package redlock-rs-${target} (not installed)`)
  // The underlying errors, oldest first, first lines only (no "Require stack").
  expect(error.message).toContain(`Cause:\n  - Cannot find module './${BUILT}'\n`)
  expect(error.message).not.toContain('Require stack')
  expect(error.message).toContain('Rust toolchain')
  expect(error.message).toContain(`run \`npm install\` and then \`npm run build\`; that writes ${BUILT} next to index.js.`)
  // napi's generic text is the cause, not the message.
  expect(error.message).not.toContain('npm has a bug')
  expect(error.cause).toMatch(/^Cannot find native binding\. npm has a bug/)
  expect(error.chain).toContain(`Cannot find module './${BUILT}'`)
})

test('a binary that does not load: ERR_REDLOCK_NATIVE_LOAD with the dynamic loader\'s reason', async () => {
  const pkg = copyPackage(Buffer.from('this is not a shared library'))
  const error = await load(pkg)
  const file = path.join(pkg, BUILT)

  expect(error).toMatchObject({ loaded: false, isError: true, code: 'ERR_REDLOCK_NATIVE_LOAD' })
  expect(error.message.split('\n')[0]).toMatch(/^redlock-rs: the native addon for \S+.* could not be loaded\.$/)
  expect(error.message).toContain(`  - ${file} (present)`)
  // dlopen's own words name the file: "<file>: invalid ELF header", "file too short", …
  expect(error.message).toMatch(new RegExp(`Cause:\\n  - [^\\n]*${BUILT.replace(/\./g, '\\.')}[^\\n]*\\n`))
  expect(error.message).toContain('The file is there but does not load here')
  expect(error.message).toContain('npm run build')
  expect(error.cause).toMatch(/^Cannot find native binding/)
})
