//! What crosses to JavaScript: an operation's outcome as plain data (a lock, a release count,
//! or a failure, with every attempt's votes), and the one shape of every failure, a
//! [`Failure`], whether an operation failed in the engine or an argument was refused. The
//! front door turns a `Failure` into an instance of the matching error class, so that errors
//! are made in the caller's realm. Node names are `host:port/db`, never with credentials.

use std::collections::HashMap;

use napi::bindgen_prelude::{BigInt, Float64Array, Int32Array, Uint32Array};
use napi::bindgen_prelude::{JavaScriptClassExt, JsObjectValue, JsValue};
use napi::Env;
use napi_derive::napi;
use redlock_core::inspect::{self, Held, MemberView};
use redlock_core::{Against, Attempt, Error, Verdict};

use crate::args::{Kind, Refusal, Refused};
use crate::Lock;

/// The answer of `acquire`, `extend` or `release`.
#[napi(object, object_from_js = false)]
pub struct Outcome {
    /// The lock, when one was acquired or extended.
    pub lock: Option<Lock>,
    /// For a release: how many nodes still held the lock and deleted it.
    pub nodes_held: Option<u32>,
    /// The attempts, when every vote recorded was for: three numbers per attempt (how many
    /// nodes took part, the quorum, and a bit per node, by its index among the nodes, for
    /// each node that voted for). `attempts` is then empty; JavaScript makes the attempts
    /// from these only when someone reads them.
    pub tally: Option<Vec<u32>>,
    /// The attempts made, when there is no `tally`.
    pub attempts: Vec<AttemptStats>,
    /// Why the operation failed, if it did.
    pub error: Option<Failure>,
}

impl Outcome {
    /// A lock acquired or extended.
    pub fn held(lock: std::sync::Arc<redlock_core::Lock>, labels: &[String]) -> Outcome {
        let (tally, attempts) = votes(&lock.attempts(), labels, lock.resources.len());
        Outcome {
            lock: Some(Lock::from(lock)),
            nodes_held: None,
            tally,
            attempts,
            error: None,
        }
    }

    /// A lock released from `nodes_held` nodes.
    pub fn released(
        nodes_held: usize,
        attempts: &[Attempt],
        labels: &[String],
        keys: usize,
    ) -> Outcome {
        let (tally, attempts) = votes(attempts, labels, keys);
        Outcome {
            lock: None,
            nodes_held: Some(nodes_held as u32),
            tally,
            attempts,
            error: None,
        }
    }
}

/// A successful operation's attempts: as a tally when every vote recorded was for (and
/// there are at most 32 nodes), which crosses to JavaScript as a few numbers instead of an
/// object, two arrays and a string per node for each attempt; as data otherwise.
fn votes(
    attempts: &[Attempt],
    labels: &[String],
    resources: usize,
) -> (Option<Vec<u32>>, Vec<AttemptStats>) {
    match tally(attempts) {
        Some(tally) => (Some(tally), Vec::new()),
        None => (None, stats(attempts, labels, resources)),
    }
}

/// `attempts` as a tally, if every vote recorded was for.
pub fn tally(attempts: &[Attempt]) -> Option<Vec<u32>> {
    let mut tally = Vec::with_capacity(attempts.len() * 3);
    for attempt in attempts {
        let mut voted_for = 0u32;
        for (node, vote) in &attempt.votes {
            if *node >= 32 || !attempt.counting.counts(vote) {
                return None;
            }
            voted_for |= 1 << node;
        }
        tally.extend([attempt.membership as u32, attempt.quorum as u32, voted_for]);
    }
    Some(tally)
}

/// Why a call failed, as data: thrown by a refused call, or carried by a failed outcome.
#[napi]
pub struct Failure {
    /// Stable code, e.g. `ERR_REDLOCK_RESOURCE_LOCKED` or `ERR_INVALID_ARG_TYPE`.
    pub code: String,
    /// The JavaScript class it becomes: `TypeError` or `RangeError` (a refused argument),
    /// `ExecutionError` (the class its code names), `AbortError`, or `Error` (a failure of
    /// the binding itself, `ERR_REDLOCK_INTERNAL`).
    pub kind: String,
    /// What happened, in words.
    pub message: String,
    /// The refused argument, as the message names it.
    pub argument: Option<String>,
}

