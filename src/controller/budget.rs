//! The quota budget: what the daemon may spend of the account's fixed,
//! shared control-plane quotas while nothing changes (`--quota-share`,
//! default 5 %). A steady resync reads the API (GetResources, one call a
//! page, and GetStage) and some functions' policies (GetPolicy); the budget
//! sets how often that may happen and how many policies one resync reads,
//! so that every quota's steady use stays within the share whatever the
//! resync interval and the number of mounts and functions. Policies are
//! verified in turn (the ones read longest ago first), so every function is
//! read again within [`QuotaBudget::verification_time`].
//!
//! Manifest changes, retries and drift found are not held back by the
//! budget: they are paced at the quotas themselves (`aws::pacing`).

use std::time::Duration;

use crate::aws::pacing::{APIGW_TOTAL_PER_SEC, GET_RESOURCES_PER_SEC, LAMBDA_PER_SEC};

/// A share of each control-plane quota, in (0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuotaBudget {
    share: f64,
    /// API Gateway calls per second spent outside passes (the instance
    /// tag's renewals), taken from the share before passes get theirs.
    background: f64,
}

impl QuotaBudget {
    pub fn new(share: f64) -> QuotaBudget {
        assert!(share > 0.0 && share <= 1.0, "a share in (0, 1]");
        QuotaBudget {
            share,
            background: 0.0,
        }
    }

    /// The budget, with `apigw_per_sec` API Gateway calls a second spent
    /// steadily outside passes. Passes keep at least half of the share
    /// whatever that is (see [`QuotaBudget::background_too_large`]).
    pub fn with_background(mut self, apigw_per_sec: f64) -> QuotaBudget {
        self.background = apigw_per_sec.max(0.0);
        self
    }

    /// Whether the background calls take more than half of API Gateway's
    /// share, so that together with steady passes they may exceed it.
    pub fn background_too_large(&self) -> bool {
        self.background > APIGW_TOTAL_PER_SEC * self.share / 2.0
    }

    /// API Gateway calls a second that steady passes may make.
    fn apigw_for_passes(&self) -> f64 {
        let share = APIGW_TOTAL_PER_SEC * self.share;
        (share - self.background).max(share / 2.0)
    }

    pub fn share(&self) -> f64 {
        self.share
    }

    /// The shortest time between two steady passes whose reads of the API
    /// (`pages` GetResources and one GetStage) stay within the share of
    /// GetResources' own quota and of API Gateway's total.
    pub fn min_interval(&self, pages: usize) -> Duration {
        let pages = pages.max(1) as f64;
        let by_get_resources = pages / (GET_RESOURCES_PER_SEC * self.share);
        let by_total = (pages + 1.0) / self.apigw_for_passes();
        Duration::from_secs_f64(by_get_resources.max(by_total))
    }

    /// The interval between steady passes: the resync interval asked for,
    /// or longer when the budget needs it.
    pub fn resync_interval(&self, asked: Duration, pages: usize) -> Duration {
        asked.max(self.min_interval(pages))
    }

    /// How many function policies one steady pass may read when passes are
    /// `interval` apart (at least one).
    pub fn policy_reads(&self, interval: Duration) -> usize {
        ((LAMBDA_PER_SEC * self.share * interval.as_secs_f64()).floor() as usize).max(1)
    }

    /// How many policies a resync reads when it also reads `aliases`
    /// release aliases (one GetAlias each, from the same Lambda share).
    pub fn policy_reads_beside(&self, interval: Duration, aliases: usize) -> usize {
        self.policy_reads(interval).saturating_sub(aliases).max(1)
    }

