//! The line of this process's acquirers for one set of resources: first come, first served.
//!
//! Only the acquirer at the head of the line sends attempts; the others wait for their turn
//! without touching the nodes. So a process never stampedes itself when a lock it waits for
//! is released, and a holder that releases and asks again at once queues behind the
//! acquirers that were already waiting, instead of jumping ahead of them.
//!
//! A line also counts the releases of its resources made in this process ([`Releases`]), so
//! that its head can try again the moment a release of the lock it waits for is sent from
//! here, without waiting for the release's answers or its notice from the servers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use tokio::sync::{oneshot, Notify};

/// Lines by name (see [`crate::redlock`]: the servers and the resources).
#[derive(Default)]
pub struct Lines {
    lines: Mutex<HashMap<String, Line>>,
}

/// One line: the acquirers waiting behind its head, and the releases of its resources.
#[derive(Default)]
struct Line {
    waiting: VecDeque<oneshot::Sender<Turn>>,
    releases: Arc<Releases>,
}

/// How many times a lock on a line's resources was released in this process.
#[derive(Default)]
pub struct Releases {
    count: AtomicU64,
    released: Notify,
}

impl Releases {
    /// How many releases so far.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// Resolves once there have been more than `seen` releases.
    pub async fn after(&self, seen: u64) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.count() > seen {
                return;
            }
            released.await;
        }
    }

    fn announce(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.released.notify_waiters();
    }
}

/// The lines of this process: every client that locks the same resources on the same
/// servers stands in the same line.
static PROCESS: LazyLock<Arc<Lines>> = LazyLock::new(Arc::default);

/// The head of a line. Dropping it lets the next acquirer in that line go.
pub struct Turn {
    /// `None` only while a turn that nobody took is being discarded.
    line: Option<(Arc<Lines>, String)>,
    /// The releases of the line's resources in this process.
    pub releases: Arc<Releases>,
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some((lines, key)) = self.line.take() {
            pass(&lines, &key);
        }
    }
}

impl Lines {
    /// The lines shared by the whole process.
    pub fn of_process() -> Arc<Lines> {
        PROCESS.clone()
    }

    /// Joins the line called `name` and waits until this acquirer is at its head.
    /// Dropping the returned future leaves the line.
    pub async fn enter(self: &Arc<Self>, name: &str) -> Turn {
        let key = name.to_owned();
        let waiting = {
            let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
            match lines.get_mut(&key) {
                None => {
                    let line = Line::default();
                    let releases = line.releases.clone();
                    lines.insert(key.clone(), line);
                    Err(releases)
                }
                Some(line) => {
                    let (tx, rx) = oneshot::channel();
                    line.waiting.push_back(tx);
                    Ok(rx)
                }
            }
        };
        match waiting {
            Err(releases) => Turn {
                line: Some((self.clone(), key)),
                releases,
            },
            // The previous head hands its turn over; the line outlives every waiter, so the
            // sender is never dropped without sending.
            Ok(rx) => rx.await.expect("a turn is always handed over"),
        }
    }

    /// Tells the line called `name`, if anyone stands in it, that a lock on its resources
    /// was released in this process.
    pub fn released(&self, name: impl FnOnce() -> String) {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        if lines.is_empty() {
            return;
        }
        if let Some(line) = lines.get(&name()) {
            line.releases.announce();
        }
    }
}

/// Hands the turn for `key` to the next acquirer still waiting, or closes the line.
fn pass(lines: &Arc<Lines>, key: &str) {
    let mut map = lines.lines.lock().unwrap_or_else(|p| p.into_inner());
    loop {
        let Some(line) = map.get_mut(key) else { return };
        let Some(next) = line.waiting.pop_front() else {
            map.remove(key);
            return;
        };
        let turn = Turn {
            line: Some((lines.clone(), key.to_owned())),
            releases: line.releases.clone(),
        };
        match next.send(turn) {
            Ok(()) => return,
            // That acquirer left the line. Discard the turn without its Drop, which would
            // take the lock we hold, and offer it to the one after.
            Err(mut turn) => {
                turn.line = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn acquirers_get_their_turn_first_come_first_served() {
        let lines = Arc::new(Lines::default());
        let resources = "r".to_owned();
        let first = lines.enter(&resources).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut waiters = Vec::new();
        for n in 0..3 {
            let (lines, resources, order) = (lines.clone(), resources.clone(), order.clone());
            waiters.push(tokio::spawn(async move {
                let _turn = lines.enter(&resources).await;
                order.lock().unwrap().push(n);
            }));
            tokio::task::yield_now().await;
        }
        drop(first);
        for w in waiters {
            w.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2]);
        assert!(
            lines.lines.lock().unwrap().is_empty(),
            "an empty line is closed"
        );
    }

    #[tokio::test]
    async fn an_acquirer_that_leaves_the_line_does_not_block_it() {
        let lines = Arc::new(Lines::default());
        let resources = "r".to_owned();
        let first = lines.enter(&resources).await;
        let (l, r) = (lines.clone(), resources.clone());
        let leaver = tokio::spawn(async move { l.enter(&r).await });
        tokio::task::yield_now().await;
        leaver.abort();
        let _ = leaver.await;
        let (l, r) = (lines.clone(), resources.clone());
        let next = tokio::spawn(async move { drop(l.enter(&r).await) });
        tokio::task::yield_now().await;
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), next)
            .await
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn the_head_of_a_line_hears_of_the_releases_of_its_resources_only() {
        let lines = Arc::new(Lines::default());
        let head = lines.enter("r").await;
        let _other = lines.enter("s").await;
        let seen = head.releases.count();
        lines.released(|| "s".to_owned());
        lines.released(|| "nobody-waits".to_owned());
        assert_eq!(head.releases.count(), seen, "not its resources");
        let releases = head.releases.clone();
        let heard = tokio::spawn(async move { releases.after(seen).await });
        tokio::task::yield_now().await;
        lines.released(|| "r".to_owned());
        tokio::time::timeout(std::time::Duration::from_secs(5), heard)
            .await
            .expect("woken by the release")
            .unwrap();
        // A release before the head looks is not missed.
        lines.released(|| "r".to_owned());
        let seen = seen + 1;
        tokio::time::timeout(std::time::Duration::from_secs(5), head.releases.after(seen))
            .await
            .expect("counted while nobody listened");
    }

    #[tokio::test]
    async fn different_resources_stand_in_different_lines() {
        let lines = Arc::new(Lines::default());
        let _a = lines.enter("a").await;
        let b = tokio::time::timeout(std::time::Duration::from_secs(5), lines.enter("b")).await;
        assert!(b.is_ok());
    }
}
