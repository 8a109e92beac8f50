//! A lock's life beyond one acquire, against five real `redis-server` processes: the
//! watchdog that keeps a lock alive (and says when it is lost), cancelling an acquisition,
//! fencing tokens across changing quorums, and the acquire deadline. Each test asserts what
//! a user observes: the values and PTTLs on the nodes, the error codes, the attempts and
//! the counts.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_core::{fence, CancellationToken, Error, Lock, Lost, Redlock, Settings, Vote};
use redlock_core::{Watch, Watchdog};
use support::{
    absent, eventually, held_by, ms, names, now_ms, quick_settings, redlock, start_servers, Server,
};
use tokio::sync::oneshot;
use tokio::sync::oneshot::error::TryRecvError;

const TTL: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(1);
/// The bound on anything that should end on its own, so that a bug fails instead of hanging.
const NO_HANG: Duration = Duration::from_secs(5);

/// How many of `servers` hold `value` under `key` with an expiry still ahead.
fn live_on(servers: &[Server], key: &str, value: &str) -> usize {
    servers
        .iter()
        .filter(|s| s.get(key).as_deref() == Some(value) && s.pttl(key) > 0)
        .count()
}

/// `unwrap_err` for results whose success (`Arc<Lock>`) has no `Debug`.
trait Refused {
    fn refused(self) -> Error;
}

impl<T> Refused for Result<T, Error> {
    fn refused(self) -> Error {
        match self {
            Ok(_) => panic!("the operation succeeded; a failure was expected"),
            Err(e) => e,
        }
    }
}

/// Starts a watchdog whose `on_lost` lands in the returned receiver. The receiver reads
/// `Closed` once the watchdog ended without reporting anything.
fn watch(
    redlock: &Arc<Redlock>,
    lock: &Arc<Lock>,
    watch: Watch,
) -> (Watchdog, oneshot::Receiver<Lost>) {
    let (lost, reported) = oneshot::channel();
    let watchdog = Watchdog::start(
        redlock.clone(),
        lock.clone(),
        watch,
        quick_settings(),
        move |why| {
            let _ = lost.send(why);
        },
    );
    (watchdog, reported)
}

async fn reported(lost: oneshot::Receiver<Lost>) -> Lost {
    tokio::time::timeout(NO_HANG, lost)
        .await
        .expect("the watchdog reports a loss")
        .expect("on_lost was called")
}

