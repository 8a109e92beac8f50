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
//! ([`Redlock::retrying`]); an acquirer waits between attempts as [`crate::wait`] says.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::cluster::{self, CrossSlot};
use crate::config::{Misconfigured, NodeConfig, NodeConfigError};
use crate::error::Error;
use crate::lock::{now_ms, random_value, Lock, Registry, Released};
use crate::node::Node;
use crate::notice;
use crate::quorum;
use crate::round::{Attempt, Counting, Decided, InFlight, Keys, NodeErrorListener, Request, Round};
use crate::script::{self, Script};
use crate::settings::Settings;
use crate::wait::{Missed, Waiting, Waits};

/// A Redlock client over N independent Redis masters.
pub struct Redlock {
    nodes: Vec<Arc<Node>>,
    locks: Registry,
    listener: Mutex<Option<NodeErrorListener>>,
    waits: Waits,
    /// Fired by [`Redlock::quit`]: every operation under way stops with [`Error::Closed`].
    shutdown: CancellationToken,
    in_flight: Arc<InFlight>,
}

/// What one attempt of an operation came to, for [`Redlock::retrying`]: its record (none
/// when it sent nothing) and its outcome.
struct Tried<T> {
    record: Option<Attempt>,
    outcome: Outcome<T>,
}

enum Outcome<T> {
    /// Done: granted, extended or released.
    Done(T),
    /// Failed in a way no retry can change: the error made of all the attempts.
    Failed(fn(Vec<Attempt>) -> Error),
    /// Failed; a retry may succeed.
    Missed(Missed),
}

impl Redlock {
    /// A client over `nodes`, checked (TLS settings, cluster options) and refused when there
    /// are none, or when two of them reach the same server and database: one server would
    /// vote twice. Opens no connection until the first operation.
    pub fn new(nodes: Vec<NodeConfig>) -> Result<Self, Misconfigured> {
        if nodes.is_empty() {
            let error = NodeConfigError::NoMembers;
            return Err(Misconfigured { node: 0, error });
        }
        for (node, config) in nodes.iter().enumerate() {
            let refuse = |error| Err(Misconfigured { node, error });
            if let Err(error) = config.check() {
                return refuse(error);
            }
            if let Some(first) = nodes[..node].iter().position(|n| n.same_database(config)) {
                let label = config.label();
                return refuse(NodeConfigError::SameServer { first, label });
            }
        }
        let nodes: Vec<Arc<Node>> = nodes.into_iter().map(|c| Arc::new(Node::new(c))).collect();
        Ok(Redlock {
            waits: Waits::new(&nodes),
            locks: Registry::new(nodes.len()),
            shutdown: CancellationToken::new(),
            in_flight: Arc::default(),
            listener: Mutex::new(None),
            nodes,
        })
    }

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
        if cancel.is_cancelled() {
            return Err(Error::Aborted { attempts: vec![] });
        }
        let lock = self.locks.create(resources, random_value());
        let per_node = settings.request_timeout.min(ttl);
        let deadline = async {
            match settings.acquire_timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        let mut attempts = Vec::new();
        let acquiring = async {
            let mut waiting = self.waits.join(&self.nodes, &lock, per_node).await;
            waiting.first(settings).await;
            let attempt = || self.attempt(&lock, ttl, settings);
            let granted = |validity, attempts| lock.granted(validity, attempts);
            let waiting = Some(&mut waiting);
            self.retrying(
                settings,
                &mut attempts,
                waiting,
                attempt,
                granted,
                acquire_failure,
            )
            .await
        };
        let stopped = tokio::select! {
            acquired = acquiring => return acquired.map(|()| lock),
            _ = cancel.cancelled() => Error::Aborted { attempts: vec![] },
            _ = deadline => Error::AcquireTimeout { attempts: vec![] },
            // Closed: the connections are gone, so is any chance of an undo.
            _ = self.shutdown.cancelled() => return Err(Error::Closed),
        };
        // An attempt may have been in flight: undo it on every node, after it (the lanes see
        // to the order), before answering.
        self.undo(&lock, &[], per_node).decide(true).await;
        Err(match stopped {
            Error::Aborted { .. } => Error::Aborted { attempts },
            _ => Error::AcquireTimeout { attempts },
        })
    }

