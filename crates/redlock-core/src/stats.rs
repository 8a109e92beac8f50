//! What a client has done since it was made: operations by outcome with their latencies,
//! each member's requests, errors and latencies, wake-on-release hand-offs and locks lost.
//! Read whole by [`Stats::snapshot`] (`redlock.stats()`); for telemetry, each member's
//! requests are also kept as samples until [`Stats::drain`] takes them, so that JavaScript
//! receives them in batches, not one boundary crossing per request.
//!
//! Everything is recorded on the engine's thread under one uncontended lock; latencies go to
//! HDR histograms (2 significant digits, 1 µs to 1 hour), so memory stays bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::lock::now_ms;

/// The operations counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Acquire,
    Extend,
    Release,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Acquire, Op::Extend, Op::Release];

    pub fn name(self) -> &'static str {
        match self {
            Op::Acquire => "acquire",
            Op::Extend => "extend",
            Op::Release => "release",
        }
    }
}

/// The outcome of an operation that succeeded.
pub const OK: &str = "ok";

/// The most request latencies sampled per member between two drains (the binding drains
/// once a second): under load the latency histogram gets a sample of the requests, and the
/// work of handing them over stays bounded. Failures are counted apart, every one.
pub const SAMPLES_PER_NODE: u32 = 1000;

/// One member's request, kept for telemetry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// The member's index.
    pub node: usize,
    /// How long the request took, to its answer or its timeout.
    pub micros: u64,
    /// The node error's code, when it failed.
    pub error: Option<&'static str>,
}

/// What [`Stats::drain`] hands over.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Drained {
    pub samples: Vec<Sample>,
    /// `((member, code), how many)`.
    pub failed: Vec<((usize, &'static str), u64)>,
}

/// Percentiles of a latency, in ms.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// An operation's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct OpSnapshot {
    pub op: Op,
    /// By outcome: [`OK`] or an error's code.
    pub outcomes: BTreeMap<&'static str, u64>,
    pub latency: Summary,
}

/// A member's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSnapshot {
    pub requests: u64,
    /// Failed requests by the node error's code.
    pub errors: BTreeMap<&'static str, u64>,
    pub latency: Summary,
}

/// Everything counted, at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// When counting began (the client's creation), ms since the epoch.
    pub since_ms: u64,
    pub operations: Vec<OpSnapshot>,
    pub nodes: Vec<NodeSnapshot>,
    /// Acquirers of this process woken by a release (in this process or through a notice).
    pub handoffs: u64,
    /// Locks a watchdog found lost.
    pub lost: u64,
}

struct Counts {
    outcomes: BTreeMap<&'static str, u64>,
    latency: Histogram<u32>,
}

impl Counts {
    fn new() -> Self {
        Counts {
            outcomes: BTreeMap::new(),
            latency: Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid bounds"),
        }
    }

    fn record(&mut self, elapsed: Duration, outcome: Option<&'static str>) {
        if let Some(outcome) = outcome {
            *self.outcomes.entry(outcome).or_default() += 1;
        }
        self.latency.saturating_record(elapsed.as_micros() as u64);
    }

    fn summary(&self) -> Summary {
        let h = &self.latency;
        let ms = |micros: u64| micros as f64 / 1000.0;
        match h.len() {
            0 => Summary::default(),
            count => Summary {
                count,
                mean: h.mean() / 1000.0,
                p50: ms(h.value_at_quantile(0.5)),
                p90: ms(h.value_at_quantile(0.9)),
                p99: ms(h.value_at_quantile(0.99)),
                max: ms(h.max()),
            },
        }
    }
}

