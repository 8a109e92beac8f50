// node-redis 5 values in an ES module: `createClient()`, a value typed `RedisClientType`,
// `createCluster()` and `RedisClusterType`. (node-redis 5's own types need TypeScript 5.2+.)
import Redlock from 'redlock-rs'
import { createClient, createCluster, type RedisClientType, type RedisClusterType } from 'redis'

declare const typedClient: RedisClientType
declare const typedCluster: RedisClusterType

const nodeRedis = createClient({ url: 'redis://127.0.0.1:6382' })
// TLS options under `socket` (node-redis 5's `socket.tls.key` type was refused before).
const nodeRedisTls = createClient({ socket: { host: 'localhost', port: 6390, tls: true, key: 'PEM', cert: 'PEM' } })
const nodeRedisCluster = createCluster({ rootNodes: [{ url: 'redis://127.0.0.1:7200' }] })

new Redlock([nodeRedis])
new Redlock([nodeRedisTls])
new Redlock([typedClient])
new Redlock([typedCluster])
new Redlock([nodeRedis, nodeRedisCluster])
new Redlock([typedClient, typedCluster, 'redis://127.0.0.1:6379'])
new Redlock(new Set([nodeRedis.duplicate(), nodeRedisTls]))
