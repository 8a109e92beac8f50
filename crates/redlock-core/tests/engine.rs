//! The Redlock engine against five real `redis-server` processes: what a user observes on
//! the nodes (values, PTTLs) and in the answers (errors, codes, attempts, expirations).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redlock_core::{Error, GuardMode, NodeError, RestartGuard, RetryStrategy, Settings, Vote};
use support::{
    absent, eventually, held_by, ms, names, now_ms, quick_settings, redlock, start_servers, Server,
};

const TTL: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_secs(1);

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acquire_sets_the_value_with_the_ttl_on_every_node_and_release_deletes_it() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let before = now_ms();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &quick_settings())
        .await
        .unwrap();
    let after = now_ms();

    assert_eq!(lock.resources, names(&["r"]));
    assert_eq!(lock.value.len(), 32, "128 bits in hex");
    // Validity is the TTL minus the time taken minus the drift (10 s * 0.01 + 2 ms).
    assert!(lock.expiration() <= after + 10_000 - 102);
    assert!(lock.expiration() > before + 10_000 - 102 - 2_000);
    let attempts = lock.attempts();
    assert_eq!(attempts.len(), 1);
    assert_eq!((attempts[0].membership, attempts[0].quorum), (5, 3));
    assert!(attempts[0].votes_for() >= 3);

    assert!(eventually(SETTLE, || held_by(&servers, "r", &lock.value)).await);
    for server in &servers {
        let pttl = server.pttl("r");
        assert!(pttl > 9_000 && pttl <= 10_000, "PTTL {pttl}");
    }

    let released = redlock.release(&lock, &quick_settings()).await.unwrap();
    assert!((3..=5).contains(&released.nodes_held), "{released:?}");
    assert_eq!(lock.expiration(), 0, "a released lock is expired");
    assert!(eventually(SETTLE, || absent(&servers, "r")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_resource_acquire_is_all_or_nothing() {
    let servers = start_servers(5);
    for server in &servers[..3] {
        server.set("b", "foreign", 30_000);
    }
    let redlock = redlock(&servers);
    let err = redlock
        .acquire(names(&["a", "b", "c"]), TTL, &quick_settings())
        .await
        .refused();

    assert_eq!(err.code(), "ERR_REDLOCK_RESOURCE_LOCKED");
    // The failed acquire waits for its undo on every node: nothing of ours is left.
    for key in ["a", "c"] {
        assert!(absent(&servers, key), "{key} left behind");
    }
    assert!(absent(&servers[3..], "b"));
    for server in &servers[..3] {
        assert_eq!(server.get("b").as_deref(), Some("foreign"));
        assert!(server.pttl("b") > 25_000, "the holder's TTL is untouched");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_resource_is_refused_after_retry_count_plus_one_attempts() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let held = redlock
        .acquire(names(&["r"]), TTL, &quick_settings())
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &held.value)).await);

    // The first attempt and retry_count retries, whether the waiter polls or listens for
    // release notices too (node-redlock's meaning of retryCount).
    for (wake_on_release, expected) in [(false, 3), (true, 3)] {
        let settings = Settings {
            wake_on_release,
            ..quick_settings()
        };
        let err = redlock
            .acquire(names(&["r"]), TTL, &settings)
            .await
            .refused();
        assert_eq!(
            err.attempts().len(),
            expected,
            "wake_on_release {wake_on_release}"
        );
    }
    let err = redlock
        .acquire(names(&["r"]), TTL, &quick_settings())
        .await
        .refused();

    assert_eq!(err.code(), "ERR_REDLOCK_RESOURCE_LOCKED");
    assert!(matches!(err, Error::ResourceLocked { .. }));
    for attempt in err.attempts() {
        assert_eq!((attempt.membership, attempt.quorum), (5, 3));
        assert!(attempt.votes_held() >= 3, "{attempt:?}");
        assert_eq!(attempt.votes_for(), 0);
    }
    assert!(
        held_by(&servers, "r", &held.value),
        "the refused acquire's undo does not touch the holder's keys"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_minority_is_tolerated_a_dead_majority_is_not_and_restarted_nodes_are_used_again() {
    let mut servers = start_servers(5);
    let redlock = redlock(&servers);
    // The servers are all young (just started): with three of them dead, the restart guard
    // would rightly leave out the two live ones' votes for, whenever they answer before the
    // round is decided. This test is about dead nodes, not the guard (restart tests).
    let settings = Settings {
        restart_guard: RestartGuard {
            mode: GuardMode::Off,
            ..RestartGuard::default()
        },
        ..quick_settings()
    };
    // Open every connection first, so that the kills break live connections.
    let warm = redlock
        .acquire(names(&["warm"]), TTL, &settings)
        .await
        .unwrap();
    redlock.release(&warm, &settings).await.unwrap();

    servers[0].kill();
    servers[1].kill();
    let lock = redlock
        .acquire(names(&["r1"]), TTL, &settings)
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers[2..], "r1", &lock.value)).await);
    redlock.release(&lock, &settings).await.unwrap();

    servers[2].kill();
    let started = Instant::now();
    let err = redlock
        .acquire(names(&["r2"]), TTL, &settings)
        .await
        .refused();
    assert!(started.elapsed() < Duration::from_secs(5), "no hang");
    assert_eq!(err.code(), "ERR_REDLOCK_QUORUM");
    assert_eq!(err.attempts().len(), 3);
    for attempt in err.attempts() {
        assert!(attempt.votes_for() <= 2, "{attempt:?}");
        let failed = attempt
            .votes
            .iter()
            .filter(|(node, v)| *node < 3 && matches!(v, Vote::Failed(_)))
            .count();
        assert_eq!(
            failed,
            attempt.votes.len() - attempt.votes_for(),
            "{attempt:?}"
        );
    }
    assert!(absent(&servers[3..], "r2"), "the failed attempt was undone");

    for server in &mut servers[..3] {
        server.restart();
    }
    // Every restarted node is reconnected and used again: soon a lock is on all five. (The
    // first request after a restart may still meet the broken connection, or the short
    // back-off after a refused connect.)
    let mut all_five = false;
    let deadline = Instant::now() + Duration::from_secs(3);
    for i in 0.. {
        let key = format!("r3-{i}");
        let lock = redlock
            .acquire(names(&[&key]), TTL, &settings)
            .await
            .unwrap();
        if eventually(ms(300), || held_by(&servers, &key, &lock.value)).await {
            all_five = true;
            break;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    assert!(
        all_five,
        "every restarted node is reconnected and holds a lock"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_holder_on_a_minority_does_not_prevent_the_lock_on_a_majority_it_does() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);

    for server in &servers[..2] {
        server.set("minor", "foreign", 30_000);
    }
    let lock = redlock
        .acquire(names(&["minor"]), TTL, &quick_settings())
        .await
        .unwrap();
    assert_eq!(lock.attempts().len(), 1);
    assert!(eventually(SETTLE, || held_by(&servers[2..], "minor", &lock.value)).await);
    assert!(held_by(&servers[..2], "minor", "foreign"));

    for server in &servers[..3] {
        server.set("major", "foreign", 30_000);
    }
    let err = redlock
        .acquire(names(&["major"]), TTL, &quick_settings())
        .await
        .refused();
    assert_eq!(err.code(), "ERR_REDLOCK_RESOURCE_LOCKED");
    assert!(held_by(&servers[..3], "major", "foreign"));
    assert!(absent(&servers[3..], "major"), "our value is on no node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_acquire_a_resource_once_its_holder_lets_go() {
    let servers = start_servers(5);
    for server in &servers[..3] {
        server.set("r", "foreign", 30_000);
    }
    let redlock = redlock(&servers);
    let settings = Settings {
        retry_count: Some(100),
        ..quick_settings()
    };

    let (lock, ()) = tokio::join!(redlock.acquire(names(&["r"]), TTL, &settings), async {
        tokio::time::sleep(ms(100)).await;
        for server in &servers[..3] {
            server.del("r");
        }
    });

    let lock = lock.unwrap();
    let attempts = lock.attempts();
    assert!(attempts.len() > 1, "the first attempt was refused");
    assert!(attempts[0].votes_held() >= 3, "{:?}", attempts[0]);
    let last = attempts.last().unwrap();
    assert!(last.votes_for() >= 3);
    // The nodes that voted for the granting attempt hold the key (a node whose request
    // reached it before the foreign key was deleted answered Held, and keeps nothing).
    let granted: Vec<&Server> = last
        .votes
        .iter()
        .filter(|(_, v)| v.is_for())
        .map(|(n, _)| &servers[*n])
        .collect();
    assert!(
        eventually(SETTLE, || granted
            .iter()
            .all(|s| s.get("r").as_deref() == Some(lock.value.as_str())))
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extend_renews_the_ttl_on_every_node_and_moves_the_expiration() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let lock = redlock
        .acquire(names(&["r"]), Duration::from_secs(5), &settings)
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &lock.value)).await);
    let first = lock.expiration();

    tokio::time::sleep(ms(50)).await;
    let before = now_ms();
    redlock
        .extend(&lock, Duration::from_secs(20), &settings)
        .await
        .unwrap();
    let after = now_ms();

    assert!(lock.expiration() > first + 10_000);
    assert!(lock.expiration() <= after + 20_000 - 202);
    assert!(lock.expiration() > before + 20_000 - 202 - 2_000);
    assert!(!lock.attempts().is_empty());
    assert!(
        eventually(SETTLE, || servers.iter().all(|s| {
            let pttl = s.pttl("r");
            pttl > 15_000 && pttl <= 20_000
        }))
        .await,
        "every node's PTTL is renewed"
    );
    assert!(held_by(&servers, "r", &lock.value));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_released_lock_cannot_be_extended() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    redlock.release(&lock, &settings).await.unwrap();

    let err = redlock.extend(&lock, TTL, &settings).await.refused();
    assert_eq!(err.code(), "ERR_REDLOCK_LOCK_EXPIRED");

    // Named by its value, it is the same lock: released, it fails without asking anyone.
    let same = redlock.lock_by_value(names(&["r"]), lock.value.clone(), u64::MAX);
    assert!(Arc::ptr_eq(&same, &lock));
    let err = redlock.extend(&same, TTL, &settings).await.refused();
    assert_eq!(err.code(), "ERR_REDLOCK_LOCK_EXPIRED");
    assert!(err.attempts().is_empty());

    // Another client does not know the lock: with an unknown expiration, it asks the nodes.
    let other = support::redlock(&servers);
    let by_value = other.lock_by_value(names(&["r"]), lock.value.clone(), u64::MAX);
    let err = other.extend(&by_value, TTL, &settings).await.refused();
    assert_eq!(err.code(), "ERR_REDLOCK_LOCK_EXPIRED");
    let attempt = &err.attempts()[0];
    assert!(
        attempt
            .votes
            .iter()
            .filter(|(_, v)| *v == Vote::NotHeld)
            .count()
            >= 3,
        "{attempt:?}"
    );
    assert!(eventually(SETTLE, || absent(&servers, "r")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_taken_over_on_a_majority_cannot_be_extended_and_the_new_holder_is_untouched() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &lock.value)).await);
    for server in &servers[..3] {
        server.set("r", "foreign", 30_000);
    }

    let err = redlock
        .extend(&lock, Duration::from_secs(60), &settings)
        .await
        .refused();

    assert_eq!(err.code(), "ERR_REDLOCK_LOCK_EXPIRED");
    assert_eq!(err.attempts().len(), 1, "a lost lock is not retried");
    for server in &servers[..3] {
        assert_eq!(server.get("r").as_deref(), Some("foreign"));
        let pttl = server.pttl("r");
        assert!(
            pttl > 25_000 && pttl <= 30_000,
            "foreign PTTL changed: {pttl}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_and_extend_with_a_wrong_value_change_nothing() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &lock.value)).await);

    let wrong = redlock.lock_by_value(names(&["r"]), "wrong".into(), u64::MAX);
    let released = redlock.release(&wrong, &settings).await.unwrap();
    assert_eq!(released.nodes_held, 0);
    let err = redlock
        .extend(&wrong, Duration::from_secs(60), &settings)
        .await
        .refused();
    assert_eq!(err.code(), "ERR_REDLOCK_LOCK_EXPIRED");

    // Let any straggler of either land before looking.
    tokio::time::sleep(ms(200)).await;
    assert!(held_by(&servers, "r", &lock.value));
    for server in &servers {
        let pttl = server.pttl("r");
        assert!(pttl > 8_000 && pttl <= 10_000, "PTTL {pttl}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_expires_by_itself() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = Settings {
        retry_count: Some(0),
        ..quick_settings()
    };
    redlock
        .acquire(names(&["r"]), ms(200), &settings)
        .await
        .unwrap();

    tokio::time::sleep(ms(400)).await;
    assert!(absent(&servers, "r"));
    let next = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    assert!(eventually(SETTLE, || held_by(&servers, "r", &next.value)).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_is_never_returned_already_expired() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    for server in &servers[..3] {
        server.set("r", "foreign", 150);
    }
    let settings = Settings {
        retry_count: Some(1),
        retry: RetryStrategy::Fixed {
            delay: ms(300),
            jitter: Duration::ZERO,
        },
        // Polling, so that the attempts are the first and the one retry.
        wake_on_release: false,
        ..quick_settings()
    };

    let result = redlock.acquire(names(&["r"]), ms(100), &settings).await;
    let returned_at = now_ms();

    match result {
        // The validity counts from the attempt that won, not from the first one.
        Ok(lock) => {
            assert_eq!(lock.attempts().len(), 2);
            assert!(
                lock.expiration() > returned_at,
                "expired {} ms before it was returned",
                returned_at - lock.expiration()
            );
        }
        Err(err) => assert!(
            ["ERR_REDLOCK_RESOURCE_LOCKED", "ERR_REDLOCK_QUORUM"].contains(&err.code()),
            "{err:?}"
        ),
    }
}

fn paused_settings() -> Settings {
    Settings {
        request_timeout: ms(200),
        ..quick_settings()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_node_costs_at_most_its_timeout() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = paused_settings();
    let warm = redlock
        .acquire(names(&["warm"]), TTL, &settings)
        .await
        .unwrap();
    redlock.release(&warm, &settings).await.unwrap();

    servers[0].pause();
    let started = Instant::now();
    let lock = redlock.acquire(names(&["r"]), TTL, &settings).await;
    let took = started.elapsed();
    let lock = lock.unwrap();
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert!(eventually(SETTLE, || held_by(&servers[1..], "r", &lock.value)).await);
    redlock.release(&lock, &settings).await.unwrap();

    servers[0].resume();
    assert!(
        eventually(Duration::from_secs(2), || absent(&servers, "r")).await,
        "the paused node applied the release after the acquire"
    );
}

/// Opens the connections, pauses 3 of the 5 servers, tries to acquire "r", and resumes them:
/// the refusal, and how long it took.
async fn refused_with_a_paused_majority(
    servers: &[Server],
    redlock: &redlock_core::Redlock,
    settings: &Settings,
) -> (Error, Duration) {
    let warm = redlock
        .acquire(names(&["warm"]), TTL, settings)
        .await
        .unwrap();
    redlock.release(&warm, settings).await.unwrap();
    for server in &servers[..3] {
        server.pause();
    }
    let started = Instant::now();
    let err = redlock
        .acquire(names(&["r"]), TTL, settings)
        .await
        .refused();
    let took = started.elapsed();
    for server in &servers[..3] {
        server.resume();
    }
    (err, took)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_majority_fails_in_bounded_time_and_leaves_no_key_once_resumed() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = Settings {
        retry_count: Some(0),
        ..paused_settings()
    };
    let (err, took) = refused_with_a_paused_majority(&servers, &redlock, &settings).await;

    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(err.code(), "ERR_REDLOCK_QUORUM");
    let timeouts = err.attempts()[0]
        .votes
        .iter()
        .filter(|(_, v)| *v == Vote::Failed(NodeError::Timeout))
        .count();
    assert_eq!(timeouts, 3, "{:?}", err.attempts()[0]);
    assert!(
        eventually(Duration::from_secs(2), || absent(&servers, "r")).await,
        "a resumed node still holds our key: {:?}",
        servers.iter().map(|s| s.get("r")).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_against_a_paused_majority_leave_no_key_once_resumed() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = paused_settings();
    let (err, took) = refused_with_a_paused_majority(&servers, &redlock, &settings).await;

    assert!(took < Duration::from_secs(5), "took {took:?}");
    assert_eq!(err.code(), "ERR_REDLOCK_QUORUM");
    assert_eq!(err.attempts().len(), 3);
    assert!(
        eventually(Duration::from_secs(2), || absent(&servers, "r")).await,
        "a resumed node still holds our key: {:?}",
        servers
            .iter()
            .map(|s| (s.get("r"), s.pttl("r")))
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_from_the_nodes_are_sent_again() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let first = redlock
        .acquire(names(&["a"]), TTL, &settings)
        .await
        .unwrap();
    redlock.release(&first, &settings).await.unwrap();
    assert!(eventually(SETTLE, || absent(&servers, "a")).await);

    for server in &servers {
        server.script_flush();
    }
    let second = redlock
        .acquire(names(&["b"]), TTL, &settings)
        .await
        .unwrap();
    assert_eq!(second.attempts().len(), 1);
    assert!(eventually(SETTLE, || held_by(&servers, "b", &second.value)).await);

    for server in &servers {
        server.script_flush();
    }
    redlock.extend(&second, TTL * 2, &settings).await.unwrap();
    assert!(eventually(SETTLE, || servers.iter().all(|s| s.pttl("b") > 15_000)).await);

    for server in &servers {
        server.script_flush();
    }
    let released = redlock.release(&second, &settings).await.unwrap();
    assert!(released.nodes_held >= 3);
    assert!(eventually(SETTLE, || absent(&servers, "b")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_prefix_is_prepended_to_every_key() {
    let servers = start_servers(5);
    let configs = servers
        .iter()
        .map(|s| {
            let mut config = s.config();
            config.key_prefix = "app:".into();
            config
        })
        .collect();
    let redlock = redlock_core::Redlock::new(configs).expect("distinct servers");
    let settings = quick_settings();

    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();
    assert_eq!(lock.resources, names(&["r"]), "the lock names the resource");
    assert!(eventually(SETTLE, || held_by(&servers, "app:r", &lock.value)).await);
    assert!(absent(&servers, "r"));

    redlock.release(&lock, &settings).await.unwrap();
    assert!(eventually(SETTLE, || absent(&servers, "app:r")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_with_different_key_prefixes_each_get_their_own_keys() {
    // A round shares one key list between members with the same prefix: members in a row
    // that share one, then one that differs, then the first again.
    let servers = start_servers(5);
    let prefixes = ["a:", "a:", "", "b:", "a:"];
    let configs = servers
        .iter()
        .zip(prefixes)
        .map(|(s, prefix)| {
            let mut config = s.config();
            config.key_prefix = prefix.into();
            config
        })
        .collect();
    let redlock = redlock_core::Redlock::new(configs).expect("distinct servers");
    let settings = quick_settings();

    let lock = redlock
        .acquire(names(&["r", "s"]), TTL, &settings)
        .await
        .unwrap();
    for (server, prefix) in servers.iter().zip(prefixes) {
        for resource in ["r", "s"] {
            let key = format!("{prefix}{resource}");
            let held = || server.get(&key).as_deref() == Some(lock.value.as_str());
            assert!(
                eventually(SETTLE, held).await,
                "{key} on the member with prefix {prefix:?}"
            );
        }
    }
    redlock.release(&lock, &settings).await.unwrap();
    for (server, prefix) in servers.iter().zip(prefixes) {
        let gone = || server.get(&format!("{prefix}r")).is_none();
        assert!(eventually(SETTLE, gone).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_quit_every_operation_fails_as_closed() {
    let servers = start_servers(5);
    let redlock = redlock(&servers);
    let settings = quick_settings();
    let lock = redlock
        .acquire(names(&["r"]), TTL, &settings)
        .await
        .unwrap();

    redlock.quit(Duration::from_secs(1)).await;

    let err = redlock
        .acquire(names(&["other"]), TTL, &settings)
        .await
        .refused();
    assert_eq!(err.code(), "ERR_REDLOCK_CLOSED");
    assert_eq!(err, Error::Closed);
    let err = redlock.extend(&lock, TTL, &settings).await.refused();
    assert_eq!(err.code(), "ERR_REDLOCK_CLOSED");
    let err = redlock.release(&lock, &settings).await.refused();
    assert_eq!(err.code(), "ERR_REDLOCK_CLOSED");
    assert!(absent(&servers, "other"), "nothing was sent");
}

/// Many locks' commands reach a node together, in one pipeline: each still gets its own
/// answer. One key of the wrong type fails its own lock (a server error on every node) and
/// no other; scripts flushed from the nodes are sent again for every lock of a concurrent
/// release.
#[tokio::test(flavor = "current_thread")]
async fn concurrent_locks_on_one_connection_each_get_their_own_answer() {
    let servers = start_servers(5);
    for server in &servers {
        let _: i64 = redis::cmd("RPUSH")
            .arg("list")
            .arg("x")
            .query(&mut server.connection())
            .unwrap();
    }
    let redlock = redlock(&servers);
    let settings = Settings {
        retry_count: Some(0),
        ..quick_settings()
    };
    // Connections open first, so that the operations below all start in one turn.
    let warm = redlock
        .acquire(names(&["warm"]), TTL, &settings)
        .await
        .unwrap();
    redlock.release(&warm, &settings).await.unwrap();

    let mut keys: Vec<String> = (0..64).map(|i| format!("k{i}")).collect();
    keys[31] = "list".into();
    let acquired = futures_util::future::join_all(
        keys.iter()
            .map(|key| redlock.acquire(vec![key.clone()], TTL, &settings)),
    )
    .await;
    let mut locks = Vec::new();
    for (key, result) in keys.iter().zip(acquired) {
        match (key.as_str(), result) {
            ("list", Err(err)) => {
                assert_eq!(err.code(), "ERR_REDLOCK_QUORUM");
                // Decided once a quorum has become impossible: 3 votes of 5 at least.
                let votes = &err.attempts()[0].votes;
                assert!(votes.len() >= 3, "{votes:?}");
                for (_, vote) in votes {
                    match vote {
                        Vote::Failed(NodeError::Server(reason)) => {
                            assert!(reason.contains("WRONGTYPE"), "{reason}")
                        }
                        other => panic!("the list's lock got {other:?}"),
                    }
                }
            }
            ("list", Ok(_)) => panic!("a lock on a list was granted"),
            (_, Ok(lock)) => {
                assert!(held_by(&servers, key, &lock.value), "{key} not held");
                locks.push(lock);
            }
            (_, Err(err)) => panic!("{key}: {err:?}"),
        }
    }
    assert_eq!(locks.len(), 63);

    for server in &servers {
        server.script_flush();
    }
    let released =
        futures_util::future::join_all(locks.iter().map(|lock| redlock.release(lock, &settings)))
            .await;
    for (lock, result) in locks.iter().zip(released) {
        let released = result.unwrap_or_else(|e| panic!("{:?}: {e:?}", lock.resources));
        assert!(released.nodes_held >= 3, "{released:?}");
        let key = &lock.resources[0];
        assert!(
            eventually(SETTLE, || absent(&servers, key)).await,
            "{key} left"
        );
    }
}
