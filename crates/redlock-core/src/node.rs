//! One Redis master: where it is, its connection, and how a script reaches it.
//!
//! A node connects lazily on first use and shares one multiplexed connection among all
//! locks. When the connection breaks, the node forgets it and the next request opens a new
//! one, so a node that comes back is used again without anyone asking; after a failed
//! connect, the node is not dialled again for a short back-off (requests fail at once with
//! the same reason). How long a request may take is the caller's business (see [`crate::redlock`]): every wait here, the connect
//! included, is cancelled when the caller's per-node timeout runs out.
//!
//! The node opens its TCP stream itself, and with TLS does the handshake itself
//! ([`crate::tls`]), then hands the stream to the redis crate, which logs in (AUTH, SELECT)
//! on it. A login the server refuses is reported as [`NodeError::Auth`], at once, on every
//! request: it is never waited out.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::cluster::{self, ClusterMember};
use crate::error::NodeError;
use crate::script::{self, Script};
use crate::tls::{self, Handshake, TlsConfig};

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

/// Why a node's configuration was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeConfigError {
    /// The URL could not be parsed as `redis://` (the text says why, without the URL).
    BadUrl(&'static str),
    /// The TLS settings cannot be used (the text names the field, never its content).
    BadTls(&'static str),
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
    fn login(&self) -> RedisConnectionInfo {
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

/// A script's answer: how many keys it acted on, and for a fenced acquisition the node's
/// highest fencing counter.
/// An acquisition refused by another holder answers that holder's value instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub count: i64,
    pub counter: Option<i64>,
    pub holder: Option<String>,
}

/// One Redis master and its shared connection.
///
/// A timeout does not drop the connection: commands already written to a paused node run
/// when it resumes, in the order written, so a lock's undo must travel on the same
/// connection as the command it undoes. Only a broken connection is replaced.
pub struct Node {
    config: NodeConfig,
    label: String,
    login: RedisConnectionInfo,
    /// The prepared TLS handshake, or why the TLS settings cannot be used.
    tls: Option<Result<Handshake, &'static str>>,
    /// The open connection, with a serial number so that a failure on an old connection
    /// never throws away a newer one.
    connection: Mutex<Option<(u32, MultiplexedConnection)>>,
    /// Held while connecting, so that concurrent requests share one connect.
    connecting: tokio::sync::Mutex<()>,
    serial: AtomicU32,
    closed: AtomicBool,
    /// Cancelled by [`Node::close`], for the requests still kept waiting for an answer.
    closing: CancellationToken,
    /// How many timed-out requests are kept waiting for their answers ([`Node::keep`]).
    kept: Arc<AtomicUsize>,
    /// When the last connect failed, and why: for [`RECONNECT_BACKOFF`] after it, requests
    /// fail at once with the same reason instead of dialling a dead node each time.
    last_failure: Mutex<Option<(Instant, NodeError)>>,
    /// For a Redis Cluster member: its cluster client, which every script goes through.
    cluster: Option<ClusterMember>,
    /// For a Redis Cluster member: the startup node that pub/sub tries next.
    next_seed: AtomicUsize,
}

/// How many timed-out requests one node keeps waiting for their answers at most.
pub const MAX_KEPT: usize = 4096;

/// One timed-out request kept waiting for its answer ([`Node::keep`]).
pub struct Kept(Arc<AtomicUsize>);

impl Drop for Kept {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// How long after a failed connect a node is not dialled again.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

impl Node {
    /// A node for `config`. Opens nothing until the first request.
    pub fn new(config: NodeConfig) -> Self {
        Node {
            label: config.label(),
            login: config.login(),
            tls: config.tls.as_ref().map(|t| t.handshake(&config.host)),
            cluster: config.is_cluster().then(|| ClusterMember::new(&config)),
            next_seed: AtomicUsize::new(0),
            config,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            serial: AtomicU32::new(0),
            closed: AtomicBool::new(false),
            closing: CancellationToken::new(),
            kept: Arc::default(),
            last_failure: Mutex::new(None),
        }
    }

    /// `host:port/db`, for errors and events.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Whether this member is a Redis Cluster (one vote for all its masters).
    pub fn is_cluster(&self) -> bool {
        self.cluster.is_some()
    }

    /// This node's key for `resource`.
    pub fn key(&self, resource: &str) -> String {
        if self.config.key_prefix.is_empty() {
            resource.to_owned()
        } else {
            format!("{}{}", self.config.key_prefix, resource)
        }
    }

    /// Runs `script` over `keys` with `args` and returns its integer answer. Sends EVALSHA,
    /// and EVAL when the node answers NOSCRIPT (a restarted or flushed node).
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Answer, NodeError> {
        if let Some(cluster) = &self.cluster {
            // Boxed, so that the cluster's future does not enlarge a single node's.
            return Box::pin(eval_cluster(cluster, script, keys, args)).await;
        }
        let (serial, mut conn) = self.connection().await?;
        let cmd = evalsha(script, keys, args);
        let mut answer = conn.send_packed_command(&cmd).await;
        if is_noscript(&answer) {
            // Rare (a restarted or flushed node): boxed, so that its future does not enlarge
            // every request's.
            answer = Box::pin(eval_source(&mut conn, script, keys, args)).await;
        }
        match answer {
            Ok(value) => to_answer(value),
            Err(e)
                if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() =>
            {
                self.forget(serial);
                Err(NodeError::Connection(e.to_string()))
            }
            Err(e) => Err(NodeError::Server(e.to_string())),
        }
    }

    /// Opens a pub/sub connection of its own to this node (for [`crate::notice`]).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, NodeError> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(NodeError::Connection("the Redlock was closed".into()));
        }
        if self.is_cluster() {
            return Box::pin(self.cluster_pubsub()).await;
        }
        let stream = self
            .open(&self.config.host, self.config.port, &self.tls)
            .await?;
        redis::aio::PubSub::new(&self.login, stream)
            .await
            .map_err(|e| self.failure(e))
    }

    /// Pub/sub on a cluster: a cluster forwards every published message to all its nodes, so
    /// one connection to any startup node hears all release notices. When that node fails,
    /// the next call tries the next one.
    async fn cluster_pubsub(&self) -> Result<redis::aio::PubSub, NodeError> {
        let seeds = &self.config.cluster;
        let first = self.next_seed.load(Ordering::Relaxed);
        let mut last = None;
        for i in 0..seeds.len() {
            let (host, port) = &seeds[(first + i) % seeds.len()];
            let handshake = self.config.tls.as_ref().map(|t| t.handshake(host));
            let opened = match self.open(host, *port, &handshake).await {
                Ok(stream) => redis::aio::PubSub::new(&self.login, stream)
                    .await
                    .map_err(|e| self.failure(e)),
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

    /// A place for one more timed-out request kept waiting for its answer, while fewer than
    /// [`MAX_KEPT`] are; the request is counted until the returned guard is dropped.
    pub fn keep(&self) -> Option<Kept> {
        let taken = self
            .kept
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < MAX_KEPT).then_some(n + 1)
            })
            .is_ok();
        taken.then(|| Kept(self.kept.clone()))
    }

    /// Resolves once the node is closed ([`Node::close`]).
    pub fn closed(&self) -> WaitForCancellationFuture<'_> {
        self.closing.cancelled()
    }

    /// Drops the connection and refuses further requests.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.cancel();
        if let Some(cluster) = &self.cluster {
            cluster.close();
        }
        self.connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
    }

    fn current(&self) -> Option<(u32, MultiplexedConnection)> {
        self.connection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn forget(&self, serial: u32) {
        let mut slot = self.connection.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(&*slot, Some((s, _)) if *s == serial) {
            *slot = None;
        }
    }

    async fn connection(&self) -> Result<(u32, MultiplexedConnection), NodeError> {
        if let Some(open) = self.current() {
            return Ok(open);
        }
        // Rare: boxed, so that the connect's large future is not part of every request's.
        Box::pin(self.connect()).await
    }

    async fn connect(&self) -> Result<(u32, MultiplexedConnection), NodeError> {
        let _gate = self.connecting.lock().await;
        if self.closed.load(Ordering::SeqCst) {
            return Err(NodeError::Connection("the Redlock was closed".into()));
        }
        if let Some(open) = self.current() {
            return Ok(open);
        }
        let recent = self
            .last_failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, error)) = recent {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(error);
            }
        }
        // The caller's timeout bounds the connect; no timeouts of the client's own.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let connected = async {
            let stream = self
                .open(&self.config.host, self.config.port, &self.tls)
                .await?;
            MultiplexedConnection::new_with_config(&self.login, stream, config)
                .await
                .map_err(|e| self.failure(e))
        };
        let (conn, driver) = match connected.await {
            Ok(connected) => connected,
            Err(error) => {
                *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((Instant::now(), error.clone()));
                return Err(error);
            }
        };
        *self.last_failure.lock().unwrap_or_else(|p| p.into_inner()) = None;
        tokio::spawn(driver);
        load_scripts(&conn);
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        if self.closed.load(Ordering::SeqCst) {
            return Err(NodeError::Connection("the Redlock was closed".into()));
        }
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some((serial, conn.clone()));
        Ok((serial, conn))
    }
}

