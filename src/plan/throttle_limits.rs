//! The account's throttle limit: the most requests per second (and the
//! largest burst) any route of the account can take in one region. Pure.
//!
//! API Gateway throttles every request first against the account's limit in
//! the region, then against the stage's and the route's. A route throttled
//! above the account's limit never gets its number: the account's bucket
//! empties first, for every team at once. So a mount's `throttle` is held to
//! the account's limit, and one above it is refused (`LimitExceeded`, naming
//! the field) instead of written. The default limit is 10,000 requests/s
//! with a burst of 5,000, and 2,500 / 1,250 in the regions of
//! [`LOW_THROTTLE_REGIONS`]; AWS raises it on request, and the operator then
//! tells apimount with `--account-throttle RATE/BURST`.

use std::fmt;
use std::str::FromStr;

use super::{Problem, Reason};
use crate::manifest::Mount;

/// The regions whose default account-level throttle is 2,500 requests/s
/// with a burst of 1,250 (elsewhere 10,000 / 5,000); raisable on request.
pub const LOW_THROTTLE_REGIONS: [&str; 13] = [
    "af-south-1",
    "eu-south-1",
    "ap-southeast-3",
    "me-central-1",
    "ap-south-2",
    "ap-southeast-4",
    "eu-south-2",
    "eu-central-2",
    "il-central-1",
    "ca-west-1",
    "ap-southeast-5",
    "ap-southeast-7",
    "mx-central-1",
];

/// Where an account limit comes from, for the refusal's wording.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitSource {
    /// AWS's default for the region named.
    RegionDefault(String),
    /// The operator's `--account-throttle`.
    Raised,
}

/// The account's throttle limit in the API's region.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountLimit {
    /// Steady requests per second.
    pub rate: f64,
    pub burst: u32,
    pub source: LimitSource,
}

impl AccountLimit {
    /// AWS's default limit in `region`.
    pub fn default_in(region: &str) -> AccountLimit {
        let (rate, burst) = if LOW_THROTTLE_REGIONS.contains(&region) {
            (2_500.0, 1_250)
        } else {
            (10_000.0, 5_000)
        };
        AccountLimit {
            rate,
            burst,
            source: LimitSource::RegionDefault(region.to_string()),
        }
    }

    /// The limit in force: the raised one the operator gave, else the
    /// region's default.
    pub fn in_force(region: &str, raised: Option<&AccountLimit>) -> AccountLimit {
        raised
            .cloned()
            .unwrap_or_else(|| AccountLimit::default_in(region))
    }
}

impl FromStr for AccountLimit {
    type Err = String;

    /// `RATE/BURST`, as `--account-throttle` takes it: `20000/10000`.
    fn from_str(s: &str) -> Result<AccountLimit, String> {
        let usage = "give the account's raised limit as RATE/BURST, e.g. 20000/10000";
        let (rate, burst) = s
            .split_once('/')
            .ok_or_else(|| format!("'{s}' has no '/'; {usage}"))?;
        let rate: f64 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r: &f64| r.is_finite() && *r > 0.0)
            .ok_or_else(|| format!("'{rate}' is not a rate above 0; {usage}"))?;
        let burst: u32 = burst
            .trim()
            .parse()
            .ok()
            .filter(|b| *b >= 1 && *b <= i32::MAX as u32)
            .ok_or_else(|| format!("'{burst}' is not a burst of 1 or more; {usage}"))?;
        Ok(AccountLimit {
            rate,
            burst,
            source: LimitSource::Raised,
        })
    }
}

impl fmt::Display for AccountLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} requests/s, burst {}", self.rate, self.burst)?;
        match &self.source {
            LimitSource::RegionDefault(region) => {
                write!(f, " (the default in {region})")
            }
            LimitSource::Raised => write!(f, " (--account-throttle)"),
        }
    }
}