struct Inner {
    ops: [Counts; 3],
    nodes: Vec<Counts>,
    samples: Vec<Sample>,
    /// Per member: samples taken since the last drain.
    sampled: Vec<u32>,
    /// Failed requests since the last drain, by member and code.
    failed: BTreeMap<(usize, &'static str), u64>,
}

/// A client's counts ([module docs](self)).
pub struct Stats {
    since_ms: u64,
    inner: Mutex<Inner>,
    sampling: AtomicBool,
    handoffs: AtomicU64,
    lost: AtomicU64,
}

impl Stats {
    /// Counts for a client of `nodes` members, from now.
    pub fn new(nodes: usize) -> Self {
        Stats {
            since_ms: now_ms(),
            inner: Mutex::new(Inner {
                ops: [Counts::new(), Counts::new(), Counts::new()],
                nodes: (0..nodes).map(|_| Counts::new()).collect(),
                samples: Vec::new(),
                sampled: vec![0; nodes],
                failed: BTreeMap::new(),
            }),
            sampling: AtomicBool::new(false),
            handoffs: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An operation ended after `elapsed` with `outcome` ([`OK`] or an error's code).
    pub fn operation(&self, op: Op, elapsed: Duration, outcome: &'static str) {
        self.inner().ops[op as usize].record(elapsed, Some(outcome));
    }

    /// A request to member `node` was answered, failed or timed out after `elapsed`.
    pub fn request(&self, node: usize, elapsed: Duration, error: Option<&'static str>) {
        let mut inner = self.inner();
        inner.nodes[node].record(elapsed, error);
        if !self.sampling.load(Ordering::Relaxed) {
            return;
        }
        if let Some(code) = error {
            *inner.failed.entry((node, code)).or_default() += 1;
        }
        if inner.sampled[node] < SAMPLES_PER_NODE {
            inner.sampled[node] += 1;
            inner.samples.push(Sample {
                node,
                micros: elapsed.as_micros() as u64,
                error,
            });
        }
    }

    /// An acquirer was woken by a release.
    pub fn handoff(&self) {
        self.handoffs.fetch_add(1, Ordering::Relaxed);
    }

    /// How many hand-offs so far.
    pub fn handoffs(&self) -> u64 {
        self.handoffs.load(Ordering::Relaxed)
    }

    /// A watchdog found its lock lost.
    pub fn lost(&self) {
        self.lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Keeps request samples for [`Stats::drain`] from now on (or no longer).
    pub fn sample(&self, on: bool) {
        self.sampling.store(on, Ordering::Relaxed);
        if !on {
            self.inner().samples = Vec::new();
        }
    }

    /// The samples kept since the last drain (at most [`SAMPLES_PER_NODE`] per member), and
    /// every failed request since then, counted by member and code.
    pub fn drain(&self) -> Drained {
        let mut inner = self.inner();
        inner.sampled.iter_mut().for_each(|n| *n = 0);
        Drained {
            samples: std::mem::take(&mut inner.samples),
            failed: std::mem::take(&mut inner.failed).into_iter().collect(),
        }
    }

    /// Everything counted so far.
    pub fn snapshot(&self) -> Snapshot {
        let inner = self.inner();
        let operations = Op::ALL
            .iter()
            .map(|&op| {
                let counts = &inner.ops[op as usize];
                OpSnapshot {
                    op,
                    outcomes: counts.outcomes.clone(),
                    latency: counts.summary(),
                }
            })
            .collect();
        let nodes = inner
            .nodes
            .iter()
            .map(|counts| NodeSnapshot {
                requests: counts.latency.len(),
                errors: counts.outcomes.clone(),
                latency: counts.summary(),
            })
            .collect();
        Snapshot {
            since_ms: self.since_ms,
            operations,
            nodes,
            handoffs: self.handoffs.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_and_requests_are_counted_with_percentiles() {
        let stats = Stats::new(2);
        for ms in 1..=100 {
            stats.operation(Op::Acquire, Duration::from_millis(ms), OK);
        }
        stats.operation(Op::Acquire, Duration::from_millis(5), "ERR_REDLOCK_QUORUM");
        stats.request(1, Duration::from_micros(300), None);
        stats.request(
            1,
            Duration::from_millis(50),
            Some("ERR_REDLOCK_NODE_TIMEOUT"),
        );
        let snapshot = stats.snapshot();
        let acquire = &snapshot.operations[0];
        assert_eq!(acquire.outcomes[OK], 100);
        assert_eq!(acquire.outcomes["ERR_REDLOCK_QUORUM"], 1);
        assert_eq!(acquire.latency.count, 101);
        assert!(
            (acquire.latency.p50 - 50.0).abs() < 1.0,
            "{:?}",
            acquire.latency
        );
        assert!((acquire.latency.max - 100.0).abs() < 1.0);
        assert_eq!(snapshot.operations[1].latency.count, 0);
        assert_eq!(snapshot.nodes[0].requests, 0);
        assert_eq!(snapshot.nodes[1].requests, 2);
        assert_eq!(snapshot.nodes[1].errors["ERR_REDLOCK_NODE_TIMEOUT"], 1);
    }

    #[test]
    fn samples_are_kept_only_while_sampling_and_bounded_failures_all_counted() {
        let stats = Stats::new(2);
        stats.request(0, Duration::from_micros(10), None);
        assert_eq!(stats.drain(), Drained::default());
        stats.sample(true);
        let timeout = Some("ERR_REDLOCK_NODE_TIMEOUT");
        for _ in 0..SAMPLES_PER_NODE + 3 {
            stats.request(0, Duration::from_micros(10), None);
            stats.request(1, Duration::from_micros(10), timeout);
        }
        let drained = stats.drain();
        let per_node = |n| drained.samples.iter().filter(|s| s.node == n).count();
        assert_eq!(per_node(0), SAMPLES_PER_NODE as usize);
        assert_eq!(per_node(1), SAMPLES_PER_NODE as usize);
        let all = u64::from(SAMPLES_PER_NODE) + 3;
        assert_eq!(drained.failed, vec![((1, "ERR_REDLOCK_NODE_TIMEOUT"), all)]);
        assert_eq!(stats.drain(), Drained::default());
        stats.request(0, Duration::from_micros(10), None);
        assert_eq!(stats.drain().samples.len(), 1, "the bound is per drain");
    }
}