/// A connection to a node: plain TCP, or TLS over it.
trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

impl Node {
    /// Opens the TCP stream to `host:port` and, with TLS, does the `handshake`.
    async fn open(
        &self,
        host: &str,
        port: u16,
        handshake: &Option<Result<Handshake, &'static str>>,
    ) -> Result<Pin<Box<dyn Stream>>, NodeError> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tcp = TcpStream::connect((host, port))
            .await
            .map_err(|e| NodeError::Connection(e.to_string()))?;
        let Some(tls) = handshake else {
            return Ok(Box::pin(tcp));
        };
        let Handshake { config, name } = tls
            .clone()
            .map_err(|why| NodeError::Connection(format!("TLS failed: {why}")))?;
        let shown = name.to_str().into_owned();
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map(|s| Box::pin(s) as Pin<Box<dyn Stream>>)
            .map_err(|e| {
                NodeError::Connection(tls::describe(&e, &shown).unwrap_or_else(|| e.to_string()))
            })
    }

    /// What a failed login on an open stream means: a refused password, a TLS problem seen
    /// only after the handshake (TLS 1.3 servers check client certificates then), or a
    /// broken connection.
    fn failure(&self, error: redis::RedisError) -> NodeError {
        let name = match &self.config.tls {
            Some(TlsConfig {
                servername: Some(name),
                ..
            }) => name.as_str(),
            _ => self.config.host.as_str(),
        };
        if let Some(tls) = tls::describe(&error, name) {
            return NodeError::Connection(tls);
        }
        match error.kind() {
            redis::ErrorKind::AuthenticationFailed => {
                NodeError::Auth(match &self.config.username {
                    Some(_) => "the server refused the username and password".to_owned(),
                    None => "the server refused the password".to_owned(),
                })
            }
            _ => NodeError::Connection(error.to_string()),
        }
    }
}

