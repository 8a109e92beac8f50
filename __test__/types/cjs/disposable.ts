// `await using` (TypeScript 5.2+ with the esnext.disposable lib): a Lock is AsyncDisposable.
import { redlock } from './imports'

export async function disposable(): Promise<number> {
  await using lock = await redlock.acquire(['disposed'], 1000)
  const asDisposable: AsyncDisposable = lock
  void asDisposable
  return lock.timeLeft
}
