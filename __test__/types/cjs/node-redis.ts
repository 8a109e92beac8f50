// node-redis 5 values in a CommonJS module. (node-redis 5's own types need TypeScript 5.2+.)
import Redlock = require('redlock-rs')
import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis'

declare const typedClient: RedisClientType
declare const typedCluster: RedisClusterType

const members = new Set<Redlock.Client>()
  .add(createClient({ url: 'redis://127.0.0.1:6381', database: 2 }))
  .add(createClient({ socket: { host: '127.0.0.1', port: 6390, tls: true, ca: 'PEM', key: 'PEM', cert: 'PEM' } }))
  .add(typedClient)
  .add(createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7200' }], defaults: { password: 'secret' } }))
  .add(typedCluster)
export const redlock = new Redlock(members)
const client: RedisClientType = createClient()
const fromList = new Redlock([client, 'redis://127.0.0.1:6379'])
void fromList
