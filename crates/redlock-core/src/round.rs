//! The one fan-out every operation goes through: a script sent to all N nodes at once, each
//! request bounded by the per-node timeout, votes counted as they arrive, and a decision as
//! soon as a quorum is for or has become impossible. Stragglers are left to finish on their
//! own; the lanes ([`crate::lane`]) keep them ahead of the same lock's later commands.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Notify};

use crate::error::{Attempt, NodeError, Vote};
use crate::fence;
use crate::lock::Lock;
use crate::node::{Answer, Node};
use crate::quorum::{self, Tally};
use crate::redlock::NodeErrorListener;
use crate::script::{self, Script};

/// How long a request that timed out is still kept for its answer, so that its connection
/// writes it before the same lock's next command ([`Round::start`]).
const KEEP_UNANSWERED: Duration = Duration::from_secs(30);

/// One fan-out in flight: the votes arrive on `votes` as the nodes answer.
pub(crate) struct Round {
    votes: mpsc::UnboundedReceiver<(usize, Vote, Option<Answer>)>,
    tally: Tally,
    record: Attempt,
    counts: fn(&Vote) -> bool,
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

/// What a round asks of every node: a script, the arguments after the lock's value, and
/// which keys.
pub(crate) struct Request<'a> {
    pub(crate) script: &'static Script,
    pub(crate) args: &'a [&'a str],
    pub(crate) keys: Keys,
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
}

impl Round {
    /// Waits until the round is decided, or until every node answered when `all` is set.
    /// Returns whether the quorum was reached, and the record of the votes so far.
    pub(crate) async fn decide(mut self, all: bool) -> Decided {
        let mut highest_counter = None;
        let mut holders: HashMap<String, usize> = HashMap::new();
        while let Some((node, vote, answer)) = self.votes.recv().await {
            if let Some(answer) = answer {
                if vote.is_for() {
                    highest_counter = highest_counter.max(answer.counter);
                }
                if let Some(holder) = answer.holder {
                    *holders.entry(holder).or_default() += 1;
                }
            }
            self.tally.count((self.counts)(&vote));
            self.record.votes.push((node, vote));
            let heard = self.tally.votes_for + self.tally.votes_against;
            if (!all && self.tally.decision().is_some()) || heard == self.tally.membership {
                break;
            }
        }
        Decided {
            quorum: self.tally.decision() == Some(true),
            record: self.record,
            highest_counter,
            strongest_holder: holders.values().copied().max().unwrap_or(0),
        }
    }

    /// Sends `script` to every node at once, over the lock's `keys` on that node, with the
    /// lock's value and then `args` as arguments, and returns the round whose votes will
    /// arrive as the nodes answer. Each request takes its turn on the node's lane right
    /// here, in issue order; once its turn has come it is bounded by `per_node`, the connect
    /// included. `counts` says which votes count towards quorum.
    pub(crate) fn start(
        nodes: &[Arc<Node>],
        listener: Option<NodeErrorListener>,
        in_flight: &Arc<InFlight>,
        lock: &Lock,
        request: Request,
        per_node: Duration,
        counts: fn(&Vote) -> bool,
    ) -> Round {
        let Request { script, args, keys } = request;
        let (tx, votes) = mpsc::unbounded_channel();
        let args: Arc<[String]> = std::iter::once(lock.value.clone())
            .chain(args.iter().map(|a| a.to_string()))
            .collect();
        for (index, node) in nodes.iter().enumerate() {
            let mut turn = lock.lanes.enter(index);
            let node = node.clone();
            let lock_keys = lock.resources.iter().map(|r| node.key(r));
            let keys: Vec<String> = match keys {
                Keys::Lock => lock_keys.collect(),
                Keys::Counters => lock_keys.map(|k| fence::counter_key(&k)).collect(),
                Keys::LockThenCounters => {
                    let lock_keys: Vec<String> = lock_keys.collect();
                    let counters: Vec<String> =
                        lock_keys.iter().map(|k| fence::counter_key(k)).collect();
                    lock_keys.into_iter().chain(counters).collect()
                }
            };
            let args = args.clone();
            let tx = tx.clone();
            let listener = listener.clone();
            let counted = in_flight.begin();
            tokio::spawn(async move {
                // The timeout starts once it is this command's turn: a command queued behind
                // one that timed out must still be sent, or a release could be lost while
                // the acquire it follows lands when the node resumes.
                turn.wait().await;
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
                    Some(Ok(answer)) if std::ptr::eq(script, &*script::ACQUIRE) => {
                        (Vote::Held, Some(answer))
                    }
                    Some(Ok(answer)) => (Vote::NotHeld, Some(answer)),
                    Some(Err(e)) => (Vote::Failed(e), None),
                    None => (Vote::Failed(NodeError::Timeout), None),
                };
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
            });
        }
        Round {
            votes,
            tally: Tally::new(nodes.len()),
            record: Attempt {
                membership: nodes.len(),
                quorum: quorum::quorum_size(nodes.len()),
                votes: Vec::new(),
            },
            counts,
        }
    }
}

/// For a release, every node that answered counts, whether or not it still held the lock.
pub(crate) fn answered(vote: &Vote) -> bool {
    !matches!(vote, Vote::Failed(_))
}
