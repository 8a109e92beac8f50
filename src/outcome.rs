//! What an operation resolves with, as plain JavaScript data: a lock, a release count, or a
//! failure with its stable code and every attempt's votes. The front door turns a failure
//! into an instance of the matching error class, so that errors are made in the caller's
//! realm. Node names are `host:port/db`, never with credentials.

use napi_derive::napi;
use redlock_core::{Attempt, Error, Vote};

use crate::Lock;

/// The answer of `acquire`, `extend` or `release`.
#[napi(object, object_from_js = false)]
pub struct Outcome {
    /// The lock, when one was acquired or extended.
    pub lock: Option<Lock>,
    /// For a release: how many nodes still held the lock and deleted it.
    pub nodes_held: Option<u32>,
    /// The attempts made.
    pub attempts: Vec<AttemptStats>,
    /// Why the operation failed, if it did.
    pub error: Option<Failure>,
}

/// A failed operation.
#[napi(object)]
pub struct Failure {
    /// Stable code, e.g. `ERR_REDLOCK_RESOURCE_LOCKED`.
    pub code: String,
    /// What happened, in words.
    pub message: String,
}

/// The votes of one attempt.
#[napi(object)]
pub struct AttemptStats {
    /// How many nodes took part.
    pub membership_size: u32,
    /// How many had to be for.
    pub quorum_size: u32,
    /// The nodes that voted for.
    pub votes_for: Vec<String>,
    /// The nodes that voted against, and why. Nodes that had not answered when the attempt
    /// was decided appear in neither list.
    pub votes_against: Vec<VoteAgainst>,
}

/// One node's vote against.
#[napi(object)]
pub struct VoteAgainst {
    /// `host:port/db`.
    pub node: String,
    /// Stable code of the reason.
    pub code: String,
    /// The reason, in words.
    pub message: String,
}

/// Which operation the votes were cast in: a release counts every node that answered.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Acquire,
    Extend,
    Release,
}

/// The one place where the engine's results become JavaScript data. `resources` is how many
/// keys the lock has: a node that refused says, in node-redlock's words, to how many of them
/// the operation was applied.
pub fn stats(
    attempts: &[Attempt],
    labels: &[String],
    op: Operation,
    resources: usize,
) -> Vec<AttemptStats> {
    // The scripts apply to all of a lock's keys or none.
    let applied_to_none =
        format!("The operation was applied to: 0 of the {resources} requested resources.");
    attempts
        .iter()
        .map(|attempt| {
            let mut stats = AttemptStats {
                membership_size: attempt.membership as u32,
                quorum_size: attempt.quorum as u32,
                votes_for: Vec::new(),
                votes_against: Vec::new(),
            };
            for (node, vote) in &attempt.votes {
                let node = labels[*node].clone();
                let (code, message) = match vote {
                    Vote::For => {
                        stats.votes_for.push(node);
                        continue;
                    }
                    Vote::NotHeld if op == Operation::Release => {
                        stats.votes_for.push(node);
                        continue;
                    }
                    Vote::Held => ("ERR_REDLOCK_RESOURCE_LOCKED", applied_to_none.clone()),
                    Vote::NotHeld => ("ERR_REDLOCK_LOCK_EXPIRED", applied_to_none.clone()),
                    Vote::Failed(e) => (e.code(), e.to_string()),
                };
                stats.votes_against.push(VoteAgainst {
                    node,
                    code: code.to_owned(),
                    message,
                });
            }
            stats
        })
        .collect()
}

/// A failed operation's outcome. The message names the nodes that failed on the last
/// attempt and why (unreachable, TLS, authentication), so that a misconfigured node shows
/// in the error itself.
pub fn failure(error: &Error, labels: &[String], op: Operation, resources: usize) -> Outcome {
    let mut message = error.to_string();
    let failed: Vec<String> = error
        .attempts()
        .last()
        .map(|a| a.votes.as_slice())
        .unwrap_or_default()
        .iter()
        .filter_map(|(node, vote)| match vote {
            Vote::Failed(e) => Some(format!("{}: {e}", labels[*node])),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        message = format!("{message} Failed nodes: {}.", failed.join("; "));
    }
    Outcome {
        lock: None,
        nodes_held: None,
        attempts: stats(error.attempts(), labels, op, resources),
        error: Some(Failure {
            code: error.code().to_owned(),
            message,
        }),
    }
}
