//! The one fan-out every operation goes through: a script sent to all N nodes at once, each
//! request bounded by the per-node timeout, votes counted as they arrive, and a decision as
//! soon as a quorum is for or has become impossible. Stragglers are left to finish on their
//! own; the lanes ([`crate::lane`]) keep them ahead of the same lock's later commands.
//!
//! The round knows no operation: a [`Request`] says what to run and how its answers vote
//! ([`Vote`], [`Counting`]), and each round leaves an [`Attempt`], the record of who voted
//! how.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{mpsc, Notify};

use crate::fault::NodeError;
use crate::fence;
use crate::lane::Lanes;
use crate::node::{Answer, Node};
use crate::quorum::{self, Tally};
use crate::restart::{Age, GuardMode, GuardedTally, Health, RestartGuard};
use crate::script::Script;
use crate::stats::Stats;

/// Told of every node that fails a request (connection refused, timeout, error answer),
/// with the node's label, whether or not the operation had already been decided.
pub type NodeErrorListener = Arc<dyn Fn(&str, &NodeError) + Send + Sync>;

/// One node's answer to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Vote {
    /// The node did what was asked.
    For,
    /// Another holder has (one of) the keys.
    Held,
    /// The keys no longer hold our value (expired, released, or taken over).
    NotHeld,
    /// The node failed to answer.
    Failed(NodeError),
}

impl Vote {
    /// Whether the node did what was asked.
    pub fn is_for(&self) -> bool {
        matches!(self, Vote::For)
    }
}

/// Which votes count towards a round's quorum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Only the nodes that did what was asked (acquire, extend, fence).
    Done,
    /// Every node that answered (release: a node that no longer holds the lock has nothing
    /// left to release).
    Answered,
}

impl Counting {
    /// Whether `vote` counts towards the quorum.
    pub fn counts(self, vote: &Vote) -> bool {
        match self {
            Counting::Done => vote.is_for(),
            Counting::Answered => !matches!(vote, Vote::Failed(_)),
        }
    }
}

/// The record of one attempt: which nodes voted, and how. Nodes that had not answered when
/// the attempt was decided are not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// How many nodes took part.
    pub membership: usize,
    /// How many had to be for.
    pub quorum: usize,
    /// Which votes counted towards the quorum.
    pub counting: Counting,
    /// `(node index, vote)` in the order the answers arrived.
    pub votes: Vec<(usize, Vote)>,
}

impl Attempt {
    /// How many of the recorded votes counted towards the quorum.
    pub fn votes_for(&self) -> usize {
        self.count(|v| self.counting.counts(v))
    }

    /// How many nodes answered that another holder has the keys.
    pub fn votes_held(&self) -> usize {
        self.count(|v| *v == Vote::Held)
    }

    /// How many nodes answered that the keys no longer hold our value.
    pub fn votes_not_held(&self) -> usize {
        self.count(|v| *v == Vote::NotHeld)
    }

    /// Whether so many nodes refused to log us in that no quorum is possible: retrying
    /// cannot help until the credentials are fixed, so the operation fails at once.
    pub fn refused_login(&self) -> bool {
        let refused = self.count(|v| matches!(v, Vote::Failed(NodeError::Auth(_))));
        quorum::impossible(refused, self.membership)
    }

    fn count(&self, which: impl Fn(&Vote) -> bool) -> usize {
        self.votes.iter().filter(|(_, v)| which(v)).count()
    }
}

/// How long a request that timed out is still kept for its answer, so that its connection
/// writes it before the same lock's next command ([`Round::start`]).
const KEEP_UNANSWERED: Duration = Duration::from_secs(30);

/// One node's request of a round, with what follows its vote (a timed-out request is kept
/// until answered).
type NodeRequest = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One fan-out in flight: the votes arrive on `votes` as the nodes answer.
///
/// The requests run in the task that waits for the votes ([`Round::decide`]), so that an
/// answer wakes no task but the caller's. Once nobody waits for them (the round is decided,
/// detached or dropped), the requests still running finish in one task of their own: a
/// straggler still lands, in its lane's order, and is still counted in flight.
pub(crate) struct Round {
    votes: mpsc::UnboundedReceiver<(usize, Vote, Option<Answer>)>,
    tally: Tally,
    /// With the restart guard on: its window, and the count that decides instead of `tally`.
    guarded: Option<(Duration, GuardedTally)>,
    record: Attempt,
    requests: FuturesUnordered<NodeRequest>,
}