    /// One attempt: the acquire script on every node, decided at quorum, then with fencing
    /// the token written to a quorum. Granted with a quorum and validity left (the validity is
    /// its outcome); a failed attempt is undone on every node (the undo is left under way).
    async fn attempt(&self, lock: &Lock, ttl: Duration, settings: &Settings) -> Tried<Duration> {
        let per_node = settings.request_timeout.min(ttl);
        let ttl_arg = ttl.as_millis().to_string();
        let locks = lock.resources.len().to_string();
        let (args, keys): (&[&str], _) = match settings.fencing {
            true => (&[&ttl_arg, &locks], Keys::LockThenCounters),
            false => (&[&ttl_arg], Keys::Lock),
        };
        let start = Instant::now();
        let decided = self
            .round(lock, &script::ACQUIRE, args, keys, per_node)
            .decide(false)
            .await;
        let (held, split, another_won) =
            (decided.held(), decided.split(), decided.won_by_another());
        let (mut granted, mut record) = (decided.quorum, decided.record);
        let token = decided.highest_counter.unwrap_or(0) + 1;
        if granted && settings.fencing {
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
            if settings.fencing {
                let _ = lock.fencing_token.set(token);
            }
            return Tried {
                record,
                outcome: Outcome::Done(validity),
            };
        }
        // Undo this attempt on every node, including those that have not answered yet: their
        // lanes hold the undo back until they have. The undo announces the keys it frees, so
        // that contenders it was blocking try again (its own waiter ignores it), unless
        // another lock was seen on a quorum: contenders woken then would only find that lock,
        // and spend a retry each.
        let announce: &[&str] = if another_won {
            &[]
        } else {
            &[notice::CHANNEL_PREFIX]
        };
        let undo = Some(self.undo(lock, announce, per_node));
        let missed = Missed {
            held,
            split,
            elapsed,
            undo,
        };
        Tried {
            record,
            outcome: Outcome::Missed(missed),
        }
    }

