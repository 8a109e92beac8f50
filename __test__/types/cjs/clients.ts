// A CommonJS module's client values: ioredis 5 and 4 clients and clusters, URLs and option
// objects, in a Set; and what must not compile. node-redis: node-redis.ts.
import Redlock = require('redlock-rs')
import Redis, { Cluster } from 'ioredis'
import IORedis4 = require('ioredis4')

// Added one by one: a list literal mixing the libraries compiles too, but slowly (TypeScript
// compares each pair of those huge types).
const members = new Set<Redlock.Client>()
  .add(new Redis(6379, '127.0.0.1'))
  .add(new Cluster([{ host: '127.0.0.1', port: 7000 }]))
  .add(new IORedis4({ host: '127.0.0.1', port: 6380, db: 1 }))
  .add(new IORedis4.Cluster(['redis://127.0.0.1:7100']))
  .add('redis://:secret@127.0.0.1:6382/4')
  .add({ host: '127.0.0.1', port: 6383, username: 'app', password: 'secret', keyPrefix: 'app:' })
  .add({ cluster: { nodes: ['127.0.0.1:7300'] }, natMap: { '10.0.0.4:7300': { host: 'localhost', port: 17300 } } })

export const redlock = new Redlock(members, {
  driftFactor: 0.01,
  retryCount: -1,
  retryStrategy: 'exponential',
  maxRetryDelay: 2000,
  requestTimeout: 100,
})
const fromList = new Redlock([new Redis(), new Redis({ port: 6380 })])

// @ts-expect-error: a single URL is not a list of clients
new Redlock('redis://127.0.0.1:6379')
// @ts-expect-error: a Map's entries are [key, client] pairs, not clients
new Redlock(new Map([['main', new Redis()]]))
// @ts-expect-error: an unknown setting (refused with a TypeError at run time)
new Redlock(['redis://127.0.0.1:6379'], { retryCont: 3 })
// @ts-expect-error: db is a number
new Redlock(['redis://127.0.0.1:6379'], { db: '1' })

void fromList
