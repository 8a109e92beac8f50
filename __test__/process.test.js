'use strict'

// Process behaviour (SPEC §5), in child `node -e` processes: they exit on their own, a caught
// failure leaves no unhandled rejection, node failures without an 'error' listener do not
// crash, and nothing touches the network before first use.

const net = require('node:net')
const path = require('node:path')
const { freePort } = require('./support/servers')
const { sharedUrls, runNode: runChild } = require('./support/shared')

const PKG = path.resolve(__dirname, '..')
const urls = sharedUrls()
const CHILD_TIMEOUT = 20000

/**
 * Runs `code` in `node -e`, with the package path and shared URLs in the environment.
 * Resolves { code, signal, stdout, stderr, ms }; a child still running after 20 s is killed.
 */
function runNode(code, { env = {}, onSpawn } = {}) {
  const childEnv = { REDLOCK_PKG: PKG, REDLOCK_URLS: urls.join(','), ...env }
  return runChild(['-e', code], { env: childEnv, stdin: 'pipe', timeout: CHILD_TIMEOUT, onSpawn })
}

function expectCleanExit(result, { within = 10000 } = {}) {
  const info = `exit ${result.code} signal ${result.signal} after ${result.ms} ms\nstdout: ${result.stdout}\nstderr: ${result.stderr}`
  if (result.code !== 0 || result.signal !== null) throw new Error(`child did not exit cleanly: ${info}`)
  if (result.ms >= within) throw new Error(`child took too long to exit: ${info}`)
  expect(result.stderr).not.toMatch(/unhandled/i)
  expect(result.stdout).not.toMatch(/unhandled/i)
}

const PRELUDE = `
  const Redlock = require(process.env.REDLOCK_PKG)
  const urls = process.env.REDLOCK_URLS.split(',')
  process.on('exit', (code) => console.log('exiting with ' + code))
`

test('(a) a Redlock created and never used: the process exits by itself, code 0', async () => {
  const result = await runNode(`${PRELUDE}
    const redlock = new Redlock(urls)
    console.log('constructed', redlock.nodes.length)
  `)
  expectCleanExit(result, { within: 8000 })
  expect(result.stdout).toContain('constructed 5')
})

test('(b) acquire + release without quit(): the process exits by itself, code 0', async () => {
  const result = await runNode(`${PRELUDE}
    const redlock = new Redlock(urls)
    redlock.acquire(['process-b:' + process.pid + ':' + Date.now()], 5000).then(async (lock) => {
      await lock.release()
      console.log('released')
    })
  `)
  expectCleanExit(result)
  expect(result.stdout).toContain('released')
})

test('(b2) several locks and an extend, no quit(): still exits by itself', async () => {
  const result = await runNode(`${PRELUDE}
    const redlock = new Redlock(urls)
    ;(async () => {
      const locks = await Promise.all([1, 2, 3].map((i) => redlock.acquire('process-b2:' + i + ':' + process.pid + ':' + Date.now(), 5000)))
      await locks[0].extend(8000)
      await Promise.all(locks.map((l) => l.release()))
      console.log('done')
    })()
  `)
  expectCleanExit(result)
  expect(result.stdout).toContain('done')
})

test('(c) acquire + quit(): exits 0', async () => {
  const result = await runNode(`${PRELUDE}
    const redlock = new Redlock(urls)
    ;(async () => {
      const lock = await redlock.acquire(['process-c:' + process.pid + ':' + Date.now()], 5000)
      await lock.release()
      await redlock.quit()
      console.log('quit')
    })()
  `)
  expectCleanExit(result)
  expect(result.stdout).toContain('quit')
})

test('(d) all nodes down, retryCount 0: the rejection is caught, exit 0, no unhandled warning', async () => {
  const ports = [await freePort(), await freePort(), await freePort()]
  const result = await runNode(
    `${PRELUDE}
    const down = process.env.DOWN_PORTS.split(',').map((p) => 'redis://127.0.0.1:' + p)
    const redlock = new Redlock(down, { retryCount: 0 })
    redlock.acquire(['process-d'], 5000).then(
      () => console.log('unexpectedly acquired'),
      (e) => console.log('caught', e.name, e.code, e instanceof Redlock.ExecutionError),
    )
  `,
    { env: { DOWN_PORTS: ports.join(',') } },
  )
  expectCleanExit(result)
  expect(result.stdout).toContain('caught ExecutionError ERR_REDLOCK_QUORUM true')
})

