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
//! Every operation goes through one fan-out ([`crate::round`]): N requests in parallel,
//! votes counted as they arrive, stragglers left to finish on their own.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::Poll;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::error::{Attempt, Error, NodeError, Vote};
use crate::lane::Lanes;
use crate::line::Lines;
use crate::lock::{now_ms, random_value, Lock, Released};
use crate::node::{Node, NodeConfig};
use crate::notice::{self, Notices, Subscription};
use crate::quorum;
use crate::round::{answered, Decided, InFlight, Keys, Request, Round};
use crate::script::{self, Script};
use crate::settings::Settings;
use crate::{cluster, fence};

/// Told of every node that fails a request (connection refused, timeout, error answer),
/// with the node's label, whether or not the operation had already been decided.
pub type NodeErrorListener = Arc<dyn Fn(&str, &NodeError) + Send + Sync>;

/// A Redlock client over N independent Redis masters.
pub struct Redlock {
    nodes: Vec<Arc<Node>>,
    /// Each live lock by value, so that a lock named by its value (the original design's
    /// `releaseLock(resource, id)`) is the same lock: its expiration, its fencing token, and
    /// the order of its earlier commands on each node.
    locks: Mutex<HashMap<String, Weak<Lock>>>,
    /// Tells this client's locks from another's.
    id: u64,
    listener: Mutex<Option<NodeErrorListener>>,
    lines: Arc<Lines>,
    notices: Notices,
    /// Fired by [`Redlock::quit`]: every operation under way stops with [`Error::Closed`].
    shutdown: CancellationToken,
    in_flight: Arc<InFlight>,
    /// The servers, sorted, as the start of every line name ([`Redlock::line_name`]).
    line_prefix: String,
}

/// Hands out [`Redlock::id`]s.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Two keys of one lock that a cluster member would hash to different slots
/// ([`Redlock::cross_slot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSlot {
    /// The index of the cluster member.
    pub node: usize,
    /// The lock's first key, as that member names it (its key prefix included).
    pub first: String,
    /// A key in another slot.
    pub other: String,
    /// Whether `other` is a fencing counter rather than a lock key.
    pub counter: bool,
}

/// What one attempt came to.
struct Tried {
    granted: bool,
    /// Some node answered that another holder has the keys.
    held: bool,
    /// Contenders split the nodes and nobody can have won.
    split: bool,
    elapsed: Duration,
    /// The undo of a failed attempt, under way.
    undo: Option<Round>,
}

impl Tried {
    /// Waits until the undo of a failed attempt has reached every node (or timed out).
    async fn settle(self) {
        if let Some(undo) = self.undo {
            undo.decide(true).await;
        }
    }
}

