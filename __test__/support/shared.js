'use strict'

/** URLs of the shared servers prepared by global setup. */
function sharedUrls() {
  const raw = process.env.REDLOCK_TEST_URLS
  if (!raw) {
    throw new Error(
      'REDLOCK_TEST_URLS is not set: run the tests through Jest with jest.config.js ' +
        '(its globalSetup starts the shared redis-server instances).',
    )
  }
  return raw.split(',').map((s) => s.trim()).filter(Boolean)
}

let counter = 0

/** A resource name unique across test files and workers sharing the servers. */
function uniqueKey(prefix = 'key') {
  counter += 1
  const rand = Math.random().toString(36).slice(2, 10)
  return `${prefix}:${process.pid}:${counter}:${Date.now().toString(36)}:${rand}`
}

module.exports = { sharedUrls, uniqueKey }
