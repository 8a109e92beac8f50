//! The Redlock quorum engine of redlock-rs.
//!
//! Pure Rust (tokio + the `redis` crate), no Node: everything a Redlock client must do to
//! hold a lock across N independent Redis masters lives here, and the napi binding only
//! converts values in and out. The algorithm itself reads top to bottom in [`redlock`];
//! the pieces it leans on each have a module of their own:
//!
//! - [`quorum`]: who must agree, how votes are counted, and how long a grant stays valid;
//! - [`retry`]: how long to wait between attempts;
//! - [`node`]: one Redis master, its connection and its per-request timeout;
//! - [`lane`]: the per-node ordering of one lock's commands;
//! - [`script`]: the Lua scripts, in the meaning node-redlock gives them;
//! - [`error`]: every failure, with a stable code.

pub mod error;
pub mod lane;
pub mod node;
pub mod quorum;
pub mod redlock;
pub mod retry;
pub mod script;

pub use error::{Attempt, Error, NodeError, Vote};
pub use node::{NodeConfig, NodeConfigError};
pub use redlock::{Lock, NodeErrorListener, Redlock, Released, Settings};
pub use retry::RetryStrategy;
