//! A Redis Cluster as one member of the quorum: one vote, whatever the number of its masters.
//!
//! The redis crate's async cluster client does the routing: it learns the slot map from the
//! startup nodes (CLUSTER SLOTS), sends each script to the master of its keys' slot, follows
//! MOVED and ASK during slot migrations, and learns the new map after a failover. What is
//! left here is what Redlock needs on top:
//!
//! - **One slot per lock.** A script touches all of a lock's keys (and their fencing
//!   counters) at once, so they must share a hash slot. [`key_in_another_slot`] is checked before
//!   anything is sent, with hash tags as the way out.
//! - **Order per lock.** The cluster client has no response timeout of its own: a command
//!   to a paused master waits on the connection it was written to, and the same lock's later
//!   command, sent once the caller's per-node timeout ran out, follows it on that connection.
//!   The timed-out command is kept alive meanwhile ([`crate::round`]): the client drops a
//!   request whose caller gave up. The scripts are loaded on every node when the client
//!   connects, so that a NOSCRIPT fallback cannot reorder them either.
//! - **Short retries.** TRYAGAIN (a multi-key script while its slot migrates) is retried
//!   twice within 10 ms, not for over a second: a round waiting for this vote holds the
//!   other nodes it won meanwhile.
//! - **A lazy, shared connection** ([`crate::link`]), as for a single node.
//!
//! Release notices are ordinary pub/sub messages, which a cluster forwards to every node, so
//! [`crate::notice`] listens on one startup node at a time ([`ClusterMember::pubsub`]).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig, NodeAddress};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, Slot};
use redis::{ClientTlsConfig, TlsCertificates, TlsMode};
use std::time::Duration;

use crate::config::NodeConfig;
use crate::fault::NodeError;
use crate::link::{self, Link};
use crate::restart::Health;
use crate::script;
use crate::{fence, tls};

/// How long one dial of a cluster node may take inside the cluster client (its own
/// reconnects included); the caller's per-node timeout still bounds every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times the cluster client may retry one request: redirections count too.
const RETRIES: u32 = 2;

/// The first of `keys` that Redis Cluster hashes to another slot than the first key (hash
/// tags included), if any.
pub fn key_in_another_slot<K: AsRef<str>>(keys: &[K]) -> Option<&K> {
    let (first, rest) = keys.split_first()?;
    let slot = Slot::for_key(first.as_ref());
    rest.iter().find(|k| Slot::for_key(k.as_ref()) != slot)
}

/// Two keys of one lock that a cluster member would hash to different slots
/// ([`cross_slot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossSlot {
    /// The index of the cluster member.
    pub node: usize,
    /// The lock's first key, as that member names it (its key prefix included).
    pub first: String,
    /// A key in another slot.
    pub other: String,
    /// Whether `other` is a fencing counter rather than a lock key.
    pub counter: bool,
}

/// Finds keys of a lock on `resources` that a cluster member of `members` could not take in
/// one script: the first cluster member (by index) whose keys, and with `fencing` their
/// counters, do not all hash to one slot, with two keys that differ. Checked before anything
/// is sent; a cluster would answer CROSSSLOT.
pub fn cross_slot<'a>(
    members: impl IntoIterator<Item = &'a NodeConfig>,
    resources: &[String],
    fencing: bool,
) -> Option<CrossSlot> {
    for (index, member) in members.into_iter().enumerate() {
        if !member.is_cluster() {
            continue;
        }
        let keys: Vec<String> = resources.iter().map(|r| member.key(r)).collect();
        let mut all = keys.clone();
        if fencing {
            all.extend(keys.iter().map(|k| fence::counter_key(k)));
        }
        if let Some(other) = key_in_another_slot(&all) {
            return Some(CrossSlot {
                node: index,
                first: all[0].clone(),
                counter: !keys.contains(other),
                other: other.clone(),
            });
        }
    }
    None
}

/// The cluster client of one quorum member and its connection, opened on first use.
pub(crate) struct ClusterMember {
    /// The client, or why it could not be built (the text names no secret).
    client: Result<ClusterClient, String>,
    link: Link<ClusterConnection>,
    /// The startup node that pub/sub tries next.
    next_seed: AtomicUsize,
    /// The youngest master's health, for the restart guard, and when it was asked.
    health: Arc<Mutex<Asked>>,
    /// Whether a refresh of `health` is under way.
    asking: Arc<AtomicBool>,
}

/// When the masters were last asked their health, and the youngest one's answer.
type Asked = (Option<Instant>, Option<Arc<Health>>);

/// How often a cluster's masters are asked their uptime again: a master restarts without
/// breaking the cluster connection, so its health is not learnt from a new connection.
const HEALTH_REFRESH: Duration = Duration::from_secs(1);

impl ClusterMember {
    /// The member for `config`, whose `cluster` lists the startup nodes.
    pub(crate) fn new(config: &NodeConfig) -> Self {
        ClusterMember {
            client: build(config),
            link: Link::new(),
            next_seed: AtomicUsize::new(0),
            health: Arc::default(),
            asking: Arc::default(),
        }
    }

