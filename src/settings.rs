//! Settings shared by every command: which API, which stage, which owner,
//! and the durations and limits of the loop. Parsed from flags and
//! environment by the command line (main.rs); checked here so a bad value is
//! refused before any AWS call.

use std::time::Duration;

use crate::plan::accounts::AccountRoles;
use crate::plan::throttle_limits::AccountLimit;

/// A setting with a value apimount refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SettingError(String);

/// Longest owner id: it appears in statement ids, which Lambda caps at 100 characters.
pub const MAX_OWNER_LEN: usize = 40;

/// Checks an owner id: lowercase letters, digits and '-', 1 to 40 characters.
pub fn check_owner(owner: &str) -> Result<(), SettingError> {
    let ok = !owner.is_empty()
        && owner.len() <= MAX_OWNER_LEN
        && owner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !owner.starts_with('-')
        && !owner.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(SettingError(format!(
            "owner '{}' must be 1 to {MAX_OWNER_LEN} lowercase letters, digits or '-', not starting or ending with '-'",
            owner.escape_debug()
        )))
    }
}

/// Checks a REST API id as API Gateway prints it (10 lowercase letters and digits).
pub fn check_rest_api_id(id: &str) -> Result<(), SettingError> {
    if !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(SettingError(format!(
            "REST API id '{}' should look like 'a1b2c3d4e5' (letters and digits)",
            id.escape_debug()
        )))
    }
}

/// Checks a stage name (API Gateway: letters, digits, '-' and '_', up to 128).
pub fn check_stage(stage: &str) -> Result<(), SettingError> {
    if !stage.is_empty()
        && stage.len() <= 128
        && stage
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(SettingError(format!(
            "stage '{}' must be letters, digits, '-' or '_'",
            stage.escape_debug()
        )))
    }
}

