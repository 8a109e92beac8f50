//! One member of the quorum: a single Redis master, or a whole Redis Cluster that votes as
//! one ([`crate::cluster`]), and how a script reaches it.
//!
//! Both forms keep one shared connection ([`crate::link`]), opened on first use and
//! replaced when it breaks, and run scripts the same way ([`crate::script::or_by_source`]). How long
//! a request may take is the caller's business ([`crate::round`]): every wait here, the
//! connect included, is cancelled when the caller's per-node timeout runs out.
//!
//! A plain node opens its TCP stream itself, and with TLS does the handshake itself
//! ([`crate::tls`]), then hands the stream to the redis crate, which logs in (AUTH, SELECT)
//! on it. Its operations' commands go through a queue of the connection's own, which writes
//! all that is queued as one pipeline (`crate::batch`). A login the server refuses is
//! reported as [`NodeError::Auth`], at once, on every request: it is never waited out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisConnectionInfo};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

use crate::batch::Batched;
use crate::cluster::ClusterMember;
use crate::config::NodeConfig;
use crate::fault::NodeError;
use crate::link::{self, Link};
use crate::restart::Health;
use crate::script::{self, Script};
use crate::tls::Handshake;

/// A script's answer: how many keys it acted on, and for a fenced acquisition the node's
/// highest fencing counter. An acquisition refused by another holder answers that holder's
/// value instead. A single master's answer comes with what the server said of itself when
/// the connection that carried it opened ([`crate::restart`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub count: i64,
    pub counter: Option<i64>,
    pub holder: Option<String>,
    pub health: Option<Arc<Health>>,
    /// The semaphore slots taken ([`crate::script::PERMITS`]), 1-based; empty otherwise.
    pub slots: Vec<u32>,
}

/// One member of the quorum and its shared connection.
///
/// A timeout does not drop the connection: commands already written to a paused node run
/// when it resumes, in the order written, so a lock's undo must travel on the same
/// connection as the command it undoes. Only a broken connection is replaced.
pub struct Node {
    config: NodeConfig,
    label: String,
    form: Form,
    /// Cancelled by [`Node::close`], for the requests still kept waiting for an answer.
    closing: CancellationToken,
    /// How many timed-out requests are kept waiting for their answers ([`Node::keep`]).
    kept: Arc<AtomicUsize>,
    /// Whether the member refused a plain command ([`script::run`]).
    plain_refused: script::PlainRefused,
    /// The run id of the last restart reported to the node-error listener.
    restart_told: Mutex<String>,
    /// The run id of the server this member answered from first.
    first_run: OnceLock<String>,
}

/// The two kinds of member.
// One per member, made once: the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Form {
    Plain(Plain),
    Cluster(ClusterMember),
}

/// A single Redis master.
struct Plain {
    login: RedisConnectionInfo,
    /// The prepared TLS handshake, or why the TLS settings cannot be used.
    tls: Option<Result<Handshake, &'static str>>,
    link: Link<Conn>,
}

/// A single master's connection, with what the server said of itself when it opened.
#[derive(Clone)]
struct Conn {
    conn: MultiplexedConnection,
    /// The connection's queue of operations' commands, written in batches.
    batched: Batched,
    health: Arc<HealthCell>,
}

/// The server's [`Health`], once its answer to the connection's first commands is read
/// (`None` inside when it would not tell).
#[derive(Default)]
struct HealthCell {
    health: OnceLock<Option<Arc<Health>>>,
    ready: tokio::sync::Notify,
}

impl HealthCell {
    fn set(&self, health: Option<Health>) {
        let _ = self.health.set(health.map(Arc::new));
        self.ready.notify_waiters();
    }

    /// The health, waiting for it if need be: it was asked ahead of any request on the
    /// connection, so its answer has arrived once a request's answer has.
    async fn get(&self) -> Option<Arc<Health>> {
        loop {
            let ready = self.ready.notified();
            if let Some(health) = self.health.get() {
                return health.clone();
            }
            ready.await;
        }
    }
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

impl Node {
    /// A member for `config`. Opens nothing until the first request.
    pub fn new(config: NodeConfig) -> Self {
        let form = match config.is_cluster() {
            true => Form::Cluster(ClusterMember::new(&config)),
            false => Form::Plain(Plain {
                login: config.login(),
                tls: config.tls.as_ref().map(|t| t.handshake(&config.host)),
                link: Link::new(),
            }),
        };
        Node {
            label: config.label(),
            form,
            config,
            closing: CancellationToken::new(),
            kept: Arc::default(),
            plain_refused: Default::default(),
            restart_told: Mutex::default(),
            first_run: OnceLock::new(),
        }
    }

    /// Whether the restart whose server has `run_id` has yet to be reported; it counts as
    /// reported from now on.
    pub fn first_report_of(&self, run_id: &str, counted: bool) -> bool {
        // Counted, and young since this client first met it: as far as this client can
        // tell the fleet is new (a test harness, a first deployment), not restarted.
        if counted && self.first_run.get().map(String::as_str) == Some(run_id) {
            return false;
        }
        let mut told = self.restart_told.lock().unwrap_or_else(|p| p.into_inner());
        if *told == run_id {
            return false;
        }
        run_id.clone_into(&mut told);
        true
    }

