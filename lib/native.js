'use strict'
// Loads the native addon through napi's generated binding.js. When that fails, napi's own
// error says only "Cannot find native binding. npm has a bug related to optional
// dependencies…", whatever the reason: this loader replaces it with one that says which
// platform this is, which files were looked for (and whether they exist), what went wrong
// with each (the original error is kept as `cause`), and how to build the addon.
//
// Nothing here runs unless the load fails, so a successful load costs no file system or
// environment access beyond binding.js's own (this matters under Deno's permissions).

const path = require('node:path')

const PACKAGE_DIR = path.join(__dirname, '..')

let binding
try {
  binding = require('../binding.js')
} catch (error) {
  throw nativeLoadError(error)
}
module.exports = binding

/** Runs `fn`, returning `fallback` if it throws (a Deno permission, a missing API, …). */
function attempt(fn, fallback) {
  try {
    return fn()
  } catch {
    return fallback
  }
}

/** On Linux, `{ family: 'glibc' | 'musl' | null, version }`, found as binding.js finds it. */
function linuxLibc() {
  const header = attempt(() => process.report.getReport().header, null)
  if (header && header.glibcVersionRuntime) return { family: 'glibc', version: header.glibcVersionRuntime }
  const ldd = attempt(() => require('node:fs').readFileSync('/usr/bin/ldd', 'utf8'), null)
  if (ldd !== null) return { family: ldd.includes('musl') ? 'musl' : 'glibc', version: null }
  return { family: null, version: null }
}

/**
 * The platform names (napi's `<platform>-<arch>[-<abi>]`) binding.js tries here, in its order.
 * A platform napi does not know gets the name a build for it would have.
 */
function targetsFor(platform, arch, libc) {
  const musl = libc.family === 'musl'
  switch (platform) {
    case 'linux':
      if (arch === 'arm') return [musl ? 'linux-arm-musleabihf' : 'linux-arm-gnueabihf']
      if (arch === 'ppc64' || arch === 's390x') return [`linux-${arch}-gnu`]
      return [`linux-${arch}-${musl ? 'musl' : 'gnu'}`]
    case 'darwin':
      return ['darwin-universal', `darwin-${arch}`]
    case 'win32': {
      const variables = attempt(() => process.config.variables, {}) || {}
      const gnu = arch === 'x64' && (variables.shlib_suffix === 'dll.a' || variables.node_target_type === 'shared_library')
      return [`win32-${arch}-${gnu ? 'gnu' : 'msvc'}`]
    }
    case 'android':
      return [arch === 'arm' ? 'android-arm-eabi' : `android-${arch}`]
    default:
      return [`${platform}-${arch}`]
  }
}

/** The messages of `error` and its causes, oldest first (binding.js chains them newest first). */
function causeMessages(error) {
  const messages = []
  const seen = new Set()
  for (let e = error; e !== null && e !== undefined && !seen.has(e) && messages.length < 32; e = e.cause) {
    seen.add(e)
    const text = attempt(() => (typeof e.message === 'string' ? e.message : String(e)), 'unknown error')
    // A MODULE_NOT_FOUND message goes on with its "Require stack:": the first line is the point.
    messages.push(text.split('\n')[0])
    if (typeof e !== 'object') break
  }
  return messages.reverse()
}

function nativeLoadError(cause) {
  const platform = process.platform
  const arch = process.arch
  const libc = platform === 'linux' ? linuxLibc() : null
  const manifest = attempt(() => require('../package.json'), {})
  const binaryName = (manifest.napi && manifest.napi.binaryName) || 'redlock-rs'
  const targets = targetsFor(platform, arch, libc || {})
  const exists = (file) => attempt(() => require('node:fs').existsSync(file), false)
  const files = targets.map((target) => path.join(PACKAGE_DIR, `${binaryName}.${target}.node`))
  const found = files.filter(exists)
  const override = attempt(() => process.env.NAPI_RS_NATIVE_LIBRARY_PATH, undefined)

  // napi's generic summary says nothing the causes do not: leave it out of the list.
  const messages = causeMessages(cause).filter((m) => !m.startsWith('Cannot find native binding.'))
  const permission = messages.find((m) => /\bRequires \w+ access\b|\bNotCapable\b|PermissionDenied/.test(m))

  const where =
    `${platform}-${arch}` +
    (libc ? ` (${libc.family ? `${libc.family}${libc.version ? ` ${libc.version}` : ''}` : 'libc unknown'})` : '')
  const lines = []
  if (found.length || permission) {
    lines.push(`redlock-rs: the native addon for ${where} could not be loaded.`)
  } else {
    lines.push(`redlock-rs: the native addon for ${where} is missing.`)
  }
  lines.push('Looked for:')
  if (override) lines.push(`  - ${override} (NAPI_RS_NATIVE_LIBRARY_PATH)`)
  for (const file of files) lines.push(`  - ${file} (${found.includes(file) ? 'present' : 'not found'})`)
  for (const target of targets) {
    const name = `${binaryName}-${target}`
    const installed = attempt(() => Boolean(require.resolve(`${name}/package.json`)), false)
    lines.push(`  - the package ${name} (${installed ? 'installed' : 'not installed'})`)
  }
  lines.push('Cause:')
  for (const message of messages.length ? messages : ['unknown']) lines.push(`  - ${message}`)
  const build =
    'in a clone of the redlock-rs repository, with a Rust toolchain (https://rustup.rs) and ' +
    `Node.js 20+, run \`npm install\` and then \`npm run build\`; that writes ` +
    `${path.basename(files[files.length - 1])} next to index.js.`
  if (permission) {
    lines.push(
      'The runtime refused a permission that loading a native addon needs. Under Deno, run with ' +
        '--allow-ffi --allow-env --allow-read (the README lists the narrowest flags).',
    )
  } else if (found.length) {
    lines.push(
      'The file is there but does not load here (built for another platform or libc, or damaged?). ' +
        `Build it on this machine: ${build}`,
    )
  } else {
    lines.push(`To build it: ${build}`)
  }

  const error = new Error(lines.join('\n'), { cause })
  error.code = found.length || permission ? 'ERR_REDLOCK_NATIVE_LOAD' : 'ERR_REDLOCK_NATIVE_MISSING'
  error.platform = platform
  error.arch = arch
  if (libc) error.libc = libc.family
  error.files = files
  return error
}