/// A decided round: whether the quorum was reached, the votes, and the highest fencing
/// counter among the nodes that voted for.
pub(crate) struct Decided {
    pub(crate) quorum: bool,
    pub(crate) record: Attempt,
    pub(crate) highest_counter: Option<i64>,
    /// The most nodes held by any one other lock: a quorum of them means a real holder,
    /// fewer means contenders split the nodes and nobody won.
    pub(crate) strongest_holder: usize,
    /// The young servers that voted for, with what the guard made of them (a
    /// [`NodeError::Restarted`]) and what the servers said.
    pub(crate) restarted: Vec<(usize, NodeError, Arc<Health>)>,
    /// The semaphore slots each node that voted for took (node index, slots), for
    /// [`crate::script::PERMITS`]; empty for other scripts.
    pub(crate) slots: Vec<(usize, Vec<u32>)>,
}

impl Decided {
    /// Some node answered that another holder has the keys.
    pub(crate) fn held(&self) -> bool {
        self.record.votes_held() > 0
    }

    /// Another lock holds the keys on a quorum: it won.
    pub(crate) fn won_by_another(&self) -> bool {
        quorum::reached(self.strongest_holder, self.record.membership)
    }

    /// Contenders split the nodes and nobody can have won: nodes were held, but no other
    /// lock holds a quorum of them, even counting the nodes not heard from as its.
    pub(crate) fn split(&self) -> bool {
        let unheard = self.record.membership - self.record.votes.len();
        self.held() && !quorum::reached(self.strongest_holder + unheard, self.record.membership)
    }
}

/// The requests sent and not yet answered (or timed out), stragglers included, so that a
/// client can wait for them before it closes, and keep its process alive meanwhile.
#[derive(Default)]
pub struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

/// One request in flight; dropping it counts it out.
pub(crate) struct Counted(Arc<InFlight>);

impl InFlight {
    fn begin(self: &Arc<Self>) -> Counted {
        self.count.fetch_add(1, Ordering::SeqCst);
        Counted(self.clone())
    }

    /// How many requests are in flight.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight.
    pub async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            if self.count() == 0 {
                return;
            }
            idle.await;
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a round asks of every node: a script, the arguments after the lock's value, which
/// keys, and which votes count. A node that acted on no key votes [`Vote::Held`] when it
/// names another holder (an acquisition refused), [`Vote::NotHeld`] otherwise.
pub(crate) struct Request<'a> {
    pub(crate) script: &'static Script,
    pub(crate) args: &'a [&'a str],
    pub(crate) keys: Keys,
    pub(crate) counting: Counting,
    /// The restart guard, for an acquisition ([`crate::restart`]).
    pub(crate) guard: Option<RestartGuard>,
}

/// What a round needs of the lock it acts for: its value, its resources, and its lanes.
#[derive(Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) value: &'a str,
    pub(crate) resources: &'a [String],
    /// What [`Keys::Whole`] names: [`crate::lock::Lock::whole`].
    pub(crate) whole: &'a [String],
    pub(crate) lanes: &'a Lanes,
}

/// Which keys a round's script gets on each node.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keys {
    /// The lock's keys.
    Lock,
    /// The lock's keys, then their fencing counters.
    LockThenCounters,
    /// The fencing counters only.
    Counters,
    /// Every key a release clears ([`crate::lock::Lock::whole`]).
    Whole,
}

impl Keys {
    /// These keys of `lock` on `node`.
    fn of(self, lock: &Target<'_>, node: &Node) -> Arc<[String]> {
        let lock_keys = lock.resources.iter().map(|r| node.key(r));
        match self {
            Keys::Lock => lock_keys.collect(),
            Keys::Whole => lock.whole.iter().map(|r| node.key(r)).collect(),
            Keys::Counters => lock_keys.map(|k| fence::counter_key(&k)).collect(),
            Keys::LockThenCounters => {
                let lock_keys: Vec<String> = lock_keys.collect();
                let counters = lock_keys.iter().map(|k| fence::counter_key(k));
                let counters: Vec<String> = counters.collect();
                lock_keys.into_iter().chain(counters).collect()
            }
        }
    }
}

impl Drop for Round {
    fn drop(&mut self) {
        self.run_rest();
    }
}

