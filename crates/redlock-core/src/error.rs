//! Every way an operation can fail, each with a stable code.
//!
//! Errors carry the record of every attempt (who voted how, and why) so that a caller can
//! see which nodes refused, failed or timed out. Nothing here ever holds a password: nodes
//! are named by [`crate::node::Node::label`], which is host, port and db only.

use std::fmt;

/// Why one node could not vote for an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeError {
    /// No answer within the per-node timeout.
    Timeout,
    /// The connection could not be opened, or broke.
    Connection(String),
    /// The node answered with an error.
    Server(String),
    /// The node refused to log in: a wrong or missing user or password. Never holds the
    /// password.
    Auth(String),
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Timeout => f.write_str("no answer within the request timeout"),
            NodeError::Connection(m) => write!(f, "connection failed: {m}"),
            NodeError::Server(m) => write!(f, "the server answered with an error: {m}"),
            NodeError::Auth(m) => write!(f, "authentication failed: {m}"),
        }
    }
}

impl NodeError {
    /// A stable code for this kind of node failure.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Timeout => "ERR_REDLOCK_NODE_TIMEOUT",
            NodeError::Connection(_) => "ERR_REDLOCK_NODE_CONNECTION",
            NodeError::Server(_) => "ERR_REDLOCK_NODE_SERVER",
            NodeError::Auth(_) => "ERR_REDLOCK_NODE_AUTH",
        }
    }
}

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
    /// Whether this vote counts towards the quorum.
    pub fn is_for(&self) -> bool {
        matches!(self, Vote::For)
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
    /// `(node index, vote)` in the order the answers arrived.
    pub votes: Vec<(usize, Vote)>,
}

impl Attempt {
    /// How many of the recorded votes were for.
    pub fn votes_for(&self) -> usize {
        self.votes.iter().filter(|(_, v)| v.is_for()).count()
    }

    /// How many nodes answered that another holder has the keys.
    pub fn votes_held(&self) -> usize {
        self.votes.iter().filter(|(_, v)| *v == Vote::Held).count()
    }

    /// Whether so many nodes refused to log us in that no quorum is possible: retrying
    /// cannot help until the credentials are fixed, so the operation fails at once.
    pub fn refused_login(&self) -> bool {
        let refused = self
            .votes
            .iter()
            .filter(|(_, v)| matches!(v, Vote::Failed(NodeError::Auth(_))))
            .count();
        refused > self.membership - self.quorum
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
