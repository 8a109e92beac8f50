//! A Redlock client: its members, its registry of live locks, its listener of node failures,
//! and its shutdown; how it is made ([`Redlock::new`]) and closed ([`Redlock::quit`]), and
//! how its operations start a fan-out over its members. The algorithm on top reads in
//! [`crate::redlock`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::cluster::{self, CrossSlot};
use crate::config::{Misconfigured, NodeConfig, NodeConfigError};
use crate::error::Error;
use crate::lock::{Lock, Registry};
use crate::node::Node;
use crate::restart::RestartGuard;
use crate::round::{Counting, Decided, InFlight, Keys, NodeErrorListener, Request, Round, Target};
use crate::script::Script;
use crate::settings::Settings;
use crate::stats::Stats;
use crate::wait::{Retries, Waits};

/// A Redlock client over N independent Redis masters.
pub struct Redlock {
    pub(crate) nodes: Vec<Arc<Node>>,
    pub(crate) locks: Registry,
    listener: Mutex<Option<NodeErrorListener>>,
    pub(crate) waits: Waits,
    /// Fired by [`Redlock::quit`]: every operation under way stops with [`Error::Closed`].
    pub(crate) shutdown: CancellationToken,
    in_flight: Arc<InFlight>,
    /// The longest duration this client has acquired or extended a lock for, in ms: the
    /// least window of its restart guard.
    longest_ttl: AtomicU64,
    /// What it has done, for `stats()` and telemetry.
    pub(crate) stats: Arc<Stats>,
}

impl Redlock {
    /// A client over `nodes`, checked (TLS settings, cluster options) and refused when there
    /// are none, or when two of them reach the same server and database: one server would
    /// vote twice. Opens no connection until the first operation.
    pub fn new(nodes: Vec<NodeConfig>) -> Result<Self, Misconfigured> {
        if nodes.is_empty() {
            let error = NodeConfigError::NoMembers;
            return Err(Misconfigured { node: 0, error });
        }
        for (node, config) in nodes.iter().enumerate() {
            let refuse = |error| Err(Misconfigured { node, error });
            if let Err(error) = config.check() {
                return refuse(error);
            }
            if let Some(first) = nodes[..node].iter().position(|n| n.same_database(config)) {
                let label = config.label();
                return refuse(NodeConfigError::SameServer { first, label });
            }
        }
        let nodes: Vec<Arc<Node>> = nodes.into_iter().map(|c| Arc::new(Node::new(c))).collect();
        Ok(Redlock {
            waits: Waits::new(&nodes),
            locks: Registry::new(nodes.len()),
            shutdown: CancellationToken::new(),
            in_flight: Arc::default(),
            listener: Mutex::new(None),
            longest_ttl: AtomicU64::new(0),
            stats: Arc::new(Stats::new(nodes.len())),
            nodes,
        })
    }

    /// Starts one fan-out of `script` over the lock's `keys` on every node, counting the
    /// nodes that did what was asked (with `guard`, leaving out young servers' votes).
    pub(crate) fn round(
        &self,
        lock: &Lock,
        script: &'static Script,
        args: &[&str],
        keys: Keys,
        per_node: Duration,
        guard: Option<RestartGuard>,
    ) -> Round {
        let counting = Counting::Done;
        self.start(
            lock,
            Request {
                script,
                args,
                keys,
                counting,
                guard,
            },
            per_node,
        )
    }

    /// Notes that this client uses locks of `ttl`, and returns the restart guard of
    /// `settings` for them: its window is at least the longest duration used so far.
    pub(crate) fn guard_for(&self, settings: &Settings, ttl: Duration) -> RestartGuard {
        let ttl = ttl.as_millis().min(u64::MAX as u128) as u64;
        let longest = self.longest_ttl.fetch_max(ttl, Ordering::Relaxed).max(ttl);
        let guard = settings.restart_guard;
        RestartGuard {
            window: guard.window.max(Duration::from_millis(longest)),
            ..guard
        }
    }

    /// Tells the node-error listener of each young server that voted for in `decided`
    /// (left out, or counted with a young majority), once per restart of that server.
    pub(crate) fn report_restarts(&self, decided: &Decided) {
        if decided.restarted.is_empty() {
            return;
        }
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(listener) = listener else { return };
        for (node, error, health) in &decided.restarted {
            let node = &self.nodes[*node];
            let counted = matches!(
                error,
                crate::fault::NodeError::Restarted { counted: true, .. }
            );
            if node.first_report_of(&health.run_id, counted) {
                listener(node.label(), error);
            }
        }
    }

    pub(crate) fn start(&self, lock: &Lock, request: Request, per_node: Duration) -> Round {
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let target = Target {
            value: &lock.value,
            resources: &lock.resources,
            whole: lock.whole(),
            lanes: &lock.lanes,
        };
        Round::start(
            &self.nodes,
            listener,
            &self.in_flight,
            &self.stats,
            target,
            request,
            per_node,
        )
    }

    /// What this client has done ([`Stats`]).
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Finds keys of a lock on `resources` that a Redis Cluster member could not take in one
    /// script ([`cluster::cross_slot`]).
    pub fn cross_slot(&self, resources: &[String], fencing: bool) -> Option<CrossSlot> {
        cluster::cross_slot(self.nodes.iter().map(|n| n.config()), resources, fencing)
    }

    /// The lock on `resources` whose value is `value`, for operations that name a lock by
    /// its id: the live lock itself when this client made it, else a lock whose expiration
    /// is taken as `expiration`.
    pub fn lock_by_value(
        &self,
        resources: Vec<String>,
        value: String,
        expiration: u64,
    ) -> Arc<Lock> {
        self.locks.by_value(resources, value, expiration)
    }

    /// Whether `lock` was made by this client. Extending or releasing another client's lock
    /// is refused: its nodes may not be ours.
    pub fn owns(&self, lock: &Lock) -> bool {
        self.locks.owns(lock)
    }

    /// The nodes, in the order they were given.
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// Sets (or with `None` removes) the listener told of every node failure.
    pub fn set_node_error_listener(&self, listener: Option<NodeErrorListener>) {
        *self.listener.lock().unwrap_or_else(|p| p.into_inner()) = listener;
    }

    /// Requests sent and not yet answered, the stragglers of decided rounds included.
    pub fn in_flight(&self) -> usize {
        self.in_flight.count()
    }

    /// Waits until every request sent has been answered or has timed out.
    pub async fn settled(&self) {
        self.in_flight.settled().await
    }

    /// Stops every operation under way (they fail with [`Error::Closed`]), lets the requests
    /// already sent finish, within `grace` ([`Settings::quit_grace`]), so that a release on a
    /// slow node still lands, then closes every connection. Operations after this fail with
    /// [`Error::Closed`] too.
    pub async fn quit(&self, grace: Duration) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(grace, self.settled()).await;
        for node in &self.nodes {
            node.close();
        }
        self.set_node_error_listener(None);
        self.waits.close();
    }

    /// The retry driver of one operation with `settings`.
    pub(crate) fn retries<'a>(&'a self, settings: &'a Settings) -> Retries<'a> {
        let shutdown = &self.shutdown;
        Retries { shutdown, settings }
    }

    pub(crate) fn check_open(&self) -> Result<(), Error> {
        match self.shutdown.is_cancelled() {
            true => Err(Error::Closed),
            false => Ok(()),
        }
    }
}
