//! Fencing tokens: a number per resource that grows with every acquisition, so that the
//! resource a lock protects can refuse a holder whose lock has since passed to another.
//!
//! Each node keeps a counter beside every lock key ([`counter_key`]). With fencing on, the
//! acquire script also answers the highest counter of the lock's keys on that node; the
//! client takes the highest answer of the quorum that granted the lock, adds one, and writes
//! that token back to the counters of every node with a script that only ever raises them.
//! The lock is granted only once a quorum has acknowledged the write within the validity.
//!
//! Why it is monotonic: if acquisition A completed before acquisition B began, A's token was
//! acknowledged by a quorum, and B's granting quorum shares at least one node with it. That
//! node's counter was at least A's token when B's acquire script read it, so B's token is
//! greater than A's. This holds as long as no node loses an acknowledged write: persistence
//! with `appendfsync always`. Delaying restarts past the longest TTL protects the locks but
//! not the counters, which never expire. docs/SAFETY.md spells this out.

/// The counter key beside lock key `key`, in the same Redis Cluster slot: it carries the
/// key's own hash tag when it has one, and otherwise the whole key as its tag.
pub fn counter_key(key: &str) -> String {
    match hash_tag(key) {
        Some(tag) => format!("redlock-rs:fence:{{{tag}}}"),
        // Without a tag a key hashes whole; braces inside it cannot be quoted, so such a
        // key (rare) keeps its counter next to it by name only.
        None if !key.contains('}') => format!("redlock-rs:fence:{{{key}}}"),
        None => format!("{key}:redlock-rs:fence"),
    }
}

/// The hash tag of `key` as Redis Cluster reads it: the text between the first `{` and the
/// first `}` after it, when not empty.
fn hash_tag(key: &str) -> Option<&str> {
    let open = key.find('{')?;
    let close = key[open + 1..].find('}')?;
    Some(&key[open + 1..open + 1 + close]).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_counter_shares_the_hash_tag_of_its_key() {
        assert_eq!(counter_key("orders"), "redlock-rs:fence:{orders}");
        assert_eq!(counter_key("user:{42}:cart"), "redlock-rs:fence:{42}");
        assert_eq!(counter_key("app:{}x"), "app:{}x:redlock-rs:fence");
        assert_eq!(hash_tag("app:{}x"), None);
        assert_eq!(counter_key("a}b"), "a}b:redlock-rs:fence");
    }
}