impl Round {
    /// Waits until the round is decided, or until every node answered when `all` is set.
    /// Returns whether the quorum was reached, and the record of the votes so far.
    pub(crate) async fn decide(mut self, all: bool) -> Decided {
        let mut highest_counter = None;
        let mut holders: HashMap<String, usize> = HashMap::new();
        // Votes for from young servers: where they are in the record, and their servers.
        let mut young_for: Vec<(usize, Duration, Arc<Health>)> = Vec::new();
        // Slots taken by the nodes that voted for: where they are in the record.
        let mut slots: Vec<(usize, Vec<u32>)> = Vec::new();
        loop {
            let driving = !self.requests.is_empty();
            let received = tokio::select! {
                biased;
                received = self.votes.recv() => received,
                // Polling the requests sends their votes; an answer wakes this task only.
                Some(()) = self.requests.next(), if driving => continue,
            };
            let Some((node, vote, answer)) = received else {
                break;
            };
            let counts = self.record.counting.counts(&vote);
            if let Some(mut answer) = answer {
                if vote.is_for() {
                    highest_counter = highest_counter.max(answer.counter);
                    if !answer.slots.is_empty() {
                        let taken = std::mem::take(&mut answer.slots);
                        slots.push((self.record.votes.len(), taken));
                    }
                }
                if let Some(holder) = answer.holder {
                    *holders.entry(holder).or_default() += 1;
                }
                if let (Some((window, guarded)), Some(health)) = (&mut self.guarded, answer.health)
                {
                    let young = match health.age(*window) {
                        Age::Young(uptime) => Some(uptime),
                        Age::Old => None,
                    };
                    guarded.count(counts, young.is_some());
                    if let (true, Some(uptime)) = (counts, young) {
                        young_for.push((self.record.votes.len(), uptime, health));
                    }
                } else if let Some((_, guarded)) = &mut self.guarded {
                    guarded.count(counts, false);
                }
            } else if let Some((_, guarded)) = &mut self.guarded {
                guarded.count(counts, false);
            }
            self.tally.count(counts);
            self.record.votes.push((node, vote));
            let heard = self.tally.votes_for + self.tally.votes_against;
            if (!all && self.decision().is_some()) || heard == self.tally.membership {
                break;
            }
        }
        // Young votes for: left out and recorded as such, or counted; reported either way.
        let mut restarted = Vec::new();
        if let Some((window, guarded)) = &self.guarded {
            let counted = guarded.young_count();
            for (at, uptime, health) in young_for {
                let window = *window;
                let error = NodeError::Restarted {
                    uptime,
                    window,
                    counted,
                };
                let node = self.record.votes[at].0;
                if !counted {
                    self.record.votes[at].1 = Vote::Failed(error.clone());
                }
                restarted.push((node, error, health));
            }
        }
        // A vote the guard left out takes no slot.
        let slots = slots
            .into_iter()
            .filter(|(at, _)| self.record.votes[*at].1.is_for())
            .map(|(at, taken)| (self.record.votes[at].0, taken))
            .collect();
        let quorum = self.decision() == Some(true);
        let record = Attempt {
            votes: std::mem::take(&mut self.record.votes),
            ..self.record
        };
        Decided {
            quorum,
            record,
            highest_counter,
            strongest_holder: holders.values().copied().max().unwrap_or(0),
            restarted,
            slots,
        }
    }

    /// The round's decision so far, by the guard's count where it acts.
    fn decision(&self) -> Option<bool> {
        match &self.guarded {
            Some((_, guarded)) => guarded.decision(),
            None => self.tally.decision(),
        }
    }

    /// As [`Round::decide`], and calls `sent` in the round's first poll, by the end of which
    /// the round has handed its requests to the nodes' connections: just before it, so that
    /// on a current-thread runtime a task `sent` wakes is scheduled ahead of the connections'
    /// writers that the requests wake. That task runs after this poll and hands its own
    /// commands to the same connections behind this round's requests, and each connection
    /// then writes both at once, in that order: the commands reach every node after this
    /// round's requests, in the same write. (Unless a request had to wait for its lane or for
    /// its connection to open, or another worker of a multi-thread runtime runs the task
    /// while this poll is still under way: then its command may come first.)
    pub(crate) async fn decide_once_sent(self, all: bool, sent: impl FnOnce()) -> Decided {
        let mut deciding = std::pin::pin!(self.decide(all));
        let mut sent = Some(sent);
        std::future::poll_fn(|cx| {
            if let Some(sent) = sent.take() {
                sent();
            }
            deciding.as_mut().poll(cx)
        })
        .await
    }

    /// Lets the requests run on their own, for a round whose votes are read later if at all
    /// (the undo of a failed attempt, while its acquirer waits to retry).
    pub(crate) fn detach(mut self) -> Round {
        self.run_rest();
        self
    }