// --- The watchdog ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_lock_outlives_its_ttl_until_stopped_then_expires_by_itself() {
    let servers = start_servers(5);
    let redlock = Arc::new(redlock(&servers));
    let ttl = ms(1000);
    let lock = redlock
        .acquire(names(&["r"]), ttl, &quick_settings())
        .await
        .unwrap();
    let (watchdog, mut lost) = watch(
        &redlock,
        &lock,
        Watch {
            ttl,
            threshold: ms(400),
            max_hold: None,
        },
    );
    let extensions = watchdog.extensions();

    // Two and a half TTLs: without renewals the key would be gone from every node well
    // before the end, so a majority holding it at every sample means the PTTLs were renewed.
    let watched_until = Instant::now() + ttl * 5 / 2;
    while Instant::now() < watched_until {
        let live = live_on(&servers, "r", &lock.value);
        assert!(live >= 3, "only {live} nodes hold the watched lock");
        tokio::time::sleep(ms(100)).await;
    }
    assert!(
        eventually(SETTLE, || live_on(&servers, "r", &lock.value) == 5).await,
        "every node's PTTL is renewed"
    );
    assert!(lock.expiration() > now_ms(), "the lock itself is extended");
    assert!(extensions.load(Ordering::Relaxed) >= 2);
    assert_eq!(
        lost.try_recv(),
        Err(TryRecvError::Empty),
        "nothing was lost"
    );

    watchdog.stop().await;
    let made = extensions.load(Ordering::Relaxed);
    assert_eq!(
        lost.try_recv(),
        Err(TryRecvError::Closed),
        "a stopped watchdog reports no loss"
    );
    assert!(
        eventually(ttl * 2, || absent(&servers, "r")).await,
        "the key expires by itself once no longer extended"
    );
    assert_eq!(
        extensions.load(Ordering::Relaxed),
        made,
        "no extension after stop"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_hold_ends_a_watch_with_lost_max_hold_and_the_key_expires_then() {
    let servers = start_servers(5);
    let redlock = Arc::new(redlock(&servers));
    let ttl = ms(500);
    let (threshold, max_hold) = (ms(200), ms(1500));
    let lock = redlock
        .acquire(names(&["r"]), ttl, &quick_settings())
        .await
        .unwrap();
    let started = Instant::now();
    let (watchdog, lost) = watch(
        &redlock,
        &lock,
        Watch {
            ttl,
            threshold,
            max_hold: Some(max_hold),
        },
    );
    let extensions = watchdog.extensions();

    assert_eq!(reported(lost).await, Lost::MaxHold);
    // The watchdog only gives up once less than the threshold of the hold is left, so the
    // lock was kept well past its own TTL (a slow machine only makes this later).
    assert!(
        started.elapsed() >= max_hold - threshold,
        "{:?}",
        started.elapsed()
    );
    assert!(extensions.load(Ordering::Relaxed) >= 2);
    assert!(
        lock.expiration() <= now_ms(),
        "the loss is reported once the validity has ended"
    );
    // The last extension was cut short to end at the cap: the keys go with the validity.
    assert!(
        eventually(SETTLE, || absent(&servers, "r")).await,
        "PTTLs after the max hold: {:?}",
        servers.iter().map(|s| s.pttl("r")).collect::<Vec<_>>()
    );
    let made = extensions.load(Ordering::Relaxed);
    watchdog.stop().await;
    assert_eq!(extensions.load(Ordering::Relaxed), made);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watched_lock_taken_over_on_a_majority_is_reported_lost_as_expired() {
    let servers = start_servers(5);
    let redlock = Arc::new(redlock(&servers));
    let ttl = ms(600);
    let lock = redlock
        .acquire(names(&["r"]), ttl, &quick_settings())
        .await
        .unwrap();
    let (watchdog, lost) = watch(
        &redlock,
        &lock,
        Watch {
            ttl,
            threshold: ms(250),
            max_hold: None,
        },
    );
    let extensions = watchdog.extensions();
    // Take it over only once the watchdog is seen working, so that the loss is its finding.
    assert!(eventually(NO_HANG, || extensions.load(Ordering::Relaxed) >= 1).await);
    for server in &servers[..3] {
        server.set("r", "foreign", 30_000);
    }

    match reported(lost).await {
        Lost::Failed(e) => {
            assert_eq!(e.code(), "ERR_REDLOCK_LOCK_EXPIRED", "{e:?}");
            let attempt = e
                .attempts()
                .last()
                .expect("the extension that found it gone");
            let not_held = attempt
                .votes
                .iter()
                .filter(|(_, v)| *v == Vote::NotHeld)
                .count();
            assert!(not_held >= 3, "{attempt:?}");
        }
        other => panic!("expected Lost::Failed, got {other:?}"),
    }
    let made = extensions.load(Ordering::Relaxed);
    for server in &servers[..3] {
        assert_eq!(server.get("r").as_deref(), Some("foreign"));
        let pttl = server.pttl("r");
        assert!(pttl > 25_000, "the new holder's PTTL changed: {pttl}");
    }
    assert!(
        eventually(ttl * 2, || absent(&servers[3..], "r")).await,
        "our key on the minority expires by itself"
    );
    assert_eq!(
        extensions.load(Ordering::Relaxed),
        made,
        "a lost lock is no longer extended"
    );
    watchdog.stop().await;
}

// --- Cancellation ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_waiter_stops_it_with_abort_err_and_leaves_no_key_of_its_own() {
    let servers = start_servers(5);
    // Held on a majority only: each attempt of the waiter sets its value on the other two
    // nodes, which the cancellation must undo.
    for server in &servers[..3] {
        server.set("r", "foreign", 30_000);
    }
    let redlock = redlock(&servers);
    let settings = Settings {
        retry_count: None,
        ..quick_settings()
    };

    // Several cancellation points, so that some land while an attempt is in flight.
    for delay in [60, 135, 210, 290] {
        let token = CancellationToken::new();
        let started = Instant::now();
        let (result, ()) = tokio::join!(
            redlock.acquire_cancellable(names(&["r"]), TTL, &settings, &token),
            async {
                tokio::time::sleep(ms(delay)).await;
                token.cancel();
            }
        );
        let err = result.refused();

        assert!(started.elapsed() < NO_HANG, "no hang");
        assert_eq!(err.code(), "ABORT_ERR", "{err:?}");
        assert!(matches!(err, Error::Aborted { .. }));
        for attempt in err.attempts() {
            assert!(attempt.votes_held() >= 3, "{attempt:?}");
        }
        // The acquisition undoes what it set before answering.
        assert!(
            absent(&servers[3..], "r"),
            "cancelled after {delay} ms, a key is left: {:?}",
            servers.iter().map(|s| s.get("r")).collect::<Vec<_>>()
        );
        assert!(held_by(&servers[..3], "r", "foreign"));
    }
    for server in &servers[..3] {
        assert!(server.pttl("r") > 25_000, "the holder's TTL is untouched");
    }

    // No cancelled waiter is still in the way once the holder is gone.
    for server in &servers[..3] {
        server.del("r");
    }
    let lock = redlock
        .acquire(names(&["r"]), TTL, &quick_settings())
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &lock.value)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_cancelled_before_the_call_fails_at_once_with_no_attempts() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let token = CancellationToken::new();
    token.cancel();

    // The resource is free: any attempt at all would have taken it.
    let err = redlock
        .acquire_cancellable(names(&["r"]), TTL, &quick_settings(), &token)
        .await
        .refused();

    assert_eq!(err.code(), "ABORT_ERR");
    assert!(err.attempts().is_empty(), "{:?}", err.attempts());
    tokio::time::sleep(ms(200)).await;
    assert!(absent(&servers, "r"), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_after_the_grant_changes_nothing() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let token = CancellationToken::new();
    let lock = redlock
        .acquire_cancellable(names(&["r"]), TTL, &settings, &token)
        .await
        .unwrap();
    let expiration = lock.expiration();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &lock.value)).await);

    token.cancel();

    // Time for anything the cancellation might (wrongly) have set off to land.
    tokio::time::sleep(ms(300)).await;
    assert!(held_by(&servers, "r", &lock.value));
    for server in &servers {
        let pttl = server.pttl("r");
        assert!(pttl > 8_000 && pttl <= 10_000, "PTTL {pttl}");
    }
    assert_eq!(lock.expiration(), expiration);
    let released = redlock.release(&lock, &settings).await.unwrap();
    assert!(released.nodes_held >= 3, "it was still held: {released:?}");
}