    /// Writes fencing token `token` to the lock's counters on every node, decided at quorum.
    async fn fence(&self, lock: &Lock, token: i64, per_node: Duration) -> Decided {
        let token = token.to_string();
        let round = self.round(lock, &script::FENCE, &[&token], Keys::Counters, per_node);
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
        let expired: fn(Vec<Attempt>) -> Error = |attempts| Error::LockExpired { attempts };
        let attempt = || async move {
            let remaining = Duration::from_millis(lock.expiration().saturating_sub(now_ms()));
            if remaining.is_zero() {
                return Tried {
                    record: None,
                    outcome: Outcome::Failed(expired),
                };
            }
            let per_node = settings.request_timeout.min(ttl).min(remaining);
            let (start, started_at) = (Instant::now(), now_ms());
            let round = self.round(lock, &script::EXTEND, &[ttl_arg], Keys::Lock, per_node);
            let decided = round.decide(false).await;
            let elapsed = start.elapsed();
            let lost = quorum::impossible(decided.record.votes_not_held(), self.nodes.len());
            let record = Some(decided.record);
            if decided.quorum && elapsed < remaining {
                if let Some(validity) = quorum::validity(ttl, elapsed, settings.drift_factor) {
                    return Tried {
                        record,
                        outcome: Outcome::Done(validity),
                    };
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
            Tried { record, outcome }
        };
        let extended = |validity, attempts| lock.granted(validity, attempts);
        let give_up = |attempts| Error::Quorum { attempts };
        self.retrying(settings, &mut Vec::new(), None, attempt, extended, give_up)
            .await
    }

    /// Releases `lock` on every node that still holds it. Succeeds when a quorum answered,
    /// whether or not they still held it (an expired or already released lock is released).
    pub async fn release(&self, lock: &Arc<Lock>, settings: &Settings) -> Result<Released, Error> {
        assert!(
            self.owns(lock),
            "a lock is released by the Redlock that made it"
        );
        let attempt = || async move {
            let announce = &[notice::CHANNEL_PREFIX];
            let decided = self
                .undo(lock, announce, settings.request_timeout)
                .decide(false)
                .await;
            let nodes_held = decided
                .record
                .votes
                .iter()
                .filter(|(_, v)| v.is_for())
                .count();
            let outcome = match decided.quorum {
                true => Outcome::Done(nodes_held),
                false => Outcome::Missed(Missed::default()),
            };
            Tried {
                record: Some(decided.record),
                outcome,
            }
        };
        let released = |nodes_held, attempts| {
            lock.expiration.store(0, Ordering::SeqCst);
            Released {
                nodes_held,
                attempts,
            }
        };
        let give_up = |attempts| Error::Quorum { attempts };
        self.retrying(settings, &mut Vec::new(), None, attempt, released, give_up)
            .await
    }

    /// The retry driver of every operation: makes `attempt` until one is done or failed for
    /// good, with at most `retry_count` retries, each after its pause (spent by `waiting` for
    /// an acquisition, else slept), recording every attempt in `attempts`. Done, it answers
    /// what `done` makes of the outcome and the attempts. It stops early when so many nodes
    /// refused to log in that no quorum is possible (a retry cannot help), and with
    /// [`Error::Closed`] on [`Redlock::quit`]. Out of retries, it waits for the last undo and
    /// fails with what `give_up` makes of the attempts.
    async fn retrying<T, R, F>(
        &self,
        settings: &Settings,
        attempts: &mut Vec<Attempt>,
        mut waiting: Option<&mut Waiting<'_>>,
        mut attempt: impl FnMut() -> F,
        done: impl FnOnce(T, Vec<Attempt>) -> R,
        give_up: impl FnOnce(Vec<Attempt>) -> Error,
    ) -> Result<R, Error>
    where
        F: Future<Output = Tried<T>>,
    {
        for retry in 1.. {
            self.check_open()?;
            let Tried { record, outcome } = attempt().await;
            attempts.extend(record);
            let missed = match outcome {
                Outcome::Done(value) => return Ok(done(value, std::mem::take(attempts))),
                Outcome::Failed(error) => return Err(error(std::mem::take(attempts))),
                Outcome::Missed(missed) => missed,
            };
            let refused = attempts.last().is_some_and(Attempt::refused_login);
            let Some(pause) = settings.pause_before(retry).filter(|_| !refused) else {
                missed.settle().await;
                return Err(give_up(std::mem::take(attempts)));
            };
            let wait = async {
                match waiting.as_deref_mut() {
                    Some(waiting) => waiting.again(&missed, pause, settings).await,
                    None => tokio::time::sleep(pause).await,
                }
            };
            tokio::select! {
                _ = wait => {}
                _ = self.shutdown.cancelled() => return Err(Error::Closed),
            }
        }
        unreachable!("the retry loop returns")
    }

    /// Starts deleting the lock's keys on every node where they still hold its value (the
    /// release script), announcing each deletion on the channels prefixed by `announce`.
    fn undo(&self, lock: &Lock, announce: &[&str], per_node: Duration) -> Round {
        let request = Request {
            script: &script::RELEASE,
            args: announce,
            keys: Keys::Lock,
            counting: Counting::Answered,
        };
        self.start(lock, request, per_node)
    }

    /// Starts one fan-out of `script` over the lock's `keys` on every node, counting the
    /// nodes that did what was asked.
    fn round(
        &self,
        lock: &Lock,
        script: &'static Script,
        args: &[&str],
        keys: Keys,
        per_node: Duration,
    ) -> Round {
        let counting = Counting::Done;
        self.start(
            lock,
            Request {
                script,
                args,
                keys,
                counting,
            },
            per_node,
        )
    }

    fn start(&self, lock: &Lock, request: Request, per_node: Duration) -> Round {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        Round::start(
            &self.nodes,
            listener,
            &self.in_flight,
            lock,
            request,
            per_node,
        )
    }

    /// Finds keys of a lock on `resources` that a Redis Cluster member could not take in one
    /// script ([`cluster::cross_slot`]).
    pub fn cross_slot(&self, resources: &[String], fencing: bool) -> Option<CrossSlot> {
        cluster::cross_slot(self.nodes.iter().map(|n| n.config()), resources, fencing)
    }

    /// The lock on `resources` whose value is `value`, for operations that name a lock by
    /// its id: the live lock itself when this client made it, else a lock whose expiration
    /// is taken as `expiration`.
    pub fn lock_by_value(
        &self,
        resources: Vec<String>,
        value: String,
        expiration: u64,
    ) -> Arc<Lock> {
        self.locks.by_value(resources, value, expiration)
    }

    /// Whether `lock` was made by this client. Extending or releasing another client's lock
    /// is refused: its nodes may not be ours.
    pub fn owns(&self, lock: &Lock) -> bool {
        self.locks.owns(lock)
    }

    /// The nodes, in the order they were given.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Sets (or with `None` removes) the listener told of every node failure.
    pub fn set_node_error_listener(&self, listener: Option<NodeErrorListener>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Requests sent and not yet answered, the stragglers of decided rounds included.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Waits until every request sent has been answered or has timed out.
    pub async fn settled(&self) {
        self.in_flight.settled().await
    }

    /// Stops every operation under way (they fail with [`Error::Closed`]), lets the requests
    /// already sent finish, within `grace` ([`Settings::quit_grace`]), so that a release on a
    /// slow node still lands, then closes every connection. Operations after this fail with
    /// [`Error::Closed`] too.
    pub async fn quit(&self, grace: Duration) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(grace, self.settled()).await;
        for node in &self.nodes {
            node.close();
        }
        self.set_node_error_listener(None);
        self.waits.close();
    }

    fn check_open(&self) -> Result<(), Error> {
        match self.shutdown.is_cancelled() {
            true => Err(Error::Closed),
            false => Ok(()),
        }
    }
}

/// A resource is locked when, on the last attempt, the nodes held by someone else alone
/// made a quorum impossible; anything else is a failure to reach a quorum.
fn acquire_failure(attempts: Vec<Attempt>) -> Error {
    let last = attempts.last().expect("at least one attempt was made");
    match quorum::impossible(last.votes_held(), last.membership) {
        true => Error::ResourceLocked { attempts },
        false => Error::Quorum { attempts },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::NodeError;
    use crate::round::Vote;

    #[test]
    fn a_failure_is_resource_locked_only_when_holders_alone_prevent_the_quorum() {
        let attempt = |votes: Vec<Vote>| Attempt {
            membership: 5,
            quorum: 3,
            counting: Counting::Done,
            votes: votes.into_iter().enumerate().collect(),
        };
        let held = acquire_failure(vec![attempt(vec![Vote::Held, Vote::Held, Vote::Held])]);
        assert_eq!(held.code(), "ERR_REDLOCK_RESOURCE_LOCKED");
        let down = Vote::Failed(NodeError::Timeout);
        let mixed = acquire_failure(vec![attempt(vec![Vote::Held, Vote::Held, down])]);
        assert_eq!(mixed.code(), "ERR_REDLOCK_QUORUM");
    }
}