/// Parses 250ms, 15s, 5m, 1h (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, SettingError> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| {
        SettingError(format!(
            "'{s}' is not a duration such as 500ms, 15s, 5m or 1h"
        ))
    })?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => {
            return Err(SettingError(format!(
                "'{s}': unknown unit '{unit}' (use ms, s, m or h)"
            )))
        }
    };
    if !(0.0..=86_400.0 * 7.0).contains(&secs) {
        return Err(SettingError(format!("'{s}' is out of range")));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The accepted range of each duration setting, and why.
pub struct DurationBounds {
    pub flag: &'static str,
    pub min: Duration,
    pub max: Duration,
    pub why_min: &'static str,
}

/// `--resync-interval`: a resync reads the whole API; faster than once a
/// second spins against the account's shared quotas.
pub const RESYNC_BOUNDS: DurationBounds = DurationBounds {
    flag: "--resync-interval",
    min: Duration::from_secs(1),
    max: Duration::from_secs(24 * 3600),
    why_min: "every resync reads the whole API",
};
/// `--poll-interval`: every poll lists the S3 prefix.
pub const POLL_BOUNDS: DurationBounds = DurationBounds {
    flag: "--poll-interval",
    min: Duration::from_secs(1),
    max: Duration::from_secs(3600),
    why_min: "every poll lists the S3 prefix",
};
/// `--release-poll`: each tick reads the running releases' alarms.
pub const RELEASE_POLL_BOUNDS: DurationBounds = DurationBounds {
    flag: "--release-poll",
    min: Duration::from_secs(1),
    max: Duration::from_secs(300),
    why_min: "every tick reads the running releases' alarms",
};
/// `--lease-duration`: renewed every third of it, each renewal bounded by
/// that third; under 3 s the renewals cannot keep up.
pub const LEASE_BOUNDS: DurationBounds = DurationBounds {
    flag: "--lease-duration",
    min: Duration::from_secs(3),
    max: Duration::from_secs(600),
    why_min: "the lease is renewed every third of it, within a DynamoDB call",
};
/// `--instance-lease`: the instance tag is renewed every third of it with
/// two API Gateway calls, which count against the account's shared quota.
pub const INSTANCE_LEASE_BOUNDS: DurationBounds = DurationBounds {
    flag: "--instance-lease",
    min: Duration::from_secs(3),
    max: Duration::from_secs(3600),
    why_min: "the tag is renewed every third of it, within two API Gateway calls",
};

/// `--instance-lease`: the instance tag's lifetime, or `None` for `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceLease(pub Option<Duration>);

/// Parses `--instance-lease`: a duration within [`INSTANCE_LEASE_BOUNDS`],
/// or `off`.
pub fn parse_instance_lease(s: &str) -> Result<InstanceLease, SettingError> {
    if s.trim().eq_ignore_ascii_case("off") {
        return Ok(InstanceLease(None));
    }
    INSTANCE_LEASE_BOUNDS
        .parse(s)
        .map(|d| InstanceLease(Some(d)))
}

/// `--role-session`: what STS AssumeRole grants (15 minutes up to the role's
/// maximum, at most 12 hours). Shorter sessions are accepted against an
/// emulator only (an endpoint override), to test refreshing.
pub const ROLE_SESSION_BOUNDS: DurationBounds = DurationBounds {
    flag: "--role-session",
    min: Duration::from_secs(900),
    max: Duration::from_secs(12 * 3600),
    why_min: "STS AssumeRole grants sessions of 15 minutes or more",
};

/// `--liveness-timeout`: how long `/healthz` tolerates a loop that makes no
/// progress; an idle loop beats every third of it (at most every 10 s).
pub const LIVENESS_BOUNDS: DurationBounds = DurationBounds {
    flag: "--liveness-timeout",
    min: Duration::from_secs(3),
    max: Duration::from_secs(24 * 3600),
    why_min: "an idle loop beats every third of it",
};

/// The liveness timeout without `--liveness-timeout`: three resyncs (of at
/// least a minute) and five minutes more, so a slow pass under the quotas,
/// whose AWS calls each take up to a minute, is never taken for a stuck one.
pub fn default_liveness_timeout(resync_interval: Duration) -> Duration {
    resync_interval.max(Duration::from_secs(60)) * 3 + Duration::from_secs(300)
}

/// How often an idle loop beats, for a liveness timeout.
pub fn idle_heartbeat(liveness_timeout: Duration) -> Duration {
    (liveness_timeout / 3).min(Duration::from_secs(10))
}

/// `--debounce`: the quiet time after a folder change.
pub const DEBOUNCE_BOUNDS: DurationBounds = DurationBounds {
    flag: "--debounce",
    min: Duration::ZERO,
    max: Duration::from_secs(60),
    why_min: "",
};

impl DurationBounds {
    /// Parses a duration and checks it is in range.
    pub fn parse(&self, s: &str) -> Result<Duration, SettingError> {
        let d = parse_duration(s)?;
        let show = |d: Duration| format!("{}s", d.as_secs_f64());
        if d < self.min {
            return Err(SettingError(format!(
                "{} '{s}' is too short: at least {} ({})",
                self.flag,
                show(self.min),
                self.why_min
            )));
        }
        if d > self.max {
            return Err(SettingError(format!(
                "{} '{s}' is too long: at most {}",
                self.flag,
                show(self.max)
            )));
        }
        Ok(d)
    }
}

/// Parses `--quota-share`: a share of each AWS control-plane quota, as
/// `5%` or `0.05`, above 0 and at most 100 %.
pub fn parse_share(s: &str) -> Result<f64, SettingError> {
    let t = s.trim();
    let value = match t.strip_suffix('%') {
        Some(p) => p.trim().parse::<f64>().map(|p| p / 100.0),
        None => t.parse::<f64>(),
    }
    .map_err(|_| SettingError(format!("'{s}' is not a share such as 5% or 0.05")))?;
    if !(value > 0.0 && value <= 1.0) {
        return Err(SettingError(format!(
            "'{s}' must be above 0 and at most 100%"
        )));
    }
    Ok(value)
}

/// How many of its mounts one pass may remove (the mass-deletion guard).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteLimit {
    /// At most this share (in percent) of the mounts this owner manages, and always at least one.
    Percent(u32),
    /// At most this many mounts.
    Count(usize),
    /// No limit (`--allow-mass-delete`).
    Unlimited,
}

impl DeleteLimit {
    /// Parses `50%` or `3`.
    pub fn parse(s: &str) -> Result<DeleteLimit, SettingError> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let n: u32 = p
                .trim()
                .parse()
                .map_err(|_| SettingError(format!("'{s}' is not a percentage such as 50%")))?;
            if n > 100 {
                return Err(SettingError(format!("'{s}' is over 100%")));
            }
            return Ok(DeleteLimit::Percent(n));
        }
        s.parse().map(DeleteLimit::Count).map_err(|_| {
            SettingError(format!(
                "'{s}' is neither a count (3) nor a percentage (50%)"
            ))
        })
    }

    /// The most mounts a pass may remove when the owner manages `managed`
    /// mounts and the source holds `files` manifest files. An empty source
    /// (an unmounted volume, an empty S3 listing) may remove nothing.
    pub fn allowed(self, managed: usize, files: usize) -> Option<usize> {
        if self == DeleteLimit::Unlimited {
            return None;
        }
        if files == 0 && managed > 0 {
            return Some(0);
        }
        Some(match self {
            DeleteLimit::Percent(p) => (managed * p as usize).div_ceil(100).max(1),
            DeleteLimit::Count(n) => n,
            DeleteLimit::Unlimited => unreachable!(),
        })
    }
}

