//! The restart guard: a server that restarted without persisting every write has forgotten
//! the locks it granted, so until it has been up for longer than any lock could still be
//! valid, its vote for an acquisition could hand out a lock that another client holds on the
//! rest of a majority. The Redlock spec leaves this to operators ("delayed restarts"); the
//! guard enforces it in the client.
//!
//! Each new connection to a node learns the server's uptime, run id and persistence (INFO
//! and CONFIG GET, written with the script loading, so no extra round trip: [`Health`]). A
//! node up for less than the guard's window is *young* ([`Age`]). In an acquisition round,
//! while the young nodes are a minority of the membership (so the others could still form a
//! quorum), a young node's vote for does not count; its refusals still count against, and
//! releases and extensions count it as always. When a majority of the membership is young,
//! the fleet is new or a majority restarted together: [`GuardMode::On`] counts the young
//! votes then (there is nothing a guard could keep), [`GuardMode::Strict`] never does.
//! Nodes that persist every write (`appendonly yes` with `appendfsync always`) are never
//! young; nodes that would not tell (an ACL refusing INFO, a cluster member) are not either.

use std::time::{Duration, Instant};

/// Whether and how strictly the guard acts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardMode {
    /// Every vote counts, whenever its server started.
    Off,
    /// Young votes for an acquisition do not count while the young are a minority.
    On,
    /// Young votes for an acquisition never count.
    Strict,
}

/// The guard of one operation: its mode, and the window below which a server is young.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartGuard {
    pub mode: GuardMode,
    /// The least uptime of a server whose votes count: the longest lock duration any client
    /// may hold. The client raises it to the longest duration it has used itself.
    pub window: Duration,
}

impl RestartGuard {
    /// The default window, for a client that has used no longer duration.
    pub const DEFAULT_WINDOW: Duration = Duration::from_secs(60);
}

impl Default for RestartGuard {
    fn default() -> Self {
        RestartGuard {
            mode: GuardMode::On,
            window: Self::DEFAULT_WINDOW,
        }
    }
}

/// What a server said of itself when a connection to it opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The server's run id: it changes with every restart.
    pub run_id: String,
    /// Its uptime when it answered (whole seconds, as INFO gives it: rounded down, so a
    /// server is never taken for older than it is).
    uptime: Duration,
    /// When that answer was read.
    seen: Instant,
    /// Whether it persists every write before acknowledging it.
    pub durable: bool,
}

/// How old a server is, for the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Age {
    /// Up for at least the window, or persisting every write, or it did not say.
    Old,
    /// Up for this long only, less than the window.
    Young(Duration),
}

impl Health {
    /// Reads the answers of `INFO server`, `INFO persistence` and `CONFIG GET appendfsync`
    /// (each absent where the server refused it); `None` without an uptime.
    pub fn parse(
        server: &str,
        persistence: Option<&str>,
        appendfsync: Option<&str>,
    ) -> Option<Self> {
        let uptime: u64 = field(server, "uptime_in_seconds")?.parse().ok()?;
        let run_id = field(server, "run_id").unwrap_or_default().to_owned();
        let aof = persistence.and_then(|p| field(p, "aof_enabled")) == Some("1");
        Some(Health {
            run_id,
            uptime: Duration::from_secs(uptime),
            seen: Instant::now(),
            durable: aof && appendfsync == Some("always"),
        })
    }

    /// How long the server has been up by now.
    pub fn uptime(&self) -> Duration {
        self.uptime + self.seen.elapsed()
    }

    /// Whether the server is young for a guard of `window`.
    pub fn age(&self, window: Duration) -> Age {
        let uptime = self.uptime();
        match self.durable || uptime >= window {
            true => Age::Old,
            false => Age::Young(uptime),
        }
    }
}

/// The value of `name` in an INFO answer (`name:value` lines).
fn field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then(|| value.trim())
    })
}

/// The running count of a guarded acquisition round ([`crate::round`]): like
/// [`crate::quorum::Tally`], with the young nodes' votes for held apart until it is known
/// whether they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardedTally {
    pub membership: usize,
    pub quorum: usize,
    pub strict: bool,
    /// Votes for from servers that are not young.
    pub old_for: usize,
    /// Votes for from young servers.
    pub young_for: usize,
    /// Young servers heard from, whatever their vote.
    pub young: usize,
    /// Votes heard in all.
    pub heard: usize,
}

impl GuardedTally {
    pub fn new(membership: usize, strict: bool) -> Self {
        GuardedTally {
            membership,
            quorum: crate::quorum::quorum_size(membership),
            strict,
            old_for: 0,
            young_for: 0,
            young: 0,
            heard: 0,
        }
    }

