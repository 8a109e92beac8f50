//! Wake-on-release: a waiter learns that a lock it wants was released in about one round
//! trip instead of sleeping out its retry delay.
//!
//! The release script publishes a notice, the released lock's value, on [`channel`]`(key)`
//! for every key it deletes, the undo of a failed attempt included. A
//! waiting acquirer subscribes to its keys' channels on every node, through one pub/sub
//! connection per node shared by every waiter of this client, and retries as soon as a
//! notice arrives from any node. Notices are a hint, never a promise: a waiter keeps its
//! usual retry timer as a fallback for lost notices, nodes without pub/sub, locks that
//! simply expire, and locks released by other Redlock libraries (which publish nothing).
//!
//! Each node's subscriptions are changed by one task, in the order they were asked for, so
//! an unsubscribe can never overtake a later subscribe to the same channel. After its
//! connection breaks, the task reconnects at the next change and subscribes again to every
//! channel still wanted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use redis::aio::PubSubSink;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use crate::node::Node;

/// Prepended to a key to name the channel on which its release is announced; the release
/// script is given it, so the name is made here only.
pub const CHANNEL_PREFIX: &str = "redlock-rs:released:";

/// The pub/sub channel on which the release of `key` is announced (the release script names
/// it the same way). It hashes to the key's Redis Cluster slot: a key with a hash tag keeps
/// it in the channel name, and a key without a `}` becomes the channel's tag. (A key with a
/// `}` but no tag, rare, is named as is.)
pub fn channel(key: &str) -> String {
    match key.contains('}') {
        true => format!("{CHANNEL_PREFIX}{key}"),
        false => format!("{CHANNEL_PREFIX}{{{key}}}"),
    }
}

/// The waiters of one channel.
struct Interest {
    waiters: Vec<Arc<Waiter>>,
}

/// One waiting acquisition: counts the notices meant for it and wakes it on the next one.
/// A notice carries the value of the lock whose keys were deleted; the waiter's own (the
/// undo of its own failed attempt) does not count.
struct Waiter {
    own_value: String,
    seen: AtomicU64,
    notify: Notify,
}