/// Queues SCRIPT LOAD of every script on a new connection, ahead of any EVALSHA: so a
/// NOSCRIPT answer (and the EVAL sent after it, which may land out of the order the lock's
/// commands were issued in) is left to a node that flushes its scripts while connected. The
/// answer is awaited in the background, so the connect takes no extra round trip. A user
/// not allowed SCRIPT LOAD still works, through the fallback.
fn load_scripts(conn: &MultiplexedConnection) {
    let mut conn = conn.clone();
    let mut load = Box::pin(async move {
        let _: redis::RedisResult<()> = script::load_all().query_async(&mut conn).await;
    });
    // The first poll puts the pipeline on the connection's queue, before the connection is
    // handed to anyone; the task then waits for the answer (a dropped request is not sent).
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if std::future::Future::poll(load.as_mut(), &mut cx).is_pending() {
        tokio::spawn(load);
    }
}

/// EVALSHA of `script` over `keys` with `args`.
fn evalsha(script: &Script, keys: &[String], args: &[String]) -> redis::Cmd {
    // Sized up front: growing the buffer argument by argument costs more than the rest.
    let size = keys.iter().chain(args).map(|a| a.len() + 16).sum::<usize>() + 80;
    let mut cmd = redis::Cmd::with_capacity(3 + keys.len() + args.len(), size);
    cmd.arg("EVALSHA")
        .arg(&script.sha)
        .arg(keys.len())
        .arg(keys)
        .arg(args);
    cmd
}

