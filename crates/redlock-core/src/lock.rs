//! A lock: its resources, its random value, and when its validity ends.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::Attempt;
use crate::lane::Lanes;

/// A lock held (or once held) on a quorum of nodes.
pub struct Lock {
    /// The resources, as the caller named them (without any node's key prefix).
    pub resources: Vec<String>,
    /// The random value stored under every key: 128 bits from the OS's CSPRNG, in hex.
    pub value: String,
    pub(crate) expiration: AtomicU64,
    pub(crate) attempts: Mutex<Vec<Attempt>>,
    pub(crate) lanes: Arc<Lanes>,
    /// The [`Redlock`] that made it: a lock's lanes are only meaningful to its own nodes.
    pub(crate) owner: u64,
    pub(crate) fencing_token: OnceLock<i64>,
}

impl Lock {
    pub(crate) fn new(
        resources: Vec<String>,
        value: String,
        lanes: Arc<Lanes>,
        owner: u64,
        expiration: u64,
    ) -> Self {
        Lock {
            resources,
            value,
            expiration: AtomicU64::new(expiration),
            attempts: Mutex::new(Vec::new()),
            lanes,
            owner,
            fencing_token: OnceLock::new(),
        }
    }

    /// The wall-clock instant (ms since the Unix epoch) at which the lock's validity ends.
    pub fn expiration(&self) -> u64 {
        self.expiration.load(Ordering::SeqCst)
    }

    /// The fencing token taken with the lock, when fencing was on. Extensions keep it.
    pub fn fencing_token(&self) -> Option<i64> {
        self.fencing_token.get().copied()
    }

    /// The attempts of the operation that last granted or extended this lock.
    pub fn attempts(&self) -> Vec<Attempt> {
        self.attempts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn granted(&self, validity: Duration, attempts: Vec<Attempt>) {
        let until = now_ms() + validity.as_millis() as u64;
        self.expiration.store(until, Ordering::SeqCst);
        *self.attempts.lock().unwrap_or_else(|p| p.into_inner()) = attempts;
    }
}

/// The answer to a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Released {
    /// How many of the nodes that answered still held the lock and deleted it.
    pub nodes_held: usize,
    /// The attempts made.
    pub attempts: Vec<Attempt>,
}

/// 128 random bits from the OS's CSPRNG, as 32 hex digits.
pub(crate) fn random_value() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the OS random source is available");
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut value = String::with_capacity(32);
    for b in bytes {
        value.push(char::from(HEX[usize::from(b >> 4)]));
        value.push(char::from(HEX[usize::from(b & 15)]));
    }
    value
}

/// Wall-clock time in ms since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_values_are_128_random_bits_in_hex() {
        let a = random_value();
        let b = random_value();
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