    /// Counts one vote: whether it is for, and whether its server is young.
    pub fn count(&mut self, for_: bool, young: bool) {
        self.heard += 1;
        self.young += young as usize;
        match (for_, young) {
            (true, true) => self.young_for += 1,
            (true, false) => self.old_for += 1,
            _ => {}
        }
    }

    /// Whether the young votes count: more young servers have been heard from than can be
    /// left out of a quorum, so the servers that are not young cannot form one (a new fleet,
    /// or a majority restarted together), outside strict mode.
    pub fn young_count(&self) -> bool {
        !self.strict && self.young > self.membership - self.quorum
    }

    /// Whether the young votes may still come to count, with the servers not heard from.
    fn young_may_count(&self) -> bool {
        let unheard = self.membership - self.heard;
        !self.strict && self.young + unheard > self.membership - self.quorum
    }

    /// `Some(true)` once a quorum of votes that count is for, `Some(false)` once that has
    /// become impossible, `None` while it could go either way.
    pub fn decision(&self) -> Option<bool> {
        let young = |counted: bool| if counted { self.young_for } else { 0 };
        if self.old_for + young(self.young_count()) >= self.quorum {
            return Some(true);
        }
        let unheard = self.membership - self.heard;
        if self.old_for + unheard + young(self.young_may_count()) < self.quorum {
            return Some(false);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVER: &str =
        "# Server\r\nredis_version:7.0.15\r\nrun_id:4f1c\r\nuptime_in_seconds:12\r\n";

    #[test]
    fn health_reads_uptime_run_id_and_persistence() {
        let h = Health::parse(SERVER, Some("aof_enabled:1\r\n"), Some("always")).unwrap();
        assert_eq!(h.run_id, "4f1c");
        assert!(h.uptime() >= Duration::from_secs(12));
        assert!(h.durable);
        let lazy = Health::parse(SERVER, Some("aof_enabled:1\r\n"), Some("everysec")).unwrap();
        assert!(!lazy.durable, "everysec can lose the last second");
        let refused = Health::parse(SERVER, Some("aof_enabled:1\r\n"), None).unwrap();
        assert!(!refused.durable, "not known to be durable");
        assert_eq!(Health::parse("# Server\r\n", None, None), None);
    }

    #[test]
    fn a_server_is_young_below_the_window_unless_durable() {
        let h = Health::parse(SERVER, None, None).unwrap();
        assert!(matches!(h.age(Duration::from_secs(60)), Age::Young(_)));
        assert_eq!(h.age(Duration::from_secs(5)), Age::Old);
        let durable = Health::parse(SERVER, Some("aof_enabled:1"), Some("always")).unwrap();
        assert_eq!(durable.age(Duration::from_secs(60)), Age::Old);
    }

    fn tally(membership: usize, strict: bool, votes: &[(bool, bool)]) -> GuardedTally {
        let mut t = GuardedTally::new(membership, strict);
        for &(for_, young) in votes {
            t.count(for_, young);
        }
        t
    }

    #[test]
    fn one_young_node_of_five_does_not_make_a_quorum() {
        // A holds nodes 1 and 2 (old, refusing); node 3 restarted empty and says yes; 4, 5 yes.
        let t = tally(
            5,
            false,
            &[
                (false, false),
                (false, false),
                (true, true),
                (true, false),
                (true, false),
            ],
        );
        assert_eq!(t.decision(), Some(false));
        assert!(!t.young_count());
    }

    #[test]
    fn old_votes_alone_decide_at_once() {
        let t = tally(
            5,
            false,
            &[(true, false), (true, true), (true, false), (true, false)],
        );
        assert_eq!(t.decision(), Some(true));
    }

    #[test]
    fn a_young_majority_counts_outside_strict_mode() {
        let fresh = [(true, true), (true, true), (true, true)];
        assert_eq!(
            tally(5, false, &fresh).decision(),
            Some(true),
            "a new fleet grants at once"
        );
        assert_eq!(
            tally(5, true, &fresh).decision(),
            Some(false),
            "strict: two old cannot make 3"
        );
        let all = [(true, true); 5];
        assert_eq!(tally(5, true, &all).decision(), Some(false));
    }

    #[test]
    fn a_young_vote_waits_while_the_unheard_could_decide_either_way() {
        // Two young yes votes of five: the three unheard decide whether the young count.
        let t = tally(5, false, &[(true, true), (true, true)]);
        assert_eq!(t.decision(), None);
        let mut t2 = t;
        t2.count(true, false);
        assert_eq!(
            t2.decision(),
            None,
            "two old could still be heard: the young may not count"
        );
        t2.count(false, false);
        t2.count(false, false);
        assert_eq!(
            t2.decision(),
            Some(false),
            "three old: the young do not count"
        );
        let mut t3 = t;
        t3.count(true, true);
        assert_eq!(t3.decision(), Some(true), "three young: a new fleet");
    }
}
