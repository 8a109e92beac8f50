//! How an operation waits between its attempts. Every operation goes through one retry
//! driver ([`Retries`]): at most `retry_count` retries, none once the nodes refused to log
//! in, none after `quit()`. An acquirer also waits before each attempt so that contenders
//! take turns instead of colliding ([`Waiting`]); the first rule that applies decides:
//!
//! - while others of this process are ahead of it in the line for its resources
//!   ([`crate::line`]), for its turn or its retry timer, so that the line never stretches its
//!   retry window;
//! - after contenders split the nodes and nobody won, a short random pause, so that one of
//!   them goes first (a few times; then the retry timer again);
//! - while another holder has the keys, for the holder's release notice
//!   ([`crate::notice`]) or its timer;
//! - otherwise, for its retry timer.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::line::{Lines, Turn};
use crate::lock::Lock;
use crate::node::Node;
use crate::notice::{self, Notices, Subscription};
use crate::retry::unit_random;
use crate::round::{Attempt, Round};
use crate::settings::Settings;

/// How many times an acquisition retries a split round after a short random pause, rather
/// than its retry timer. Each is one of its `retry_count` retries.
const FAST_SPLITS: u32 = 3;

/// The lines and release notices of one client.
pub(crate) struct Waits {
    lines: Arc<Lines>,
    notices: Notices,
    /// The servers, sorted, as the start of every line name ([`Waits::line_name`]).
    line_prefix: String,
}

/// What a failed attempt leaves for the wait before the next one.
#[derive(Default)]
pub(crate) struct Missed {
    pub(crate) seen: Seen,
    /// The undo of the failed attempt, under way on its own.
    pub(crate) undo: Option<Round>,
}

/// What a failed attempt saw of its contenders.
#[derive(Default, Clone, Copy)]
pub(crate) struct Seen {
    /// Some node answered that another holder has the keys.
    pub(crate) held: bool,
    /// Contenders split the nodes and nobody can have won.
    pub(crate) split: bool,
    /// How long the attempt took: about one round trip to a quorum.
    pub(crate) elapsed: Duration,
}

impl Missed {
    /// Waits until the undo of the failed attempt has reached every node (or timed out).
    pub(crate) async fn settle(self) {
        if let Some(undo) = self.undo {
            undo.decide(true).await;
        }
    }
}

impl Waits {
    /// The waits of a client over `nodes`. Opens nothing.
    pub(crate) fn new(nodes: &[Arc<Node>]) -> Self {
        let mut labels: Vec<&str> = nodes.iter().map(|n| n.label()).collect();
        labels.sort_unstable();
        Waits {
            lines: Lines::of_process(),
            notices: Notices::new(nodes),
            line_prefix: labels.join("\u{0}"),
        }
    }

    /// Enters the line for `resources` on `nodes`: ready at this acquirer's turn.
    pub(crate) fn line(
        &self,
        nodes: &[Arc<Node>],
        resources: &[String],
    ) -> impl Future<Output = Turn> + Send + '_ {
        let name = self.line_name(nodes, resources);
        async move { self.lines.enter(&name).await }
    }

    /// Joins the line `entering` ([`Waits::line`]) for `lock`'s resources on `nodes`;
    /// `timeout` bounds each node's subscription to release notices.
    pub(crate) async fn join<'a>(
        &'a self,
        nodes: &'a [Arc<Node>],
        lock: &'a Lock,
        timeout: Duration,
        mut entering: Entering<'a>,
    ) -> Waiting<'a> {
        let turn = match poll_once(entering.as_mut()).await {
            Poll::Ready(turn) => Some(turn),
            Poll::Pending => None,
        };
        let mut waiting = Waiting {
            waits: self,
            nodes,
            lock,
            timeout,
            entering,
            turn: None,
            releases_seen: 0,
            subscription: None,
            fast_splits: 0,
            woken: false,
        };
        if let Some(turn) = turn {
            waiting.take(turn);
        }
        waiting
    }

    /// Tells this process's acquirers of `resources` on `nodes` that a lock on them was
    /// released here (see [`Waiting::again`]).
    pub(crate) fn released(&self, nodes: &[Arc<Node>], resources: &[String]) {
        self.lines.released(|| self.line_name(nodes, resources));
    }

    /// Stops every subscription.
    pub(crate) fn close(&self) {
        self.notices.close();
    }

    /// The name of the line for `resources` on these nodes: shared by every client of this
    /// process that locks the same resources on the same servers.
    fn line_name(&self, nodes: &[Arc<Node>], resources: &[String]) -> String {
        let prefix = nodes[0].key_prefix();
        let size = resources
            .iter()
            .map(|r| 1 + prefix.len() + r.len())
            .sum::<usize>();
        let mut name = String::with_capacity(self.line_prefix.len() + size);
        name.push_str(&self.line_prefix);
        for resource in resources {
            // The first node's key for the resource.
            name.push('\u{0}');
            name.push_str(prefix);
            name.push_str(resource);
        }
        name
    }
}

