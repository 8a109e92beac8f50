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
//! - **A lazy, shared connection** with the same short back-off after a failed connect as a
//!   single node.
//!
//! Release notices are ordinary pub/sub messages, which a cluster forwards to every node, so
//! [`crate::notice`] listens on one startup node at a time (see [`crate::node::Node::pubsub`]).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig, NodeAddress};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{MultipleNodeRoutingInfo, ResponsePolicy, RoutingInfo, Slot};
use redis::{ClientTlsConfig, TlsCertificates, TlsMode};

use crate::error::NodeError;
use crate::node::NodeConfig;
use crate::tls;

/// How long one dial of a cluster node may take inside the cluster client (its own
/// reconnects included); the caller's per-node timeout still bounds every request.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times the cluster client may retry one request: redirections count too.
const RETRIES: u32 = 2;

/// How long after a failed connect the cluster is not dialled again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// The first of `keys` that Redis Cluster hashes to another slot than the first key (hash
/// tags included), if any.
pub fn key_in_another_slot<K: AsRef<str>>(keys: &[K]) -> Option<&K> {
    let (first, rest) = keys.split_first()?;
    let slot = Slot::for_key(first.as_ref());
    rest.iter().find(|k| Slot::for_key(k.as_ref()) != slot)
}

/// The cluster client of one quorum member and its connection, opened on first use.
pub(crate) struct ClusterMember {
    /// The client, or why it could not be built (the text names no secret).
    client: Result<ClusterClient, String>,
    connection: Mutex<Option<ClusterConnection>>,
    /// Held while connecting, so that concurrent requests share one connect.
    connecting: tokio::sync::Mutex<()>,
    last_failure: Mutex<Option<(Instant, NodeError)>>,
}

impl ClusterMember {
    /// The member for `config`, whose `cluster` lists the startup nodes.
    pub(crate) fn new(config: &NodeConfig) -> Self {
        ClusterMember {
            client: build(config),
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            last_failure: Mutex::new(None),
        }
    }

    /// The shared connection, opened when there is none.
    pub(crate) async fn connection(&self) -> Result<ClusterConnection, NodeError> {
        if let Some(open) = lock(&self.connection).clone() {
            return Ok(open);
        }
        let _gate = self.connecting.lock().await;
        if let Some(open) = lock(&self.connection).clone() {
            return Ok(open);
        }
        if let Some((at, error)) = lock(&self.last_failure).clone() {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(error);
            }
        }
        let client = self.client.as_ref().map_err(|why| {
            NodeError::Connection(format!("the cluster client cannot be built: {why}"))
        })?;
        let config = ClusterConfig::new().set_connection_timeout(CONNECT_TIMEOUT);
        match client.get_async_connection_with_config(config).await {
            Ok(conn) => {
                load_scripts(&conn).await;
                *lock(&self.last_failure) = None;
                *lock(&self.connection) = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                let error = failure(&e);
                *lock(&self.last_failure) = Some((Instant::now(), error.clone()));
                Err(error)
            }
        }
    }

    /// Drops the connection; the client's background task ends with it.
    pub(crate) fn close(&self) {
        lock(&self.connection).take();
    }
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
    let loads = crate::script::all().map(|script| {
        let (mut conn, everywhere) = (conn.clone(), everywhere.clone());
        let mut load = redis::cmd("SCRIPT");
        load.arg("LOAD").arg(script.source);
        async move { conn.route_command(load, everywhere).await }
    });
    futures_util::future::join_all(loads).await;
}

/// What a failed cluster connect or request means, in words that hold no secret.
pub(crate) fn failure(error: &redis::RedisError) -> NodeError {
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
        return NodeError::Auth("the cluster requires a password, and none was given".to_owned());
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
        let counter = crate::fence::counter_key(key);
        assert!(same_slot(&[key, counter.as_str()]));
        // So does the channel on which its release is announced.
        for key in ["orders", "{user:1}:cart", "a{b", "x{y}z{w}"] {
            let channel = crate::notice::channel(key);
            assert!(same_slot(&[key, channel.as_str()]), "{key}");
        }
    }
}
