//! Why one node could not answer a request, each reason with a stable code. Below every
//! other module: a node, a cluster member and a round all report these.

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
