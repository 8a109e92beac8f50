//! The Redlock algorithm, top to bottom.
//!
//! To acquire: pick a random value; send "set these keys to the value, with this TTL, unless
//! someone else holds them" to every node at once, each request bounded by a per-node
//! timeout; decide as soon as a quorum is for or has become impossible. The lock is granted
//! only with a quorum *and* time left: validity = TTL - elapsed - drift, elapsed measured on a
//! monotonic clock. A failed attempt is undone on every node, then retried after a pause.
//! Extension is a compare-and-expire on every node, granted only with a quorum within the
//! lock's validity; release is a compare-and-delete on every node.
//!
//! Every operation goes through one fan-out ([`crate::round`]) and one retry driver
//! ([`crate::wait::Retries`]); an acquirer waits between attempts as [`crate::wait`] says.
//! The client these steps run on (its members, its locks, its shutdown) is [`crate::client`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::client::Redlock;
use crate::error::Error;
use crate::lock::{now_ms, random_value, Kind, Lock, Released};
use crate::notice;
use crate::quorum;
use crate::round::{Attempt, Counting, Decided, Keys, Request, Round};
use crate::rwlock;
use crate::script;
use crate::semaphore;
use crate::settings::Settings;
use crate::wait::{Missed, Outcome, Seen, Tried};

/// What an acquisition takes of its lock's keys.
#[derive(Clone, Copy)]
pub(crate) enum Take {
    /// Every key: a mutex on all of the resources.
    Keys,
    /// This many of the keys, a semaphore's slots ([`crate::semaphore`]).
    Permits(u32),
}

impl Redlock {
    /// Acquires a lock on all of `resources` for `ttl`.
    pub async fn acquire(
        &self,
        resources: Vec<String>,
        ttl: Duration,
        settings: &Settings,
    ) -> Result<Arc<Lock>, Error> {
        let never = CancellationToken::new();
        self.acquire_cancellable(resources, ttl, settings, &never)
            .await
    }

    /// Acquires a lock on all of `resources` for `ttl`: at most `retry_count + 1` attempts,
    /// whatever prompts each one (node-redlock's meaning of `retryCount`). Stops waiting,
    /// and undoes what it set, when `cancel` fires or `settings.acquire_timeout` runs out.
    pub async fn acquire_cancellable(
        &self,
        resources: Vec<String>,
        ttl: Duration,
        settings: &Settings,
        cancel: &CancellationToken,
    ) -> Result<Arc<Lock>, Error> {
        self.check_open()?;
        let lock = self.locks.create(resources, random_value());
        self.acquiring(&lock, Take::Keys, ttl, settings, cancel)
            .await
            .map(|_| lock)
    }

