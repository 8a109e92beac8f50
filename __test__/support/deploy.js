'use strict'

// Servers shaped like real deployments, for the TLS, ACL and client-object tests: a
// redis-server started with any extra arguments (TLS ports, ACL users), throwaway
// certificates made with openssl, and a check that no secret shows in what a user sees.

const { spawn, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const { freePort, command } = require('./servers.js')

const sleep = (ms) => new Promise((r) => setTimeout(r, ms))

/**
 * A redis-server on loopback with `args` added. Always has a plain port (`url`) for the test
 * to look at keys; returns `{ url, port, stop() }` plus whatever `ports` asked for.
 */
async function startRedis(args = [], { password } = {}) {
  const port = await freePort()
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-deploy-'))
  const proc = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let output = ''
  proc.stdout.on('data', (c) => (output += c))
  proc.stderr.on('data', (c) => (output += c))
  const exited = new Promise((r) => proc.once('exit', r))
  const auth = password ? `:${encodeURIComponent(password)}@` : ''
  const url = `redis://${auth}127.0.0.1:${port}`
  const deadline = Date.now() + 5000
  while (!/Ready to accept connections/.test(output)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL')
      throw new Error(`redis-server ${args.join(' ')} did not start:\n${output}`)
    }
    await sleep(20)
  }
  return {
    port,
    url,
    command: (...a) => command(url, ...a),
    async stop() {
      if (proc.exitCode === null) proc.kill('SIGTERM')
      await exited
      fs.rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * Throwaway certificates in a temp dir: a CA, a server certificate for `localhost` and
 * 127.0.0.1, a client certificate, and a second, unrelated CA. Returns the file paths and
 * `read(name)` for their PEM text.
 */
function makeCertificates() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'redlock-rs-tls-'))
  const run = (...args) => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' })
    if (r.error || r.status !== 0) {
      throw new Error(`openssl ${args.join(' ')} failed: ${(r.error && r.error.message) || r.stderr}`)
    }
  }
  const ca = (name) => {
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`,
      '-days', '2', '-subj', `/CN=${name}`)
  }
  const issue = (name, cn, ext) => {
    run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`)
    fs.writeFileSync(path.join(dir, `${name}.ext`), ext)
    run('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial',
      '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`)
  }
  ca('ca')
  ca('other-ca')
  issue('server', 'localhost', 'subjectAltName=DNS:localhost,DNS:redis.test,IP:127.0.0.1\n')
  issue('client', 'redlock-client', 'extendedKeyUsage=clientAuth\n')
  const file = (name) => path.join(dir, name)
  return {
    dir,
    file,
    read: (name) => fs.readFileSync(file(name), 'utf8'),
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  }
}

/** The arguments that make a server listen for TLS on `tlsPort` with these certificates. */
function tlsArgs(certs, tlsPort, { authClients = false } = {}) {
  return [
    '--tls-port', String(tlsPort),
    '--tls-cert-file', certs.file('server.crt'),
    '--tls-key-file', certs.file('server.key'),
    '--tls-ca-cert-file', certs.file('ca.crt'),
    '--tls-auth-clients', authClients ? 'yes' : 'no',
  ]
}

/** Everything a user can read of an error: message, code, and every attempt's votes. */
function visible(error) {
  return JSON.stringify({
    message: error && error.message,
    code: error && error.code,
    stack: error && error.stack,
    attempts: ((error && error.attempts) || []).map((a) => ({
      votesFor: [...a.votesFor],
      votesAgainst: [...a.votesAgainst].map(([node, e]) => [node, e.code, e.message]),
    })),
  })
}

/** Whether `openssl` is on PATH (the TLS tests make their certificates with it). */
function haveOpenssl() {
  const r = spawnSync('openssl', ['version'], { stdio: 'ignore' })
  return !r.error && r.status === 0
}

module.exports = { startRedis, makeCertificates, tlsArgs, visible, haveOpenssl, freePort, sleep }
