//! How one node runs an acquisition, against a real `redis-server`: a single key without
//! fencing goes as a plain `SET … NX PX … GET`, and the Lua script runs only where the plain
//! answer cannot tell (our own value already there). Every case gives the answer the script
//! would give, so the votes, and node-redlock's meaning of the keys, do not change.

mod support;

use redlock_core::node::{Answer, Node};
use redlock_core::script::ACQUIRE;
use redlock_core::NodeError;
use support::Server;

fn calls(server: &Server, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(&mut server.connection())
        .expect("INFO");
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
}

async fn acquire(node: &Node, key: &str, value: &str, ttl_ms: u64) -> Result<Answer, NodeError> {
    let args = [value.to_owned(), ttl_ms.to_string()];
    node.eval(&ACQUIRE, &[key.to_owned()], &args).await
}

#[tokio::test]
async fn a_free_key_is_set_by_a_plain_command_with_its_ttl_and_no_script_runs() {
    let server = Server::start();
    let node = Node::new(server.config());
    let answer = acquire(&node, "k-free", "mine", 30_000).await.unwrap();
    assert_eq!((answer.count, answer.holder), (1, None));
    assert_eq!(server.get("k-free").as_deref(), Some("mine"));
    let pttl = server.pttl("k-free");
    assert!(pttl > 25_000 && pttl <= 30_000, "PTTL {pttl}");
    assert_eq!(calls(&server, "evalsha") + calls(&server, "eval"), 0);
    assert_eq!(calls(&server, "set"), 1);
}

#[tokio::test]
async fn a_key_of_another_holder_is_refused_naming_it_and_left_as_it_was() {
    let server = Server::start();
    server.set("k-other", "theirs", 20_000);
    let node = Node::new(server.config());
    let answer = acquire(&node, "k-other", "mine", 30_000).await.unwrap();
    assert_eq!(answer.count, 0);
    assert_eq!(answer.holder.as_deref(), Some("theirs"));
    assert_eq!(server.get("k-other").as_deref(), Some("theirs"));
    assert!(server.pttl("k-other") <= 20_000);
    assert_eq!(calls(&server, "evalsha") + calls(&server, "eval"), 0);
}

#[tokio::test]
async fn our_own_value_already_there_is_renewed_by_the_script() {
    // What an earlier attempt of the same lock left behind counts as ours, with the new TTL.
    let server = Server::start();
    server.set("k-own", "mine", 1_000);
    let node = Node::new(server.config());
    let answer = acquire(&node, "k-own", "mine", 30_000).await.unwrap();
    assert_eq!((answer.count, answer.holder), (1, None));
    assert_eq!(server.get("k-own").as_deref(), Some("mine"));
    let pttl = server.pttl("k-own");
    assert!(pttl > 25_000, "renewed to the new TTL, PTTL {pttl}");
    assert_eq!(calls(&server, "evalsha") + calls(&server, "eval"), 1);
}

#[tokio::test]
async fn a_key_of_another_type_fails_the_request_as_the_script_does() {
    let server = Server::start();
    let _: () = redis::cmd("HSET")
        .arg("k-hash")
        .arg("f")
        .arg("v")
        .query(&mut server.connection())
        .unwrap();
    let node = Node::new(server.config());
    match acquire(&node, "k-hash", "mine", 30_000).await {
        Err(NodeError::Server(message)) => assert!(message.contains("WRONGTYPE"), "{message}"),
        other => panic!("expected WRONGTYPE, got {other:?}"),
    }
    // The plain command still serves the next key: a WRONGTYPE is not a refused syntax.
    acquire(&node, "k-next", "mine", 30_000).await.unwrap();
    assert_eq!(calls(&server, "set"), 2);
}