// --- Fencing ---

/// Acquires "r" with fencing, checks that a majority of the nodes (among the `reachable`
/// ones, which can be asked) hold its token in their counter, releases it, and answers the
/// token.
async fn fenced(redlock: &Redlock, servers: &[Server], reachable: &[usize]) -> i64 {
    let settings = fencing_settings();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    let token = lock.fencing_token().expect("fencing was on");
    let counter = fence::counter_key("r");
    let written = token.to_string();
    assert!(
        eventually(SETTLE, || reachable
            .iter()
            .filter(|&&n| servers[n].get(&counter).as_deref() == Some(written.as_str()))
            .count()
            >= 3)
        .await,
        "token {token} is on no majority"
    );
    redlock.release(&lock, &settings).await.unwrap();
    token
}

fn fencing_settings() -> Settings {
    Settings {
        fencing: true,
        // Paused nodes cost this per attempt.
        request_timeout: ms(200),
        retry_count: Some(10),
        ..quick_settings()
    }
}

/// Acquires throwaway locks until one lands on every node, so that restarted nodes are
/// reconnected before they are needed for a quorum.
async fn reconnected(redlock: &Redlock, servers: &[Server]) -> bool {
    let settings = quick_settings();
    let deadline = Instant::now() + NO_HANG;
    for i in 0.. {
        let key = format!("warm-{i}");
        let lock = redlock
            .acquire(names(&[&key]), TTL, &settings)
            .await
            .unwrap();
        let everywhere = eventually(ms(300), || held_by(servers, &key, &lock.value)).await;
        redlock.release(&lock, &settings).await.unwrap();
        if everywhere {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fencing_tokens_strictly_increase_across_acquisitions_and_changing_quorums() {
    let mut servers = start_servers(5);
    let redlock = redlock(&servers);
    let all = [0, 1, 2, 3, 4];
    let mut tokens = vec![
        fenced(&redlock, &servers, &all).await,
        fenced(&redlock, &servers, &all).await,
    ];

    // A minority dies: the other three grant, and remember.
    servers[0].kill();
    servers[1].kill();
    tokens.push(fenced(&redlock, &servers, &[2, 3, 4]).await);

    // They come back empty, their counters lost; then the other side of the majority is cut
    // off, so that the quorum is 0, 1, 2 and only node 2 remembers the last token.
    servers[0].restart();
    servers[1].restart();
    let counter = fence::counter_key("r");
    assert!(
        absent(&servers[..2], &counter),
        "a restarted node starts empty"
    );
    assert!(
        reconnected(&redlock, &servers).await,
        "restarted nodes are used again"
    );
    servers[3].pause();
    servers[4].pause();
    let settings = fencing_settings();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    let granting: Vec<usize> = lock
        .attempts()
        .last()
        .unwrap()
        .votes
        .iter()
        .filter(|(_, v)| v.is_for())
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(granting.len(), 3, "{granting:?}");
    assert!(granting.iter().all(|n| *n < 3), "{granting:?}");
    let token = lock.fencing_token().expect("fencing was on");
    // An extension keeps the token.
    redlock.extend(&lock, TTL, &settings).await.unwrap();
    assert_eq!(lock.fencing_token(), Some(token));
    redlock.release(&lock, &settings).await.unwrap();
    tokens.push(token);
    servers[3].resume();
    servers[4].resume();

    // Everyone back, the two that missed the last token among them.
    tokens.push(fenced(&redlock, &servers, &all).await);

    assert!(
        tokens.windows(2).all(|w| w[0] < w[1]),
        "tokens do not strictly increase: {tokens:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_without_fencing_has_no_token_and_touches_no_counter() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let fenced_lock = redlock
        .acquire(names(&["r"]), TTL, &fencing_settings())
        .await
        .unwrap();
    let token = fenced_lock.fencing_token().expect("fencing was on");
    redlock
        .release(&fenced_lock, &quick_settings())
        .await
        .unwrap();
    // A release answers at quorum; its stragglers must land first, or a late node would
    // still hold the fenced lock when the plain one asks it.
    assert!(eventually(SETTLE, || absent(&servers, "r")).await);

    let plain = redlock
        .acquire(names(&["r"]), TTL, &quick_settings())
        .await
        .unwrap();

    assert_eq!(plain.fencing_token(), None);
    assert!(eventually(SETTLE, || held_by(&servers, "r", &plain.value)).await);
    let counter = fence::counter_key("r");
    assert!(
        held_by(&servers, &counter, &token.to_string()),
        "the counter stays at the fenced lock's token"
    );
}

// --- The acquire deadline ---

fn until_deadline(timeout: Duration) -> Settings {
    Settings {
        acquire_timeout: Some(timeout),
        retry_count: None,
        ..quick_settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acquire_deadline_against_a_held_resource_fails_as_acquire_timeout_and_leaves_no_key() {
    let servers = start_servers(5);
    for server in &servers[..3] {
        server.set("r", "foreign", 30_000);
    }
    let redlock = redlock(&servers);

    let started = Instant::now();
    let err = redlock
        .acquire(names(&["r"]), TTL, &until_deadline(ms(400)))
        .await
        .refused();

    assert!(started.elapsed() < NO_HANG, "no hang");
    assert_eq!(err.code(), "ERR_REDLOCK_ACQUIRE_TIMEOUT", "{err:?}");
    assert!(matches!(err, Error::AcquireTimeout { .. }));
    assert!(!err.attempts().is_empty(), "the attempts are recorded");
    for attempt in err.attempts() {
        assert!(attempt.votes_held() >= 3, "{attempt:?}");
    }
    assert!(
        absent(&servers[3..], "r"),
        "a key of ours is left: {:?}",
        servers.iter().map(|s| s.get("r")).collect::<Vec<_>>()
    );
    for server in &servers[..3] {
        assert_eq!(server.get("r").as_deref(), Some("foreign"));
        assert!(server.pttl("r") > 25_000, "the holder's TTL is untouched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_within_its_deadline_gets_the_lock_once_the_holder_lets_go() {
    let servers = start_servers(5);
    for server in &servers[..3] {
        server.set("r", "foreign", 30_000);
    }
    let redlock = redlock(&servers);
    let settings = until_deadline(NO_HANG);

    let (lock, ()) = tokio::join!(redlock.acquire(names(&["r"]), TTL, &settings), async {
        tokio::time::sleep(ms(150)).await;
        for server in &servers[..3] {
            server.del("r");
        }
    });

    let lock = lock.unwrap();
    assert!(lock.attempts().len() > 1, "the first attempt was refused");
    // The nodes that voted for the granting attempt hold the key (one reached before the
    // foreign key was deleted from it answered Held, and keeps nothing).
    let last = lock.attempts().last().cloned().unwrap();
    assert!(last.votes_for() >= 3, "{last:?}");
    assert!(
        eventually(SETTLE, || last
            .votes
            .iter()
            .filter(|(_, v)| v.is_for())
            .all(
                |(n, _)| servers[*n].get("r").as_deref() == Some(lock.value.as_str())
            ))
        .await
    );
}
