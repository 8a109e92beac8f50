//! Keeps one lock's commands to one node in the order they were issued.
//!
//! A round decides at quorum and leaves the stragglers running. A straggler that has not
//! yet reached its node when the same lock's release is issued could otherwise be overtaken
//! by that release and land after it, leaving a key nobody will delete until its TTL runs
//! out. So every command of a lock takes a [`Turn`] on its node's lane when it is issued,
//! and goes to the node only once the previous command on that lane has been answered or
//! has timed out.

use std::sync::Mutex;

use tokio::sync::oneshot;

/// One lane per node for one lock.
pub struct Lanes {
    tails: Vec<Mutex<Option<oneshot::Receiver<()>>>>,
}

/// A command's place in its lane. Dropping it lets the next command go.
pub struct Turn {
    previous: Option<oneshot::Receiver<()>>,
    _done: oneshot::Sender<()>,
}

impl Lanes {
    /// Empty lanes for `nodes` nodes.
    pub fn new(nodes: usize) -> Self {
        Lanes {
            tails: (0..nodes).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Takes the next turn on `node`'s lane. Call it when the command is issued, not when
    /// it is sent: the order of these calls is the order on the wire.
    pub fn enter(&self, node: usize) -> Turn {
        let (done, tail) = oneshot::channel();
        let previous = self.tails[node]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(tail);
        Turn {
            previous,
            _done: done,
        }
    }
}

impl Turn {
    /// Waits until the previous command on this lane was answered or gave up.
    pub async fn wait(&mut self) {
        if let Some(previous) = self.previous.take() {
            // An error only means the previous turn was dropped: that is its end too.
            let _ = previous.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn a_later_turn_waits_for_the_earlier_one_on_the_same_node() {
        let lanes = Lanes::new(2);
        let first = lanes.enter(0);
        let mut second = lanes.enter(0);
        let mut other_node = lanes.enter(1);
        other_node.wait().await; // a different node's lane is free

        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = order.clone();
        let waiter = tokio::spawn(async move {
            second.wait().await;
            seen.lock().unwrap().push("second");
        });
        tokio::task::yield_now().await;
        order.lock().unwrap().push("first");
        drop(first);
        waiter.await.unwrap();
        assert_eq!(*order.lock().unwrap(), vec!["first", "second"]);
    }
}
