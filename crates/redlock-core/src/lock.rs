//! A lock: its resources, its random value, and when its validity ends; and the registry
//! of one client's live locks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::lane::Lanes;
use crate::round::Attempt;

/// A lock held (or once held) on a quorum of nodes.
pub struct Lock {
    /// The resources, as the caller named them (without any node's key prefix).
    pub resources: Vec<String>,
    /// The random value stored under every key: 128 bits from the OS's CSPRNG, in hex.
    pub value: String,
    pub(crate) expiration: AtomicU64,
    pub(crate) attempts: Mutex<Vec<Attempt>>,
    pub(crate) lanes: Arc<Lanes>,
    /// The [`Registry`] (of a [`crate::Redlock`]) that made it: a lock's lanes are only
    /// meaningful to its own nodes.
    pub(crate) owner: u64,
    pub(crate) fencing_token: OnceLock<i64>,
    /// For a semaphore's permits ([`crate::semaphore`]): every slot of the semaphore, which
    /// its release clears of this lock's value (a node beyond the quorum may have taken
    /// other slots than the granted ones) and whose line it hands on to.
    pub(crate) slots: Option<Arc<[String]>>,
    /// Which scripts act for it: a mutex's (and a semaphore's permits'), or a side of a
    /// read-write lock ([`crate::rwlock`]).
    pub(crate) kind: Kind,
}

/// What a lock's keys hold, and so which scripts acquire, extend and release it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A mutex on every key, or the slots of a semaphore.
    Mutex,
    /// The read side of a read-write lock: one of its readers.
    Read,
    /// The write side of a read-write lock.
    Write,
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
            slots: None,
            kind: Kind::Mutex,
        }
    }

    /// The keys a release clears: the resources, or for a semaphore's permits every slot.
    pub(crate) fn whole(&self) -> &[String] {
        self.slots.as_deref().unwrap_or(&self.resources)
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

/// The live locks of one client by value, so that a lock named by its value (the original
/// design's `releaseLock(resource, id)`) is the same lock: its expiration, its fencing
/// token, and the order of its earlier commands on each node.
pub(crate) struct Registry {
    locks: Mutex<HashMap<String, Weak<Lock>>>,
    /// Tells this client's locks from another's.
    id: u64,
    /// How many nodes each lock has a lane on.
    nodes: usize,
}

/// Hands out [`Registry`] ids.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Registry {
    /// The registry of a client over `nodes` nodes.
    pub(crate) fn new(nodes: usize) -> Self {
        Registry {
            locks: Mutex::new(HashMap::new()),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            nodes,
        }
    }

    /// Whether `lock` was made here.
    pub(crate) fn owns(&self, lock: &Lock) -> bool {
        lock.owner == self.id
    }

    /// A new lock on `resources` with `value`, registered by its value.
    pub(crate) fn create(&self, resources: Vec<String>, value: String) -> Arc<Lock> {
        self.create_kind(resources, value, Kind::Mutex)
    }

    /// A new lock of `kind` on `resources` with `value`, registered by its value.
    pub(crate) fn create_kind(
        &self,
        resources: Vec<String>,
        value: String,
        kind: Kind,
    ) -> Arc<Lock> {
        let lanes = Arc::new(Lanes::new(self.nodes));
        let mut lock = Lock::new(resources, value.clone(), lanes, self.id, 0);
        lock.kind = kind;
        let lock = Arc::new(lock);
        let mut locks = self.locks();
        // Forget dead locks now and then, so that the registry holds about the live ones.
        if locks.len() >= 64 && locks.len().is_power_of_two() {
            locks.retain(|_, l| l.strong_count() > 0);
        }
        locks.insert(value, Arc::downgrade(&lock));
        lock
    }

    /// The permits `held` of the semaphore whose every slot `probe` acquired: a lock on
    /// those slots, with the probe's value, lanes, validity, attempts and fencing token,
    /// registered in its place.
    pub(crate) fn narrowed(&self, probe: &Lock, held: Vec<String>) -> Arc<Lock> {
        let mut lock = Lock::new(
            held,
            probe.value.clone(),
            probe.lanes.clone(),
            self.id,
            probe.expiration(),
        );
        *lock.attempts.get_mut().unwrap_or_else(|p| p.into_inner()) = probe.attempts();
        if let Some(token) = probe.fencing_token() {
            let _ = lock.fencing_token.set(token);
        }
        lock.slots = Some(probe.resources.clone().into());
        let lock = Arc::new(lock);
        self.locks()
            .insert(lock.value.clone(), Arc::downgrade(&lock));
        lock
    }

    /// The lock on `resources` whose value is `value`: the live lock itself when there is
    /// one, else a lock whose expiration is taken as `expiration`.
    pub(crate) fn by_value(
        &self,
        resources: Vec<String>,
        value: String,
        expiration: u64,
    ) -> Arc<Lock> {
        let found = self.locks().get(&value).and_then(Weak::upgrade);
        match found {
            Some(lock) if lock.resources == resources => lock,
            // The same value on other resources: a lock of its own, in the same lanes.
            Some(lock) => Arc::new(Lock::new(
                resources,
                value,
                lock.lanes.clone(),
                self.id,
                expiration,
            )),
            None => {
                let lock = self.create(resources, value);
                lock.expiration.store(expiration, Ordering::SeqCst);
                lock
            }
        }
    }

    fn locks(&self) -> MutexGuard<'_, HashMap<String, Weak<Lock>>> {
        self.locks.lock().unwrap_or_else(|p| p.into_inner())
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

/// 128 random bits from the OS's CSPRNG, as 32 hex digits. The bits are read from the OS
/// 32 values at a time (one system call where there was one per lock), each handed out
/// once, by the thread that read them.
pub(crate) fn random_value() -> String {
    thread_local! {
        static POOL: std::cell::RefCell<([u8; 512], usize)> =
            const { std::cell::RefCell::new(([0; 512], 512)) };
    }
    let bytes: [u8; 16] = POOL.with_borrow_mut(|(pool, used)| {
        if *used == pool.len() {
            getrandom::fill(pool).expect("the OS random source is available");
            *used = 0;
        }
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&pool[*used..*used + 16]);
        // Handed out once: what is left behind is zero, not a copy of a value in use.
        pool[*used..*used + 16].fill(0);
        *used += 16;
        bytes
    });
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

    #[test]
    fn lock_values_never_repeat_across_refills_of_the_pool_and_threads() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let value = random_value();
            assert_eq!(value.len(), 32);
            assert_ne!(value, "0".repeat(32));
            assert!(seen.insert(value), "a value was handed out twice");
        }
        let other = std::thread::spawn(|| (0..1_000).map(|_| random_value()).collect::<Vec<_>>());
        for value in other.join().unwrap() {
            assert!(seen.insert(value), "two threads got the same value");
        }
    }
}
