//! Where a member of the quorum is and how to log in: a single server or a Redis Cluster,
//! built from a `redis://` URL or field by field, checked before anything is sent.

use std::fmt;

use redis::{ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};

use crate::tls::TlsConfig;

/// Announced `(host, port)` of a cluster node, to the `(host, port)` to dial instead.
pub type AddressMap = Vec<((String, u16), (String, u16))>;

/// Where a node is and how to log in. Built from a URL or field by field.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user, if any.
    pub username: Option<String>,
    /// Password, if any. Never printed.
    pub password: Option<String>,
    /// Database number.
    pub db: i64,
    /// Prepended to every key on this node (ioredis's `keyPrefix`).
    pub key_prefix: String,
    /// TLS, when the connection is encrypted (`rediss://`, a `tls` option).
    pub tls: Option<TlsConfig>,
    /// For a Redis Cluster member, its startup nodes (`host`, `port`: the first of them);
    /// empty for a single server.
    pub cluster: Vec<(String, u16)>,
    /// For a Redis Cluster member: where to reach a node the cluster announces at another
    /// address (behind NAT, in containers): announced `(host, port)` to reachable one.
    pub nat_map: AddressMap,
}

impl std::fmt::Debug for NodeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.label())
    }
}

/// Why a node's configuration was refused, before anything was sent. Never holds a URL or a
/// password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeConfigError {
    /// The URL could not be parsed as `redis://` (the text says why, without the URL).
    BadUrl(&'static str),
    /// The TLS settings cannot be used (the text names the field, never its content).
    BadTls(&'static str),
    /// The list of members is empty: no quorum can ever be reached.
    NoMembers,
    /// It reaches the same server and database as the member `first` (labelled `label`):
    /// one server would vote twice.
    SameServer { first: usize, label: String },
}

impl fmt::Display for NodeConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NodeConfigError::BadUrl(why) | NodeConfigError::BadTls(why) => f.write_str(why),
            NodeConfigError::NoMembers => f.write_str("it must name at least one Redis server"),
            NodeConfigError::SameServer { first, label } => write!(
                f,
                "it reaches the same server and database as clients[{first}] ({label}); each member of the quorum must be a distinct server"
            ),
        }
    }
}

/// A member of [`crate::Redlock::new`]'s list that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Misconfigured {
    /// Its index in the list.
    pub node: usize,
    pub error: NodeConfigError,
}

impl NodeConfig {
    /// A node at `host:port`, db 0, no credentials, no key prefix.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        NodeConfig {
            host: host.into(),
            port,
            username: None,
            password: None,
            db: 0,
            key_prefix: String::new(),
            tls: None,
            cluster: Vec::new(),
            nat_map: Vec::new(),
        }
    }

    /// Parses `redis://[user[:password]@]host[:port][/db]`, or `rediss://…` for TLS (with
    /// the system's CAs; `#insecure` accepts any server certificate). User and password are
    /// percent-decoded.
    pub fn from_url(url: &str) -> Result<Self, NodeConfigError> {
        if !url.starts_with("redis://") && !url.starts_with("rediss://") {
            return Err(NodeConfigError::BadUrl(
                "it must start with redis:// or rediss://",
            ));
        }
        let info = url
            .into_connection_info()
            .map_err(|_| NodeConfigError::BadUrl("it is not a valid redis:// URL"))?;
        let (host, port, tls) = match info.addr().clone() {
            ConnectionAddr::Tcp(host, port) => (host, port, None),
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                ..
            } => {
                let tls = TlsConfig {
                    reject_unauthorized: !insecure,
                    ..TlsConfig::default()
                };
                (host, port, Some(tls))
            }
            _ => return Err(NodeConfigError::BadUrl("it must name a TCP host")),
        };
        if host.is_empty() {
            return Err(NodeConfigError::BadUrl("it has no host"));
        }
        let settings = info.redis_settings();
        Ok(NodeConfig {
            host,
            port,
            username: settings.username().map(str::to_owned),
            password: settings.password().map(str::to_owned),
            db: settings.db(),
            key_prefix: String::new(),
            tls,
            cluster: Vec::new(),
            nat_map: Vec::new(),
        })
    }

    /// Checks what can be checked before connecting: the TLS certificates and key.
    pub fn check(&self) -> Result<(), NodeConfigError> {
        if self.is_cluster() {
            if matches!(&self.tls, Some(t) if t.servername.is_some()) {
                return Err(NodeConfigError::BadTls(
                    "tls.servername cannot be used with a Redis Cluster: the client reaches each master at the address the cluster announces, and verifies its certificate for that address",
                ));
            }
            if self.db != 0 {
                return Err(NodeConfigError::BadUrl(
                    "a Redis Cluster has only database 0",
                ));
            }
        }
        match &self.tls {
            Some(tls) => tls
                .handshake(&self.host)
                .map(drop)
                .map_err(NodeConfigError::BadTls),
            None => Ok(()),
        }
    }

    /// `host:port/db`: how the node is named in errors and events, and `cluster[host:port,…]`
    /// for a cluster with its startup nodes. Holds no credentials.
    pub fn label(&self) -> String {
        if self.is_cluster() {
            let seeds: Vec<String> = self
                .cluster
                .iter()
                .map(|(host, port)| format!("{host}:{port}"))
                .collect();
            return format!("cluster[{}]", seeds.join(","));
        }
        format!("{}:{}/{}", self.host, self.port, self.db)
    }

    /// This member's key for `resource`: the key prefix, then the resource.
    pub fn key(&self, resource: &str) -> String {
        if self.key_prefix.is_empty() {
            resource.to_owned()
        } else {
            format!("{}{}", self.key_prefix, resource)
        }
    }

    /// Whether this member is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        !self.cluster.is_empty()
    }

    /// Whether two configurations reach the same database of the same server, which would
    /// count one server's vote twice; for clusters, whether they share a startup node.
    pub fn same_database(&self, other: &NodeConfig) -> bool {
        fn canonical(host: &str) -> String {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match host.to_ascii_lowercase().as_str() {
                "localhost" | "::1" | "0:0:0:0:0:0:0:1" => "127.0.0.1".to_owned(),
                other => other.to_owned(),
            }
        }
        if !self.is_cluster() && !other.is_cluster() {
            return self.port == other.port
                && self.db == other.db
                && canonical(&self.host) == canonical(&other.host);
        }
        // A cluster reaches every address it was given: sharing any one of them (whatever
        // the db) means one server would vote twice.
        let addresses = |c: &NodeConfig| -> Vec<(String, u16)> {
            match c.is_cluster() {
                true => c.cluster.iter().map(|(h, p)| (canonical(h), *p)).collect(),
                false => vec![(canonical(&c.host), c.port)],
            }
        };
        let theirs = addresses(other);
        addresses(self).iter().any(|a| theirs.contains(a))
    }

    /// How the redis crate logs in on an open stream: user, password, db.
    pub(crate) fn login(&self) -> RedisConnectionInfo {
        let mut redis = RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        redis
    }
}
