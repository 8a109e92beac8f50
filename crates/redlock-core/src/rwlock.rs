//! Read-write locks: any number of readers at once, or one writer alone, over the same quorum
//! as a mutex; write-preferring, so that a stream of readers cannot starve a writer.
//!
//! Each node keeps three keys per resource ([`keys`]): the writer key (a string holding the
//! writer's value, with its TTL, as a mutex key does), the readers (a sorted set: member a
//! reader's value, score its expiry on the node's own clock, so expiry is measured by the node
//! as `PX` is), and a waiting writer's intent (a string with a short TTL). The scripts are in
//! [`crate::script`]: a writer is admitted on a node when no other writer and no unexpired
//! reader is there; a reader when neither a writer nor a writer's intent is there. Either
//! side is granted on a quorum with validity left, exactly as a mutex.
//!
//! Why a valid writer overlaps no other valid holder: a writer and another holder valid at
//! the same instant were each admitted on a quorum, and two quorums share a node. On that node
//! the later one's script found the earlier one there, unexpired (the earlier holder was still
//! valid, and its entry outlives its validity by the drift allowance), and refused it: a writer
//! script refuses any reader or other writer, a reader script refuses any writer. So the later
//! one's quorum could not include that node: contradiction. Readers never exclude each other.
//!
//! Write preference: a writer refused because readers hold the lock leaves its intent on that
//! node, which keeps new readers out while the readers there finish; a reader's release wakes
//! the writer, which tries again (refreshing its intent) until it is admitted and clears it.
//! Its release (and its giving up, or its abort) clears its intent on every node; the intent
//! expires by itself ([`intent`]) when the writer stops asking without either (it crashed), so
//! a writer that is gone cannot keep readers out for longer than that.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::Redlock;
use crate::error::Error;
use crate::lock::{random_value, Kind, Lock};
use crate::redlock::Take;
use crate::settings::Settings;

/// The keys of the read-write lock on `resource`: the writer key, the readers, the waiting
/// writer's intent. They share one Redis Cluster hash tag (the resource's own, or the whole
/// resource) and with it one fencing counter ([`crate::fence`]).
pub fn keys(resource: &str) -> Vec<String> {
    let base = crate::semaphore::tagged(resource);
    ["write", "readers", "intent"]
        .iter()
        .map(|part| format!("{base}:{part}"))
        .collect()
}

/// How long a waiting writer's intent keeps new readers out after its last attempt: two of
/// its longest pauses between attempts with their requests, at most the lock's `ttl`.
pub(crate) fn intent(ttl: Duration, settings: &Settings) -> Duration {
    let pause = settings.retry.delay(u32::MAX, 1.0) + settings.request_timeout;
    (pause * 2).min(ttl)
}

impl Redlock {
    /// Acquires the read side (`write` false: one reader among any number) or the write side
    /// (alone) of the read-write lock on `resource` for `ttl`, as
    /// [`Redlock::acquire_cancellable`] acquires a mutex. The lock answered extends, releases
    /// and is watched like any other.
    pub async fn acquire_rw(
        &self,
        resource: &str,
        write: bool,
        ttl: Duration,
        settings: &Settings,
        cancel: &CancellationToken,
    ) -> Result<Arc<Lock>, Error> {
        self.check_open()?;
        let kind = match write {
            true => Kind::Write,
            false => Kind::Read,
        };
        let lock = self.locks.create_kind(keys(resource), random_value(), kind);
        self.acquiring(&lock, Take::Keys, ttl, settings, cancel)
            .await
            .map(|_| lock)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keys_share_a_hash_tag() {
        assert_eq!(
            keys("doc"),
            ["{doc}:write", "{doc}:readers", "{doc}:intent"]
        );
        assert_eq!(
            keys("doc:{7}"),
            ["doc:{7}:write", "doc:{7}:readers", "doc:{7}:intent"]
        );
    }

    #[test]
    fn an_intent_lasts_two_pauses_at_most_the_ttl() {
        let settings = Settings::default();
        let long = intent(Duration::from_secs(60), &settings);
        let pause = settings.retry.delay(u32::MAX, 1.0) + settings.request_timeout;
        assert_eq!(long, pause * 2);
        assert_eq!(
            intent(Duration::from_millis(50), &settings),
            Duration::from_millis(50)
        );
    }
}
