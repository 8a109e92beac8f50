'use strict'

// The packed tarball, as a consumer gets it: it carries the built addon and the `redlock`
// command, installs offline with no script run, and works at once.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { valuesOnAll } = require('./support/servers')
const { sharedUrls, uniqueKey } = require('./support/shared')

const ROOT = path.resolve(__dirname, '..')
const urls = sharedUrls()
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall', 'prepare']

function run(command, args, options) {
  const result = spawnSync(command, args, { encoding: 'utf8', timeout: 120000, ...options })
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stdout}\n${result.stderr}`)
  }
  return result
}

let dir
let tarball
let packedFiles
let app

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-pack-'))
  // Packs the tree as it is: the binary the other suites load is the one shipped.
  const packed = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: ROOT })
  const [info] = JSON.parse(packed.stdout)
  tarball = path.join(dir, info.filename)
  packedFiles = info.files.map((f) => f.path)
  app = path.join(dir, 'app')
  fs.mkdirSync(app)
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
}, 120000)

afterAll(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true })
})

test('the tarball carries the built addon, the front door and the redlock command, and no sources', () => {
  const files = packedFiles
  expect(files).toEqual(expect.arrayContaining(['index.js', 'index.d.ts', 'binding.js', 'bin/redlock.js', 'lib/resp.js']))
  expect(files.some((f) => /^redlock-rs\.[\w-]+\.node$/.test(f))).toBe(true)
  expect(files.some((f) => f.startsWith('src/') || f.startsWith('crates/') || f.startsWith('__test__/'))).toBe(false)
})

test("the README's and docs' links to files work from the tarball: each names a packed file", () => {
  const documents = packedFiles.filter((f) => f === 'README.md' || /^docs\/.+\.md$/.test(f))
  expect(documents).toEqual(expect.arrayContaining(['README.md', 'docs/SAFETY.md', 'docs/WAITING.md']))
  const broken = []
  for (const document of documents) {
    const text = fs.readFileSync(path.join(ROOT, document), 'utf8')
    for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target) || target.startsWith('#')) continue
      const file = path.posix.normalize(path.posix.join(path.posix.dirname(document), target.split('#')[0]))
      if (!packedFiles.includes(file)) broken.push(`${document}: ${target}`)
    }
  }
  expect(broken).toEqual([])
})

test('the packed package.json declares no script npm would run on install', () => {
  const manifest = JSON.parse(run('tar', ['-xzOf', tarball, 'package/package.json']).stdout)
  for (const name of INSTALL_SCRIPTS) expect(manifest.scripts?.[name]).toBeUndefined()
  // npm would add `node-gyp rebuild` as an install script for a binding.gyp.
  expect(packedFiles).not.toContain('binding.gyp')
  expect(manifest.bin).toEqual({ redlock: 'bin/redlock.js' })
})

test('installs offline into a fresh project without running a script, then takes and releases a lock', () => {
  const installed = run('npm', ['install', '--offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], {
    cwd: app,
  })
  const log = installed.stdout + installed.stderr
  expect(log).not.toMatch(/install-scripts|> redlock-rs@/)

  const key = uniqueKey('packed')
  const used = run(
    process.execPath,
    [
      '-e',
      `const Redlock = require('redlock-rs')
       const redlock = new Redlock(process.env.URLS.split(','))
       redlock.acquire([process.env.KEY], 5000).then(async (lock) => {
         console.log(lock.id)
         await lock.release()
         await redlock.quit()
       })`,
    ],
    { cwd: app, env: { ...process.env, URLS: urls.join(','), KEY: key } },
  )
  expect(used.stdout.trim()).toMatch(/^[0-9a-f]{32}$/)
  return expect(valuesOnAll(urls, key)).resolves.toEqual(urls.map(() => null))
}, 120000)

test('the installed package links the redlock command', () => {
  const bin = path.join(app, 'node_modules', '.bin', 'redlock')
  const version = run(bin, ['--version'], { cwd: app })
  expect(version.stdout.trim()).toBe(require('../package.json').version)
})
