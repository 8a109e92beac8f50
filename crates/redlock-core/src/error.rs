//! Every way an operation can fail, each with a stable code.
//!
//! Errors carry the record of every attempt (who voted how, and why) so that a caller can
//! see which nodes refused, failed or timed out. Nothing here ever holds a password: nodes
//! are named by [`crate::node::Node::label`], which is host, port and db only.

use std::fmt;

pub use crate::fault::NodeError;
use crate::quorum;
use crate::round::{Attempt, Counting, Vote};

/// Why a node's vote did not count, as a caller is told it: a stable code and words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Against {
    pub code: &'static str,
    pub message: String,
}

impl Against {
    /// Why `vote` did not count, or `None` when it did (in an attempt counted by
    /// `counting`). `resources` is how many keys the lock has: a node that refused says, in
    /// node-redlock's words, to how many of them the operation was applied (its scripts
    /// apply to all of a lock's keys or none).
    pub fn of(vote: &Vote, counting: Counting, resources: usize) -> Option<Against> {
        if counting.counts(vote) {
            return None;
        }
        let applied_to_none =
            || format!("The operation was applied to: 0 of the {resources} requested resources.");
        Some(match vote {
            Vote::Held => Against {
                code: Error::ResourceLocked { attempts: vec![] }.code(),
                message: applied_to_none(),
            },
            Vote::Failed(e) => Against {
                code: e.code(),
                message: e.to_string(),
            },
            Vote::For | Vote::NotHeld => Against {
                code: Error::LockExpired { attempts: vec![] }.code(),
                message: applied_to_none(),
            },
        })
    }
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Another holder has the resource on enough nodes that no quorum was possible, on the
    /// last attempt.
    ResourceLocked { attempts: Vec<Attempt> },
    /// No quorum could be reached: nodes down, slow, or the validity ran out.
    Quorum { attempts: Vec<Attempt> },
    /// An extension found the lock no longer held on a quorum, or already expired.
    LockExpired { attempts: Vec<Attempt> },
    /// The acquisition was cancelled by its caller.
    Aborted { attempts: Vec<Attempt> },
    /// The acquisition's `acquire_timeout` ran out.
    AcquireTimeout { attempts: Vec<Attempt> },
    /// A watchdog stopped extending at its maximum hold time and the lock expired.
    MaxHold,
    /// The `Redlock` was closed with `quit()`.
    Closed,
}

impl Error {
    /// The stable code of this error, as the JavaScript error's `code` shows it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::ResourceLocked { .. } => "ERR_REDLOCK_RESOURCE_LOCKED",
            Error::Quorum { .. } => "ERR_REDLOCK_QUORUM",
            Error::LockExpired { .. } => "ERR_REDLOCK_LOCK_EXPIRED",
            Error::Aborted { .. } => "ABORT_ERR",
            Error::AcquireTimeout { .. } => "ERR_REDLOCK_ACQUIRE_TIMEOUT",
            Error::MaxHold => "ERR_REDLOCK_MAX_HOLD",
            Error::Closed => "ERR_REDLOCK_CLOSED",
        }
    }

    /// The attempts made before giving up.
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            Error::ResourceLocked { attempts }
            | Error::Quorum { attempts }
            | Error::LockExpired { attempts }
            | Error::Aborted { attempts }
            | Error::AcquireTimeout { attempts } => attempts,
            Error::MaxHold | Error::Closed => &[],
        }
    }
}

impl Error {
    /// A resource is locked when, on the last attempt, the nodes held by someone else alone
    /// made a quorum impossible; anything else is a failure to reach a quorum.
    pub fn of_acquisition(attempts: Vec<Attempt>) -> Error {
        let last = attempts.last().expect("at least one attempt was made");
        match quorum::impossible(last.votes_held(), last.membership) {
            true => Error::ResourceLocked { attempts },
            false => Error::Quorum { attempts },
        }
    }

    /// The error's words, followed by the nodes that failed on the last attempt and why
    /// (unreachable, TLS, authentication), so that a misconfigured node shows in the error
    /// itself. `label` names a node by its index.
    pub fn message(&self, label: impl Fn(usize) -> String) -> String {
        let mut message = self.to_string();
        let last = self.attempts().last();
        let failed: Vec<String> = last
            .map(|a| a.votes.as_slice())
            .unwrap_or_default()
            .iter()
            .filter_map(|(node, vote)| match vote {
                Vote::Failed(e) => Some(format!("{}: {e}", label(*node))),
                _ => None,
            })
            .collect();
        if !failed.is_empty() {
            message = format!("{message} Failed nodes: {}.", failed.join("; "));
        }
        message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tries = self.attempts().len();
        match self {
            Error::ResourceLocked { .. } => write!(
                f,
                "The resource is locked by another holder: no quorum after {tries} attempt(s)."
            ),
            Error::Quorum { .. } => write!(
                f,
                "The operation was unable to achieve a quorum during its retry window \
                 ({tries} attempt(s))."
            ),
            Error::LockExpired { .. } => f.write_str(
                "The lock is no longer held on a quorum of nodes (it expired, was released \
                 or was taken over); it cannot be extended.",
            ),
            Error::Aborted { .. } => f.write_str("The acquisition was aborted."),
            Error::AcquireTimeout { .. } => write!(
                f,
                "The lock was not acquired within acquireTimeout ({tries} attempt(s))."
            ),
            Error::MaxHold => f.write_str(
                "The lock was held for its maximum hold time; it was no longer extended and expired.",
            ),
            Error::Closed => f.write_str("This Redlock was closed with quit()."),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_resource_locked_only_when_holders_alone_prevent_the_quorum() {
        let attempt = |votes: Vec<Vote>| Attempt {
            membership: 5,
            quorum: 3,
            counting: Counting::Done,
            votes: votes.into_iter().enumerate().collect(),
        };
        let held = Error::of_acquisition(vec![attempt(vec![Vote::Held, Vote::Held, Vote::Held])]);
        assert_eq!(held.code(), "ERR_REDLOCK_RESOURCE_LOCKED");
        let down = Vote::Failed(NodeError::Timeout);
        let mixed = Error::of_acquisition(vec![attempt(vec![Vote::Held, Vote::Held, down])]);
        assert_eq!(mixed.code(), "ERR_REDLOCK_QUORUM");
    }
}