impl Waiter {
    fn bump(&self) {
        self.seen.fetch_add(1, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
}

/// What a node's subscription task is asked to do.
enum Change {
    Subscribe(Vec<String>, oneshot::Sender<()>),
    Unsubscribe(Vec<String>),
}

type Interests = Arc<Mutex<HashMap<String, Interest>>>;

/// One node's subscription task: started on the first subscription, so that creating a
/// client opens nothing.
struct Subscriber {
    node: Arc<Node>,
    changes: mpsc::UnboundedSender<Change>,
    start: Mutex<Option<mpsc::UnboundedReceiver<Change>>>,
}

/// The subscriptions of one client, across all its nodes.
pub struct Notices {
    interests: Interests,
    subscribers: Arc<[Subscriber]>,
    shutdown: CancellationToken,
}

/// A waiter's interest in some channels; dropping it unsubscribes those nobody else wants.
pub struct Subscription {
    waiter: Arc<Waiter>,
    channels: Vec<String>,
    interests: Interests,
    subscribers: Arc<[Subscriber]>,
}

/// How long a node's pub/sub connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

impl Notices {
    /// Subscriptions over `nodes`. Opens nothing until the first [`Notices::subscribe`].
    pub fn new(nodes: &[Arc<Node>]) -> Self {
        let subscribers = nodes
            .iter()
            .map(|node| {
                let (changes, start) = mpsc::unbounded_channel();
                Subscriber {
                    node: node.clone(),
                    changes,
                    start: Mutex::new(Some(start)),
                }
            })
            .collect();
        Notices {
            interests: Arc::default(),
            subscribers,
            shutdown: CancellationToken::new(),
        }
    }

    /// Subscribes the acquisition of the lock valued `own_value` to `channels` on every
    /// node, and waits, at most `timeout`, until each node confirmed or failed. Notices that
    /// arrive from then on wake [`Subscription::next`], except those of its own value.
    pub async fn subscribe(
        &self,
        channels: Vec<String>,
        own_value: &str,
        timeout: Duration,
    ) -> Subscription {
        let waiter = Arc::new(Waiter {
            own_value: own_value.to_owned(),
            seen: AtomicU64::new(0),
            notify: Notify::new(),
        });
        let mut fresh = Vec::new();
        {
            let mut interests = lock(&self.interests);
            for c in &channels {
                let interest = interests.entry(c.clone()).or_insert_with(|| {
                    fresh.push(c.clone());
                    Interest {
                        waiters: Vec::new(),
                    }
                });
                interest.waiters.push(waiter.clone());
            }
        }
        // Made before the wait for confirmations: dropped during that wait (its acquirer went
        // on without it), it still takes its waiter out and unsubscribes what nobody wants.
        let subscription = Subscription {
            waiter,
            channels,
            interests: self.interests.clone(),
            subscribers: self.subscribers.clone(),
        };
        if !fresh.is_empty() {
            let mut confirmations = Vec::new();
            for subscriber in self.subscribers.iter() {
                if let Some(changes) = lock(&subscriber.start).take() {
                    let task = run(subscriber.node.clone(), self.interests.clone(), changes);
                    let shutdown = self.shutdown.clone();
                    tokio::spawn(async move {
                        tokio::select! {
                            _ = task => {}
                            _ = shutdown.cancelled() => {}
                        }
                    });
                }
                let (done, confirmed) = oneshot::channel();
                if subscriber
                    .changes
                    .send(Change::Subscribe(fresh.clone(), done))
                    .is_ok()
                {
                    confirmations.push(confirmed);
                }
            }
            // A node that does not confirm in time only costs its notices.
            let _ = tokio::time::timeout(timeout, join_all(confirmations)).await;
        }
        subscription
    }

    /// Closes every pub/sub connection.
    pub fn close(&self) {
        self.shutdown.cancel();
    }
}

/// One node's subscription task: applies changes in order, (re)connecting when needed.
async fn run(node: Arc<Node>, interests: Interests, mut changes: mpsc::UnboundedReceiver<Change>) {
    let mut sink: Option<PubSubSink> = None;
    let mut reader: Option<AbortOnDrop> = None;
    let connected = Arc::new(AtomicBool::new(false));
    while let Some(change) = changes.recv().await {
        if !connected.load(Ordering::SeqCst) {
            sink = None;
            reader = None;
            if let Ok(Ok(pubsub)) = tokio::time::timeout(CONNECT_TIMEOUT, node.pubsub()).await {
                let (mut fresh, mut stream) = pubsub.split();
                // Channels wanted while disconnected (this change's included) are asked
                // for again on the new connection.
                let wanted: Vec<String> = lock(&interests).keys().cloned().collect();
                if wanted.is_empty() || fresh.subscribe(&wanted).await.is_ok() {
                    connected.store(true, Ordering::SeqCst);
                    let (interests, connected) = (interests.clone(), connected.clone());
                    reader = Some(AbortOnDrop(tokio::spawn(async move {
                        while let Some(message) = stream.next().await {
                            let released: String = message.get_payload().unwrap_or_default();
                            let interests = lock(&interests);
                            if let Some(interest) = interests.get(message.get_channel_name()) {
                                for waiter in &interest.waiters {
                                    if waiter.own_value != released {
                                        waiter.bump();
                                    }
                                }
                            }
                        }
                        connected.store(false, Ordering::SeqCst);
                    })));
                    sink = Some(fresh);
                }
            }
        }
        let applied = match (&mut sink, change) {
            (Some(sink), Change::Subscribe(channels, done)) => {
                let ok = sink.subscribe(&channels).await.is_ok();
                let _ = done.send(());
                ok
            }
            (Some(sink), Change::Unsubscribe(channels)) => {
                sink.unsubscribe(&channels).await.is_ok()
            }
            (None, _) => false,
        };
        if !applied {
            connected.store(false, Ordering::SeqCst);
        }
    }
    drop(reader);
}

/// Stops the reader task with the subscription task that owns it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Subscription {
    /// How many notices meant for this acquisition have arrived so far.
    pub fn seen(&self) -> u64 {
        self.waiter.seen.load(Ordering::SeqCst)
    }

    /// Waits until more than `seen` notices have arrived.
    pub async fn next(&self, seen: u64) {
        loop {
            // Created before the check, so that a notice in between still wakes it.
            let notified = self.waiter.notify.notified();
            if self.seen() > seen {
                return;
            }
            notified.await;
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut gone = Vec::new();
        {
            let mut interests = lock(&self.interests);
            for c in &self.channels {
                if let Some(interest) = interests.get_mut(c) {
                    interest.waiters.retain(|w| !Arc::ptr_eq(w, &self.waiter));
                    if interest.waiters.is_empty() {
                        interests.remove(c);
                        gone.push(c.clone());
                    }
                }
            }
        }
        if !gone.is_empty() {
            for subscriber in self.subscribers.iter() {
                let _ = subscriber.changes.send(Change::Unsubscribe(gone.clone()));
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
