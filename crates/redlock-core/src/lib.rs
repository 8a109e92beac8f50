//! The Redlock quorum engine of redlock-rs.
//!
//! Pure Rust (tokio + the `redis` crate), no Node: everything a Redlock client must do to
//! hold a lock across N independent Redis masters lives here, and the napi binding only
//! converts values in and out. The algorithm itself reads top to bottom in [`redlock`], on
//! the client of [`client`]; the pieces it leans on each have a module of their own:
//!
//! - [`round`]: the one fan-out of a script to every node, decided at quorum, and the
//!   votes and attempts it records;
//! - [`wait`](mod@wait): how an acquirer waits between attempts, over [`line`](mod@line) (the
//!   first-come first-served line of this process's acquirers per resource) and [`notice`]
//!   (wake-on-release, the pub/sub notices that end a waiter's wait);
//! - [`lock`]: a lock's value and validity, and a client's registry of live locks;
//! - [`settings`]: how operations behave, and every default;
//! - [`quorum`]: who must agree, when a quorum has become impossible, and how long a grant
//!   stays valid;
//! - [`retry`]: how long to wait between attempts;
//! - [`node`]: one member of the quorum, a single master or a whole cluster ([`cluster`]),
//!   over its shared connection ([`link`]), which takes a single master's commands in
//!   batches (`batch`); [`config`]: where a member is and how to log in;
//! - [`tls`]: certificates to trust and present, and what a failed handshake means;
//! - [`fence`]: fencing tokens, monotonic per resource across quorums;
//! - [`restart`]: the restart guard, which leaves out the votes of servers that restarted
//!   too lately to remember the locks they granted;
//! - [`lane`]: the per-node ordering of one lock's commands;
//! - [`rwlock`]: read-write locks, write-preferring, over the same quorum;
//! - [`semaphore`]: K permits of a resource, each a slot held like a mutex on a quorum;
//! - [`watchdog`]: the task that keeps a lock extended while its holder works;
//! - [`script`]: the Lua scripts, in the meaning node-redlock gives them, and how one is sent;
//! - [`error`]: every failure of an operation, and [`fault`]: every failure of one node, each
//!   with a stable code.

mod batch;
pub mod client;
pub mod cluster;
pub mod config;
pub mod error;
pub mod fault;
pub mod fence;
pub mod inspect;
pub mod lane;
pub mod line;
mod link;
pub mod lock;
pub mod node;
pub mod notice;
pub mod quorum;
pub mod redlock;
pub mod restart;
pub mod retry;
pub mod round;
pub mod rwlock;
pub mod script;
pub mod semaphore;
pub mod settings;
pub mod stats;
pub mod tls;
pub mod wait;
pub mod watchdog;

pub use client::Redlock;
pub use cluster::CrossSlot;
pub use config::{AddressMap, Misconfigured, NodeConfig, NodeConfigError};
pub use error::{Against, Error};
pub use fault::NodeError;
pub use lock::{Kind, Lock, Released};
pub use quorum::Verdict;
pub use restart::{GuardMode, RestartGuard};
pub use retry::RetryStrategy;
pub use round::{Attempt, Counting, NodeErrorListener, Vote};
pub use settings::Settings;
pub use tls::TlsConfig;
pub use tokio_util::sync::CancellationToken;
pub use watchdog::{Lost, Watch, Watchdog};
