//! Reaching a member: its one shared connection, and the TCP and TLS stream under it.
//!
//! A [`Link`] opens its connection on first use, with one connect that every concurrent
//! request waits for. When the connection breaks it is forgotten and the next request opens a
//! new one, so a member that comes back is used again without anyone asking. After a failed
//! connect the member is not dialled again for [`RECONNECT_BACKOFF`]: requests fail at once
//! with the same reason instead of dialling a dead node each time. A plain node and a cluster
//! member both keep their connection in a link ([`crate::node`], [`crate::cluster`]).
//!
//! How long a connect may take is the caller's business: every wait here is cancelled when
//! the caller's per-node timeout runs out.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::future::{ready, Either, Ready};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::NodeConfig;
use crate::fault::NodeError;
use crate::tls::{self, Handshake, TlsConfig};

/// A member's open connection and its serial number, or why there is none.
pub(crate) type Opened<C> = Result<(u32, C), NodeError>;

/// What [`Link::get`] answers: the open connection at once, or a connect under way.
pub(crate) type Getting<'a, C> =
    Either<Ready<Opened<C>>, Pin<Box<dyn Future<Output = Opened<C>> + Send + 'a>>>;

/// How long after a failed connect a member is not dialled again.
pub(crate) const RECONNECT_BACKOFF: Duration = Duration::from_millis(100);

/// One member's shared connection `C`, opened when needed.
pub(crate) struct Link<C> {
    /// The open connection, with a serial number so that a failure on an old connection
    /// never throws away a newer one.
    open: Mutex<Option<(u32, C)>>,
    /// Held while connecting, so that concurrent requests share one connect.
    connecting: tokio::sync::Mutex<()>,
    serial: AtomicU32,
    /// When the last connect failed, and why.
    last_failure: Mutex<Option<(Instant, NodeError)>>,
    closed: AtomicBool,
}

impl<C: Clone> Link<C> {
    pub(crate) fn new() -> Self {
        Link {
            open: Mutex::new(None),
            connecting: tokio::sync::Mutex::new(()),
            serial: AtomicU32::new(0),
            last_failure: Mutex::new(None),
            closed: AtomicBool::new(false),
        }
    }

    /// The open connection and its serial number, or a new one made by `connect`. Not an
    /// `async fn`: the open connection is ready at once, and the connect (rare) is boxed, so
    /// that neither enlarges every request's future.
    pub(crate) fn get<'a, F>(&'a self, connect: impl FnOnce() -> F + Send + 'a) -> Getting<'a, C>
    where
        F: Future<Output = Result<C, NodeError>> + Send + 'a,
        C: Send + 'a,
    {
        match self.current() {
            Some(open) => Either::Left(ready(Ok(open))),
            None => Either::Right(Box::pin(self.connect(connect))),
        }
    }

    async fn connect<F>(&self, connect: impl FnOnce() -> F) -> Result<(u32, C), NodeError>
    where
        F: Future<Output = Result<C, NodeError>>,
    {
        let _gate = self.connecting.lock().await;
        self.check_open()?;
        if let Some(open) = self.current() {
            return Ok(open);
        }
        if let Some((at, error)) = lock(&self.last_failure).clone() {
            if at.elapsed() < RECONNECT_BACKOFF {
                return Err(error);
            }
        }
        let conn = match connect().await {
            Ok(conn) => conn,
            Err(error) => {
                *lock(&self.last_failure) = Some((Instant::now(), error.clone()));
                return Err(error);
            }
        };
        *lock(&self.last_failure) = None;
        // Closed while connecting: the new connection is dropped here.
        self.check_open()?;
        let serial = self.serial.fetch_add(1, Ordering::Relaxed) + 1;
        *lock(&self.open) = Some((serial, conn.clone()));
        Ok((serial, conn))
    }

    /// Forgets the connection numbered `serial`, which broke; a newer one is kept.
    pub(crate) fn forget(&self, serial: u32) {
        let mut open = lock(&self.open);
        if matches!(&*open, Some((s, _)) if *s == serial) {
            *open = None;
        }
    }

    /// Drops the connection and refuses to open another.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        lock(&self.open).take();
    }

    /// Fails once the link is closed.
    pub(crate) fn check_open(&self) -> Result<(), NodeError> {
        match self.closed.load(Ordering::SeqCst) {
            true => Err(NodeError::Connection("the Redlock was closed".into())),
            false => Ok(()),
        }
    }

    fn current(&self) -> Option<(u32, C)> {
        lock(&self.open).clone()
    }
}

/// A stream to a server: plain TCP, or TLS over it.
pub(crate) trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<S: AsyncRead + AsyncWrite + Send + Unpin> Stream for S {}

/// Opens the TCP stream to `host:port` and, with TLS, does the `handshake`. The redis crate
/// then logs in (AUTH, SELECT) on it.
pub(crate) async fn open(
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

/// What a failed login on an open stream means: a refused password, a TLS problem seen only
/// after the handshake (TLS 1.3 servers check client certificates then), or a broken
/// connection.
pub(crate) fn login_failure(config: &NodeConfig, error: redis::RedisError) -> NodeError {
    let name = match &config.tls {
        Some(TlsConfig {
            servername: Some(name),
            ..
        }) => name.as_str(),
        _ => config.host.as_str(),
    };
    if let Some(tls) = tls::describe(&error, name) {
        return NodeError::Connection(tls);
    }
    match error.kind() {
        redis::ErrorKind::AuthenticationFailed => NodeError::Auth(match &config.username {
            Some(_) => "the server refused the username and password".to_owned(),
            None => "the server refused the password".to_owned(),
        }),
        _ => NodeError::Connection(error.to_string()),
    }
}

/// What a failed request means: a login the member wants and did not get, a broken
/// connection (in the words of `broken`), or an error answer.
pub(crate) fn request_failure(
    error: redis::RedisError,
    broken: impl FnOnce(&redis::RedisError) -> NodeError,
) -> NodeError {
    if error.code() == Some("NOAUTH") {
        return NodeError::Auth(NO_PASSWORD.to_owned());
    }
    if error.is_io_error() || error.is_connection_dropped() || error.is_unrecoverable_error() {
        return broken(&error);
    }
    NodeError::Server(error.to_string())
}

/// Why a member that answers NOAUTH refused us.
pub(crate) const NO_PASSWORD: &str = "the server requires a password, and none was given";

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