    /// The longest time until each of `functions` functions has been read
    /// again, with passes `interval` apart.
    pub fn verification_time(&self, functions: usize, interval: Duration) -> Duration {
        let rounds = functions.div_ceil(self.policy_reads(interval)).max(1);
        interval * rounds as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_use_stays_within_the_share() {
        let table: &[(f64, Duration, usize, usize)] = &[
            (0.05, Duration::from_secs(60), 1, 300),
            (0.05, Duration::from_secs(5), 1, 300),
            (0.05, Duration::from_secs(1), 3, 10),
            (0.01, Duration::from_secs(60), 2, 1000),
            (0.5, Duration::from_secs(1), 1, 30),
        ];
        for &(share, asked, pages, functions) in table {
            let b = QuotaBudget::new(share);
            let interval = b.resync_interval(asked, pages);
            let secs = interval.as_secs_f64();
            let get_resources = pages as f64 / secs;
            let total = (pages + 1) as f64 / secs;
            let reads = b.policy_reads(interval).min(functions);
            let lambda = reads as f64 / secs;
            let eps = 1e-9;
            assert!(interval >= asked);
            assert!(
                get_resources <= GET_RESOURCES_PER_SEC * share + eps,
                "{share} {asked:?}"
            );
            assert!(
                total <= APIGW_TOTAL_PER_SEC * share + eps,
                "{share} {asked:?}"
            );
            // One read a pass is the least a pass makes, budget or not.
            assert!(
                reads == 1 || lambda <= LAMBDA_PER_SEC * share + eps,
                "{share} {asked:?}"
            );
        }
    }

    #[test]
    fn background_calls_come_out_of_the_share() {
        // GetResources' own quota is a quarter of the total: a pass of p
        // pages makes p + 1 calls, so what is left of the total binds only
        // once the background takes half of the share, which is refused
        // as too large (the daemon says so at start).
        // (share, background calls/s, pages, min interval s, too large)
        let table: &[(f64, f64, usize, f64, bool)] = &[
            // 10/s × 5 % = 0.5/s; GetResources alone allows 8 s a page.
            (0.05, 0.0, 1, 8.0, false),
            // The instance tag at 60 s: 0.1/s.
            (0.05, 0.1, 1, 8.0, false),
            (0.05, 0.1, 4, 32.0, false),
            (0.05, 0.25, 1, 8.0, false),
            (0.05, 0.25, 3, 24.0, false),
            // More than half: passes keep half of the share.
            (0.05, 0.4, 1, 8.0, true),
            (1.0, 6.0, 4, 1.6, true),
        ];
        for &(share, background, pages, secs, too_large) in table {
            let b = QuotaBudget::new(share).with_background(background);
            let got = b.min_interval(pages).as_secs_f64();
            assert!(
                (got - secs).abs() < 1e-6,
                "{share} {background} {pages}: {got}"
            );
            assert_eq!(b.background_too_large(), too_large, "{share} {background}");
            if !too_large {
                let total = (pages + 1) as f64 / got + background;
                assert!(total <= APIGW_TOTAL_PER_SEC * share + 1e-9);
            }
        }
    }

    #[test]
    fn release_aliases_come_out_of_the_policy_reads() {
        let b = QuotaBudget::new(0.05);
        let minute = Duration::from_secs(60);
        // 15/s × 5 % × 60 s = 45 Lambda reads a resync.
        assert_eq!(b.policy_reads(minute), 45);
        assert_eq!(b.policy_reads_beside(minute, 0), 45);
        assert_eq!(b.policy_reads_beside(minute, 10), 35);
        // At least one policy is read, however many aliases.
        assert_eq!(b.policy_reads_beside(minute, 100), 1);
    }

    #[test]
    fn every_function_is_verified_in_a_stated_time() {
        let b = QuotaBudget::new(0.05);
        let minute = Duration::from_secs(60);
        // 15/s × 5 % × 60 s = 45 policies a resync: 300 functions in 7 resyncs.
        assert_eq!(b.policy_reads(minute), 45);
        assert_eq!(b.verification_time(300, minute), Duration::from_secs(420));
        assert_eq!(b.min_interval(1), Duration::from_secs(8));
        assert_eq!(
            b.resync_interval(Duration::from_secs(5), 1),
            Duration::from_secs(8)
        );
    }
}