impl Failure {
    /// The failure of an operation.
    pub fn of(error: &Error, labels: &[String]) -> Failure {
        let kind = match error {
            Error::Aborted { .. } => "AbortError",
            _ => "ExecutionError",
        };
        Failure {
            code: error.code().to_owned(),
            kind: kind.to_owned(),
            message: error.message(|node| labels[node].clone()),
            argument: None,
        }
    }

    /// What a refused call throws: the refusal as a `Failure`; an exception JavaScript threw
    /// (a getter of the caller's) as it is; an error napi reported as `ERR_REDLOCK_INTERNAL`.
    pub fn throw(env: &Env, refused: Refused) -> napi::Error {
        let failure = match refused {
            Refused::Argument(refusal) => Failure::from(refusal),
            Refused::Thrown(error) if error.status == napi::Status::PendingException => {
                return error
            }
            Refused::Thrown(error) => Failure {
                code: "ERR_REDLOCK_INTERNAL".to_owned(),
                kind: "Error".to_owned(),
                message: error.reason.clone(),
                argument: None,
            },
        };
        // napi throws only Error objects as they are: the failure rides on one, as its
        // `failure`.
        let thrown = || -> napi::Result<napi::Error> {
            let reason = napi::Error::from_reason(failure.message.clone());
            let mut error = env.create_error(reason)?;
            error.set_named_property("failure", failure.into_instance(env)?)?;
            Ok(napi::Error::from(error.to_unknown()))
        };
        thrown().unwrap_or_else(|error| error)
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        let kind = match refusal.kind {
            Kind::Type => "TypeError",
            Kind::Range => "RangeError",
        };
        Failure {
            code: refusal.code.to_owned(),
            kind: kind.to_owned(),
            message: refusal.message,
            argument: Some(refusal.argument),
        }
    }
}

/// The votes of one attempt.
#[napi(object)]
pub struct AttemptStats {
    /// How many nodes took part.
    pub membership_size: u32,
    /// How many had to be for.
    pub quorum_size: u32,
    /// The nodes whose votes counted towards the quorum.
    pub votes_for: Vec<String>,
    /// The nodes whose votes did not, and why. Nodes that had not answered when the attempt
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

/// The engine's attempts as JavaScript data. `resources` is how many keys the lock has.
pub fn stats(attempts: &[Attempt], labels: &[String], resources: usize) -> Vec<AttemptStats> {
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
                match Against::of(vote, attempt.counting, resources) {
                    None => stats.votes_for.push(node),
                    Some(Against { code, message }) => stats.votes_against.push(VoteAgainst {
                        node,
                        code: code.to_owned(),
                        message,
                    }),
                }
            }
            stats
        })
        .collect()
}

/// A failed operation's outcome.
pub fn failure(error: &Error, labels: &[String], resources: usize) -> Outcome {
    Outcome {
        lock: None,
        nodes_held: None,
        tally: None,
        attempts: stats(error.attempts(), labels, resources),
        error: Some(Failure::of(error, labels)),
    }
}

/// What `inspect` found: per resource, the verdict and every member's answer.
#[napi(object, object_from_js = false)]
pub struct Inspection {
    /// One report per resource, in the order asked; empty when the operation failed.
    pub resources: Vec<ResourceReport>,
    /// Why the operation failed (the client was closed), if it did.
    pub error: Option<Failure>,
}

/// One resource over every member.
#[napi(object, object_from_js = false)]
pub struct ResourceReport {
    pub resource: String,
    /// `held` (one value on a quorum), `free` (a quorum answered, none holds it), `split`
    /// (held, but by no value on a quorum) or `unknown` (fewer than a quorum answered).
    pub verdict: String,
    /// The value that holds it on a quorum, with `held`.
    pub value: Option<String>,
    /// How many members must agree.
    pub quorum: u32,
    pub nodes: Vec<NodeReport>,
}

/// One member's answer for one resource.
#[napi(object, object_from_js = false)]
pub struct NodeReport {
    /// `host:port/db`.
    pub node: String,
    /// Whether the member answered.
    pub reachable: bool,
    /// Why it did not: a stable code and the reason in words.
    pub code: Option<String>,
    pub message: Option<String>,
    /// The value held, when the key holds a string.
    pub value: Option<String>,
    /// Whether the key holds another type than a string (no lock, but it keeps locks off).
    pub other_type: bool,
    /// The key's remaining time to live in ms, when it exists and expires.
    pub ttl_ms: Option<f64>,
    /// The resource's fencing counter on this member, when it has one.
    pub fencing_counter: Option<BigInt>,
}