    /// Hands the requests still running to a task of their own.
    fn run_rest(&mut self) {
        if self.requests.is_empty() {
            return;
        }
        let mut rest = std::mem::take(&mut self.requests);
        // Without a runtime (the process is shutting down) there is nothing left to run them.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { while rest.next().await.is_some() {} });
        }
    }

    /// Sends `script` to every node at once, over the lock's `keys` on that node, with the
    /// lock's value and then `args` as arguments, and returns the round whose votes will
    /// arrive as the nodes answer. Each request takes its turn on the node's lane right
    /// here, in issue order; once its turn has come it is bounded by `per_node`, the connect
    /// included.
    pub(crate) fn start(
        nodes: &[Arc<Node>],
        listener: Option<NodeErrorListener>,
        in_flight: &Arc<InFlight>,
        stats: &Arc<Stats>,
        lock: Target,
        request: Request,
        per_node: Duration,
    ) -> Round {
        let Request {
            script,
            args,
            keys,
            counting,
            guard,
        } = request;
        let (tx, votes) = mpsc::unbounded_channel();
        let requests: FuturesUnordered<NodeRequest> = FuturesUnordered::new();
        let args: Arc<[String]> = std::iter::once(lock.value.to_owned())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        // Members with the same key prefix (usually all: none has one) share one key list.
        let mut shared: Option<(&str, Arc<[String]>)> = None;
        for (index, node) in nodes.iter().enumerate() {
            let mut turn = lock.lanes.enter(index);
            let node = node.clone();
            let keys = match &shared {
                Some((prefix, keys)) if *prefix == node.key_prefix() => keys.clone(),
                _ => {
                    let made = keys.of(&lock, &node);
                    shared = Some((nodes[index].key_prefix(), made.clone()));
                    made
                }
            };
            let args = args.clone();
            let tx = tx.clone();
            let listener = listener.clone();
            let stats = stats.clone();
            let counted = in_flight.begin();
            requests.push(Box::pin(async move {
                // The timeout starts once it is this command's turn: a command queued behind
                // one that timed out must still be sent, or a release could be lost while
                // the acquire it follows lands when the node resumes.
                turn.wait().await;
                let sent = Instant::now();
                let request = node.eval(script, &keys, &args);
                tokio::pin!(request);
                let answered = tokio::select! {
                    biased;
                    answered = &mut request => Some(answered),
                    _ = tokio::time::sleep(per_node) => None,
                };
                let timed_out = answered.is_none();
                let (vote, answer) = match answered {
                    Some(Ok(answer)) if answer.count > 0 => (Vote::For, Some(answer)),
                    Some(Ok(answer)) if answer.holder.is_some() => (Vote::Held, Some(answer)),
                    Some(Ok(answer)) => (Vote::NotHeld, Some(answer)),
                    Some(Err(e)) => (Vote::Failed(e), None),
                    None => (Vote::Failed(NodeError::Timeout), None),
                };
                let failed = match &vote {
                    Vote::Failed(error) => Some(error.code()),
                    _ => None,
                };
                stats.request(index, sent.elapsed(), failed);
                if let (Vote::Failed(error), Some(listener)) = (&vote, &listener) {
                    listener(node.label(), error);
                }
                let _ = tx.send((index, vote, answer));
                drop(turn);
                drop(counted);
                // The caller has its vote, and the lock's next command on this node may go.
                // A request that timed out is kept waiting for its answer all the same: the
                // redis crate drops a request whose caller gave up before the connection
                // wrote it, and the next command (a release) is already behind it. Dropped,
                // a late-written acquire could land with its release lost. Kept, the
                // connection writes both, in order. (Up to a bound per node, so that a node
                // that stopped answering under heavy traffic does not hold unbounded memory.)
                if let Some(_kept) = timed_out.then(|| node.keep()).flatten() {
                    tokio::select! {
                        _ = &mut request => {}
                        _ = node.closed() => {}
                        _ = tokio::time::sleep(KEEP_UNANSWERED) => {}
                    }
                }
            }));
        }
        let guarded = guard.filter(|g| g.mode != GuardMode::Off).map(|g| {
            let strict = g.mode == GuardMode::Strict;
            (g.window, GuardedTally::new(nodes.len(), strict))
        });
        Round {
            votes,
            requests,
            guarded,
            tally: Tally::new(nodes.len()),
            record: Attempt {
                membership: nodes.len(),
                quorum: quorum::quorum_size(nodes.len()),
                counting,
                votes: Vec::new(),
            },
        }
    }
}