    /// The youngest master's health as last asked; asks again in the background when that
    /// was more than [`HEALTH_REFRESH`] ago.
    pub(crate) fn health(&self, conn: &ClusterConnection) -> Option<Arc<Health>> {
        let (asked, health) = self
            .health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let stale = asked.is_none_or(|at| at.elapsed() >= HEALTH_REFRESH);
        if stale && !self.asking.swap(true, Ordering::SeqCst) {
            let (conn, slot, asking) = (conn.clone(), self.health.clone(), self.asking.clone());
            tokio::spawn(async move {
                let youngest = youngest_master(&conn).await;
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = (Some(Instant::now()), youngest);
                asking.store(false, Ordering::SeqCst);
            });
        }
        health
    }

    /// Runs `script` on the cluster's master for the keys' slot: the cluster client routes
    /// it by its first key and follows redirections.
    pub(crate) async fn eval(
        &self,
        script: &script::Script,
        keys: &[String],
        args: &[String],
        refused: &script::PlainRefused,
    ) -> Result<(redis::Value, Option<Arc<Health>>), NodeError> {
        let (_, mut conn) = self.link.get(|| self.connect()).await?;
        let answer = script::run(&mut conn, script, keys, args, refused)
            .await
            .map_err(|e| link::request_failure(e, failure))?;
        Ok((answer, self.health(&conn)))
    }

    async fn connect(&self) -> Result<ClusterConnection, NodeError> {
        let client = self.client.as_ref().map_err(|why| {
            NodeError::Connection(format!("the cluster client cannot be built: {why}"))
        })?;
        let config = ClusterConfig::new().set_connection_timeout(CONNECT_TIMEOUT);
        let conn = client
            .get_async_connection_with_config(config)
            .await
            .map_err(|e| failure(&e))?;
        let (_, youngest) = tokio::join!(load_scripts(&conn), youngest_master(&conn));
        *self.health.lock().unwrap_or_else(|p| p.into_inner()) = (Some(Instant::now()), youngest);
        Ok(conn)
    }

    /// Pub/sub on a cluster: a cluster forwards every published message to all its nodes,
    /// so one connection to any startup node hears all release notices. When that node
    /// fails, the next call tries the next one.
    pub(crate) async fn pubsub(
        &self,
        config: &NodeConfig,
    ) -> Result<redis::aio::PubSub, NodeError> {
        self.link.check_open()?;
        let seeds = &config.cluster;
        let first = self.next_seed.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..seeds.len() {
            let (host, port) = &seeds[(first + i) % seeds.len()];
            let handshake = config.tls.as_ref().map(|t| t.handshake(host));
            let opened = match link::open(host, *port, &handshake).await {
                Ok(stream) => redis::aio::PubSub::new(&config.login(), stream)
                    .await
                    .map_err(|e| link::login_failure(config, e)),
                Err(e) => Err(e),
            };
            match opened {
                Ok(pubsub) => {
                    // Next time, after a failure of this one, start with the one after it.
                    self.next_seed
                        .store((first + i + 1) % seeds.len(), Ordering::Relaxed);
                    return Ok(pubsub);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| NodeError::Connection("no startup node".into())))
    }

    /// Drops the connection (the client's background task ends with it) and refuses more.
    pub(crate) fn close(&self) {
        self.link.close();
    }
}

/// The health of the cluster's youngest master that does not persist every write (or of
/// any master, when all do), for the restart guard: INFO server, INFO persistence and
/// CONFIG GET appendfsync on every master. `None` when no master tells its uptime.
async fn youngest_master(conn: &ClusterConnection) -> Option<Arc<Health>> {
    let masters = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllMasters,
        Some(ResponsePolicy::Special),
    ));
    let ask = |cmd: redis::Cmd| {
        let (mut conn, masters) = (conn.clone(), masters.clone());
        async move { conn.route_command(cmd, masters).await.ok() }
    };
    let (server, persistence, fsync) = tokio::join!(
        ask(redis::cmd("INFO").arg("server").to_owned()),
        ask(redis::cmd("INFO").arg("persistence").to_owned()),
        ask(redis::cmd("CONFIG")
            .arg("GET")
            .arg("appendfsync")
            .to_owned()),
    );
    let by_master = |value: Option<redis::Value>| -> Vec<(String, redis::Value)> {
        let Some(redis::Value::Map(pairs)) = value else {
            return Vec::new();
        };
        let address = |a: &redis::Value| crate::node::text_of(a).unwrap_or_default();
        pairs.into_iter().map(|(a, v)| (address(&a), v)).collect()
    };
    let (persistence, fsync) = (by_master(persistence), by_master(fsync));
    let of = |list: &[(String, redis::Value)], address: &str| {
        list.iter()
            .find(|(a, _)| a == address)
            .map(|(_, v)| v.clone())
    };
    by_master(server)
        .into_iter()
        .filter_map(|(address, info)| {
            let persistence = of(&persistence, &address).and_then(|v| crate::node::text_of(&v));
            let fsync = of(&fsync, &address).and_then(|v| crate::node::config_value(&v));
            let server = crate::node::text_of(&info)?;
            Health::parse(&server, persistence.as_deref(), fsync.as_deref())
        })
        .min_by_key(|h| (h.durable, h.uptime()))
        .map(Arc::new)
}

