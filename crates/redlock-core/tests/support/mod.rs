//! Real `redis-server` processes for the integration tests, one per node.
//!
//! Each [`Server`] runs on a free loopback port with persistence off, answers PING before
//! `start` returns, and is killed by pid when dropped, so a failing test leaks no server.
//! The helpers that look at keys use their own synchronous connection, never the engine's.

#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use redlock_core::{NodeConfig, Redlock, RetryStrategy, Settings};

/// One `redis-server` child process on `127.0.0.1:port`.
pub struct Server {
    /// The TCP port it listens on; kept across `restart`.
    pub port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts a server on a free port and waits until it answers PING.
    pub fn start() -> Server {
        for _ in 0..10 {
            let port = free_port();
            if let Some(child) = spawn_on(port) {
                return Server {
                    port,
                    child: Some(child),
                };
            }
        }
        panic!("could not start redis-server on a free port after 10 tries");
    }

    /// Kills the process (SIGKILL) and reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes the process (SIGSTOP): the port still accepts connections, nothing answers.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    /// Starts a fresh, empty server on the same port (killing the old one if still running).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(child) = spawn_on(self.port) {
                self.child = Some(child);
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("could not restart redis-server on port {}", self.port);
    }

    /// A node configuration that reaches this server.
    pub fn config(&self) -> NodeConfig {
        NodeConfig::new("127.0.0.1", self.port)
    }

    /// A fresh synchronous connection, with timeouts so that a mistake cannot hang a test.
    pub fn connection(&self) -> redis::Connection {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port)).unwrap();
        let con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connecting to port {}: {e}", self.port));
        con.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        con.set_write_timeout(Some(Duration::from_secs(2))).unwrap();
        con
    }

    /// The value stored under `key`, if any.
    pub fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query(&mut self.connection())
            .unwrap()
    }

    /// `PTTL key`: milliseconds left, -1 without expiry, -2 when the key does not exist.
    pub fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut self.connection())
            .unwrap()
    }

    /// `SET key value PX ttl_ms`, as another holder would.
    pub fn set(&self, key: &str, value: &str, ttl_ms: u64) {
        let _: () = redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(ttl_ms)
            .query(&mut self.connection())
            .unwrap();
    }

    /// `DEL key`.
    pub fn del(&self, key: &str) {
        let _: i64 = redis::cmd("DEL")
            .arg(key)
            .query(&mut self.connection())
            .unwrap();
    }

    /// `SCRIPT FLUSH`: forgets every cached script, as a restarted node would.
    pub fn script_flush(&self) {
        let _: () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query(&mut self.connection())
            .unwrap();
    }

    fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let status = Command::new("kill")
            .arg(signal)
            .arg(child.id().to_string())
            .status()
            .expect("kill(1) is available");
        assert!(status.success(), "kill {signal} {} failed", child.id());
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resource names as the engine takes them.
pub fn names(resources: &[&str]) -> Vec<String> {
    resources.iter().map(|r| r.to_string()).collect()
}

/// `n` milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Whether every one of `servers` holds `value` under `key`.
pub fn held_by(servers: &[Server], key: &str, value: &str) -> bool {
    servers.iter().all(|s| s.get(key).as_deref() == Some(value))
}

/// Whether none of `servers` has `key`.
pub fn absent(servers: &[Server], key: &str) -> bool {
    servers.iter().all(|s| s.get(key).is_none())
}

/// Starts `n` servers.
pub fn start_servers(n: usize) -> Vec<Server> {
    (0..n).map(|_| Server::start()).collect()
}

/// A `Redlock` over all of `servers`, in order.
pub fn redlock(servers: &[Server]) -> Redlock {
    Redlock::new(servers.iter().map(Server::config).collect()).expect("distinct servers")
}

/// Settings for tests: two quick retries and node-redlock's drift.
pub fn quick_settings() -> Settings {
    Settings {
        retry_count: Some(2),
        retry: RetryStrategy::Fixed {
            delay: Duration::from_millis(20),
            jitter: Duration::from_millis(5),
        },
        ..Settings::default()
    }
}

/// Polls `check` every 20 ms until it holds or `within` has passed; answers whether it held.
/// Stragglers past the quorum land after an operation returns, hence the wait.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds since the Unix epoch, as `Lock::expiration` counts them.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    listener.local_addr().unwrap().port()
}

/// Spawns `redis-server` on `port` and waits for PING; `None` if it died or never answered.
fn spawn_on(port: u16) -> Option<Child> {
    let mut child = Command::new("redis-server")
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--daemonize", "no"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server is on PATH");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return None;
        }
        if answers_ping(port, child.id()) {
            return Some(child);
        }
        thread::sleep(Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// Whether the server on `port` answers PING and is our child `pid` (not another test's
/// server that happened to take the same port first).
fn answers_ping(port: u16, pid: u32) -> bool {
    let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(200)) else {
        return false;
    };
    let _ = con.set_read_timeout(Some(Duration::from_millis(500)));
    if !matches!(redis::cmd("PING").query::<String>(&mut con), Ok(ref p) if p == "PONG") {
        return false;
    }
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut con)
        .unwrap_or_default();
    info.lines()
        .any(|l| l.trim() == format!("process_id:{pid}"))
}
