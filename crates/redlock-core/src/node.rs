//! One Redis master: where it is, its connection, and how a script reaches it.
//!
//! A node connects lazily on first use and shares one multiplexed connection among all
//! locks. When the connection breaks, the node forgets it and the next request opens a new
//! one, so a node that comes back is used again without anyone asking. How long a request
//! may take is the caller's business (see [`crate::redlock`]): every wait here, the connect
//! included, is cancelled when the caller's per-node timeout runs out.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Mutex;

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::error::NodeError;
use crate::script::Script;

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
    /// `rediss://` was asked for, and this build has no TLS.
    TlsUnsupported,
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
        }
    }

    /// Parses `redis://[user[:password]@]host[:port][/db]`.
    pub fn from_url(url: &str) -> Result<Self, NodeConfigError> {
        if url.starts_with("rediss://") {
            return Err(NodeConfigError::TlsUnsupported);
        }
        if !url.starts_with("redis://") {
            return Err(NodeConfigError::BadUrl("it must start with redis://"));
        }
        let info = url
            .into_connection_info()
            .map_err(|_| NodeConfigError::BadUrl("it is not a valid redis:// URL"))?;
        let ConnectionAddr::Tcp(host, port) = info.addr().clone() else {
            return Err(NodeConfigError::BadUrl("it must name a TCP host"));
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
        })
    }

    /// `host:port/db`: how the node is named in errors and events. Holds no credentials.
    pub fn label(&self) -> String {
        format!("{}:{}/{}", self.host, self.port, self.db)
    }

    /// Whether two configurations reach the same database of the same server, which would
    /// count one server's vote twice.
    pub fn same_database(&self, other: &NodeConfig) -> bool {
        fn canonical(host: &str) -> String {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            match host.to_ascii_lowercase().as_str() {
                "localhost" | "::1" | "0:0:0:0:0:0:0:1" => "127.0.0.1".to_owned(),
                other => other.to_owned(),
            }
        }
        self.port == other.port
            && self.db == other.db
            && canonical(&self.host) == canonical(&other.host)
    }

    fn connection_info(&self) -> ConnectionInfo {
        let mut redis = redis::RedisConnectionInfo::default().set_db(self.db);
        if let Some(user) = &self.username {
            redis = redis.set_username(user);
        }
        if let Some(password) = &self.password {
            redis = redis.set_password(password);
        }
        let addr = ConnectionAddr::Tcp(self.host.clone(), self.port);
        addr.into_connection_info()
            .expect("a TCP address is always valid connection info")
            .set_redis_settings(redis)
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
    client: Client,
    /// The open connection, with a serial number so that a failure on an old connection
    /// never throws away a newer one.
    connection: Mutex<Option<(u32, MultiplexedConnection)>>,
    /// Held while connecting, so that concurrent requests share one connect.
    connecting: tokio::sync::Mutex<()>,
    serial: AtomicU32,
    closed: AtomicBool,
}

impl Node {
    /// A node for `config`. Opens nothing until the first request.
    pub fn new(config: NodeConfig) -> Self {
        let client = Client::open(config.connection_info())
            .expect("a TCP connection info is always accepted");
        Node {
            label: config.label(),
            config,
            client,
            connection: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            serial: AtomicU32::new(0),
            closed: AtomicBool::new(false),
        }
    }

    /// `host:port/db`, for errors and events.
    pub fn label(&self) -> &str {
        &self.label
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
        let (serial, mut conn) = self.connection().await?;
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&script.sha).arg(keys.len()).arg(keys).arg(args);
        let mut answer = conn.send_packed_command(&cmd).await;
        if is_noscript(&answer) {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(script.source).arg(keys.len()).arg(keys).arg(args);
            answer = conn.send_packed_command(&cmd).await;
        }
        match answer {
            Ok(redis::Value::Int(count)) => Ok(Answer {
                count,
                counter: None,
                holder: None,
            }),
            Ok(redis::Value::BulkString(holder)) => Ok(Answer {
                count: 0,
                counter: None,
                holder: Some(String::from_utf8_lossy(&holder).into_owned()),
            }),
            Ok(redis::Value::Array(items)) => match items.as_slice() {
                [redis::Value::Int(count), redis::Value::Int(counter)] => Ok(Answer {
                    count: *count,
                    counter: Some(*counter),
                    holder: None,
                }),
                _ => Err(NodeError::Server(format!("unexpected answer {items:?}"))),
            },
            Ok(redis::Value::ServerError(e)) => Err(NodeError::Server(e.to_string())),
            Ok(other) => Err(NodeError::Server(format!("unexpected answer {other:?}"))),
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
        self.client
            .get_async_pubsub()
            .await
            .map_err(|e| NodeError::Connection(e.to_string()))
    }

    /// Drops the connection and refuses further requests.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
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
        let _gate = self.connecting.lock().await;
        if self.closed.load(Ordering::SeqCst) {
            return Err(NodeError::Connection("the Redlock was closed".into()));
        }
        if let Some(open) = self.current() {
            return Ok(open);
        }
        // The caller's timeout bounds the connect; no timeouts of the client's own.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| NodeError::Connection(e.to_string()))?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        if self.closed.load(Ordering::SeqCst) {
            return Err(NodeError::Connection("the Redlock was closed".into()));
        }
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some((serial, conn.clone()));
        Ok((serial, conn))
    }
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