impl Inspection {
    /// The reports of `views` ([`redlock_core::inspect`]) for `resources`.
    pub fn of(resources: Vec<String>, views: &[MemberView], labels: &[String]) -> Inspection {
        let quorum = redlock_core::quorum::quorum_size(views.len()) as u32;
        let resources = resources
            .into_iter()
            .enumerate()
            .map(|(r, resource)| {
                let (verdict, value) = inspect::verdict(views, r);
                let verdict = match verdict {
                    Verdict::Held { .. } => "held",
                    Verdict::Free => "free",
                    Verdict::Split => "split",
                    Verdict::Unknown => "unknown",
                };
                let nodes = views
                    .iter()
                    .zip(labels)
                    .map(|(view, label)| node_report(view, r, label))
                    .collect();
                ResourceReport {
                    resource,
                    verdict: verdict.to_owned(),
                    value,
                    quorum,
                    nodes,
                }
            })
            .collect();
        Inspection {
            resources,
            error: None,
        }
    }
}

fn node_report(view: &MemberView, r: usize, label: &str) -> NodeReport {
    let mut report = NodeReport {
        node: label.to_owned(),
        reachable: view.is_ok(),
        code: None,
        message: None,
        value: None,
        other_type: false,
        ttl_ms: None,
        fencing_counter: None,
    };
    match view {
        Err(error) => {
            report.code = Some(error.code().to_owned());
            report.message = Some(error.to_string());
        }
        Ok(states) => {
            let state = &states[r];
            match &state.held {
                Some(Held::Value(value)) => report.value = Some(value.clone()),
                Some(Held::Other) => report.other_type = true,
                None => {}
            }
            report.ttl_ms = state.ttl_ms.map(|ms| ms as f64);
            report.fencing_counter = state.counter.map(BigInt::from);
        }
    }
    report
}