    /// Remembers the first server this member answered from.
    fn met(&self, health: &Option<Arc<Health>>) {
        if let (None, Some(health)) = (self.first_run.get(), health) {
            let _ = self.first_run.set(health.run_id.clone());
        }
    }

    /// `host:port/db`, for errors and events.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Where the member is and how to log in.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    /// Whether this member is a Redis Cluster (one vote for all its masters).
    pub fn is_cluster(&self) -> bool {
        matches!(self.form, Form::Cluster(_))
    }

    /// This member's key for `resource`.
    pub fn key(&self, resource: &str) -> String {
        self.config.key(resource)
    }

    /// What this member puts before every resource to make its key.
    pub fn key_prefix(&self) -> &str {
        &self.config.key_prefix
    }

    /// Runs `script` over `keys` with `args` and returns its answer.
    pub async fn eval(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<Answer, NodeError> {
        // Written out here rather than in a method of `Plain`: every level of async fn would
        // store the arguments again in every request's future.
        let answer = match &self.form {
            Form::Plain(plain) => {
                let (serial, mut conn) = plain.link.get(|| plain.connect(&self.config)).await?;
                let refused = &self.plain_refused;
                let answer = script::run(&mut conn.batched, script, keys, args, refused).await;
                let mut answer = to_answer(answer.map_err(|e| plain.failure(serial, e))?)?;
                answer.health = conn.health.get().await;
                self.met(&answer.health);
                return Ok(answer);
            }
            // Boxed, so that the cluster's future does not enlarge a single node's.
            Form::Cluster(cluster) => {
                Box::pin(cluster.eval(script, keys, args, &self.plain_refused)).await
            }
        };
        let (answer, health) = answer?;
        let mut answer = to_answer(answer)?;
        answer.health = health;
        self.met(&answer.health);
        Ok(answer)
    }

    /// Runs a read-only `script` over `keys` with `args` and returns its answer as the
    /// server gave it (an error answer is the node's error). For [`crate::inspect`].
    pub async fn read(
        &self,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<redis::Value, NodeError> {
        let answer = match &self.form {
            Form::Plain(plain) => {
                let (serial, mut conn) = plain.link.get(|| plain.connect(&self.config)).await?;
                let answer = script::run(&mut conn.conn, script, keys, args, &self.plain_refused);
                answer.await.map_err(|e| plain.failure(serial, e))?
            }
            Form::Cluster(cluster) => {
                Box::pin(cluster.eval(script, keys, args, &self.plain_refused))
                    .await?
                    .0
            }
        };
        match answer {
            redis::Value::ServerError(e) => Err(server_error(e)),
            answer => Ok(answer),
        }
    }

    /// Opens a pub/sub connection of its own to this member (for [`crate::notice`]).
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, NodeError> {
        match &self.form {
            Form::Plain(plain) => plain.pubsub(&self.config).await,
            Form::Cluster(cluster) => Box::pin(cluster.pubsub(&self.config)).await,
        }
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
        self.closing.cancel();
        match &self.form {
            Form::Plain(plain) => plain.link.close(),
            Form::Cluster(cluster) => cluster.close(),
        }
    }
}

impl Plain {
    /// What a failed request on connection `serial` means; a broken connection is forgotten.
    fn failure(&self, serial: u32, error: redis::RedisError) -> NodeError {
        link::request_failure(error, |e| {
            self.link.forget(serial);
            NodeError::Connection(e.to_string())
        })
    }

    async fn connect(&self, config: &NodeConfig) -> Result<Conn, NodeError> {
        // The caller's timeout bounds the connect; no timeouts of the client's own.
        let options = AsyncConnectionConfig::new()
            .set_connection_timeout(None)
            .set_response_timeout(None);
        let stream = link::open(&config.host, config.port, &self.tls).await?;
        let (conn, driver) = MultiplexedConnection::new_with_config(&self.login, stream, options)
            .await
            .map_err(|e| link::login_failure(config, e))?;
        tokio::spawn(driver);
        let health = Arc::new(HealthCell::default());
        greet(&conn, health.clone());
        // Made after the greeting is queued, so that every command comes after it.
        let batched = Batched::start(conn.clone());
        Ok(Conn {
            conn,
            batched,
            health,
        })
    }

    async fn pubsub(&self, config: &NodeConfig) -> Result<redis::aio::PubSub, NodeError> {
        self.link.check_open()?;
        let stream = link::open(&config.host, config.port, &self.tls).await?;
        redis::aio::PubSub::new(&self.login, stream)
            .await
            .map_err(|e| link::login_failure(config, e))
    }
}

/// Queues the first commands of a new connection, ahead of any request, in one write:
///
/// - SCRIPT LOAD of every script, so that a NOSCRIPT answer (and the EVAL sent after it,
///   which may land out of the order the lock's commands were issued in) is left to a node
///   that flushes its scripts while connected. A user not allowed SCRIPT LOAD still works,
///   through the fallback.
/// - INFO server, INFO persistence and CONFIG GET appendfsync, for the restart guard: the
///   server's uptime, run id, and whether it persists every write. Each may be refused by
///   an ACL; without an uptime the server's [`Health`] is unknown.
///
/// The answers are awaited in the background, so the connect takes no extra round trip;
/// the health lands in `health` (requests that need it wait for it there).
fn greet(conn: &MultiplexedConnection, health: Arc<HealthCell>) {
    let mut conn = conn.clone();
    let mut load = Box::pin(async move {
        // Whatever becomes of this task, the requests waiting for the health are let go.
        let unknown = SetOnDrop(health.clone());
        let mut pipe = script::load_all();
        pipe.cmd("INFO").arg("server");
        pipe.cmd("INFO").arg("persistence");
        pipe.cmd("CONFIG").arg("GET").arg("appendfsync");
        pipe.ignore_errors();
        let answers: redis::RedisResult<Vec<redis::RedisResult<redis::Value>>> =
            pipe.query_async(&mut conn).await;
        let answers = answers.unwrap_or_default();
        let text = |i: usize| {
            answers
                .get(i)
                .and_then(|a| a.as_ref().ok())
                .and_then(text_of)
        };
        let appendfsync = answers
            .get(2)
            .and_then(|a| a.as_ref().ok())
            .and_then(config_value);
        let parsed = text(0)
            .and_then(|server| Health::parse(&server, text(1).as_deref(), appendfsync.as_deref()));
        health.set(parsed);
        drop(unknown);
    });
    // The first poll puts the pipeline on the connection's queue, before the connection is
    // handed to anyone; the task then waits for the answer (a dropped request is not sent).
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    if std::future::Future::poll(load.as_mut(), &mut cx).is_pending() {
        tokio::spawn(load);
    }
}

/// Sets the health it holds to unknown when dropped, unless it is set already.
struct SetOnDrop(Arc<HealthCell>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.set(None);
    }
}

/// The text of an INFO answer.
pub(crate) fn text_of(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        redis::Value::VerbatimString { text, .. } => Some(text.clone()),
        redis::Value::SimpleString(s) => Some(s.clone()),
        _ => None,
    }
}

/// The value of a CONFIG GET of one parameter: `[name, value]`, or a map in RESP3.
pub(crate) fn config_value(value: &redis::Value) -> Option<String> {
    match value {
        redis::Value::Array(items) => items.get(1).and_then(text_of),
        redis::Value::Map(pairs) => pairs.first().and_then(|(_, v)| text_of(v)),
        _ => None,
    }
}

/// What a script's answer means.
fn to_answer(value: redis::Value) -> Result<Answer, NodeError> {
    match value {
        redis::Value::Int(count) => Ok(Answer {
            count,
            counter: None,
            holder: None,
            health: None,
            slots: Vec::new(),
        }),
        redis::Value::BulkString(holder) => Ok(Answer {
            count: 0,
            counter: None,
            holder: Some(String::from_utf8_lossy(&holder).into_owned()),
            health: None,
            slots: Vec::new(),
        }),
        redis::Value::Array(items) => match items.as_slice() {
            [redis::Value::Int(count), redis::Value::Int(counter)] => Ok(Answer {
                count: *count,
                counter: Some(*counter),
                holder: None,
                health: None,
                slots: Vec::new(),
            }),
            [redis::Value::Int(count), counter, slots @ ..] if !slots.is_empty() => {
                let slot = |v: &redis::Value| match v {
                    redis::Value::Int(i) => u32::try_from(*i).ok(),
                    _ => None,
                };
                let taken: Option<Vec<u32>> = slots.iter().map(slot).collect();
                let counter = match counter {
                    redis::Value::Int(counter) => Some(*counter),
                    _ => None,
                };
                match taken {
                    Some(slots) => Ok(Answer {
                        count: *count,
                        counter,
                        holder: None,
                        health: None,
                        slots,
                    }),
                    None => Err(NodeError::Server(format!("unexpected answer {items:?}"))),
                }
            }
            _ => Err(NodeError::Server(format!("unexpected answer {items:?}"))),
        },
        redis::Value::ServerError(e) => Err(server_error(e)),
        other => Err(NodeError::Server(format!("unexpected answer {other:?}"))),
    }
}

/// What a server's error answer means.
fn server_error(e: redis::ServerError) -> NodeError {
    match e.code() {
        "NOAUTH" => NodeError::Auth(link::NO_PASSWORD.to_owned()),
        "MOVED" | "ASK" | "CLUSTERDOWN" => NodeError::Server(format!(
            "{e} (this server is a node of a Redis Cluster: give the cluster as one entry, a list of its URLs or {{ cluster: true, … }})"
        )),
        _ => NodeError::Server(e.to_string()),
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
