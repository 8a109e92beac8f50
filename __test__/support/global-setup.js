'use strict'

const { startServers } = require('./servers')

const NEEDED = 5

module.exports = async function globalSetup() {
  const fromEnv = (process.env.REDLOCK_TEST_SERVERS || '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)

  let urls
  if (fromEnv.length) {
    if (fromEnv.length < NEEDED) {
      throw new Error(
        `REDLOCK_TEST_SERVERS lists ${fromEnv.length} server(s); at least ${NEEDED} comma-separated redis:// URLs are needed.`,
      )
    }
    urls = fromEnv
    globalThis.__REDLOCK_SERVERS__ = []
  } else {
    const servers = await startServers(NEEDED)
    globalThis.__REDLOCK_SERVERS__ = servers
    urls = servers.map((s) => s.url)
    // Safety net: never leave redis-server children behind if Jest exits abruptly.
    // (`pid` is undefined once a server has exited, so stale pids are never signalled.)
    process.once('exit', () => {
      for (const s of servers) {
        if (s.pid === undefined) continue
        try {
          process.kill(s.pid, 'SIGKILL')
        } catch {}
      }
    })
  }
  process.env.REDLOCK_TEST_URLS = urls.join(',')
}