/// Loads every script into the cache of every node of the cluster, replicas included (a
/// replica promoted by a failover has them then), so that EVALSHA does not meet NOSCRIPT:
/// the EVAL sent after it could land out of the order the lock's commands were issued in.
/// Best effort: a node that refuses (an ACL user without SCRIPT LOAD) is left to the
/// fallback.
async fn load_scripts(conn: &ClusterConnection) {
    let everywhere = RoutingInfo::MultiNode((
        MultipleNodeRoutingInfo::AllNodes,
        Some(ResponsePolicy::AllSucceeded),
    ));
    // All at once: one round trip to the nodes, not one per script.
    let loads = script::all().map(|script| {
        let (mut conn, everywhere) = (conn.clone(), everywhere.clone());
        async move { conn.route_command(script::load(script), everywhere).await }
    });
    futures_util::future::join_all(loads).await;
}

/// What a failed cluster connect or request means, in words that hold no secret.
fn failure(error: &redis::RedisError) -> NodeError {
    if error.kind() == redis::ErrorKind::AuthenticationFailed {
        return NodeError::Auth("the cluster refused the credentials".to_owned());
    }
    let text = error.to_string();
    // The cluster client usually keeps only the text of a failed handshake.
    let name = "the address the cluster announces";
    if let Some(tls) = tls::describe(error, name).or_else(|| tls::describe_text(&text, name)) {
        return NodeError::Connection(tls);
    }
    // A refused login on every startup node reaches us as text too.
    let refused = [
        "AuthenticationFailed",
        "WRONGPASS",
        "invalid username-password",
    ];
    if refused.iter().any(|r| text.contains(r)) {
        return NodeError::Auth("the cluster refused the credentials".to_owned());
    }
    if text.contains("NOAUTH") {
        return NodeError::Auth(link::NO_PASSWORD.to_owned());
    }
    NodeError::Connection(text)
}

fn build(config: &NodeConfig) -> Result<ClusterClient, String> {
    let scheme = if config.tls.is_some() {
        "rediss"
    } else {
        "redis"
    };
    let seeds: Vec<String> = config
        .cluster
        .iter()
        .map(|(host, port)| format!("{scheme}://{host}:{port}"))
        .collect();
    // Redirections (MOVED, ASK) are followed at once. A master that cannot take the keys
    // now (TRYAGAIN: a multi-key lock while its slot migrates; or a slot without a master)
    // is tried once more within 10 ms, not retried for over a second as by default: a round
    // waiting on that vote holds the other nodes it won meanwhile, so contenders that split
    // the other nodes would keep them split for as long. Redlock's own retries come next.
    let mut builder = ClusterClientBuilder::new(seeds)
        .retries(RETRIES)
        .min_retry_wait(1)
        .max_retry_wait(10);
    if let Some(user) = &config.username {
        builder = builder.username(user);
    }
    if let Some(password) = &config.password {
        builder = builder.password(password);
    }
    if config.db != 0 {
        builder = builder.database_id(config.db);
    }
    if !config.nat_map.is_empty() {
        let address = |(host, port): &(String, u16)| NodeAddress::new(host.as_str(), *port);
        let map = config
            .nat_map
            .iter()
            .map(|(announced, reachable)| (address(announced), address(reachable)))
            .collect();
        builder = builder.node_address_map(map);
    }
    if let Some(tls) = &config.tls {
        tls::install_provider();
        builder = match tls.reject_unauthorized {
            true => builder.tls(TlsMode::Secure),
            false => builder.tls(TlsMode::Insecure),
        };
        let client_tls = match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        if client_tls.is_some() || tls.ca.is_some() {
            builder = builder.certs(TlsCertificates {
                client_tls,
                root_cert: tls.ca.clone(),
            });
        }
    }
    // The build checks the certificates; its messages name fields, not their content.
    builder.build().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_share_a_slot_through_their_hash_tag() {
        let same_slot = |keys: &[&str]| key_in_another_slot(keys).is_none();
        assert!(same_slot(&["{user:1}:a", "{user:1}:b", "x{user:1}"]));
        assert!(!same_slot(&["orders", "payments"]));
        assert_eq!(
            key_in_another_slot(&["orders", "payments"]),
            Some(&"payments")
        );
        assert!(same_slot(&["orders"]));
        // A counter named by fence::counter_key shares its key's slot.
        let key = "orders";
        let counter = fence::counter_key(key);
        assert!(same_slot(&[key, counter.as_str()]));
        // So does the channel on which its release is announced.
        for key in ["orders", "{user:1}:cart", "a{b", "x{y}z{w}"] {
            let channel = crate::notice::channel(key);
            assert!(same_slot(&[key, channel.as_str()]), "{key}");
        }
    }
}
