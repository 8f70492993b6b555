//! Waiting before trying again: exponential backoff with jitter for
//! retries, and jitter for the periodic resync, so that many instances do not
//! act in step.

use std::time::Duration;

use rand::Rng;

/// Exponential backoff with full jitter on the upper half.
#[derive(Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            failures: 0,
        }
    }

    /// The delay before the next retry; grows with each call.
    pub fn next_delay(&mut self) -> Duration {
        let exp = self.min.saturating_mul(1u32 << self.failures.min(16));
        self.failures += 1;
        let cap = exp.min(self.max);
        // Between half and all of the cap, so instances don't retry in step.
        let half = cap / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

/// `interval` plus up to 10 %: never shorter, so a resync interval the
/// quota budget set stays within the budget, and instances still drift
/// apart.
pub fn jittered(interval: Duration) -> Duration {
    interval + rand::rng().random_range(Duration::ZERO..=interval / 10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_to_the_cap_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(800), Duration::from_secs(300));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(400) && first <= Duration::from_millis(800));
        let mut last = first;
        for _ in 0..20 {
            last = b.next_delay();
        }
        assert!(last >= Duration::from_secs(150) && last <= Duration::from_secs(300));
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(800));
    }

    #[test]
    fn jitter_only_lengthens_the_interval() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..100 {
            let d = jittered(Duration::from_secs(60));
            assert!(d >= Duration::from_secs(60) && d <= Duration::from_secs(66));
            seen.insert(d);
        }
        assert!(seen.len() > 1, "the interval is jittered");
    }
}