test("(e) node failures with no 'error' listener do not crash the process", async () => {
  const ports = [await freePort(), await freePort(), await freePort()]
  const result = await runNode(
    `${PRELUDE}
    const down = process.env.DOWN_PORTS.split(',').map((p) => 'redis://127.0.0.1:' + p)
    ;(async () => {
      // A minority down: acquired despite node errors nobody listens to.
      const some = new Redlock([...down.slice(0, 2), ...urls.slice(0, 3)], { retryCount: 0 })
      const lock = await some.acquire(['process-e:' + process.pid + ':' + Date.now()], 5000)
      await lock.release()
      console.log('acquired with 2 nodes down')
      // All down: rejected, caught; the node errors still do not crash.
      const none = new Redlock(down, { retryCount: 1, retryDelay: 10 })
      await none.acquire(['process-e2'], 5000).catch((e) => console.log('caught', e.code))
      // using() reports a failed release as an event: no listener either.
      const usingOne = new Redlock([...down.slice(0, 2), ...urls.slice(0, 3)], { retryCount: 0 })
      await usingOne.using(['process-e3:' + process.pid + ':' + Date.now()], 5000, async () => 'ran')
      console.log('using done')
      setTimeout(() => console.log('still alive'), 200)
    })()
  `,
    { env: { DOWN_PORTS: ports.join(',') } },
  )
  expectCleanExit(result)
  expect(result.stdout).toContain('acquired with 2 nodes down')
  expect(result.stdout).toContain('caught ERR_REDLOCK_QUORUM')
  expect(result.stdout).toContain('using done')
  expect(result.stdout).toContain('still alive')
})

test('(f) requiring the package and constructing a Redlock opens no TCP connection; acquire does', async () => {
  let connections = 0
  const sockets = new Set()
  const server = net.createServer((socket) => {
    connections += 1
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = server.address().port
  try {
    let countBeforeUse
    const result = await runNode(
      `${PRELUDE}
      const redlock = new Redlock(['redis://127.0.0.1:' + process.env.COUNT_PORT], {
        retryCount: 0,
        requestTimeout: 200,
      })
      console.log('constructed')
      process.stdin.once('data', () => {
        process.stdin.destroy()
        redlock.acquire(['process-f'], 5000).then(
          () => console.log('acquired?'),
          (e) => console.log('rejected', e.code),
        ).finally(() => redlock.quit())
      })
    `,
      {
        env: { COUNT_PORT: String(port) },
        onSpawn(child) {
          let told = false
          child.stdout.on('data', (d) => {
            if (told || !String(d).includes('constructed')) return
            told = true
            setTimeout(() => {
              countBeforeUse = connections
              child.stdin.write('go\n')
            }, 300)
          })
        },
      },
    )
    expect(result.stdout).toContain('constructed')
    expect(countBeforeUse).toBe(0)
    expect(result.stdout).toContain('rejected ERR_REDLOCK_QUORUM')
    expect(connections).toBeGreaterThanOrEqual(1)
    expectCleanExit(result)
  } finally {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})

test('(g) a node that accepts but never answers does not keep the process alive (no quit)', async () => {
  const sockets = new Set()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve))
  try {
    const result = await runNode(
      `${PRELUDE}
      const silent = 'redis://127.0.0.1:' + process.env.SILENT_PORT
      const redlock = new Redlock([silent, ...urls.slice(0, 2)], { retryCount: 0, requestTimeout: 200 })
      redlock.acquire(['process-g:' + process.pid + ':' + Date.now()], 5000)
        .then((lock) => lock.release())
        .then(() => console.log('released'), (e) => console.log('failed', e.code))
    `,
      { env: { SILENT_PORT: String(server.address().port) } },
    )
    expectCleanExit(result)
    expect(result.stdout).toContain('released')
  } finally {
    for (const s of sockets) s.destroy()
    await new Promise((resolve) => server.close(resolve))
  }
})