impl Redlock {
    /// A client over `nodes`. Opens no connection until the first operation.
    pub fn new(nodes: Vec<NodeConfig>) -> Self {
        let nodes: Vec<Arc<Node>> = nodes.into_iter().map(|c| Arc::new(Node::new(c))).collect();
        let mut labels: Vec<&str> = nodes.iter().map(|n| n.label()).collect();
        labels.sort_unstable();
        let line_prefix = labels.join("\u{0}");
        Redlock {
            notices: Notices::new(&nodes),
            lines: Lines::of_process(),
            shutdown: CancellationToken::new(),
            in_flight: Arc::default(),
            line_prefix,
            nodes,
            locks: Mutex::new(HashMap::new()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            listener: Mutex::new(None),
        }
    }

    /// Sets (or with `None` removes) the listener told of every node failure.
    pub fn set_node_error_listener(&self, listener: Option<NodeErrorListener>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Whether `lock` was made by this client. Extending or releasing another client's lock
    /// is refused: its nodes may not be ours.
    pub fn owns(&self, lock: &Lock) -> bool {
        lock.owner == self.id
    }

    /// The nodes, in the order they were given.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Acquires a lock on all of `resources` for `ttl`.
    pub async fn acquire(
        &self,
        resources: Vec<String>,
        ttl: Duration,
        settings: &Settings,
    ) -> Result<Arc<Lock>, Error> {
        self.acquire_cancellable(resources, ttl, settings, &CancellationToken::new())
            .await
    }

    /// Acquires a lock on all of `resources` for `ttl`. Stops waiting, and undoes what it
    /// set, when `cancel` fires or `settings.acquire_timeout` runs out.
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
        let lock = self.lock_with_value(resources, random_value());
        let deadline = async {
            match settings.acquire_timeout {
                Some(timeout) => tokio::time::sleep(timeout).await,
                None => std::future::pending().await,
            }
        };
        let mut attempts = Vec::new();
        let stopped = tokio::select! {
            result = self.wait_and_acquire(&lock, ttl, settings, &mut attempts) => {
                return result.map(|()| lock);
            }
            _ = cancel.cancelled() => Error::Aborted { attempts: vec![] },
            _ = deadline => Error::AcquireTimeout { attempts: vec![] },
            // Closed: the connections are gone, so is any chance of an undo.
            _ = self.shutdown.cancelled() => return Err(Error::Closed),
        };
        // An attempt may have been in flight: undo it on every node, after it (the lanes see
        // to the order), before answering.
        let per_node = settings.request_timeout.min(ttl);
        self.start_round(&lock, &script::RELEASE, &[], Keys::Lock, per_node, answered)
            .decide(true)
            .await;
        Err(match stopped {
            Error::Aborted { .. } => Error::Aborted { attempts },
            _ => Error::AcquireTimeout { attempts },
        })
    }

    /// The retry loop of [`Redlock::acquire`]: at most `retry_count + 1` attempts, whatever
    /// prompts each one (node-redlock's meaning of `retryCount`). The first is made at once,
    /// unless others of this process are ahead in the line (then it waits for its turn or its
    /// first retry's pause); before each next one the acquirer waits, the first rule that
    /// applies deciding:
    /// - while others of this process are ahead of it in the line for its resources, for its
    ///   turn or its retry timer, so that the line never stretches its retry window;
    /// - after contenders split the nodes and nobody won, a short random pause, so that one
    ///   of them goes first (a few times; then the retry timer again);
    /// - while another holder has the keys, for the holder's release notice or its timer;
    /// - otherwise, for its retry timer.
    async fn wait_and_acquire(
        &self,
        lock: &Arc<Lock>,
        ttl: Duration,
        settings: &Settings,
        attempts: &mut Vec<Attempt>,
    ) -> Result<(), Error> {
        let name = self.line_name(&lock.resources);
        let entering = self.lines.enter(&name);
        tokio::pin!(entering);
        let mut turn = match poll_once(entering.as_mut()).await {
            Poll::Ready(turn) => Some(turn),
            Poll::Pending => None,
        };
        let mut subscription: Option<Subscription> = None;
        let mut fast_splits = 0;
        let mut previous: Option<Tried> = None;
        for retry in 0.. {
            if let Some(tried) = previous.take() {
                let refused = attempts.last().is_some_and(Attempt::refused_login);
                let pause = settings.pause_before(retry).filter(|_| !refused);
                let Some(pause) = pause else {
                    tried.settle().await;
                    return Err(acquire_failure(std::mem::take(attempts)));
                };
                if turn.is_none() {
                    tokio::select! {
                        t = &mut entering => turn = Some(t),
                        _ = tokio::time::sleep(pause) => {}
                    }
                } else if tried.split && fast_splits < FAST_SPLITS {
                    fast_splits += 1;
                    let spread = tried.elapsed.mul_f64(2.0 * unit_random());
                    tokio::time::sleep(spread + Duration::from_millis(1)).await;
                } else if tried.held && settings.wake_on_release {
                    let seen = match &subscription {
                        Some(notices) => notices.seen(),
                        None => {
                            let per_node = settings.request_timeout.min(ttl);
                            // Only notices from now on wake: a release between the attempt
                            // and this subscription waits for the timer.
                            subscription = Some(self.subscribe(lock, per_node).await);
                            0
                        }
                    };
                    let notices = subscription.as_ref().expect("subscribed just above");
                    tokio::select! {
                        _ = notices.next(seen) => {
                            // Every waiter of the resource, in every process, hears the same
                            // notice: a random pause of up to two round trips lets one of
                            // them reach the nodes first, and the others find it holding a
                            // quorum and go back to waiting.
                            tokio::time::sleep(tried.elapsed.mul_f64(2.0 * unit_random())).await;
                        }
                        _ = tokio::time::sleep(pause) => {}
                    }
                } else {
                    tokio::time::sleep(pause).await;
                }
            } else if turn.is_none() {
                // Others of this process are ahead: the first attempt waits for the turn,
                // or the first retry's pause (with no retry at all, it is made at once).
                if let Some(pause) = settings.pause_before(1) {
                    tokio::select! {
                        t = &mut entering => turn = Some(t),
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
            self.check_open()?;
            let tried = self.attempt(lock, ttl, settings, attempts).await;
            if tried.granted {
                return Ok(());
            }
            previous = Some(tried);
        }
        unreachable!("the retry loop returns")
    }

    /// One attempt: the acquire script on every node, decided at quorum, then with fencing
    /// the token written to a quorum. Granted only with a quorum and validity left; a
    /// failed attempt is undone on every node (the undo is returned, already under way).
    async fn attempt(
        &self,
        lock: &Arc<Lock>,
        ttl: Duration,
        settings: &Settings,
        attempts: &mut Vec<Attempt>,
    ) -> Tried {
        let per_node = settings.request_timeout.min(ttl);
        let ttl_arg = ttl.as_millis().to_string();
        let locks = lock.resources.len().to_string();
        let (args, keys): (&[&str], _) = match settings.fencing {
            true => (&[&ttl_arg, &locks], Keys::LockThenCounters),
            false => (&[&ttl_arg], Keys::Lock),
        };
        let start = Instant::now();
        let round = self.start_round(lock, &script::ACQUIRE, args, keys, per_node, Vote::is_for);
        let Decided {
            mut quorum,
            record,
            highest_counter,
            strongest_holder,
        } = round.decide(false).await;
        let held = record.votes_held() > 0;
        // Split: held nodes, but no other lock on a quorum of them, counting the nodes not
        // heard from as its: nobody won.
        let unheard = record.membership - record.votes.len();
        let split = held && strongest_holder + unheard < record.quorum;
        let another_won = strongest_holder >= record.quorum;
        attempts.push(record);
        let mut token = None;
        if quorum && settings.fencing {
            // The token goes to a quorum before the lock counts as granted.
            let next = highest_counter.unwrap_or(0) + 1;
            let fence = self.start_round(
                lock,
                &script::FENCE,
                &[&next.to_string()],
                Keys::Counters,
                per_node,
                Vote::is_for,
            );
            let fenced = fence.decide(false).await;
            quorum = fenced.quorum;
            token = Some(next);
            if !quorum {
                // The attempt failed at its fencing step: its record is that step's votes,
                // so that an attempt stays one record.
                if let Some(last) = attempts.last_mut() {
                    *last = fenced.record;
                }
            }
        }
        let elapsed = start.elapsed();
        if let (true, Some(validity)) = (
            quorum,
            quorum::validity(ttl, elapsed, settings.drift_factor),
        ) {
            if let Some(token) = token {
                let _ = lock.fencing_token.set(token);
            }
            lock.granted(validity, std::mem::take(attempts));
            return Tried {
                granted: true,
                held,
                split,
                elapsed,
                undo: None,
            };
        }
        // Undo this attempt on every node, including those that have not answered yet:
        // their lanes hold the undo back until they have. The undo announces the keys it
        // frees, so that contenders it was blocking try again (its own waiter ignores it),
        // unless another lock was seen on a quorum: contenders woken then would only find
        // that lock, and spend a retry each.
        let announce: &[&str] = match another_won {
            false => &[notice::CHANNEL_PREFIX],
            true => &[],
        };
        let undo = self.start_round(
            lock,
            &script::RELEASE,
            announce,
            Keys::Lock,
            per_node,
            answered,
        );
        Tried {
            granted: false,
            held,
            split,
            elapsed,
            undo: Some(undo),
        }
    }

    /// Subscribes to the release notices of the lock's keys on every node.
    async fn subscribe(&self, lock: &Lock, timeout: Duration) -> Subscription {
        let mut channels: Vec<String> = self
            .nodes
            .iter()
            .flat_map(|n| lock.resources.iter().map(|r| notice::channel(&n.key(r))))
            .collect();
        channels.sort();
        channels.dedup();
        self.notices.subscribe(channels, &lock.value, timeout).await
    }

    /// Extends `lock` to expire `ttl` from now, if a quorum still holds it within its
    /// validity. Updates the lock in place.
    pub async fn extend(
        &self,
        lock: &Arc<Lock>,
        ttl: Duration,
        settings: &Settings,
    ) -> Result<(), Error> {
        self.check_open()?;
        let ttl_arg = ttl.as_millis().to_string();
        let mut attempts = Vec::new();
        for retry in 0.. {
            let remaining = Duration::from_millis(lock.expiration().saturating_sub(now_ms()));
            if remaining.is_zero() {
                return Err(Error::LockExpired { attempts });
            }
            let per_node = settings.request_timeout.min(ttl).min(remaining);
            let start = Instant::now();
            let started_at = now_ms();
            let round = self.start_round(
                lock,
                &script::EXTEND,
                &[&ttl_arg],
                Keys::Lock,
                per_node,
                Vote::is_for,
            );
            let Decided { quorum, record, .. } = round.decide(false).await;
            let elapsed = start.elapsed();
            let lost = record
                .votes
                .iter()
                .filter(|(_, v)| *v == Vote::NotHeld)
                .count()
                > record.membership - record.quorum;
            attempts.push(record);
            if quorum && elapsed < remaining {
                if let Some(validity) = quorum::validity(ttl, elapsed, settings.drift_factor) {
                    lock.granted(validity, attempts);
                    return Ok(());
                }
            }
            // Not extended, but any node that applied the new TTL (or may still) now lets
            // the key go `ttl` after this attempt began: a shorter TTL shortens the lock.
            let drift = quorum::drift(ttl, settings.drift_factor).as_millis() as u64;
            let earliest = started_at + (ttl.as_millis() as u64).saturating_sub(drift);
            lock.expiration.fetch_min(earliest, Ordering::SeqCst);
            if lost {
                return Err(Error::LockExpired { attempts });
            }
            if attempts.last().is_some_and(Attempt::refused_login) {
                return Err(Error::Quorum { attempts });
            }
            match settings.pause_before(retry + 1) {
                Some(pause) => self.pause(pause).await?,
                None => return Err(Error::Quorum { attempts }),
            }
        }
        unreachable!("the retry loop returns")
    }

    /// Releases `lock` on every node that still holds it. Succeeds when a quorum answered,
    /// whether or not they still held it (an expired or already released lock is released).
    pub async fn release(&self, lock: &Arc<Lock>, settings: &Settings) -> Result<Released, Error> {
        self.check_open()?;
        assert!(
            self.owns(lock),
            "a lock is released by the Redlock that made it"
        );
        let mut attempts = Vec::new();
        for retry in 0.. {
            let round = self.start_round(
                lock,
                &script::RELEASE,
                &[notice::CHANNEL_PREFIX],
                Keys::Lock,
                settings.request_timeout,
                answered,
            );
            let Decided { quorum, record, .. } = round.decide(false).await;
            let nodes_held = record.votes.iter().filter(|(_, v)| *v == Vote::For).count();
            attempts.push(record);
            if quorum {
                lock.expiration.store(0, Ordering::SeqCst);
                return Ok(Released {
                    nodes_held,
                    attempts,
                });
            }
            if attempts.last().is_some_and(Attempt::refused_login) {
                return Err(Error::Quorum { attempts });
            }
            match settings.pause_before(retry + 1) {
                Some(pause) => self.pause(pause).await?,
                None => return Err(Error::Quorum { attempts }),
            }
        }
        unreachable!("the retry loop returns")
    }

    /// Finds keys of a lock on `resources` that a Redis Cluster member could not take in
    /// one script: the first cluster member (by index) whose keys, and with `fencing` their
    /// counters, do not all hash to one slot, with two keys that differ. Checked before
    /// anything is sent; a cluster would answer CROSSSLOT.
    pub fn cross_slot(&self, resources: &[String], fencing: bool) -> Option<CrossSlot> {
        for (index, node) in self.nodes.iter().enumerate() {
            if !node.is_cluster() {
                continue;
            }
            let keys: Vec<String> = resources.iter().map(|r| node.key(r)).collect();
            let mut all = keys.clone();
            if fencing {
                all.extend(keys.iter().map(|k| fence::counter_key(k)));
            }
            if let Some(other) = cluster::key_in_another_slot(&all) {
                return Some(CrossSlot {
                    node: index,
                    first: all[0].clone(),
                    counter: !keys.contains(other),
                    other: other.clone(),
                });
            }
        }
        None
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
        let found = self.registry().get(&value).and_then(Weak::upgrade);
        match found {
            Some(lock) if lock.resources == resources => lock,
            // The same value on other resources: a lock of its own, in the same lanes.
            Some(lock) => Arc::new(Lock::new(
                resources,
                value,
                lock.lanes.clone(),
                self.id,
                expiration,
            )),
            None => {
                let lock = self.lock_with_value(resources, value);
                lock.expiration.store(expiration, Ordering::SeqCst);
                lock
            }
        }
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
    /// already sent finish, within `grace`, so that a release on a slow node still lands, then
    /// closes every connection. Operations after this fail with [`Error::Closed`] too.
    pub async fn quit(&self, grace: Duration) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(grace, self.settled()).await;
        for node in &self.nodes {
            node.close();
        }
        self.set_node_error_listener(None);
        self.notices.close();
    }

    /// The name of the line for `resources` on these nodes: shared by every client of this
    /// process that locks the same resources on the same servers.
    fn line_name(&self, resources: &[String]) -> String {
        let mut name = self.line_prefix.clone();
        for resource in resources {
            name.push('\u{0}');
            name.push_str(&self.nodes[0].key(resource));
        }
        name
    }

    /// Starts one fan-out of `script` over the lock's `keys` on every node ([`Round::start`]).
    fn start_round(
        &self,
        lock: &Lock,
        script: &'static Script,
        args: &[&str],
        keys: Keys,
        per_node: Duration,
        counts: fn(&Vote) -> bool,
    ) -> Round {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let request = Request { script, args, keys };
        Round::start(
            &self.nodes,
            listener,
            &self.in_flight,
            lock,
            request,
            per_node,
            counts,
        )
    }

    /// Sleeps `pause`, unless the client is closed first.
    async fn pause(&self, pause: Duration) -> Result<(), Error> {
        tokio::select! {
            _ = tokio::time::sleep(pause) => Ok(()),
            _ = self.shutdown.cancelled() => Err(Error::Closed),
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.shutdown.is_cancelled() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// A new lock, registered by its value.
    fn lock_with_value(&self, resources: Vec<String>, value: String) -> Arc<Lock> {
        let lanes = Arc::new(Lanes::new(self.nodes.len()));
        let lock = Arc::new(Lock::new(resources, value.clone(), lanes, self.id, 0));
        let mut locks = self.registry();
        // Forget dead locks now and then, so that the registry holds about the live ones.
        if locks.len() >= 64 && locks.len().is_power_of_two() {
            locks.retain(|_, l| l.strong_count() > 0);
        }
        locks.insert(value, Arc::downgrade(&lock));
        lock
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Weak<Lock>>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How many times an acquisition retries a split round after a short random pause, rather
/// than its retry timer. Each is one of its `retry_count` retries.
const FAST_SPLITS: u32 = 3;

/// Polls `future` once: whether it is ready now.
async fn poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
}

/// A uniform random number in `[0, 1)`.
fn unit_random() -> f64 {
    (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64
}

/// A resource is locked when, on the last attempt, the nodes held by someone else alone
/// made a quorum impossible; anything else is a failure to reach a quorum.
fn acquire_failure(attempts: Vec<Attempt>) -> Error {
    let last = attempts.last().expect("at least one attempt was made");
    if last.votes_held() > last.membership - last.quorum {
        Error::ResourceLocked { attempts }
    } else {
        Error::Quorum { attempts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_stop_after_retry_count_and_never_with_none() {
        let mut s = Settings {
            retry_count: Some(2),
            ..Settings::default()
        };
        assert!(s.pause_before(1).is_some());
        assert!(s.pause_before(2).is_some());
        assert!(s.pause_before(3).is_none());
        s.retry_count = None;
        assert!(s.pause_before(1_000_000).is_some());
    }

    #[test]
    fn a_failure_is_resource_locked_only_when_holders_alone_prevent_the_quorum() {
        let attempt = |votes: Vec<Vote>| Attempt {
            membership: 5,
            quorum: 3,
            votes: votes.into_iter().enumerate().collect(),
        };
        let held = acquire_failure(vec![attempt(vec![Vote::Held, Vote::Held, Vote::Held])]);
        assert_eq!(held.code(), "ERR_REDLOCK_RESOURCE_LOCKED");
        let down = Vote::Failed(NodeError::Timeout);
        let mixed = acquire_failure(vec![attempt(vec![Vote::Held, Vote::Held, down])]);
        assert_eq!(mixed.code(), "ERR_REDLOCK_QUORUM");
    }
}
