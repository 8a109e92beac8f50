//! Why one node could not answer a request, each reason with a stable code. Below every
//! other module: a node, a cluster member and a round all report these.

use std::fmt;
use std::time::Duration;

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
    /// The node answered, but it restarted less than the restart guard's `window` ago
    /// ([`crate::restart`]): its vote for an acquisition does not count, or with `counted`,
    /// counted only because a majority of the servers restarted within the window.
    Restarted {
        uptime: Duration,
        window: Duration,
        counted: bool,
    },
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeError::Timeout => f.write_str("no answer within the request timeout"),
            NodeError::Connection(m) => write!(f, "connection failed: {m}"),
            NodeError::Server(m) => write!(f, "the server answered with an error: {m}"),
            NodeError::Auth(m) => write!(f, "authentication failed: {m}"),
            NodeError::Restarted {
                uptime,
                window,
                counted,
            } => {
                write!(
                    f,
                    "the server has been up for only {} s, less than the restart guard's window of {} s: it may have forgotten locks it granted before it restarted, ",
                    uptime.as_secs(),
                    window.as_secs_f64().ceil()
                )?;
                f.write_str(match counted {
                    false => "so its vote for an acquisition does not count",
                    true => "but its vote counted: a majority of the servers restarted within the window (a new fleet, or locks lost on a majority; restartGuard: 'strict' refuses then)",
                })
            }
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
            NodeError::Restarted { .. } => "ERR_REDLOCK_NODE_RESTARTED",
        }
    }
}
