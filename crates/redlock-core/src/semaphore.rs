//! Semaphores: at most K holders of one resource at a time, over the same quorum as a mutex.
//!
//! A semaphore of K permits is K slots, and each slot is a mutex of its own: a key per slot,
//! held by one lock value on a quorum of nodes. A permit is one slot held that way, with
//! validity left; n permits at once are n slots, taken all together or not at all.
//!
//! Why never more than K valid holders: two valid holders of one slot would each have set
//! its key on a quorum, and two quorums share a node, on which the second acquire script
//! would have found the first's value (the mutex argument of [`crate::redlock`], slot by
//! slot). So each slot has at most one valid holder, and K slots at most K. Counting
//! holders per node and asking a majority for each does not give this: with 5 nodes and 2
//! permits, holders on {1,2,3}, {1,4,5} and {2,3,4} are three majorities with no node over
//! two holders. And like the mutex, a slot keeps granting with a minority of nodes down.
//!
//! One round tries every slot: each node's script ([`crate::script::PERMITS`]) takes the
//! first n slots that are free there, in an order that starts at a slot the client picks at
//! random for the attempt and wraps around, and answers which it took. Nodes that agree on
//! which slots are free take the same ones; the grant needs n slots each taken on a quorum
//! ([`granted`]). A node beyond the quorum may have taken other slots: the permit's release
//! clears every slot holding its value.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::client::Redlock;
use crate::error::Error;
use crate::lock::{random_value, Lock};
use crate::quorum;
use crate::redlock::Take;
use crate::settings::Settings;

/// The most permits a semaphore may have: every acquire script may read every slot.
pub const MAX_PERMITS: u32 = 1024;

/// The resource names of the slots of semaphore `resource` with `permits` permits. They
/// share one Redis Cluster hash tag (the resource's own, or the whole resource), so that a
/// node's script can read them all, and with it one fencing counter ([`crate::fence`]).
pub fn slot_names(resource: &str, permits: u32) -> Vec<String> {
    let base = tagged(resource);
    (1..=permits)
        .map(|slot| format!("{base}:permit:{slot}"))
        .collect()
}

/// `resource` with a Redis Cluster hash tag: its own when it has one, else the whole resource
/// in braces; the keys made by suffixing it share that tag.
pub(crate) fn tagged(resource: &str) -> String {
    let tag = resource.find('{').is_some_and(|open| {
        resource[open + 1..]
            .find('}')
            .is_some_and(|close| close > 0)
    });
    match tag {
        true => resource.to_owned(),
        false => format!("{{{resource}}}"),
    }
}

/// Where an attempt's scripts begin to look for free slots (0-based): at random, so that
/// contenders spread over the slots instead of all asking for the first.
pub(crate) fn first_slot(slots: usize) -> usize {
    let mut bytes = [0u8; 4];
    // Without the OS's random source every attempt starts at the first slot: still correct.
    let _ = getrandom::fill(&mut bytes);
    u32::from_le_bytes(bytes) as usize % slots.max(1)
}

/// The `count` slots granted, given the slots each node that voted for took: those taken on
/// a quorum of `membership`, the most widely taken first. None when fewer than `count` were.
pub(crate) fn granted(
    taken: &[(usize, Vec<u32>)],
    membership: usize,
    count: u32,
) -> Option<Vec<u32>> {
    let mut votes: Vec<(u32, usize)> = Vec::new();
    for slot in taken.iter().flat_map(|(_, slots)| slots) {
        match votes.iter_mut().find(|(s, _)| s == slot) {
            Some((_, n)) => *n += 1,
            None => votes.push((*slot, 1)),
        }
    }
    votes.retain(|&(_, n)| quorum::reached(n, membership));
    if votes.len() < count as usize {
        return None;
    }
    votes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut slots: Vec<u32> = votes[..count as usize].iter().map(|&(s, _)| s).collect();
    slots.sort_unstable();
    Some(slots)
}

impl Redlock {
    /// Acquires `count` of the `permits` permits of semaphore `resource` for `ttl`, as
    /// [`Redlock::acquire_cancellable`] acquires a mutex (retries, waits, wake-on-release,
    /// `cancel`, `acquire_timeout`). The lock answered holds the granted slots
    /// ([`slot_names`]); it extends, releases and is watched like any other.
    pub async fn acquire_permits(
        &self,
        resource: &str,
        permits: u32,
        count: u32,
        ttl: Duration,
        settings: &Settings,
        cancel: &CancellationToken,
    ) -> Result<Arc<Lock>, Error> {
        assert!(
            (1..=permits).contains(&count) && permits <= MAX_PERMITS,
            "1 <= count <= permits <= MAX_PERMITS"
        );
        self.check_open()?;
        let slots = slot_names(resource, permits);
        // The lock on every slot that the attempts take from, undo and wait on.
        let probe = self.locks.create(slots, random_value());
        let taken = self
            .acquiring(&probe, Take::Permits(count), ttl, settings, cancel)
            .await?;
        let held = taken
            .iter()
            .map(|&slot| probe.resources[slot as usize - 1].clone())
            .collect();
        Ok(self.locks.narrowed(&probe, held))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_share_the_resource_hash_tag_or_make_it_one() {
        assert_eq!(slot_names("db", 2), ["{db}:permit:1", "{db}:permit:2"]);
        assert_eq!(slot_names("jobs:{7}", 1), ["jobs:{7}:permit:1"]);
        assert_eq!(slot_names("a{}b", 1), ["{a{}b}:permit:1"]);
    }

    #[test]
    fn a_permit_needs_its_slot_on_a_quorum() {
        // 5 nodes: slot 1 on three of them is granted; slots split 2/2/1 are not.
        let agree = [(0, vec![1]), (1, vec![1]), (2, vec![1])];
        assert_eq!(granted(&agree, 5, 1), Some(vec![1]));
        let split = [
            (0, vec![1]),
            (1, vec![1]),
            (2, vec![2]),
            (3, vec![2]),
            (4, vec![3]),
        ];
        assert_eq!(granted(&split, 5, 1), None);
    }

    #[test]
    fn several_permits_need_each_slot_on_a_quorum() {
        let taken = [
            (0, vec![1, 2]),
            (1, vec![1, 2]),
            (2, vec![1, 3]),
            (3, vec![2, 3]),
        ];
        // Slot 1 on 3 nodes, slot 2 on 3, slot 3 on 2: two permits, slots 1 and 2.
        assert_eq!(granted(&taken, 5, 2), Some(vec![1, 2]));
        assert_eq!(granted(&taken, 5, 3), None);
    }
}