/// Why the mount's throttle cannot be applied under `limit`, if it cannot.
pub fn above_account_limit(m: &Mount, limit: &AccountLimit) -> Option<Problem> {
    let t = m.throttle?;
    let hint = match limit.source {
        LimitSource::RegionDefault(_) => {
            "; if AWS raised the account's limit, start apimount with --account-throttle RATE/BURST"
        }
        LimitSource::Raised => "",
    };
    let refuse = |field: &'static str, what: String| {
        Some(
            Problem::new(
                Reason::LimitExceeded,
                format!("{what} is above the account's throttle limit of {limit}: the account's limit would apply first, to every route of the API{hint}"),
            )
            .at(field),
        )
    };
    if t.rate_limit.get() > limit.rate {
        return refuse(
            "spec.throttle.rateLimit",
            format!("throttle.rateLimit {}", t.rate_limit),
        );
    }
    if t.burst_limit > limit.burst {
        return refuse(
            "spec.throttle.burstLimit",
            format!("throttle.burstLimit {}", t.burst_limit),
        );
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(throttle: Option<(&str, &str)>) -> Mount {
        let t = throttle
            .map(|(r, b)| format!("  throttle:\n    rateLimit: {r}\n    burstLimit: {b}\n"))
            .unwrap_or_default();
        let text = format!(
            "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: m\nspec:\n  path: /m\n  function: f\n{t}"
        );
        crate::manifest::parse(std::path::Path::new("m.yaml"), text.as_bytes()).unwrap()
    }

    #[test]
    fn the_default_follows_the_region() {
        for (region, rate, burst) in [
            ("eu-west-2", 10_000.0, 5_000),
            ("us-east-1", 10_000.0, 5_000),
            ("cn-north-1", 10_000.0, 5_000),
            ("af-south-1", 2_500.0, 1_250),
            ("mx-central-1", 2_500.0, 1_250),
        ] {
            let l = AccountLimit::default_in(region);
            assert_eq!((l.rate, l.burst), (rate, burst), "{region}");
        }
        let raised: AccountLimit = "20000/9000".parse().unwrap();
        let l = AccountLimit::in_force("af-south-1", Some(&raised));
        assert_eq!(
            (l.rate, l.burst, l.source),
            (20_000.0, 9_000, LimitSource::Raised)
        );
    }

    #[test]
    fn the_flag_parses_rate_and_burst_or_says_what_is_wrong() {
        for (text, want) in [
            ("20000/10000", Ok((20_000.0, 10_000))),
            ("12500.5/6000", Ok((12_500.5, 6_000))),
            (" 300 / 2 ", Ok((300.0, 2))),
            ("20000", Err("has no '/'")),
            ("0/10", Err("not a rate above 0")),
            ("nan/10", Err("not a rate above 0")),
            ("inf/10", Err("not a rate above 0")),
            ("10/0", Err("not a burst of 1 or more")),
            ("10/-1", Err("not a burst of 1 or more")),
            ("10/3000000000", Err("not a burst of 1 or more")),
            ("ten/10", Err("not a rate above 0")),
        ] {
            let got = text.parse::<AccountLimit>();
            match (got, want) {
                (Ok(l), Ok((rate, burst))) => {
                    assert_eq!((l.rate, l.burst), (rate, burst), "{text}")
                }
                (Err(e), Err(part)) => {
                    assert!(e.contains(part) && e.contains("RATE/BURST"), "{text}: {e}")
                }
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn a_throttle_above_the_accounts_limit_is_refused_at_its_field() {
        let default = AccountLimit::default_in("eu-west-1");
        let low = AccountLimit::default_in("af-south-1");
        let raised: AccountLimit = "40000/20000".parse().unwrap();
        // (throttle, limit, refused field)
        type Case<'a> = (
            Option<(&'a str, &'a str)>,
            &'a AccountLimit,
            Option<&'a str>,
        );
        let cases: [Case; 10] = [
            (None, &low, None),
            (Some(("10000", "5000")), &default, None),
            (
                Some(("10000.5", "5000")),
                &default,
                Some("spec.throttle.rateLimit"),
            ),
            (
                Some(("10000", "5001")),
                &default,
                Some("spec.throttle.burstLimit"),
            ),
            (
                Some(("20000", "9000")),
                &default,
                Some("spec.throttle.rateLimit"),
            ),
            (Some(("2500", "1250")), &low, None),
            (Some(("2501", "10")), &low, Some("spec.throttle.rateLimit")),
            (
                Some(("100", "1251")),
                &low,
                Some("spec.throttle.burstLimit"),
            ),
            (Some(("40000", "20000")), &raised, None),
            (
                Some(("40001", "20000")),
                &raised,
                Some("spec.throttle.rateLimit"),
            ),
        ];
        for (throttle, limit, want) in cases {
            let got = above_account_limit(&mount(throttle), limit);
            assert_eq!(
                got.as_ref().and_then(|p| p.field),
                want,
                "{throttle:?} under {limit}"
            );
            if let Some(p) = got {
                assert_eq!(p.reason, Reason::LimitExceeded);
                assert!(p.message.contains(&limit.to_string()), "{}", p.message);
                let hinted = p.message.contains("--account-throttle RATE/BURST");
                assert_eq!(hinted, limit.source != LimitSource::Raised, "{}", p.message);
            }
        }
    }
}
