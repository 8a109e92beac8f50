//! Who holds a resource, read without changing anything: each member's value, remaining TTL
//! and fencing counter for it, and the verdict a client would reach from those answers
//! ([`quorum::verdict`]). One script per member and resource ([`script::INSPECT`]), all sent
//! at once, so that a member answers within one round trip; each member is bounded by the
//! caller's timeout.

use std::time::Duration;

use futures_util::future::join_all;

use crate::client::Redlock;
use crate::error::Error;
use crate::fault::NodeError;
use crate::fence::counter_key;
use crate::quorum::{self, Verdict};
use crate::script;

/// What one member holds for one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    /// The lock key's value, or `None` when the key is absent.
    pub held: Option<Held>,
    /// The key's remaining time to live in ms; `None` when the key is absent or never expires.
    pub ttl_ms: Option<u64>,
    /// The resource's fencing counter on this member, when it has one.
    pub counter: Option<u64>,
}

/// A lock key's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    /// A string: a lock's value.
    Value(String),
    /// Another type than a string: no lock, but it keeps any lock off this member.
    Other,
}

/// One member's answer for every resource asked, in order, or why it gave none.
pub type MemberView = Result<Vec<KeyState>, NodeError>;

impl Redlock {
    /// What every member holds for each of `resources`, each member bounded by `timeout`.
    pub async fn inspect(
        &self,
        resources: &[String],
        timeout: Duration,
    ) -> Result<Vec<MemberView>, Error> {
        self.check_open()?;
        let reads = self.nodes.iter().map(|node| async move {
            let keys = resources.iter().map(|resource| {
                let key = node.key(resource);
                let keys = [counter_key(&key), key];
                async move {
                    let [counter, key] = keys;
                    key_state(node.read(&script::INSPECT, &[key, counter], &[]).await?)
                }
            });
            let read = join_all(keys);
            match tokio::time::timeout(timeout, read).await {
                Ok(states) => states.into_iter().collect(),
                Err(_) => Err(NodeError::Timeout),
            }
        });
        let views = tokio::select! {
            views = join_all(reads) => views,
            _ = self.shutdown.cancelled() => return Err(Error::Closed),
        };
        Ok(views)
    }
}

/// The verdict on resource `r` from every member's view, and the value of the holder when
/// one value holds a quorum. A key of another type never holds the lock.
pub fn verdict(views: &[MemberView], r: usize) -> (Verdict, Option<String>) {
    let mut values: Vec<&str> = Vec::new();
    let mut holders: Vec<usize> = Vec::new();
    let mut answered = 0;
    for view in views {
        let Ok(states) = view else { continue };
        answered += 1;
        let Some(Held::Value(value)) = &states[r].held else {
            continue;
        };
        match values.iter().position(|v| v == value) {
            Some(i) => holders[i] += 1,
            None => {
                values.push(value);
                holders.push(1);
            }
        }
    }
    let verdict = quorum::verdict(views.len(), answered, &holders);
    let holder = match verdict {
        Verdict::Held { holder } => Some(values[holder].to_owned()),
        _ => None,
    };
    (verdict, holder)
}

/// Reads the answer of [`script::INSPECT`].
fn key_state(answer: redis::Value) -> Result<KeyState, NodeError> {
    use redis::Value;
    let unexpected = |answer: &Value| NodeError::Server(format!("unexpected answer {answer:?}"));
    let Value::Array(items) = &answer else {
        return Err(unexpected(&answer));
    };
    let [value, ttl, counter] = items.as_slice() else {
        return Err(unexpected(&answer));
    };
    let held = match value {
        Value::Nil => None,
        Value::BulkString(bytes) => Some(Held::Value(String::from_utf8_lossy(bytes).into_owned())),
        Value::Int(_) => Some(Held::Other),
        _ => return Err(unexpected(&answer)),
    };
    let ttl_ms = match ttl {
        Value::Int(ms) if *ms >= 0 => Some(*ms as u64),
        Value::Int(_) => None,
        _ => return Err(unexpected(&answer)),
    };
    let counter = match counter {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok().and_then(|c| c.parse().ok()),
        _ => None,
    };
    Ok(KeyState {
        held,
        ttl_ms,
        counter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(values: &[Option<&str>]) -> Vec<MemberView> {
        values
            .iter()
            .map(|v| {
                Ok(vec![KeyState {
                    held: v.map(|v| Held::Value(v.to_owned())),
                    ttl_ms: v.map(|_| 1000),
                    counter: None,
                }])
            })
            .collect()
    }

    #[test]
    fn a_value_on_a_quorum_holds_the_resource() {
        let views = view(&[Some("a"), Some("a"), Some("a"), Some("b"), None]);
        assert_eq!(
            verdict(&views, 0),
            (Verdict::Held { holder: 0 }, Some("a".into()))
        );
    }

    #[test]
    fn two_values_without_a_quorum_split_it_and_no_answers_leave_it_unknown() {
        let views = view(&[Some("a"), Some("a"), Some("b"), Some("b"), None]);
        assert_eq!(verdict(&views, 0), (Verdict::Split, None));
        let mut views = view(&[None, None, None]);
        views[0] = Err(NodeError::Timeout);
        views[1] = Err(NodeError::Timeout);
        assert_eq!(verdict(&views, 0), (Verdict::Unknown, None));
        assert_eq!(
            verdict(&view(&[None, None, None]), 0),
            (Verdict::Free, None)
        );
    }

    #[test]
    fn another_type_never_holds_the_lock() {
        let mut views = view(&[None, None, None]);
        for v in &mut views {
            v.as_mut().unwrap()[0].held = Some(Held::Other);
        }
        assert_eq!(verdict(&views, 0), (Verdict::Free, None));
    }

    #[test]
    fn the_script_answer_is_read() {
        use redis::Value;
        let answer = Value::Array(vec![
            Value::BulkString(b"abc".to_vec()),
            Value::Int(1500),
            Value::BulkString(b"7".to_vec()),
        ]);
        let state = key_state(answer).unwrap();
        assert_eq!(state.held, Some(Held::Value("abc".into())));
        assert_eq!((state.ttl_ms, state.counter), (Some(1500), Some(7)));
        let absent = Value::Array(vec![Value::Nil, Value::Int(-2), Value::Nil]);
        let state = key_state(absent).unwrap();
        assert_eq!(
            (state.held, state.ttl_ms, state.counter),
            (None, None, None)
        );
    }
}
