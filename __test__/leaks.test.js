'use strict'

// No leaks: 100 000 acquire/release cycles at concurrency 64 in one child process, against 5
// redis-servers of this file's own, leave memory and open descriptors flat after warm-up, and
// quit() closes every socket the engine opened. Measured in a child (node --expose-gc) so
// that nothing else in the process moves the numbers; /proc/self/fd sees the engine's own
// sockets, which process._getActiveHandles() does not.

const path = require('node:path')
const { startServers, stopServers } = require('./support/servers')
const { runNode } = require('./support/shared')

const CYCLES = 100000
const WARM = 20000
let servers = []

beforeAll(async () => {
  servers = await startServers(5)
})

afterAll(async () => {
  await stopServers(servers)
})

async function runWorker() {
  const worker = path.join(__dirname, 'support', 'leak-worker.js')
  const env = { URLS: servers.map((s) => s.url).join(','), CYCLES: String(CYCLES), CONCURRENCY: '64', SAMPLE_EVERY: String(WARM) }
  const { code, signal, stdout, stderr } = await runNode(['--expose-gc', worker], { env, timeout: 280000 })
  if (code !== 0) throw new Error(`leak worker: exit ${code} ${signal}\n${stderr}`)
  return JSON.parse(stdout)
}

test(
  `${CYCLES} acquire/release cycles at concurrency 64: RSS and descriptors flat after ${WARM}, quit() closes every socket`,
  async () => {
    const r = await runWorker()
    const at = (n) => r.samples.find((s) => s.done === n)
    const warm = at(WARM)
    const end = at(CYCLES)
    console.log(
      `leaks: ${r.cycles} cycles in ${r.seconds} s; RSS ${r.samples.map((s) => `${s.done / 1000}k ${s.rssMB} MB`).join(', ')}; ` +
        `fds ${warm.fds} -> ${end.fds}; sockets baseline ${r.baseline.sockets}, running ${end.sockets}, after quit ${r.afterQuit.sockets}`,
    )
    expect(r.cycles).toBe(CYCLES)
    // A loaded machine may time out a node now and then; failures are counted, not leaked.
    const failed = Object.values(r.errors).reduce((a, b) => a + b, 0)
    expect(failed).toBeLessThan(CYCLES / 1000)
    expect(end.rssMB - warm.rssMB).toBeLessThan(30)
    expect(end.fds - warm.fds).toBeLessThanOrEqual(2)
    expect(end.sockets).toBeLessThanOrEqual(warm.sockets)
    expect(end.handles).toBeLessThanOrEqual(warm.handles)
    // quit(): every engine socket closed, nothing left for the event loop.
    expect(r.afterQuit.sockets).toBeLessThanOrEqual(r.baseline.sockets)
    expect(r.afterQuit.fds).toBeLessThanOrEqual(r.baseline.fds)
    expect(r.afterQuit.handles).toBeLessThanOrEqual(r.baseline.handles)
  },
  300000,
)
