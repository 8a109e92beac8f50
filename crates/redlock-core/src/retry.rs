//! How long to wait between two attempts to acquire a lock.
//!
//! Waiting a random amount lets contenders that collided spread out instead of colliding
//! again. The default is node-redlock's: a fixed delay plus or minus a uniform jitter.
//! Exponential backoff doubles the delay after each failed attempt up to a cap, which suits
//! locks held for long and contenders that should back off rather than hammer the nodes.

use std::time::Duration;

/// A rule for the pause before each retry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RetryStrategy {
    /// `delay ± jitter` before every retry.
    Fixed { delay: Duration, jitter: Duration },
    /// `min(delay * 2^(retry - 1), max_delay) ± jitter` before retry number `retry`.
    Exponential {
        delay: Duration,
        max_delay: Duration,
        jitter: Duration,
    },
}

impl RetryStrategy {
    /// The default cap of [`RetryStrategy::Exponential`]'s pauses.
    pub const MAX_DELAY: Duration = Duration::from_secs(5);

    /// The pause before retry number `retry` (1 for the first retry), with the jitter drawn
    /// from `unit`, a uniform random number in `[0, 1)`.
    pub fn delay(&self, retry: u32, unit: f64) -> Duration {
        let (base, jitter) = match *self {
            RetryStrategy::Fixed { delay, jitter } => (delay, jitter),
            RetryStrategy::Exponential {
                delay,
                max_delay,
                jitter,
            } => {
                let doublings = retry.saturating_sub(1).min(31);
                let grown = delay.saturating_mul(1u32 << doublings);
                (grown.min(max_delay.max(delay)), jitter)
            }
        };
        // Uniform in [base - jitter, base + jitter], never below zero.
        let offset = jitter.as_secs_f64() * (2.0 * unit - 1.0);
        Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.0))
    }

    /// A jittered pause for retry number `retry`, drawing from the OS's random source.
    pub fn next_delay(&self, retry: u32) -> Duration {
        self.delay(retry, unit_random())
    }
}

/// A uniform random number in `[0, 1)`, from the OS's random source.
pub(crate) fn unit_random() -> f64 {
    (getrandom::u64().unwrap_or(0) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fixed_delay_spreads_uniformly_around_the_delay() {
        let s = RetryStrategy::Fixed {
            delay: ms(200),
            jitter: ms(100),
        };
        assert_eq!(s.delay(1, 0.0), ms(100));
        assert_eq!(s.delay(1, 0.5), ms(200));
        assert_eq!(s.delay(7, 0.5), ms(200), "fixed does not grow");
        assert!(s.delay(1, 0.999_999) <= ms(300));
    }

    #[test]
    fn jitter_larger_than_the_delay_never_gives_a_negative_pause() {
        let s = RetryStrategy::Fixed {
            delay: ms(10),
            jitter: ms(50),
        };
        assert_eq!(s.delay(1, 0.0), Duration::ZERO);
    }

    #[test]
    fn exponential_doubles_up_to_its_cap() {
        let s = RetryStrategy::Exponential {
            delay: ms(50),
            max_delay: ms(300),
            jitter: Duration::ZERO,
        };
        let pauses: Vec<Duration> = (1..=6).map(|r| s.delay(r, 0.5)).collect();
        assert_eq!(
            pauses,
            vec![ms(50), ms(100), ms(200), ms(300), ms(300), ms(300)]
        );
        assert_eq!(
            s.delay(10_000, 0.5),
            ms(300),
            "no overflow on huge retry counts"
        );
    }

    #[test]
    fn drawn_delays_stay_within_the_jitter_band() {
        let s = RetryStrategy::Fixed {
            delay: ms(200),
            jitter: ms(100),
        };
        for retry in 1..200 {
            let d = s.next_delay(retry);
            assert!(d >= ms(100) && d <= ms(300), "{d:?}");
        }
    }
}