/// Runs `script` on the cluster's master for the keys' slot: the cluster client routes it
/// by its first key and follows redirections.
async fn eval_cluster(
    cluster: &ClusterMember,
    script: &Script,
    keys: &[String],
    args: &[String],
) -> Result<Answer, NodeError> {
    let mut conn = cluster.connection().await?;
    use redis::aio::ConnectionLike;
    let mut answer = conn.req_packed_command(&evalsha(script, keys, args)).await;
    if is_noscript(&answer) {
        answer = eval_source(&mut conn, script, keys, args).await;
    }
    match answer {
        Ok(value) => to_answer(value),
        Err(e) if e.code() == Some("NOAUTH") => Err(NodeError::Auth(
            "the cluster requires a password, and none was given".to_owned(),
        )),
        Err(e) if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() => {
            Err(cluster::failure(&e))
        }
        Err(e) => Err(NodeError::Server(e.to_string())),
    }
}

/// What a script's answer means.
fn to_answer(value: redis::Value) -> Result<Answer, NodeError> {
    match value {
        redis::Value::Int(count) => Ok(Answer {
            count,
            counter: None,
            holder: None,
        }),
        redis::Value::BulkString(holder) => Ok(Answer {
            count: 0,
            counter: None,
            holder: Some(String::from_utf8_lossy(&holder).into_owned()),
        }),
        redis::Value::Array(items) => match items.as_slice() {
            [redis::Value::Int(count), redis::Value::Int(counter)] => Ok(Answer {
                count: *count,
                counter: Some(*counter),
                holder: None,
            }),
            _ => Err(NodeError::Server(format!("unexpected answer {items:?}"))),
        },
        redis::Value::ServerError(e) if e.code() == "NOAUTH" => Err(NodeError::Auth(
            "the server requires a password, and none was given".to_owned(),
        )),
        redis::Value::ServerError(e) if matches!(e.code(), "MOVED" | "ASK" | "CLUSTERDOWN") => {
            Err(NodeError::Server(format!(
                "{e} (this server is a node of a Redis Cluster: give the cluster as one entry, a list of its URLs or {{ cluster: true, … }})"
            )))
        }
        redis::Value::ServerError(e) => Err(NodeError::Server(e.to_string())),
        other => Err(NodeError::Server(format!("unexpected answer {other:?}"))),
    }
}

/// Sends `script` by its source (EVAL), for a node that does not know its SHA1.
async fn eval_source(
    conn: &mut impl redis::aio::ConnectionLike,
    script: &Script,
    keys: &[String],
    args: &[String],
) -> redis::RedisResult<redis::Value> {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script.source).arg(keys.len()).arg(keys).arg(args);
    conn.req_packed_command(&cmd).await
}

/// Whether a node answered NOSCRIPT (it does not know the script's SHA1).
fn is_noscript(answer: &redis::RedisResult<redis::Value>) -> bool {
    let noscript = redis::ServerErrorKind::NoScript;
    match answer {
        Ok(redis::Value::ServerError(e)) => e.kind() == Some(noscript),
        Err(e) => e.kind() == redis::ErrorKind::Server(noscript),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_keeps_at_most_max_kept_timed_out_requests() {
        let node = Node::new(NodeConfig::new("127.0.0.1", 6379));
        let kept: Vec<Kept> = (0..MAX_KEPT).map_while(|_| node.keep()).collect();
        assert_eq!(kept.len(), MAX_KEPT);
        assert!(node.keep().is_none(), "one more than the bound");
        drop(kept);
        assert!(node.keep().is_some(), "places come back when requests end");
    }
}
