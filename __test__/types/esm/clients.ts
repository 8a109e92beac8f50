// An ES module's client values: ioredis 5 and 4 clients and clusters, URLs and option
// objects, in any iterable; and what must not compile. node-redis: node-redis.ts.
import Redlock, { type Client } from 'redlock-rs'
import { Redis, Cluster } from 'ioredis'
import IORedis4 from 'ioredis4'

const ioredis = new Redis({ host: '127.0.0.1', port: 6379, keyPrefix: 'app:' })
const ioredisFromUrl = new Redis('redis://127.0.0.1:6380/2')
const ioredisCluster = new Cluster([{ host: '127.0.0.1', port: 7000 }], { keyPrefix: 'app:' })
const ioredis4 = new IORedis4(6381, '127.0.0.1')
const ioredis4Cluster = new IORedis4.Cluster([{ host: '127.0.0.1', port: 7100 }])

// Each kind of client alone, a library's client and cluster together, and every other kind
// of member in one list. (A list literal mixing the libraries compiles too, but slowly:
// TypeScript compares each pair of those huge types.)
new Redlock([ioredis])
new Redlock([ioredisFromUrl])
new Redlock([ioredis4])
new Redlock([ioredis, ioredisCluster])
new Redlock([ioredis4, ioredis4Cluster])
export const everyOtherKind = new Redlock([
  ioredis,
  'rediss://user:secret@127.0.0.1:6400/3',
  { host: '127.0.0.1', port: 6401, db: 1, password: 'secret', tls: { ca: 'PEM', rejectUnauthorized: false } },
  { url: 'redis://127.0.0.1:6402', keyPrefix: 'app:' },
  ['redis://127.0.0.1:7300', 'redis://127.0.0.1:7301'],
  { cluster: true, nodes: ['127.0.0.1:7400', 7401, { host: '127.0.0.1', port: 7402 }] },
  { rootNodes: [{ url: 'redis://127.0.0.1:7500' }], defaults: { password: 'secret' } },
])

const members: Client[] = ['redis://127.0.0.1:6379']
members.push(ioredis, ioredisCluster, ioredis4)
const fromSet = new Redlock(new Set(members), { retryCount: 0 })
const fromSetOfIoredis = new Redlock(new Set([ioredis, ioredisCluster]))
const fromIterator = new Redlock(members.values())
function* generated(): Generator<Client> {
  yield 'redis://127.0.0.1:6379'
}
const fromGenerator = new Redlock(generated())
const readonlyList: ReadonlyArray<Client> = members
const fromReadonly = new Redlock(readonlyList)

// @ts-expect-error: a single URL is not a list of clients (a string is iterable, of characters)
new Redlock('redis://127.0.0.1:6379')
// @ts-expect-error: an options object is not iterable
new Redlock({ host: '127.0.0.1', port: 6379 })
// @ts-expect-error: a number is no client
new Redlock([6379])
// @ts-expect-error: an unknown setting (refused with a TypeError at run time)
new Redlock([ioredis], { retryCont: 3 })
// @ts-expect-error: no such retry strategy
new Redlock([ioredis], { retryStrategy: 'linear' })
// @ts-expect-error: an AbortSignal is per call, not a constructor setting
new Redlock([ioredis], { signal: new AbortController().signal })
// @ts-expect-error: an unknown setting per call
fromSet.acquire(['r'], 1000, { retryCont: 3 })

void [fromSetOfIoredis, fromIterator, fromGenerator, fromReadonly]