/// What one reconcile pass needs to know about its target.
#[derive(Debug, Clone)]
pub struct Target {
    pub rest_api_id: String,
    pub stage: String,
    pub owner: String,
    /// Region of the API, from the AWS configuration chain.
    pub region: String,
    pub delete_limit: DeleteLimit,
    /// The account's throttle limit in the region when AWS raised it
    /// (`--account-throttle`); `None`: the region's default.
    pub account_throttle: Option<AccountLimit>,
    /// The roles for other accounts' functions given by flags
    /// (`--account-role`); a tenant policy's `accounts` take their place.
    pub account_roles: AccountRoles,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_limits() {
        assert_eq!(DeleteLimit::parse("50%"), Ok(DeleteLimit::Percent(50)));
        assert_eq!(DeleteLimit::parse("3"), Ok(DeleteLimit::Count(3)));
        assert!(DeleteLimit::parse("x").is_err());
        assert!(DeleteLimit::parse("120%").is_err());
        let half = DeleteLimit::Percent(50);
        assert_eq!(half.allowed(10, 9), Some(5));
        assert_eq!(half.allowed(1, 1), Some(1));
        assert_eq!(half.allowed(3, 1), Some(2));
        // An empty folder never deletes everything.
        assert_eq!(half.allowed(4, 0), Some(0));
        assert_eq!(DeleteLimit::Unlimited.allowed(4, 0), None);
    }

    #[test]
    fn the_liveness_timeout_outlasts_resyncs_and_idle_beats() {
        let s = Duration::from_secs;
        let table = [
            // resync, default timeout
            (s(1), s(480)),
            (s(60), s(480)),
            (s(600), s(2100)),
        ];
        for (resync, timeout) in table {
            assert_eq!(default_liveness_timeout(resync), timeout, "{resync:?}");
        }
        let beats = [(s(3), s(1)), (s(30), s(10)), (s(480), s(10))];
        for (timeout, beat) in beats {
            assert_eq!(idle_heartbeat(timeout), beat, "{timeout:?}");
            assert!(idle_heartbeat(timeout) * 3 <= timeout);
        }
    }

    #[test]
    fn durations_are_bounded() {
        let table: &[(&DurationBounds, &str, bool)] = &[
            (&RESYNC_BOUNDS, "0s", false),
            (&RESYNC_BOUNDS, "500ms", false),
            (&RESYNC_BOUNDS, "1s", true),
            (&RESYNC_BOUNDS, "60s", true),
            (&RESYNC_BOUNDS, "25h", false),
            (&RELEASE_POLL_BOUNDS, "500ms", false),
            (&RELEASE_POLL_BOUNDS, "10s", true),
            (&RELEASE_POLL_BOUNDS, "5m", true),
            (&RELEASE_POLL_BOUNDS, "6m", false),
            (&LEASE_BOUNDS, "0s", false),
            (&LEASE_BOUNDS, "2s", false),
            (&LEASE_BOUNDS, "3s", true),
            (&LEASE_BOUNDS, "11m", false),
            (&POLL_BOUNDS, "0", false),
            (&POLL_BOUNDS, "15s", true),
            (&LIVENESS_BOUNDS, "0s", false),
            (&LIVENESS_BOUNDS, "2s", false),
            (&LIVENESS_BOUNDS, "3s", true),
            (&LIVENESS_BOUNDS, "8m", true),
            (&LIVENESS_BOUNDS, "25h", false),
            (&DEBOUNCE_BOUNDS, "0ms", true),
            (&DEBOUNCE_BOUNDS, "2m", false),
            (&RESYNC_BOUNDS, "ten", false),
        ];
        for (b, s, ok) in table {
            let got = b.parse(s);
            assert_eq!(got.is_ok(), *ok, "{} {s}: {got:?}", b.flag);
            if let Err(e) = got {
                assert!(
                    e.to_string().contains(b.flag) || e.to_string().contains("duration"),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn shares() {
        assert_eq!(parse_share("5%"), Ok(0.05));
        assert_eq!(parse_share("0.25"), Ok(0.25));
        assert_eq!(parse_share("100%"), Ok(1.0));
        for bad in ["0", "0%", "-1%", "150%", "x", "2"] {
            assert!(parse_share(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn owners() {
        assert!(check_owner("apimount").is_ok());
        assert!(check_owner("team-a1").is_ok());
        for bad in ["", "-a", "a-", "Team", "a_b", "a:b", &"x".repeat(41)] {
            assert!(check_owner(bad).is_err(), "{bad}");
        }
    }
}
