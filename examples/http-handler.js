#!/usr/bin/env node
'use strict'
// An HTTP handler (node's http module) that guards a shared resource with a lock.
//
// `POST /accounts/<id>/deposit?amount=N` reads the account's balance from a file, adds N and
// writes it back: a read-modify-write that loses money when two requests interleave, unless
// each holds the account's lock. The handler maps the lock's failures to HTTP: the account
// stayed locked by other requests through the retry window → 409 with Retry-After; no quorum of
// Redis nodes answers → 503.
//
//   node examples/http-handler.js
//
// starts two instances of the service in two processes, sends them 60 concurrent deposits of 1
// (clients retry a 409), and checks that the balance is 60. Servers: REDLOCK_SERVERS
// (comma-separated redis:// URLs), or three throwaway redis-servers started for the run.

const { fork } = require('node:child_process')
const fs = require('node:fs/promises')
const http = require('node:http')
const os = require('node:os')
const path = require('node:path')
const Redlock = require('..')
const { ResourceLockedError, ExecutionError } = Redlock

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** The service: deposits into and reads balances kept as files in `dir`. */
function createService(redlock, dir) {
  const balanceFile = (id) => path.join(dir, `${id}.json`)
  const readBalance = async (id) => {
    try {
      return JSON.parse(await fs.readFile(balanceFile(id), 'utf8')).balance
    } catch (error) {
      if (error.code === 'ENOENT') return 0
      throw error
    }
  }

  async function deposit(id, amount) {
    return redlock.using([`account:${id}`], 5000, { retryCount: 10, retryDelay: 50 }, async (signal) => {
      const balance = await readBalance(id)
      await sleep(5) // e.g. a call to a payment provider
      if (signal.aborted) throw signal.error // the lock was lost: do not write
      await fs.writeFile(balanceFile(id), JSON.stringify({ balance: balance + amount }))
      return balance + amount
    })
  }

  return http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://service')
    const match = /^\/accounts\/([\w-]+)(\/deposit)?$/.exec(url.pathname)
    const reply = (status, body, headers = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers })
      res.end(JSON.stringify(body))
    }
    if (!match) return reply(404, { error: 'not found' })
    const [, id, depositing] = match
    if (!depositing && req.method === 'GET') return reply(200, { balance: await readBalance(id) })
    const amount = Number(url.searchParams.get('amount'))
    if (!depositing || req.method !== 'POST' || !Number.isInteger(amount) || amount <= 0) {
      return reply(400, { error: 'POST /accounts/<id>/deposit?amount=<positive integer>' })
    }
    try {
      reply(200, { balance: await deposit(id, amount) })
    } catch (error) {
      if (error instanceof ResourceLockedError) {
        reply(409, { error: 'the account is busy, retry later' }, { 'retry-after': '1' })
      } else if (error instanceof ExecutionError) {
        reply(503, { error: 'the lock service is unavailable', code: error.code })
      } else {
        reply(500, { error: 'internal error' })
      }
    }
  })
}

function request(port, method, pathname) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: pathname }, (res) => {
      let body = ''
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(body) }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** A client that deposits 1, retrying (briefly, for the example) while the account is busy. */
async function depositOne(port, id, stats) {
  for (;;) {
    const { status, body } = await request(port, 'POST', `/accounts/${id}/deposit?amount=1`)
    stats[status] = (stats[status] || 0) + 1
    if (status === 200) return
    if (status !== 409) throw new Error(`deposit failed: ${status} ${JSON.stringify(body)}`)
    await sleep(50 + Math.random() * 50)
  }
}

async function main() {
  const { serversFor } = require('../scripts/redis-servers.js')
  const servers = await serversFor('REDLOCK_SERVERS', 3)
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'redlock-http-example-'))
  const instances = []
  try {
    for (let i = 0; i < 2; i++) {
      const child = fork(__filename, ['--serve', dir], { env: { ...process.env, SERVICE_URLS: servers.urls.join(',') } })
      instances.push(child)
      const port = await new Promise((resolve) => child.once('message', resolve))
      console.log(`service instance ${i + 1} listening on 127.0.0.1:${port}`)
      child.port = port
    }
    const id = `acct-${process.pid}`
    const stats = {}
    const DEPOSITS = 60
    await Promise.all(
      Array.from({ length: DEPOSITS }, (_, i) => depositOne(instances[i % 2].port, id, stats)),
    )
    const { body } = await request(instances[0].port, 'GET', `/accounts/${id}`)
    const answers = Object.entries(stats).map(([status, n]) => `${n}× ${status}`).join(', ')
    console.log(`${DEPOSITS} deposits of 1 through two instances; answers: ${answers}`)
    console.log(`balance: ${body.balance} (expected ${DEPOSITS})`)
    process.exitCode = body.balance === DEPOSITS ? 0 : 1
  } finally {
    for (const child of instances) child.kill()
    await servers.stop()
    await fs.rm(dir, { recursive: true, force: true })
  }
}

if (process.argv[2] === '--serve') {
  const redlock = new Redlock(process.env.SERVICE_URLS.split(','))
  const server = createService(redlock, process.argv[3])
  server.listen(0, '127.0.0.1', () => process.send(server.address().port))
  process.on('SIGTERM', () => server.close(() => redlock.quit()))
} else {
  main().catch((error) => {
    console.error(error)
    process.exitCode = 1
  })
}
