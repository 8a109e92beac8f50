//! Keeps a lock held while its holder works: a tokio task extends the lock a little before
//! it expires, whatever the caller's event loop is doing.
//!
//! The watchdog extends `threshold` before the lock's expiration. When an extension finds
//! the lock gone from a quorum, or when extensions keep failing and less than half the
//! threshold is left, it tells the holder the lock is lost, before the validity ends, and
//! stops. A maximum hold time caps how long it keeps a lock alive, so that a hung holder
//! cannot keep a resource forever: the last extension is cut short to end at that cap.
//! [`Watchdog::stop`] lets an extension in flight finish, so nothing outlives it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::lock::{now_ms, Lock};
use crate::redlock::Redlock;
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

/// A running watchdog. Dropping it without [`Watchdog::stop`] leaves the task running
/// until the lock is lost or its maximum hold time is reached.
pub struct Watchdog {
    stop: CancellationToken,
    task: JoinHandle<()>,
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
                    _ = tokio::time::sleep(left.saturating_sub(watch.threshold)) => {}
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
                        _ = tokio::time::sleep(left) => return on_lost(Lost::MaxHold),
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
                    Ok(()) => {}
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
        Watchdog { stop, task }
    }

    /// Stops extending; waits for an extension in flight to finish.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}
