//! How one node runs the semaphore and read-write lock scripts, against a real
//! `redis-server`: which slots a permit takes (its own value counts as free, so a retry never
//! blocks on what an earlier attempt of the same acquisition left), and who the read and
//! write sides admit on one node.

mod support;

use redlock_core::node::{Answer, Node};
use redlock_core::rwlock;
use redlock_core::script::{PERMITS, READ_ACQUIRE, READ_RELEASE, WRITE_ACQUIRE, WRITE_RELEASE};
use redlock_core::semaphore::slot_names;
use redlock_core::NodeError;
use support::Server;

/// Runs PERMITS for `want` of the slots of `resource`, looking from slot `first` (0-based).
async fn permits(
    node: &Node,
    resource: &str,
    slots: u32,
    value: &str,
    want: u32,
    first: u32,
) -> Result<Answer, NodeError> {
    let keys = slot_names(resource, slots);
    let args = [
        value,
        "30000",
        &slots.to_string(),
        &want.to_string(),
        &first.to_string(),
    ]
    .map(str::to_owned);
    node.eval(&PERMITS, &keys, &args).await
}

#[tokio::test]
async fn a_permit_takes_the_first_free_slot_from_where_it_looks_and_its_own_counts_as_free() {
    let server = Server::start();
    let node = Node::new(server.config());
    let slots = slot_names("db", 3);
    // From slot 2 (0-based 1): the first free one there is slot 2.
    assert_eq!(permits(&node, "db", 3, "a", 1, 1).await.unwrap().slots, [2]);
    // Slot 2 is held: from there, b takes slot 3.
    assert_eq!(permits(&node, "db", 3, "b", 1, 1).await.unwrap().slots, [3]);
    // A retry of a's acquisition finds its own value in slot 2 and takes it again.
    assert_eq!(permits(&node, "db", 3, "a", 1, 1).await.unwrap().slots, [2]);
    assert_eq!(server.get(&slots[1]).as_deref(), Some("a"));
    assert_eq!(server.get(&slots[0]), None);
}

#[tokio::test]
async fn several_permits_are_all_or_none_and_a_refusal_names_a_holder() {
    let server = Server::start();
    let node = Node::new(server.config());
    let slots = slot_names("pool", 3);
    let two = permits(&node, "pool", 3, "a", 2, 0).await.unwrap();
    assert_eq!(two.slots, [1, 2]);
    // One slot is left: two are refused, and nothing is taken.
    let refused = permits(&node, "pool", 3, "b", 2, 0).await.unwrap();
    assert_eq!((refused.count, refused.holder.as_deref()), (0, Some("a")));
    assert_eq!(server.get(&slots[2]), None);
    assert_eq!(
        permits(&node, "pool", 3, "b", 1, 0).await.unwrap().slots,
        [3]
    );
}

async fn side(node: &Node, resource: &str, write: bool, value: &str) -> Answer {
    let keys = rwlock::keys(resource);
    let script = if write {
        &*WRITE_ACQUIRE
    } else {
        &*READ_ACQUIRE
    };
    let args = [value, "30000", "500"].map(str::to_owned);
    node.eval(script, &keys, &args).await.unwrap()
}

#[tokio::test]
async fn readers_share_a_writer_excludes_them_and_its_intent_keeps_new_readers_out() {
    let server = Server::start();
    let node = Node::new(server.config());
    let keys = rwlock::keys("doc");
    assert_eq!(side(&node, "doc", false, "r1").await.count, 1);
    assert_eq!(side(&node, "doc", false, "r2").await.count, 1);
    // A writer is refused while readers hold, and leaves its intent.
    let refused = side(&node, "doc", true, "w").await;
    assert_eq!(refused.count, 0);
    assert!(matches!(refused.holder.as_deref(), Some("r1" | "r2")));
    assert_eq!(server.get(&keys[2]).as_deref(), Some("w"));
    let pttl = server.pttl(&keys[2]);
    assert!(pttl > 0 && pttl <= 500, "intent PTTL {pttl}");
    // A new reader waits behind the intent.
    assert_eq!(
        side(&node, "doc", false, "r3").await.holder.as_deref(),
        Some("w")
    );
    // Once the readers are gone, the writer is admitted and clears its intent.
    for reader in ["r1", "r2"] {
        let args = [reader, ""].map(str::to_owned);
        assert_eq!(
            node.eval(&READ_RELEASE, &keys, &args).await.unwrap().count,
            1
        );
    }
    assert_eq!(side(&node, "doc", true, "w").await.count, 1);
    assert_eq!(server.get(&keys[0]).as_deref(), Some("w"));
    assert_eq!(server.get(&keys[2]), None);
    assert_eq!(
        side(&node, "doc", false, "r4").await.holder.as_deref(),
        Some("w")
    );
}

#[tokio::test]
async fn an_undo_between_attempts_keeps_the_writers_intent_and_its_end_clears_it() {
    let server = Server::start();
    let node = Node::new(server.config());
    let keys = rwlock::keys("ledger");
    assert_eq!(side(&node, "ledger", false, "r").await.count, 1);
    assert_eq!(side(&node, "ledger", true, "w").await.count, 0);
    let undo = ["w", ""].map(str::to_owned);
    node.eval(&WRITE_RELEASE, &keys, &undo).await.unwrap();
    assert_eq!(
        server.get(&keys[2]).as_deref(),
        Some("w"),
        "kept between attempts"
    );
    // Another writer's end does not clear it; its own does.
    let other = ["x", "", "end"].map(str::to_owned);
    node.eval(&WRITE_RELEASE, &keys, &other).await.unwrap();
    assert_eq!(server.get(&keys[2]).as_deref(), Some("w"));
    let end = ["w", "", "end"].map(str::to_owned);
    node.eval(&WRITE_RELEASE, &keys, &end).await.unwrap();
    assert_eq!(server.get(&keys[2]), None);
}
