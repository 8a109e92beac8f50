//! The quorum rule and the validity formula of the Redlock spec, in one place.
//!
//! Every "is that a quorum?" and "can a quorum still be reached?" question of the engine, and
//! of the `redlock` command through the binding, is answered by [`reached`] and
//! [`impossible`]. All are pure functions of counts and durations, tested without Redis.

use std::time::Duration;

/// The number of nodes that must agree: a strict majority, `floor(n / 2) + 1`.
pub fn quorum_size(nodes: usize) -> usize {
    nodes / 2 + 1
}

/// Whether `nodes` of a `membership` agreeing make a quorum.
pub fn reached(nodes: usize, membership: usize) -> bool {
    nodes >= quorum_size(membership)
}

/// Whether `against` nodes of a `membership` make a quorum impossible: more than
/// `membership - quorum` of them. The twin of [`reached`].
pub fn impossible(against: usize, membership: usize) -> bool {
    against > membership.saturating_sub(quorum_size(membership))
}

/// What a reader of every node's keys can tell of a resource ([`verdict`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// One value holds the keys on a quorum: `holder` is its index in the counts given.
    Held { holder: usize },
    /// A quorum answered, and none of them holds the keys.
    Free,
    /// A quorum answered, and some of them hold the keys, but no value holds a quorum.
    Split,
    /// Fewer than a quorum answered, and no value holds a quorum.
    Unknown,
}

/// The state of a resource over `membership` nodes, of which `answered` answered, and
/// `holders[i]` nodes hold the keys with the i-th value seen.
pub fn verdict(membership: usize, answered: usize, holders: &[usize]) -> Verdict {
    let strongest = (0..holders.len()).max_by_key(|&i| holders[i]);
    match strongest {
        Some(holder) if reached(holders[holder], membership) => Verdict::Held { holder },
        _ if !reached(answered, membership) => Verdict::Unknown,
        _ if holders.iter().all(|&n| n == 0) => Verdict::Free,
        _ => Verdict::Split,
    }
}

/// The clock drift allowance for a lock of `ttl`: `ttl * drift_factor` plus 2 ms for the
/// granularity of Redis's own expiry, as the Redlock spec prescribes.
pub fn drift(ttl: Duration, drift_factor: f64) -> Duration {
    Duration::from_secs_f64(ttl.as_secs_f64() * drift_factor) + Duration::from_millis(2)
}

/// How long a lock stays safe to use after it was granted: `ttl - elapsed - drift`, or `None`
/// when nothing is left. `elapsed` is measured on a monotonic clock from before the first
/// request of the attempt to the moment the quorum was reached.
pub fn validity(ttl: Duration, elapsed: Duration, drift_factor: f64) -> Option<Duration> {
    ttl.checked_sub(elapsed)?
        .checked_sub(drift(ttl, drift_factor))
        .filter(|v| !v.is_zero())
}

/// The running count of one round of votes, which decides as early as it can: as soon as a
/// quorum is for, or as soon as enough are against that a quorum can no longer be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// How many nodes vote in this round.
    pub membership: usize,
    /// How many of them must be for.
    pub quorum: usize,
    /// Votes for so far.
    pub votes_for: usize,
    /// Votes against so far (refusals, errors and timeouts alike).
    pub votes_against: usize,
}

impl Tally {
    /// A round over `membership` nodes with no votes yet.
    pub fn new(membership: usize) -> Self {
        Tally {
            membership,
            quorum: quorum_size(membership),
            votes_for: 0,
            votes_against: 0,
        }
    }

    /// Counts one vote.
    pub fn count(&mut self, for_: bool) {
        if for_ {
            self.votes_for += 1;
        } else {
            self.votes_against += 1;
        }
    }

    /// `Some(true)` once a quorum is for, `Some(false)` once a quorum has become impossible,
    /// `None` while the remaining votes could still go either way.
    pub fn decision(&self) -> Option<bool> {
        if reached(self.votes_for, self.membership) {
            Some(true)
        } else if impossible(self.votes_against, self.membership) {
            Some(false)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quorum_is_a_strict_majority() {
        let sizes: Vec<usize> = (1..=7).map(quorum_size).collect();
        assert_eq!(sizes, vec![1, 2, 2, 3, 3, 4, 4]);
    }

    #[test]
    fn tally_decides_for_at_quorum_without_waiting_for_stragglers() {
        let mut t = Tally::new(5);
        t.count(true);
        t.count(true);
        assert_eq!(t.decision(), None);
        t.count(true);
        assert_eq!(t.decision(), Some(true));
    }

    #[test]
    fn tally_decides_against_once_quorum_is_impossible() {
        let mut t = Tally::new(5);
        t.count(false);
        t.count(true);
        t.count(false);
        assert_eq!(t.decision(), None, "3 of 5 could still be for");
        t.count(false);
        assert_eq!(t.decision(), Some(false));
    }

    #[test]
    fn tally_of_an_even_membership_needs_more_than_half() {
        let mut t = Tally::new(4);
        t.count(true);
        t.count(true);
        t.count(false);
        assert_eq!(t.decision(), None);
        t.count(false);
        assert_eq!(t.decision(), Some(false), "2 of 4 is not a majority");
    }

    #[test]
    fn a_verdict_names_a_holder_only_with_a_quorum_of_nodes() {
        assert_eq!(verdict(5, 5, &[3, 1]), Verdict::Held { holder: 0 });
        assert_eq!(verdict(5, 3, &[1, 3]), Verdict::Held { holder: 1 });
        assert_eq!(verdict(5, 5, &[2, 2]), Verdict::Split);
        assert_eq!(verdict(5, 5, &[]), Verdict::Free);
        assert_eq!(verdict(5, 2, &[]), Verdict::Unknown, "2 of 5 cannot tell");
        assert_eq!(verdict(5, 2, &[2]), Verdict::Unknown);
    }

    #[test]
    fn reached_and_impossible_are_twins() {
        for membership in 1..=7 {
            for n in 0..=membership {
                // n for and the rest against: a quorum is reached exactly when the rest
                // do not make it impossible.
                assert_eq!(
                    reached(n, membership),
                    !impossible(membership - n, membership),
                    "{n} of {membership}"
                );
            }
        }
    }

    #[test]
    fn drift_is_proportional_plus_two_milliseconds() {
        assert_eq!(
            drift(Duration::from_secs(10), 0.01),
            Duration::from_millis(102)
        );
        assert_eq!(
            drift(Duration::from_millis(100), 0.0),
            Duration::from_millis(2)
        );
    }

    #[test]
    fn validity_subtracts_elapsed_time_and_drift() {
        let v = validity(Duration::from_secs(10), Duration::from_millis(50), 0.01);
        assert_eq!(v, Some(Duration::from_millis(10_000 - 50 - 102)));
    }

    #[test]
    fn no_validity_once_elapsed_time_and_drift_use_up_the_ttl() {
        let ttl = Duration::from_millis(100);
        assert_eq!(validity(ttl, Duration::from_millis(97), 0.01), None);
        assert_eq!(validity(ttl, Duration::from_millis(98), 0.0), None);
        assert_eq!(validity(ttl, Duration::from_millis(500), 0.01), None);
        assert!(validity(ttl, Duration::from_millis(96), 0.01).is_some());
    }
}