/// An acquirer's way into its line, pinned where it waits.
pub(crate) type Entering<'a> = Pin<&'a mut (dyn Future<Output = Turn> + Send + 'a)>;

/// One acquisition's place in its line, and its subscription to release notices once it
/// has one. Dropping it leaves the line and unsubscribes.
pub(crate) struct Waiting<'a> {
    waits: &'a Waits,
    nodes: &'a [Arc<Node>],
    lock: &'a Lock,
    timeout: Duration,
    entering: Entering<'a>,
    turn: Option<Turn>,
    /// How many releases in this process of the line's resources it has reacted to.
    releases_seen: u64,
    subscription: Option<Subscription>,
    fast_splits: u32,
    /// Whether its last wait was ended by a release (counted as a hand-off when it wins).
    pub(crate) woken: bool,
}

impl Waiting<'_> {
    /// Takes its turn at the head of the line.
    fn take(&mut self, turn: Turn) {
        self.releases_seen = turn.releases.count();
        self.turn = Some(turn);
    }

    /// Before the first attempt: at once at the head of the line; else for the turn, or the
    /// first retry's pause (with no retry at all, at once).
    pub(crate) async fn first(&mut self, settings: &Settings) {
        if self.turn.is_some() {
            return;
        }
        if let Some(pause) = settings.pause_before(1) {
            tokio::select! {
                t = &mut self.entering => self.take(t),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Before a retry after an attempt that saw `missed`, whose retry timer is `pause`.
    pub(crate) async fn again(&mut self, missed: Seen, pause: Duration, settings: &Settings) {
        self.woken = false;
        let Some(releases) = self.turn.as_ref().map(|t| t.releases.clone()) else {
            tokio::select! {
                t = &mut self.entering => self.take(t),
                _ = tokio::time::sleep(pause) => {}
            }
            return;
        };
        if missed.split && self.fast_splits < FAST_SPLITS {
            self.fast_splits += 1;
            let spread = missed.elapsed.mul_f64(2.0 * unit_random());
            tokio::time::sleep(spread + Duration::from_millis(1)).await;
        } else if missed.held && settings.wake_on_release {
            if releases.count() > self.releases_seen {
                // Released in this process since this acquirer last looked: try at once.
                self.releases_seen = releases.count();
                self.woken = true;
                return;
            }
            let seen = match &self.subscription {
                Some(notices) => notices.seen(),
                None => {
                    // Only notices from now on wake: a release between the attempt and this
                    // subscription waits for the timer. A release in this process while it
                    // subscribes goes at once.
                    let (waits, nodes, lock) = (self.waits, self.nodes, self.lock);
                    tokio::select! {
                        subscribed = subscribe(waits, nodes, lock, self.timeout) => {
                            self.subscription = Some(subscribed);
                        }
                        _ = releases.after(self.releases_seen) => {
                            self.releases_seen = releases.count();
                            self.woken = true;
                            return;
                        }
                    }
                    0
                }
            };
            let notices = self.subscription.as_ref().expect("subscribed just above");
            tokio::select! {
                // A release made in this process: its deletions are on their way ahead of
                // this acquirer's next attempt on every node, and this acquirer is the only
                // one of the process that tries (the head of its line), ahead of the other
                // processes, which hear of it from the servers later.
                _ = releases.after(self.releases_seen) => {
                    self.releases_seen = releases.count();
                    self.woken = true;
                }
                _ = notices.next(seen) => {
                    self.woken = true;
                    // Every waiter of the resource, in every process, hears the same notice:
                    // a random pause of up to two round trips lets one of them reach the
                    // nodes first, and the others find it holding a quorum and go back to
                    // waiting. A release made in this process during the pause ends it.
                    let spread = missed.elapsed.mul_f64(2.0 * unit_random());
                    tokio::select! {
                        _ = tokio::time::sleep(spread) => {}
                        _ = releases.after(self.releases_seen) => {}
                    }
                    self.releases_seen = releases.count();
                }
                _ = tokio::time::sleep(pause) => {}
            }
        } else {
            tokio::time::sleep(pause).await;
        }
    }
}

/// What one attempt of an operation came to, for [`Retries`]: its record (none when it sent
/// nothing) and its outcome.
pub(crate) type Tried<T> = (Option<Attempt>, Outcome<T>);

pub(crate) enum Outcome<T> {
    /// Done: granted, extended or released.
    Done(T),
    /// Failed in a way no retry can change: the error made of all the attempts.
    Failed(fn(Vec<Attempt>) -> Error),
    /// Failed; a retry may succeed.
    Missed(Missed),
}

/// The retry driver of every operation, under `settings`, until `shutdown`.
pub(crate) struct Retries<'a> {
    pub(crate) shutdown: &'a CancellationToken,
    pub(crate) settings: &'a Settings,
}

impl Retries<'_> {
    /// Makes `attempt` until one is done or failed for good, with at most `retry_count`
    /// retries, each after its pause (spent by `waiting` for an acquisition, else slept),
    /// recording every attempt in `attempts`. Done, it answers what `done` makes of the
    /// outcome and the attempts. It stops early when so many nodes refused to log in that no
    /// quorum is possible (a retry cannot help), and with [`Error::Closed`] on
    /// [`crate::Redlock::quit`]. Out of retries, it waits for the last undo and fails with
    /// what `give_up` makes of the attempts.
    pub(crate) async fn run<T, R, F>(
        self,
        attempts: &mut Vec<Attempt>,
        mut waiting: Option<&mut Waiting<'_>>,
        mut attempt: impl FnMut() -> F,
        done: impl FnOnce(T, Vec<Attempt>) -> R,
        give_up: impl FnOnce(Vec<Attempt>) -> Error,
    ) -> Result<R, Error>
    where
        F: Future<Output = Tried<T>>,
    {
        let Retries { shutdown, settings } = self;
        for retry in 1.. {
            if shutdown.is_cancelled() {
                return Err(Error::Closed);
            }
            let (record, outcome) = attempt().await;
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
            // Only after a missed attempt: boxed, so that the waits do not enlarge every
            // operation's future (an uncontended one never waits).
            let wait = Box::pin(async {
                match waiting.as_deref_mut() {
                    Some(waiting) => waiting.again(missed.seen, pause, settings).await,
                    None => tokio::time::sleep(pause).await,
                }
            });
            tokio::select! {
                _ = wait => {}
                _ = shutdown.cancelled() => return Err(Error::Closed),
            }
        }
        unreachable!("the retry loop returns")
    }
}

/// Subscribes to the release notices of the lock's keys on every node.
async fn subscribe(
    waits: &Waits,
    nodes: &[Arc<Node>],
    lock: &Lock,
    timeout: Duration,
) -> Subscription {
    let mut channels: Vec<String> = nodes
        .iter()
        .flat_map(|n| lock.resources.iter().map(|r| notice::channel(&n.key(r))))
        .collect();
    channels.sort();
    channels.dedup();
    waits
        .notices
        .subscribe(channels, &lock.value, timeout)
        .await
}

/// Polls `future` once: whether it is ready now.
pub(crate) async fn poll_once<F: Future + Unpin>(mut future: F) -> Poll<F::Output> {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut future).poll(cx))).await
}
