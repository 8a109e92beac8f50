//! Keeps a lock held while its holder works: a tokio task extends the lock a little before
//! it expires, whatever the caller's event loop is doing.
//!
//! The watchdog extends `threshold` before the lock's expiration. When an extension finds
//! the lock gone from a quorum, or when extensions keep failing and less than half the
//! threshold is left, it tells the holder the lock is lost, before the validity ends, and
//! stops. A maximum hold time caps how long it keeps a lock alive, so that a hung holder
//! cannot keep a resource forever: the last extension is cut short to end at that cap.
//! [`Watchdog::stop`] lets an extension in flight finish, so nothing outlives it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::client::Redlock;
use crate::error::Error;
use crate::lock::{now_ms, Lock};
use crate::settings::Settings;

/// How the watchdog extends a lock.
#[derive(Debug, Clone, Copy)]
pub struct Watch {
    /// Each extension's duration.
    pub ttl: Duration,
    /// How long before expiration to extend.
    pub threshold: Duration,
    /// The longest the lock is kept alive, counted from the start of the watch.
    pub max_hold: Option<Duration>,
}

impl Watch {
    /// How long before expiration a watchdog extends by default.
    pub const DEFAULT_THRESHOLD: Duration = Duration::from_millis(500);

    /// The least time a watch must leave between two extensions, as node-redlock demands:
    /// a threshold closer than this to the TTL is refused.
    pub const MIN_GAP: Duration = Duration::from_millis(100);

    /// Whether each extension leaves at least [`Watch::MIN_GAP`] before the next is due.
    pub fn leaves_gap(&self) -> bool {
        self.threshold + Watch::MIN_GAP <= self.ttl
    }
}

/// A running watchdog. Dropping it without [`Watchdog::stop`] leaves the task running
/// until the lock is lost or its maximum hold time is reached.
pub struct Watchdog {
    stop: CancellationToken,
    task: JoinHandle<()>,
    extensions: Arc<AtomicU64>,
}

/// Why a watched lock was lost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// An extension failed, and the validity was running out.
    Failed(Error),
    /// The maximum hold time was reached and the lock expired.
    MaxHold,
}

impl Watchdog {
    /// Starts watching `lock`; `on_lost` is called at most once, from the engine's runtime.
    pub fn start(
        redlock: Arc<Redlock>,
        lock: Arc<Lock>,
        watch: Watch,
        settings: Settings,
        on_lost: impl FnOnce(Lost) + Send + 'static,
    ) -> Watchdog {
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let extensions = Arc::new(AtomicU64::new(0));
        let extended_count = extensions.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let margin = watch.threshold / 2;
            let mut last_error = None;
            loop {
                let left = Duration::from_millis(lock.expiration().saturating_sub(now_ms()));
                if let Some(error) = last_error.take() {
                    if left <= margin {
                        return on_lost(Lost::Failed(error));
                    }
                }
                // Sleep until the next extension is due.
                tokio::select! {
                    _ = stopped.cancelled() => return,
                    _ = sleep_long(left.saturating_sub(watch.threshold)) => {}
                }
                // Past the maximum hold time less the threshold, no more extensions (one
                // shorter than the threshold would be due again at once): the lock lapses.
                let hold_left = watch
                    .max_hold
                    .map(|max| max.saturating_sub(started.elapsed()));
                if hold_left.is_some_and(|h| h <= watch.threshold) {
                    let left = Duration::from_millis(lock.expiration().saturating_sub(now_ms()));
                    tokio::select! {
                        _ = stopped.cancelled() => return,
                        _ = sleep_long(left) => return on_lost(Lost::MaxHold),
                    }
                }
                let ttl = hold_left.map_or(watch.ttl, |h| watch.ttl.min(h));
                // The extension must end while there is validity left to tell the holder.
                let left = Duration::from_millis(lock.expiration().saturating_sub(now_ms()));
                let extended = tokio::time::timeout(
                    left.saturating_sub(margin),
                    redlock.extend(&lock, ttl, &settings),
                );
                let Ok(extended) = extended.await else {
                    return on_lost(Lost::Failed(Error::Quorum { attempts: vec![] }));
                };
                match extended {
                    Ok(()) => {
                        extended_count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error @ (Error::LockExpired { .. } | Error::Closed)) => {
                        return on_lost(Lost::Failed(error));
                    }
                    Err(error) => {
                        last_error = Some(error);
                        // Do not hammer failing nodes; try again soon while time is left.
                        let pause = (left / 4).min(Duration::from_millis(50));
                        tokio::select! {
                            _ = stopped.cancelled() => return,
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                }
            }
        });
        Watchdog {
            stop,
            task,
            extensions,
        }
    }

    /// A counter of the extensions made so far, which outlives the watchdog.
    pub fn extensions(&self) -> Arc<AtomicU64> {
        self.extensions.clone()
    }

    /// Stops extending; waits for an extension in flight to finish.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Sleeps `duration`, however long: a lock may last up to `Number.MAX_SAFE_INTEGER` ms
/// (about 285,000 years), far past what one timer of tokio's wheel is meant to hold
/// (about two years), so a long sleep is a series of day-long ones.
async fn sleep_long(duration: Duration) {
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);
    let now = tokio::time::Instant::now;
    let end = now().checked_add(duration);
    loop {
        let left = end.map_or(DAY, |end| end.saturating_duration_since(now()));
        if left.is_zero() {
            return;
        }
        tokio::time::sleep(left.min(DAY)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_sleep_of_thousands_of_years_neither_panics_nor_ends_early() {
        let years = Duration::from_millis(9_007_199_254_740_991 / 10);
        let started = tokio::time::Instant::now();
        let sleeping = sleep_long(years);
        tokio::pin!(sleeping);
        // Paused time jumps to each day-long timer at once: after 1000 days it still sleeps.
        let a_while = tokio::time::timeout(Duration::from_secs(1000 * 24 * 3600), &mut sleeping);
        assert!(a_while.await.is_err());
        assert!(started.elapsed() >= Duration::from_secs(1000 * 24 * 3600));
        tokio::time::timeout(
            Duration::from_millis(50),
            sleep_long(Duration::from_millis(10)),
        )
        .await
        .expect("a short sleep ends");
    }
}
