//! How an operation behaves: the retry rule, timeouts, and the optional behaviours. Every
//! field can be given per call.

use std::time::Duration;

use crate::restart::RestartGuard;
use crate::retry::RetryStrategy;

/// How an operation behaves; every field can be set per call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Expected clock drift between nodes, as a fraction of the TTL.
    pub drift_factor: f64,
    /// Retries after the first attempt; `None` retries until it succeeds.
    pub retry_count: Option<u32>,
    /// The pause between attempts.
    pub retry: RetryStrategy,
    /// How long one node may take to answer one request, the connect included.
    pub request_timeout: Duration,
    /// Whether a waiter wakes on release notices (`true`) or only polls on its retry timer.
    pub wake_on_release: bool,
    /// How long an acquisition may wait in all, if bounded.
    pub acquire_timeout: Option<Duration>,
    /// Whether an acquisition also takes a fencing token ([`crate::fence`]).
    pub fencing: bool,
    /// Whether an acquisition leaves out the votes of servers that restarted lately
    /// ([`crate::restart`]).
    pub restart_guard: RestartGuard,
}

impl Default for Settings {
    /// node-redlock's defaults, and a 500 ms per-node timeout.
    fn default() -> Self {
        Settings {
            drift_factor: 0.01,
            retry_count: Some(10),
            retry: RetryStrategy::Fixed {
                delay: Duration::from_millis(200),
                jitter: Duration::from_millis(100),
            },
            request_timeout: Duration::from_millis(500),
            wake_on_release: true,
            acquire_timeout: None,
            fencing: false,
            restart_guard: RestartGuard::default(),
        }
    }
}

impl Settings {
    /// How long `quit()` lets the requests already sent finish: twice the per-node timeout,
    /// at most 5 s.
    pub fn quit_grace(&self) -> Duration {
        (2 * self.request_timeout).min(Duration::from_secs(5))
    }

    /// The pause before retry `retry` (1-based), or `None` when no retry is left.
    pub(crate) fn pause_before(&self, retry: u32) -> Option<Duration> {
        match self.retry_count {
            Some(count) if retry > count => None,
            _ => Some(self.retry.next_delay(retry)),
        }
    }
}
