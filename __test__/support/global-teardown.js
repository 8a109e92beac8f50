'use strict'

const { stopServers } = require('./servers')

module.exports = async function globalTeardown() {
  const servers = globalThis.__REDLOCK_SERVERS__ || []
  globalThis.__REDLOCK_SERVERS__ = []
  await stopServers(servers)
}