    /// Acquires `lock` as `take` says, as [`Redlock::acquire_cancellable`] describes, and
    /// answers the semaphore slots granted (none for a mutex).
    pub(crate) async fn acquiring(
        &self,
        lock: &Lock,
        take: Take,
        ttl: Duration,
        settings: &Settings,
        cancel: &CancellationToken,
    ) -> Result<Vec<u32>, Error> {
        if cancel.is_cancelled() {
            return Err(Error::Aborted { attempts: vec![] });
        }
        let per_node = settings.request_timeout.min(ttl);
        let deadline = async {
            match settings.acquire_timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        let mut attempts = Vec::new();
        let acquiring = async {
            let entering = self.waits.line(&self.nodes, &lock.resources);
            tokio::pin!(entering);
            let mut waiting = self.waits.join(&self.nodes, lock, per_node, entering).await;
            waiting.first(settings).await;
            let attempt = || self.attempt(lock, take, ttl, settings);
            let granted = |(validity, slots), attempts| {
                lock.granted(validity, attempts);
                slots
            };
            let acquired = self
                .retries(settings)
                .run(
                    &mut attempts,
                    Some(&mut waiting),
                    attempt,
                    granted,
                    Error::of_acquisition,
                )
                .await;
            if acquired.is_ok() && waiting.woken {
                self.stats.handoff();
            }
            if acquired.is_err() && lock.kind == Kind::Write {
                // Given up: its intent must not keep readers out any longer.
                self.undo(lock, true, true, per_node).decide(true).await;
            }
            acquired
        };
        let stopped = tokio::select! {
            acquired = acquiring => return acquired,
            _ = cancel.cancelled() => Error::Aborted { attempts: vec![] },
            _ = deadline => Error::AcquireTimeout { attempts: vec![] },
            // Closed: the connections are gone, so is any chance of an undo.
            _ = self.shutdown.cancelled() => return Err(Error::Closed),
        };
        // An attempt may have been in flight: undo it on every node, after it (the lanes see
        // to the order), before answering.
        self.undo(lock, false, true, per_node).decide(true).await;
        Err(match stopped {
            Error::Aborted { .. } => Error::Aborted { attempts },
            _ => Error::AcquireTimeout { attempts },
        })
    }

    /// One attempt: the acquire script on every node, decided at quorum, then with fencing
    /// the token written to a quorum. Granted with a quorum and validity left (the validity
    /// and the slots granted are its outcome); a failed attempt is undone on every node (the
    /// undo is left under way).
    async fn attempt(
        &self,
        lock: &Lock,
        take: Take,
        ttl: Duration,
        settings: &Settings,
    ) -> Tried<(Duration, Vec<u32>)> {
        let per_node = settings.request_timeout.min(ttl);
        let ttl_arg = ttl.as_millis().to_string();
        let locks = lock.resources.len().to_string();
        // A reader takes no fencing token: tokens order the holders that exclude the others.
        let fencing = settings.fencing && lock.kind != Kind::Read;
        let keys = match fencing {
            true => Keys::LockThenCounters,
            false => Keys::Lock,
        };
        let [acquire, ..] = script::of(lock.kind);
        let (script, wanted, first) = match take {
            Take::Keys => (acquire, String::new(), String::new()),
            Take::Permits(count) => {
                let first = semaphore::first_slot(lock.resources.len());
                (&*script::PERMITS, count.to_string(), first.to_string())
            }
        };
        let intent = match lock.kind {
            Kind::Write => rwlock::intent(ttl, settings).as_millis().to_string(),
            _ => String::new(),
        };
        let args: &[&str] = match (lock.kind, take, fencing) {
            (Kind::Write, _, _) => &[&ttl_arg, &intent],
            (Kind::Read, _, _) => &[&ttl_arg],
            (_, Take::Keys, true) => &[&ttl_arg, &locks],
            (_, Take::Keys, false) => &[&ttl_arg],
            (_, Take::Permits(_), _) => &[&ttl_arg, &locks, &wanted, &first],
        };
        let guard = Some(self.guard_for(settings, ttl));
        let start = Instant::now();
        let decided = self
            .round(lock, script, args, keys, per_node, guard)
            .decide(false)
            .await;
        self.report_restarts(&decided);
        let (held, mut split) = (decided.held(), decided.split());
        let another_won = decided.won_by_another();
        let slots = match take {
            Take::Keys => Some(Vec::new()),
            Take::Permits(count) => semaphore::granted(&decided.slots, self.nodes.len(), count),
        };
        // A quorum of nodes took permits, but not the same ones: contenders split the slots.
        split |= decided.quorum && slots.is_none();
        let mut granted = decided.quorum && slots.is_some();
        let mut record = decided.record;
        let token = decided.highest_counter.unwrap_or(0) + 1;
        if granted && fencing {
            // The token goes to a quorum before the lock counts as granted; a failure there is
            // this attempt's record.
            let fenced = self.fence(lock, token, per_node).await;
            granted = fenced.quorum;
            if !granted {
                record = fenced.record;
            }
        }
        let elapsed = start.elapsed();
        let record = Some(record);
        if let (true, Some(validity)) = (
            granted,
            quorum::validity(ttl, elapsed, settings.drift_factor),
        ) {
            if fencing {
                let _ = lock.fencing_token.set(token);
            }
            return (record, Outcome::Done((validity, slots.unwrap_or_default())));
        }
        // Undo this attempt on every node, including those that have not answered yet: their
        // lanes hold the undo back until they have. The undo announces the keys it frees, so
        // that contenders it was blocking try again (its own waiter ignores it), unless
        // another lock was seen on a quorum: contenders woken then would only find that lock,
        // and spend a retry each.
        // It runs on its own while the acquirer waits to retry.
        let undo = Some(self.undo(lock, !another_won, false, per_node).detach());
        (
            record,
            Outcome::Missed(Missed {
                seen: Seen {
                    held,
                    split,
                    elapsed,
                },
                undo,
            }),
        )
    }

    /// Writes fencing token `token` to the lock's counters on every node, decided at quorum.
    async fn fence(&self, lock: &Lock, token: i64, per_node: Duration) -> Decided {
        let token = token.to_string();
        let round = self.round(
            lock,
            &script::FENCE,
            &[&token],
            Keys::Counters,
            per_node,
            None,
        );
        round.decide(false).await
    }

    /// Extends `lock` to expire `ttl` from now, if a quorum still holds it within its
    /// validity. Updates the lock in place.
    pub async fn extend(
        &self,
        lock: &Arc<Lock>,
        ttl: Duration,
        settings: &Settings,
    ) -> Result<(), Error> {
        let ttl_arg = &ttl.as_millis().to_string();
        // A client extending locks to `ttl` uses locks that long: the guard's window grows.
        self.guard_for(settings, ttl);
        let expired: fn(Vec<Attempt>) -> Error = |attempts| Error::LockExpired { attempts };
        let attempt = || async move {
            let remaining = Duration::from_millis(lock.expiration().saturating_sub(now_ms()));
            if remaining.is_zero() {
                return (None, Outcome::Failed(expired));
            }
            let per_node = settings.request_timeout.min(ttl).min(remaining);
            let (start, started_at) = (Instant::now(), now_ms());
            let [_, extend, _] = script::of(lock.kind);
            let round = self.round(lock, extend, &[ttl_arg], Keys::Lock, per_node, None);
            let decided = round.decide(false).await;
            let elapsed = start.elapsed();
            let lost = quorum::impossible(decided.record.votes_not_held(), self.nodes.len());
            let record = Some(decided.record);
            if decided.quorum && elapsed < remaining {
                if let Some(validity) = quorum::validity(ttl, elapsed, settings.drift_factor) {
                    return (record, Outcome::Done(validity));
                }
            }
            // Not extended, but any node that applied the new TTL (or may still) now lets the
            // key go `ttl` after this attempt began: a shorter TTL shortens the lock.
            let drift = quorum::drift(ttl, settings.drift_factor).as_millis() as u64;
            let earliest = started_at + (ttl.as_millis() as u64).saturating_sub(drift);
            lock.expiration.fetch_min(earliest, Ordering::SeqCst);
            let outcome = match lost {
                true => Outcome::Failed(expired),
                false => Outcome::Missed(Missed::default()),
            };
            (record, outcome)
        };
        let extended = |validity, attempts| lock.granted(validity, attempts);
        let give_up = |attempts| Error::Quorum { attempts };
        self.retries(settings)
            .run(&mut Vec::new(), None, attempt, extended, give_up)
            .await
    }

    /// Releases `lock` on every node that still holds it. Succeeds when a quorum answered,
    /// whether or not they still held it (an expired or already released lock is released).
    pub async fn release(&self, lock: &Arc<Lock>, settings: &Settings) -> Result<Released, Error> {
        assert!(
            self.owns(lock),
            "a lock is released by the Redlock that made it"
        );
        // The next acquirer of this process in line for the resources goes as soon as the
        // deletions are on their way (each attempt tells it, in the poll that hands them to
        // the connections): its attempt, written after them on each node's connection and in
        // the same write, reaches every node after them, so the lock changes hands in one
        // round trip instead of two. (Where a deletion waited for its lane or its
        // connection, that attempt may find the key still there and miss; the servers' notice
        // of the deletion then wakes it, as it wakes the other processes.)
        let hand_on = || self.waits.released(&self.nodes, lock.whole());
        let attempt = || async {
            let decided = self
                .undo(lock, true, true, settings.request_timeout)
                .decide_once_sent(false, hand_on)
                .await;
            let nodes_held = decided.record.votes.iter().filter(|(_, v)| v.is_for());
            let outcome = match decided.quorum {
                true => Outcome::Done(nodes_held.count()),
                false => Outcome::Missed(Missed::default()),
            };
            (Some(decided.record), outcome)
        };
        let released = |nodes_held, attempts| {
            lock.expiration.store(0, Ordering::SeqCst);
            Released {
                nodes_held,
                attempts,
            }
        };
        let give_up = |attempts| Error::Quorum { attempts };
        self.retries(settings)
            .run(&mut Vec::new(), None, attempt, released, give_up)
            .await
    }

    /// Starts deleting the lock's keys (for permits, every slot of the semaphore) on every
    /// node where they still hold its value (the release script), announcing each deletion
    /// (on the [`notice`] channels) when `announce` is set. With `end`, the acquisition is over
    /// (released, given up or stopped): a writer's intent goes too, where an undo between two
    /// attempts leaves it to keep new readers out.
    fn undo(&self, lock: &Lock, announce: bool, end: bool, per_node: Duration) -> Round {
        let [.., release] = script::of(lock.kind);
        let prefix = match announce {
            true => notice::CHANNEL_PREFIX,
            false => "",
        };
        let args: &[&str] = match (end && lock.kind == Kind::Write, announce) {
            (true, _) => &[prefix, "end"],
            (false, true) => &[prefix],
            (false, false) => &[],
        };
        let request = Request {
            script: release,
            args,
            keys: Keys::Whole,
            counting: Counting::Answered,
            guard: None,
        };
        self.start(lock, request, per_node)
    }
}