/// Latency percentiles, in ms.
#[napi(object, object_from_js = false)]
pub struct LatencyMs {
    pub count: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

impl From<redlock_core::stats::Summary> for LatencyMs {
    fn from(s: redlock_core::stats::Summary) -> Self {
        LatencyMs {
            count: s.count as f64,
            mean: (s.mean * 1000.0).round() / 1000.0,
            p50: s.p50,
            p90: s.p90,
            p99: s.p99,
            max: s.max,
        }
    }
}

/// One operation's counts.
#[napi(object, object_from_js = false)]
pub struct OperationStats {
    /// How many ended.
    pub count: f64,
    /// By outcome: `ok` or the error's code.
    pub outcomes: HashMap<String, f64>,
    /// From the call to its outcome.
    pub latency_ms: LatencyMs,
}

/// One node's counts.
#[napi(object, object_from_js = false)]
pub struct NodeStats {
    /// `host:port/db`.
    pub node: String,
    pub requests: f64,
    /// Failed requests by the node error's code.
    pub errors: HashMap<String, f64>,
    /// From a request's sending to its answer, failure or timeout.
    pub latency_ms: LatencyMs,
}

/// What a client has done since it was made (`redlock.stats()`).
#[napi(object, object_from_js = false)]
pub struct StatsReport {
    /// When counting began, ms since the epoch.
    pub since: f64,
    pub acquire: OperationStats,
    pub extend: OperationStats,
    pub release: OperationStats,
    pub nodes: Vec<NodeStats>,
    /// Acquisitions granted after a release ended their wait (wake-on-release).
    pub handoffs: f64,
    /// Locks a watchdog found lost.
    pub locks_lost: f64,
}

fn counts(map: &std::collections::BTreeMap<&'static str, u64>) -> HashMap<String, f64> {
    map.iter()
        .map(|(k, v)| ((*k).to_owned(), *v as f64))
        .collect()
}

impl StatsReport {
    pub fn of(snapshot: &redlock_core::stats::Snapshot, labels: &[String]) -> StatsReport {
        let op = |i: usize| {
            let o = &snapshot.operations[i];
            OperationStats {
                count: o.latency.count as f64,
                outcomes: counts(&o.outcomes),
                latency_ms: o.latency.into(),
            }
        };
        StatsReport {
            since: snapshot.since_ms as f64,
            acquire: op(0),
            extend: op(1),
            release: op(2),
            nodes: snapshot
                .nodes
                .iter()
                .zip(labels)
                .map(|(n, label)| NodeStats {
                    node: label.clone(),
                    requests: n.requests as f64,
                    errors: counts(&n.errors),
                    latency_ms: n.latency.into(),
                })
                .collect(),
            handoffs: snapshot.handoffs as f64,
            locks_lost: snapshot.lost as f64,
        }
    }
}

/// Sampled node requests, as one flat batch: for sample i, `node[i]` (the node's index),
/// `ms[i]`, and `error[i]` (an index into `codes`, or -1 when it succeeded); and every failed
/// request since the last batch, counted: `failedNode[j]`, `failedCode[j]` (into `codes`),
/// `failedCount[j]`.
#[napi(object, object_from_js = false)]
pub struct RequestSamples {
    pub node: Uint32Array,
    pub ms: Float64Array,
    pub error: Int32Array,
    pub failed_node: Uint32Array,
    pub failed_code: Int32Array,
    pub failed_count: Float64Array,
    pub codes: Vec<String>,
    /// Hand-offs so far (`stats().handoffs`).
    pub handoffs: f64,
}

impl RequestSamples {
    pub fn of(drained: redlock_core::stats::Drained, handoffs: u64) -> RequestSamples {
        let mut codes: Vec<&'static str> = Vec::new();
        let mut index = |code: &'static str| match codes.iter().position(|c| *c == code) {
            Some(i) => i as i32,
            None => {
                codes.push(code);
                (codes.len() - 1) as i32
            }
        };
        let samples = &drained.samples;
        let error: Vec<i32> = samples
            .iter()
            .map(|s| s.error.map_or(-1, &mut index))
            .collect();
        let failed_code: Vec<i32> = drained.failed.iter().map(|((_, c), _)| index(c)).collect();
        RequestSamples {
            node: Uint32Array::new(samples.iter().map(|s| s.node as u32).collect()),
            ms: Float64Array::new(samples.iter().map(|s| s.micros as f64 / 1000.0).collect()),
            error: Int32Array::new(error),
            failed_node: Uint32Array::new(
                drained.failed.iter().map(|((n, _), _)| *n as u32).collect(),
            ),
            failed_code: Int32Array::new(failed_code),
            failed_count: Float64Array::new(
                drained.failed.iter().map(|(_, n)| *n as f64).collect(),
            ),
            codes: codes.into_iter().map(str::to_owned).collect(),
            handoffs: handoffs as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redlock_core::{Counting, Vote};

    fn attempt(counting: Counting, votes: Vec<(usize, Vote)>) -> Attempt {
        Attempt {
            membership: 5,
            quorum: 3,
            counting,
            votes,
        }
    }

    #[test]
    fn a_tally_has_a_bit_for_each_node_that_voted_for() {
        let first = attempt(
            Counting::Done,
            vec![(4, Vote::For), (0, Vote::For), (2, Vote::For)],
        );
        let second = attempt(Counting::Done, vec![(1, Vote::For)]);
        assert_eq!(
            tally(&[first, second]),
            Some(vec![5, 3, 0b10101, 5, 3, 0b00010])
        );
        assert_eq!(tally(&[]), Some(vec![]));
    }

    #[test]
    fn a_release_tallies_the_nodes_that_no_longer_held_it_as_for() {
        // As `stats` lists them: they count towards a release's quorum.
        let release = attempt(Counting::Answered, vec![(0, Vote::For), (3, Vote::NotHeld)]);
        assert_eq!(
            tally(std::slice::from_ref(&release)),
            Some(vec![5, 3, 0b01001])
        );
        let labels: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        assert_eq!(stats(&[release], &labels, 1)[0].votes_for, vec!["n0", "n3"]);
    }

    #[test]
    fn any_vote_against_leaves_the_attempts_as_data() {
        let refused = attempt(Counting::Done, vec![(0, Vote::For), (1, Vote::Held)]);
        let granted = attempt(Counting::Done, vec![(0, Vote::For)]);
        assert_eq!(tally(&[refused.clone(), granted]), None);
        let labels: Vec<String> = (0..5).map(|i| format!("n{i}")).collect();
        let (tallied, attempts) = votes(&[refused], &labels, 1);
        assert_eq!(tallied, None);
        assert_eq!(attempts[0].votes_against[0].node, "n1");
        assert_eq!(
            attempts[0].votes_against[0].code,
            "ERR_REDLOCK_RESOURCE_LOCKED"
        );
    }

    #[test]
    fn more_than_32_nodes_are_not_tallied() {
        assert_eq!(
            tally(&[attempt(Counting::Done, vec![(32, Vote::For)])]),
            None
        );
        assert!(tally(&[attempt(Counting::Done, vec![(31, Vote::For)])]).is_some());
    }
}
