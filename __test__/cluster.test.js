'use strict'

// A Redis Cluster as one quorum member is not supported yet: every way of passing one is
// refused by the constructor with a message that says so, before anything is sent. (Without
// this, a cluster client would be read as a single server at its defaults.)

const Redlock = require('..')

describe('Redis Cluster entries', () => {
  test('ioredis Cluster, node-redis cluster and cluster options are refused, saying why', () => {
    const IORedis = require('ioredis')
    const { createCluster } = require('redis')
    const io = new IORedis.Cluster([{ host: '127.0.0.1', port: 7000 }], { lazyConnect: true })
    const entries = [
      io,
      createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7000' }] }),
      { host: '127.0.0.1', port: 7000, cluster: true },
      { cluster: { nodes: ['redis://127.0.0.1:7000'] } },
      { rootNodes: [{ url: 'redis://127.0.0.1:7000' }] },
    ]
    try {
      for (const entry of entries) {
        let thrown
        try {
          new Redlock(['redis://127.0.0.1:6999', entry])
        } catch (e) {
          thrown = e
        }
        expect(thrown).toBeInstanceOf(TypeError)
        expect(thrown.code).toBe('ERR_INVALID_ARG_VALUE')
        expect(thrown.message).toContain("'clients[1]'")
        expect(thrown.message).toContain('Redis Cluster as a quorum member is not supported yet')
      }
      // cluster: false is an ordinary server.
      const plain = new Redlock([{ host: '127.0.0.1', port: 7000, cluster: false }])
      expect(plain.nodes).toEqual(['127.0.0.1:7000/0'])
      return plain.quit()
    } finally {
      io.disconnect()
    }
  })
})
