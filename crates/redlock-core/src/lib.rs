//! The Redlock quorum engine of redlock-rs.
//!
//! Pure Rust (tokio + the `redis` crate), no Node: everything a Redlock client must do to
//! hold a lock across N independent Redis masters lives here, and the napi binding only
//! converts values in and out. The algorithm itself reads top to bottom in [`redlock`];
//! the pieces it leans on each have a module of their own:
//!
//! - [`round`]: the one fan-out of a script to every node, decided at quorum;
//! - [`lock`]: a lock's value and validity; [`settings`]: how operations behave;
//! - [`quorum`]: who must agree, how votes are counted, and how long a grant stays valid;
//! - [`retry`]: how long to wait between attempts;
//! - [`node`]: one Redis master, its connection and its per-request timeout;
//! - [`cluster`]: a whole Redis Cluster as one member of the quorum;
//! - [`tls`]: certificates to trust and present, and what a failed handshake means;
//! - [`fence`]: fencing tokens, monotonic per resource across quorums;
//! - [`lane`]: the per-node ordering of one lock's commands;
//! - [`line`](mod@line): the first-come first-served line of this process's acquirers per resource;
//! - [`notice`]: wake-on-release, the pub/sub notices that end a waiter's wait;
//! - [`watchdog`]: the task that keeps a lock extended while its holder works;
//! - [`script`]: the Lua scripts, in the meaning node-redlock gives them;
//! - [`error`]: every failure, with a stable code.

pub mod cluster;
pub mod error;
pub mod fence;
pub mod lane;
pub mod line;
pub mod lock;
pub mod node;
pub mod notice;
pub mod quorum;
pub mod redlock;
pub mod retry;
pub mod round;
pub mod script;
pub mod settings;
pub mod tls;
pub mod watchdog;

pub use error::{Attempt, Error, NodeError, Vote};
pub use lock::{Lock, Released};
pub use node::{AddressMap, NodeConfig, NodeConfigError};
pub use redlock::{CrossSlot, NodeErrorListener, Redlock};
pub use retry::RetryStrategy;
pub use settings::Settings;
pub use tls::TlsConfig;
pub use tokio_util::sync::CancellationToken;
pub use watchdog::{Lost, Watch, Watchdog};
