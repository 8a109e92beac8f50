#!/usr/bin/env node
'use strict'
// The type tests: compiles (never runs) each test project below with the newest TypeScript
// (the `typescript` devDependency) and the oldest one supported (4.7, the `typescript-4.7`
// alias), so that index.d.ts and sesame.d.ts are checked the way users compile against them.
//
// The projects import 'redlock-rs' and 'redlock-rs/sesame' by name, resolved through the
// package.json "exports" map as for an installed package: __test__/types/node_modules/redlock-rs
// is a link to the repository, made here (node_modules/ is ignored by git).
//
// TypeScript 4.7 compiles against @types/node 20.14 (the `@types-ts4.7/node` alias, via
// `typeRoots`): the current @types/node needs TypeScript 5.3. node-redis 5's own types need
// TypeScript 5.2, so its values are checked with the newest TypeScript only.

const { spawn } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const here = __dirname
const root = path.join(here, '..', '..')

const newest = 'typescript'
const oldest = 'typescript-4.7'

/** [TypeScript package, project, what it stands for]. */
const runs = [
  [newest, 'esm/tsconfig.disposable.json', '"type": "module", NodeNext, lib esnext.disposable (await using)'],
  [newest, 'esm/tsconfig.bundler.json', '"type": "module", moduleResolution bundler, module esnext'],
  [newest, 'cjs/tsconfig.json', 'CommonJS package, NodeNext, no esnext.disposable, checkJs'],
  [newest, 'cjs/tsconfig.bundler.json', 'CommonJS package, moduleResolution bundler, module preserve'],
  [newest, 'tsconfig.json', 'module commonjs, node10 resolution, no esModuleInterop (usage.ts)'],
  [oldest, 'esm/tsconfig.ts4.7.json', '"type": "module", NodeNext'],
  [oldest, 'cjs/tsconfig.ts4.7.json', 'CommonJS package, NodeNext, checkJs'],
  [oldest, 'tsconfig.ts4.7.json', 'module commonjs, node10 resolution, no esModuleInterop (usage.ts)'],
]

/** Links __test__/types/node_modules/redlock-rs to the repository, unless it already is. */
function linkPackage() {
  const link = path.join(here, 'node_modules', 'redlock-rs')
  try {
    if (fs.realpathSync(link) === fs.realpathSync(root)) return
    fs.rmSync(link, { recursive: false, force: true })
  } catch {
    // Missing (or dangling): made below.
  }
  fs.mkdirSync(path.dirname(link), { recursive: true })
  if (process.platform === 'win32') fs.symlinkSync(root, link, 'junction')
  else fs.symlinkSync(path.relative(path.dirname(link), root), link)
}

function tscOf(pkg) {
  let manifest
  try {
    manifest = require.resolve(`${pkg}/package.json`, { paths: [root] })
  } catch {
    console.error(`The devDependency ${pkg} is not installed: run \`npm ci\` (or \`npm install\`) first.`)
    process.exit(1)
  }
  const { version } = JSON.parse(fs.readFileSync(manifest, 'utf8'))
  return { tsc: path.join(path.dirname(manifest), 'bin', 'tsc'), version }
}

function compile([pkg, project, title]) {
  const { tsc, version } = tscOf(pkg)
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [tsc, '-p', path.join(here, project), '--pretty', 'false'], {
      cwd: here,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.on('data', (chunk) => (output += chunk))
    child.stderr.on('data', (chunk) => (output += chunk))
    child.on('error', (error) => resolve({ ok: false, line: `could not run ${tsc}: ${error.message}`, output }))
    child.on('close', (status) => {
      const seconds = ((Date.now() - started) / 1000).toFixed(1)
      const line = `${status === 0 ? 'ok  ' : 'FAIL'} TypeScript ${version}  ${project}  (${title})  ${seconds} s`
      resolve({ ok: status === 0, line, output })
    })
  })
}

/**
 * What an editor shows: hovering a setting, or an error class's `code`, shows the doc comment
 * written where it is defined (the binding's Rust doc comments, through binding.d.ts, for the
 * settings). Asked of TypeScript's language service, as an editor asks it.
 */
function checkDocs() {
  const ts = require(newest)
  const probe = path.join(here, 'hover-probe.ts')
  const text = [
    "import Redlock = require('redlock-rs')",
    'const settings: Redlock.Settings = { driftFactor: 0.02, requestTimeout: 100 }',
    'const code = Redlock.ResourceLockedError.code',
    '',
  ].join('\n')
  const read = (file) => (file === probe ? text : ts.sys.readFile(file))
  const service = ts.createLanguageService({
    getScriptFileNames: () => [probe],
    getScriptVersion: () => '1',
    getScriptSnapshot: (file) => {
      const content = read(file)
      return content === undefined ? undefined : ts.ScriptSnapshot.fromString(content)
    },
    getCurrentDirectory: () => here,
    getCompilationSettings: () => ({ module: ts.ModuleKind.CommonJS, strict: true, types: ['node'] }),
    getDefaultLibFileName: ts.getDefaultLibFilePath,
    fileExists: (file) => file === probe || ts.sys.fileExists(file),
    readFile: read,
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories,
  })
  const hover = (word) => {
    const info = service.getQuickInfoAtPosition(probe, text.indexOf(word))
    const shown = info ? `${ts.displayPartsToString(info.displayParts)} ${ts.displayPartsToString(info.documentation)}` : ''
    return shown.replace(/\s+/g, ' ')
  }
  const expected = [
    // Words of the Rust doc comments (src/settings.rs) only.
    ['driftFactor', 'it is subtracted from the validity. Default 0.01'],
    ['requestTimeout', 'the connect included, in ms'],
    ['ResourceLockedError', 'ERR_REDLOCK_RESOURCE_LOCKED`: another holder'],
  ]
  const missing = expected.filter(([word, shown]) => !hover(word).includes(shown))
  for (const [word, shown] of missing) console.log(`FAIL hovering ${word} does not show ${shown}: ${hover(word)}`)
  if (missing.length === 0) console.log('ok   hovering a setting shows its doc comment from binding.d.ts')
  return missing.length === 0
}

async function main() {
  linkPackage()
  if (!checkDocs()) process.exitCode = 1
  const queue = runs.slice()
  const results = []
  const workers = Array.from({ length: Math.max(1, Math.min(os.availableParallelism(), 2)) }, async () => {
    while (queue.length > 0) {
      const run = queue.shift()
      const result = await compile(run)
      console.log(result.line)
      if (!result.ok) process.stdout.write(result.output.replace(/^/gm, '     '))
      results.push(result)
    }
  })
  await Promise.all(workers)
  const failed = results.filter((r) => !r.ok).length
  console.log(`type tests: ${results.length - failed} of ${results.length} projects compiled`)
  process.exit(failed === 0 && !process.exitCode ? 0 : 1)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
