//! Progressive delivery per route: what a mount's release does next. Pure.
//!
//! A mount with `spec.release` is routed through an alias apimount owns for
//! it (`manifest::release::alias_name`). The whole state of its release is
//! on AWS: the alias's version and routing weights, and a [`Record`] in the
//! alias's description (stable and target versions, step, when the step
//! began, phase). [`decide`] takes that, the alarms' states and the time, and
//! says what to write; the caller writes with the RevisionId it read, so a
//! write based on a stale read is refused (412) and decided again.
//!
//! - No alias yet (the first release): it is created at the version
//!   directly; there is nothing to compare the version with.
//! - Start: the version must exist and the alarms must exist and not be in
//!   ALARM (else the release waits, writing nothing). The alias keeps the
//!   stable version and gives the first step's weight to the new one.
//! - Step: at each step's deadline the next weight; after the last step the
//!   promotion (the alias's version becomes the target, weights cleared).
//! - Rollback: an alarm in ALARM while the release runs clears the weights
//!   and keeps the stable version. It stands until the manifest names a new
//!   version. Alarms that cannot be read hold the release; after
//!   [`HOLD_LIMIT`] it rolls back.
//! - The manifest naming another version mid-release restarts at step 0;
//!   naming the stable version reverts (weights cleared).
//! - A weight changed by hand is put back; weights cleared by hand (or the
//!   alias set to another version) are a rollback by hand, respected until
//!   the manifest names a new version.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::conditions::{Condition, ConditionStatus, ConditionType};
use crate::manifest::release::Release;
use crate::manifest::MountId;

/// How long a release may hold with its alarms unreadable before it rolls
/// back: unseen alarms are no reason to go on, and a long outage of
/// CloudWatch should not leave a version half-released.
pub const HOLD_LIMIT: Duration = Duration::from_secs(600);
/// The longest alias description Lambda accepts.
pub const MAX_DESCRIPTION: usize = 256;

/// The alias as GetAlias answered.
#[derive(Debug, Clone, PartialEq)]
pub struct AliasView {
    pub version: String,
    /// The additional version and its share (0 to 1), if any.
    pub weight: Option<(String, f64)>,
    pub description: String,
    pub revision: String,
}

/// A CloudWatch alarm's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

/// Where a release stands, as recorded on the alias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Progressing,
    Promoted,
    RolledBack,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Progressing => "progressing",
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolledback",
        }
    }
}

/// The release's record in the alias's description:
/// `apimount:{owner}:{mount} release phase=… stable=… target=… step=…
/// since=… why=…` (`why`, last, is the rest of the line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: String,
    pub mount: MountId,
    pub phase: Phase,
    pub stable: String,
    pub target: String,
    /// The step the release is at (Progressing).
    pub step: usize,
    /// When that step began, ms since the epoch.
    pub since_ms: u64,
    /// Why it rolled back.
    pub why: String,
}

impl Record {
    /// The description to write: at most [`MAX_DESCRIPTION`] bytes (the
    /// reason is cut to fit).
    pub fn render(&self) -> String {
        let mut s = format!(
            "apimount:{}:{} release phase={} stable={} target={} step={} since={}",
            self.owner,
            self.mount,
            self.phase.as_str(),
            self.stable,
            self.target,
            self.step,
            self.since_ms
        );
        if !self.why.is_empty() {
            s.push_str(" why=");
            for c in self.why.chars() {
                if s.len() + c.len_utf8() > MAX_DESCRIPTION {
                    break;
                }
                s.push(if c.is_control() { ' ' } else { c });
            }
        }
        s
    }

    /// The record a description holds, if it is one.
    pub fn parse(description: &str) -> Option<Record> {
        let rest = description.strip_prefix("apimount:")?;
        let (owner, rest) = rest.split_once(':')?;
        let (mount, rest) = rest.split_once(" release ")?;
        let (fields, why) = match rest.split_once(" why=") {
            Some((f, w)) => (f, w.to_string()),
            None => (rest, String::new()),
        };
        let mut map = BTreeMap::new();
        for kv in fields.split(' ') {
            let (k, v) = kv.split_once('=')?;
            map.insert(k, v);
        }
        let phase = match *map.get("phase")? {
            "progressing" => Phase::Progressing,
            "promoted" => Phase::Promoted,
            "rolledback" => Phase::RolledBack,
            _ => return None,
        };
        Some(Record {
            owner: owner.to_string(),
            mount: MountId::parse(mount)?,
            phase,
            stable: map.get("stable")?.to_string(),
            target: map.get("target")?.to_string(),
            step: map.get("step")?.parse().ok()?,
            since_ms: map.get("since")?.parse().ok()?,
            why,
        })
    }
}

/// What a release's condition says.
#[derive(Debug, Clone, PartialEq)]
pub enum Released {
    /// Traffic is moving: `weight` percent on `target` at step `step` (from 0).
    Progressing {
        stable: String,
        target: String,
        step: usize,
        steps: usize,
        weight: u8,
    },
    /// The alias serves `version` alone, as the manifest asks.
    Promoted { version: String },
    /// The release of `from` went back to `to`; `why` names the alarm.
    RolledBack {
        from: String,
        to: String,
        why: String,
    },
    /// The release is held: its alarms cannot be read.
    Held { why: String },
    /// The release cannot start: an alarm is missing or firing, or the
    /// version does not exist. Nothing was written.
    Waiting { why: String },
    /// The alias is another owner's or another mount's.
    Conflict { why: String },
}

impl Released {
    /// The condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Released::Progressing { .. } => "Progressing",
            Released::Promoted { .. } => "Promoted",
            Released::RolledBack { .. } => "RolledBack",
            Released::Held { .. } => "Held",
            Released::Waiting { .. } => "Waiting",
            Released::Conflict { .. } => "AliasConflict",
        }
    }

    /// Whether the release is done and the route serves the version.
    pub fn is_promoted(&self) -> bool {
        matches!(self, Released::Promoted { .. })
    }

    /// The share of traffic on the new version, percent (100 once promoted).
    pub fn weight(&self) -> u8 {
        match self {
            Released::Progressing { weight, .. } => *weight,
            Released::Promoted { .. } => 100,
            _ => 0,
        }
    }
}

impl Released {
    /// The `Released` condition: True once promoted; False while traffic
    /// moves (Progressing, with the step and weight), after a rollback
    /// (RolledBack, naming the alarm), and while held or waiting.
    pub fn condition(&self) -> Condition {
        Condition {
            kind: ConditionType::Released,
            status: if self.is_promoted() {
                ConditionStatus::True
            } else {
                ConditionStatus::False
            },
            reason: self.reason(),
            message: self.to_string(),
        }
    }

    /// The version the release is about.
    pub fn version(&self) -> Option<&str> {
        match self {
            Released::Progressing { target, .. } => Some(target),
            Released::Promoted { version } => Some(version),
            Released::RolledBack { from, .. } => Some(from),
            _ => None,
        }
    }
}

impl fmt::Display for Released {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Released::Progressing {
                stable,
                target,
                step,
                steps,
                weight,
            } => write!(
                f,
                "step {} of {steps}: version {target} takes {weight}% (stable {stable})",
                step + 1
            ),
            Released::Promoted { version } => write!(f, "version {version} takes all traffic"),
            Released::RolledBack { from, to, why } => {
                write!(f, "version {from} rolled back to {to}: {why}")
            }
            Released::Held { why } | Released::Waiting { why } | Released::Conflict { why } => {
                f.write_str(why)
            }
        }
    }
}

/// An alias write.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Create {
        version: String,
        record: Record,
    },
    /// With the RevisionId of the alias that was read.
    Update {
        version: String,
        weight: Option<(String, f64)>,
        record: Record,
    },
}

/// What to do with the guard alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardAction {
    Keep,
    /// Create (or re-point) it on this version, before the write.
    Put(String),
    /// Delete it, after the write.
    Delete,
}

/// A decision about one release.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub write: Option<Write>,
    pub status: Released,
    /// The version the write moves traffic to, which must be checked to
    /// exist before writing.
    pub check_version: Option<String>,
    pub guard: GuardAction,
    /// When to look again at the latest, ms since the epoch (a step's end).
    pub deadline_ms: Option<u64>,
}

impl Decision {
    fn hold(status: Released) -> Decision {
        Decision {
            write: None,
            status,
            check_version: None,
            guard: GuardAction::Keep,
            deadline_ms: None,
        }
    }
}

/// What [`decide`] works from.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub owner: &'a str,
    pub mount: &'a MountId,
    pub release: &'a Release,
    pub alias: Option<&'a AliasView>,
    /// The states of the alarms asked for ([`alarms_to_read`]); `None`:
    /// they could not be read. A name missing from the map does not exist.
    pub alarms: Option<&'a BTreeMap<String, AlarmState>>,
    /// The guard alarm's name, when the release has one.
    pub guard: Option<&'a str>,
    /// Since when the alarms could not be read, if they cannot.
    pub unreadable_since_ms: Option<u64>,
    pub now_ms: u64,
}

/// The alarms a release watches: the manifest's and the guard.
pub fn alarms_to_read(release: &Release, guard: Option<&str>) -> Vec<String> {
    let mut names = release.alarms.clone();
    names.extend(guard.map(str::to_string));
    names
}

/// The guard alarm of the alias `alias` of `function` (a name or ARN's
/// name): `apimount-guard-{function}-{alias}`, at most 255 characters.
pub fn guard_alarm_name(function: &str, alias: &str) -> String {
    let mut name = format!("apimount-guard-{function}-{alias}");
    name.truncate(255);
    name
}

/// The weight of `percent` as Lambda takes it (0 to 1).
pub fn share(percent: u8) -> f64 {
    f64::from(percent) / 100.0
}

fn same_weight(have: &Option<(String, f64)>, want: &Option<(String, f64)>) -> bool {
    match (have, want) {
        (None, None) => true,
        (Some((hv, hw)), Some((wv, ww))) => hv == wv && (hw - ww).abs() < 1e-6,
        _ => false,
    }
}

/// What the alias records of the release of `release`, without deciding
/// anything (for looks that do not write: `plan`, `status`, `wait`).
pub fn observed(release: &Release, alias: Option<&AliasView>) -> Released {
    let target = &release.version;
    let Some(alias) = alias else {
        return Released::Waiting {
            why: format!("the alias does not exist yet; it is made at version {target}"),
        };
    };
    let rec = Record::parse(&alias.description);
    match rec {
        Some(r) if r.phase == Phase::Progressing && &r.target == target => {
            let steps = release.steps.len();
            let step = r.step.min(steps.saturating_sub(1));
            Released::Progressing {
                stable: r.stable,
                target: r.target,
                step,
                steps,
                weight: alias
                    .weight
                    .as_ref()
                    .map(|(_, w)| (w * 100.0).round() as u8)
                    .unwrap_or(0),
            }
        }
        Some(r) if r.phase == Phase::RolledBack && &r.target == target => Released::RolledBack {
            from: r.target,
            to: alias.version.clone(),
            why: r.why,
        },
        _ if &alias.version == target && alias.weight.is_none() => Released::Promoted {
            version: target.clone(),
        },
        _ => Released::Waiting {
            why: format!(
                "version {target} is to be released (the alias serves version {})",
                alias.version
            ),
        },
    }
}

/// The rollback of a release whose mount is gone: weights cleared, the
/// stable version kept.
pub fn withdraw(record: Record, now_ms: u64) -> Decision {
    let stable = record.stable.clone();
    let from = record.target.clone();
    let why = "the mount was removed".to_string();
    Decision {
        write: Some(Write::Update {
            version: stable.clone(),
            weight: None,
            record: Record {
                phase: Phase::RolledBack,
                since_ms: now_ms,
                why: why.clone(),
                ..record
            },
        }),
        status: Released::RolledBack {
            from,
            to: stable,
            why,
        },
        check_version: None,
        guard: GuardAction::Delete,
        deadline_ms: None,
    }
}

/// What a release does next.
pub fn decide(i: &Input<'_>) -> Decision {
    let target = &i.release.version;
    let record = |phase, stable: &str, target: &str, step, why: &str| Record {
        owner: i.owner.to_string(),
        mount: i.mount.clone(),
        phase,
        stable: stable.to_string(),
        target: target.to_string(),
        step,
        since_ms: i.now_ms,
        why: why.to_string(),
    };
    let Some(alias) = i.alias else {
        return Decision {
            write: Some(Write::Create {
                version: target.clone(),
                record: record(Phase::Promoted, target, target, 0, ""),
            }),
            status: Released::Promoted {
                version: target.clone(),
            },
            check_version: Some(target.clone()),
            guard: GuardAction::Keep,
            deadline_ms: None,
        };
    };
    let rec = Record::parse(&alias.description);
    if let Some(r) = &rec {
        if r.owner != i.owner || &r.mount != i.mount {
            return Decision::hold(Released::Conflict {
                why: format!(
                    "the alias records the release of mount {} of owner {}; apimount leaves it alone",
                    r.mount, r.owner
                ),
            });
        }
    }
    let update = |version: &str, weight: Option<(String, f64)>, rec: Record| {
        Some(Write::Update {
            version: version.to_string(),
            weight,
            record: rec,
        })
    };
    match rec {
        Some(r) if r.phase == Phase::Progressing => progressing(i, alias, r),
        Some(r) if r.phase == Phase::RolledBack && &r.target == target => {
            // Stands until the manifest names a new version.
            Decision::hold(Released::RolledBack {
                from: r.target.clone(),
                to: alias.version.clone(),
                why: r.why.clone(),
            })
        }
        _ if &alias.version == target => {
            let mut d = Decision::hold(Released::Promoted {
                version: target.clone(),
            });
            if alias.weight.is_some() {
                // A weight added by hand: put back.
                d.write = update(target, None, record(Phase::Promoted, target, target, 0, ""));
            }
            d
        }
        _ => start(i, &alias.version),
    }
}

/// Starts (or restarts) the release of the manifest's version over `stable`.
fn start(i: &Input<'_>, stable: &str) -> Decision {
    let target = &i.release.version;
    let Some(alarms) = i.alarms else {
        return Decision::hold(Released::Waiting {
            why: format!("the release of version {target} waits: its alarms cannot be read"),
        });
    };
    for name in &i.release.alarms {
        match alarms.get(name) {
            None => {
                return Decision::hold(Released::Waiting {
                    why: format!(
                        "the release of version {target} waits: the alarm '{name}' does not exist"
                    ),
                })
            }
            Some(AlarmState::Alarm) => {
                return Decision::hold(Released::Waiting {
                    why: format!(
                        "the release of version {target} waits: the alarm '{name}' is in ALARM"
                    ),
                })
            }
            Some(_) => {}
        }
    }
    let rec = |phase, stable: &str, step| Record {
        owner: i.owner.to_string(),
        mount: i.mount.clone(),
        phase,
        stable: stable.to_string(),
        target: target.clone(),
        step,
        since_ms: i.now_ms,
        why: String::new(),
    };
    let Some(first) = i.release.steps.first() else {
        // All at once: the promotion is the whole release.
        return Decision {
            write: Some(Write::Update {
                version: target.clone(),
                weight: None,
                record: rec(Phase::Promoted, target, 0),
            }),
            status: Released::Promoted {
                version: target.clone(),
            },
            check_version: Some(target.clone()),
            guard: GuardAction::Delete,
            deadline_ms: None,
        };
    };
    Decision {
        write: Some(Write::Update {
            version: stable.to_string(),
            weight: Some((target.clone(), share(first.weight))),
            record: rec(Phase::Progressing, stable, 0),
        }),
        status: Released::Progressing {
            stable: stable.to_string(),
            target: target.clone(),
            step: 0,
            steps: i.release.steps.len(),
            weight: first.weight,
        },
        check_version: Some(target.clone()),
        guard: match i.guard {
            Some(_) => GuardAction::Put(target.clone()),
            None => GuardAction::Keep,
        },
        deadline_ms: Some(i.now_ms + first.pause.as_millis() as u64),
    }
}

fn progressing(i: &Input<'_>, alias: &AliasView, r: Record) -> Decision {
    let target = &i.release.version;
    let steps = &i.release.steps;
    let rolled_back = |to: &str, weight: Option<(String, f64)>, why: String| {
        let record = Record {
            phase: Phase::RolledBack,
            stable: to.to_string(),
            since_ms: i.now_ms,
            why: why.clone(),
            ..r.clone()
        };
        Decision {
            write: Some(Write::Update {
                version: to.to_string(),
                weight,
                record,
            }),
            status: Released::RolledBack {
                from: r.target.clone(),
                to: to.to_string(),
                why,
            },
            check_version: None,
            guard: GuardAction::Delete,
            deadline_ms: None,
        }
    };
    // Changes made by hand come first: they are respected.
    if alias.version != r.stable {
        if alias.version == r.target && alias.weight.is_none() {
            // Promoted by hand.
            let record = Record {
                phase: Phase::Promoted,
                stable: r.target.clone(),
                since_ms: i.now_ms,
                ..r.clone()
            };
            let mut d = Decision::hold(Released::Promoted {
                version: r.target.clone(),
            });
            d.write = Some(Write::Update {
                version: r.target.clone(),
                weight: None,
                record,
            });
            d.guard = GuardAction::Delete;
            return d;
        }
        return rolled_back(
            &alias.version,
            alias.weight.clone(),
            format!("by hand: the alias was set to version {}", alias.version),
        );
    }
    if alias.weight.is_none() {
        return rolled_back(
            &alias.version,
            None,
            "by hand: the alias's routing weights were cleared".into(),
        );
    }
    // The manifest's version.
    if target == &r.stable {
        let record = Record {
            phase: Phase::Promoted,
            target: r.stable.clone(),
            since_ms: i.now_ms,
            step: 0,
            ..r.clone()
        };
        return Decision {
            write: Some(Write::Update {
                version: r.stable.clone(),
                weight: None,
                record,
            }),
            status: Released::Promoted {
                version: r.stable.clone(),
            },
            check_version: None,
            guard: GuardAction::Delete,
            deadline_ms: None,
        };
    }
    if target != &r.target {
        return start(i, &r.stable);
    }
    // The alarms.
    let names = alarms_to_read(i.release, i.guard);
    let unreadable = match i.alarms {
        None => Some("its alarms cannot be read".to_string()),
        Some(states) => {
            if let Some(firing) = names
                .iter()
                .find(|n| states.get(*n) == Some(&AlarmState::Alarm))
            {
                return rolled_back(
                    &r.stable,
                    None,
                    format!("the alarm '{firing}' went to ALARM"),
                );
            }
            names
                .iter()
                .find(|n| !states.contains_key(*n))
                .map(|n| format!("the alarm '{n}' does not exist"))
        }
    };
    if let Some(why) = unreadable {
        let since = i.unreadable_since_ms.unwrap_or(i.now_ms);
        if i.now_ms.saturating_sub(since) >= HOLD_LIMIT.as_millis() as u64 {
            return rolled_back(
                &r.stable,
                None,
                format!(
                    "held for {} s and {why}",
                    i.now_ms.saturating_sub(since) / 1000
                ),
            );
        }
        return Decision::hold(Released::Held {
            why: format!(
                "the release of version {} is held: {why} (it rolls back after {} s)",
                r.target,
                HOLD_LIMIT.as_secs()
            ),
        });
    }
    // The steps, as the manifest has them now.
    let step = r.step.min(steps.len());
    let progressing = |step: usize| Released::Progressing {
        stable: r.stable.clone(),
        target: r.target.clone(),
        step,
        steps: steps.len(),
        weight: steps[step].weight,
    };
    let promote = || {
        let record = Record {
            phase: Phase::Promoted,
            stable: r.target.clone(),
            step: 0,
            since_ms: i.now_ms,
            ..r.clone()
        };
        Decision {
            write: Some(Write::Update {
                version: r.target.clone(),
                weight: None,
                record,
            }),
            status: Released::Promoted {
                version: r.target.clone(),
            },
            check_version: None,
            guard: GuardAction::Delete,
            deadline_ms: None,
        }
    };
    if step == steps.len() {
        return promote();
    }
    let deadline = r.since_ms + steps[step].pause.as_millis() as u64;
    if i.now_ms >= deadline {
        if step + 1 == steps.len() {
            return promote();
        }
        let next = step + 1;
        let record = Record {
            step: next,
            since_ms: i.now_ms,
            ..r.clone()
        };
        return Decision {
            write: Some(Write::Update {
                version: r.stable.clone(),
                weight: Some((r.target.clone(), share(steps[next].weight))),
                record,
            }),
            status: progressing(next),
            check_version: None,
            guard: GuardAction::Keep,
            deadline_ms: Some(i.now_ms + steps[next].pause.as_millis() as u64),
        };
    }
    let want = Some((r.target.clone(), share(steps[step].weight)));
    let mut d = Decision::hold(progressing(step));
    d.deadline_ms = Some(deadline);
    if !same_weight(&alias.weight, &want) {
        // A weight edited by hand: put back.
        d.write = Some(Write::Update {
            version: r.stable.clone(),
            weight: want,
            record: r.clone(),
        });
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::release::Step;

    const NOW: u64 = 1_000_000_000;

    fn release(version: &str) -> Release {
        Release {
            version: version.into(),
            steps: vec![
                Step {
                    weight: 10,
                    pause: Duration::from_secs(60),
                },
                Step {
                    weight: 50,
                    pause: Duration::from_secs(60),
                },
            ],
            alarms: vec!["errors".into()],
            guard: None,
        }
    }

    fn mount() -> MountId {
        MountId {
            tenant: Some("team".into()),
            name: "pay".into(),
        }
    }

    fn rec(phase: Phase, stable: &str, target: &str, step: usize, ago_s: u64) -> Record {
        Record {
            owner: "apimount".into(),
            mount: mount(),
            phase,
            stable: stable.into(),
            target: target.into(),
            step,
            since_ms: NOW - ago_s * 1000,
            why: String::new(),
        }
    }

    fn alias(version: &str, weight: Option<(&str, f64)>, record: Option<&Record>) -> AliasView {
        AliasView {
            version: version.into(),
            weight: weight.map(|(v, w)| (v.to_string(), w)),
            description: record.map(Record::render).unwrap_or_default(),
            revision: "r1".into(),
        }
    }

    fn states(list: &[(&str, AlarmState)]) -> BTreeMap<String, AlarmState> {
        list.iter().map(|(n, s)| (n.to_string(), *s)).collect()
    }

    /// (version, weight) of the write, and the record's phase and step.
    type Written = Option<(String, Option<(String, f64)>, Phase, usize)>;

    fn written(d: &Decision) -> Written {
        match &d.write {
            None => None,
            Some(Write::Create { version, record }) => {
                Some((version.clone(), None, record.phase, record.step))
            }
            Some(Write::Update {
                version,
                weight,
                record,
            }) => Some((version.clone(), weight.clone(), record.phase, record.step)),
        }
    }

    fn w(version: &str, weight: Option<(&str, f64)>, phase: Phase, step: usize) -> Written {
        Some((
            version.into(),
            weight.map(|(v, x)| (v.to_string(), x)),
            phase,
            step,
        ))
    }

    #[test]
    fn each_situation_has_its_decision() {
        use AlarmState::*;
        use Phase::*;
        let ok = states(&[("errors", Ok)]);
        let firing = states(&[("errors", Alarm)]);
        let guard_firing = states(&[("errors", Ok), ("g", Alarm)]);
        let none = states(&[]);
        let p0 = rec(Progressing, "3", "4", 0, 30);
        let p0_due = rec(Progressing, "3", "4", 0, 60);
        let p1_due = rec(Progressing, "3", "4", 1, 61);
        let rolled = Record {
            why: "the alarm 'errors' went to ALARM".into(),
            ..rec(RolledBack, "3", "4", 0, 5)
        };
        let promoted = rec(Promoted, "4", "4", 0, 5);
        let other_owner = Record {
            owner: "other".into(),
            ..p0.clone()
        };
        // (what, manifest version, alias, alarms, guard, unreadable for s, status reason, write)
        #[allow(clippy::type_complexity)]
        let table: Vec<(
            &str,
            &str,
            Option<AliasView>,
            Option<&BTreeMap<String, AlarmState>>,
            Option<&str>,
            Option<u64>,
            &str,
            Written,
        )> = vec![
            (
                "first release",
                "4",
                None,
                Some(&ok),
                None,
                None,
                "Promoted",
                Some(("4".into(), None, Promoted, 0)),
            ),
            (
                "start",
                "4",
                Some(alias("3", None, None)),
                Some(&ok),
                None,
                None,
                "Progressing",
                w("3", Some(("4", 0.1)), Progressing, 0),
            ),
            (
                "start, alarms unreadable",
                "4",
                Some(alias("3", None, None)),
                None,
                None,
                None,
                "Waiting",
                None,
            ),
            (
                "start, alarm missing",
                "4",
                Some(alias("3", None, None)),
                Some(&none),
                None,
                None,
                "Waiting",
                None,
            ),
            (
                "start, alarm firing",
                "4",
                Some(alias("3", None, None)),
                Some(&firing),
                None,
                None,
                "Waiting",
                None,
            ),
            (
                "in a step",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                Some(&ok),
                None,
                None,
                "Progressing",
                None,
            ),
            (
                "next step",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0_due))),
                Some(&ok),
                None,
                None,
                "Progressing",
                w("3", Some(("4", 0.5)), Progressing, 1),
            ),
            (
                "promotion",
                "4",
                Some(alias("3", Some(("4", 0.5)), Some(&p1_due))),
                Some(&ok),
                None,
                None,
                "Promoted",
                w("4", None, Promoted, 0),
            ),
            (
                "alarm",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                Some(&firing),
                None,
                None,
                "RolledBack",
                w("3", None, RolledBack, 0),
            ),
            (
                "guard alarm",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                Some(&guard_firing),
                Some("g"),
                None,
                "RolledBack",
                w("3", None, RolledBack, 0),
            ),
            (
                "guard missing holds",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                Some(&ok),
                Some("g"),
                None,
                "Held",
                None,
            ),
            (
                "alarms unreadable",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                None,
                None,
                Some(1),
                "Held",
                None,
            ),
            (
                "held too long",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                None,
                None,
                Some(600),
                "RolledBack",
                w("3", None, RolledBack, 0),
            ),
            (
                "alarm beats the deadline",
                "4",
                Some(alias("3", Some(("4", 0.5)), Some(&p1_due))),
                Some(&firing),
                None,
                None,
                "RolledBack",
                w("3", None, RolledBack, 1),
            ),
            (
                "new version mid-release",
                "5",
                Some(alias("3", Some(("4", 0.5)), Some(&p1_due))),
                Some(&ok),
                None,
                None,
                "Progressing",
                w("3", Some(("5", 0.1)), Progressing, 0),
            ),
            (
                "revert",
                "3",
                Some(alias("3", Some(("4", 0.1)), Some(&p0))),
                Some(&firing),
                None,
                None,
                "Promoted",
                w("3", None, Promoted, 0),
            ),
            (
                "weight edited by hand",
                "4",
                Some(alias("3", Some(("4", 0.3)), Some(&p0))),
                Some(&ok),
                None,
                None,
                "Progressing",
                w("3", Some(("4", 0.1)), Progressing, 0),
            ),
            (
                "weights cleared by hand",
                "4",
                Some(alias("3", None, Some(&p0))),
                Some(&ok),
                None,
                None,
                "RolledBack",
                w("3", None, RolledBack, 0),
            ),
            (
                "alias set by hand",
                "4",
                Some(alias("2", None, Some(&p0))),
                Some(&ok),
                None,
                None,
                "RolledBack",
                w("2", None, RolledBack, 0),
            ),
            (
                "promoted by hand",
                "4",
                Some(alias("4", None, Some(&p0))),
                Some(&ok),
                None,
                None,
                "Promoted",
                w("4", None, Promoted, 0),
            ),
            (
                "rolled back stands",
                "4",
                Some(alias("3", None, Some(&rolled))),
                Some(&ok),
                None,
                None,
                "RolledBack",
                None,
            ),
            (
                "a new version after a rollback",
                "5",
                Some(alias("3", None, Some(&rolled))),
                Some(&ok),
                None,
                None,
                "Progressing",
                w("3", Some(("5", 0.1)), Progressing, 0),
            ),
            (
                "promoted, nothing to do",
                "4",
                Some(alias("4", None, Some(&promoted))),
                None,
                None,
                None,
                "Promoted",
                None,
            ),
            (
                "a weight added by hand",
                "4",
                Some(alias("4", Some(("5", 0.2)), Some(&promoted))),
                None,
                None,
                None,
                "Promoted",
                w("4", None, Promoted, 0),
            ),
            (
                "another owner's alias",
                "4",
                Some(alias("3", Some(("4", 0.1)), Some(&other_owner))),
                Some(&ok),
                None,
                None,
                "AliasConflict",
                None,
            ),
        ];
        for (what, version, alias, alarms, guard, unreadable, reason, want) in table {
            let r = release(version);
            let m = mount();
            let d = decide(&Input {
                owner: "apimount",
                mount: &m,
                release: &r,
                alias: alias.as_ref(),
                alarms,
                guard,
                unreadable_since_ms: unreadable.map(|s| NOW - s * 1000),
                now_ms: NOW,
            });
            assert_eq!(d.status.reason(), reason, "{what}: {}", d.status);
            assert_eq!(written(&d), want, "{what}");
        }
    }

    #[test]
    fn a_start_checks_the_version_and_sets_the_deadline_and_guard() {
        let r = release("4");
        let m = mount();
        let a = alias("3", None, None);
        let ok = states(&[("errors", AlarmState::Ok)]);
        let input = Input {
            owner: "apimount",
            mount: &m,
            release: &r,
            alias: Some(&a),
            alarms: Some(&ok),
            guard: Some("g"),
            unreadable_since_ms: None,
            now_ms: NOW,
        };
        let d = decide(&input);
        assert_eq!(d.check_version.as_deref(), Some("4"));
        assert_eq!(d.guard, GuardAction::Put("4".into()));
        assert_eq!(d.deadline_ms, Some(NOW + 60_000));
        // All at once: the promotion is the only write, and checks the version.
        let mut at_once = release("4");
        at_once.steps.clear();
        let d = decide(&Input {
            release: &at_once,
            guard: None,
            ..input
        });
        assert_eq!(written(&d), w("4", None, Phase::Promoted, 0));
        assert_eq!(d.check_version.as_deref(), Some("4"));
        // In a step: look again at its end, and check nothing.
        let p = rec(Phase::Progressing, "3", "4", 1, 10);
        let a = alias("3", Some(("4", 0.5)), Some(&p));
        let r = release("4");
        let d = decide(&Input {
            release: &r,
            alias: Some(&a),
            guard: None,
            ..input
        });
        assert_eq!(d.deadline_ms, Some(NOW + 50_000));
        assert_eq!(d.check_version, None);
        assert_eq!(d.status.weight(), 50);
    }

    #[test]
    fn writes_per_release_are_steps_plus_one() {
        // Drive a release through its steps as the controller does: each
        // write becomes the alias the next decision reads.
        for steps in 0..=5usize {
            let mut r = release("4");
            r.steps = (1..=steps)
                .map(|k| Step {
                    weight: (k * 10) as u8,
                    pause: Duration::from_secs(30),
                })
                .collect();
            let m = mount();
            let ok = states(&[("errors", AlarmState::Ok)]);
            let mut a = alias("3", None, None);
            let mut now = NOW;
            let mut writes = 0;
            for _ in 0..100 {
                let d = decide(&Input {
                    owner: "apimount",
                    mount: &m,
                    release: &r,
                    alias: Some(&a),
                    alarms: Some(&ok),
                    guard: None,
                    unreadable_since_ms: None,
                    now_ms: now,
                });
                if let Some(Write::Update {
                    version,
                    weight,
                    record,
                }) = d.write
                {
                    writes += 1;
                    a = AliasView {
                        version,
                        weight,
                        description: record.render(),
                        revision: format!("r{writes}"),
                    };
                }
                if d.status.is_promoted() {
                    break;
                }
                now += 10_000;
            }
            assert_eq!(a.version, "4", "{steps} steps");
            assert_eq!(a.weight, None);
            // n steps: the start, n - 1 advances and the promotion; all at
            // once: the promotion alone.
            let want = if steps == 0 { 1 } else { steps + 1 };
            assert_eq!(writes, want, "{steps} steps");
        }
    }

    #[test]
    fn records_read_back_and_fit_a_description() {
        let mut r = rec(Phase::RolledBack, "3", "4", 1, 0);
        r.why = "the alarm 'payments 5xx' went to ALARM".into();
        assert_eq!(Record::parse(&r.render()), Some(r.clone()));
        let untenanted = Record {
            mount: MountId {
                tenant: None,
                name: "pay".into(),
            },
            ..r.clone()
        };
        assert_eq!(Record::parse(&untenanted.render()), Some(untenanted));
        r.why = "x\n".repeat(300);
        let s = r.render();
        assert!(s.len() <= MAX_DESCRIPTION, "{}", s.len());
        assert!(!s.contains('\n'));
        assert!(Record::parse(&s).is_some());
        for bad in [
            "",
            "made by hand",
            "apimount:o:team/pay release phase=paused stable=3 target=4 step=0 since=1",
            "apimount:o:team/pay release phase=promoted stable=3",
            "apimount:o:team/pay release phase=promoted stable=3 target=4 step=x since=1",
        ] {
            assert_eq!(Record::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn what_an_alias_records_read_without_deciding() {
        use Phase::*;
        let r = release("4");
        let p = rec(Progressing, "3", "4", 1, 10);
        let older = rec(Progressing, "2", "3", 0, 10);
        let back = Record {
            why: "the alarm 'errors' went to ALARM".into(),
            ..rec(RolledBack, "3", "4", 0, 10)
        };
        let older_back = Record {
            target: "3".into(),
            ..back.clone()
        };
        let table: Vec<(Option<AliasView>, &str, u8)> = vec![
            (None, "Waiting", 0),
            (
                Some(alias("3", Some(("4", 0.5)), Some(&p))),
                "Progressing",
                50,
            ),
            (
                Some(alias("2", Some(("3", 0.1)), Some(&older))),
                "Waiting",
                0,
            ),
            (Some(alias("3", None, Some(&back))), "RolledBack", 0),
            // A rollback of another version does not stand for this one.
            (Some(alias("2", None, Some(&older_back))), "Waiting", 0),
            (Some(alias("4", None, None)), "Promoted", 100),
            (Some(alias("4", Some(("5", 0.1)), None)), "Waiting", 0),
            (Some(alias("3", None, None)), "Waiting", 0),
        ];
        for (a, reason, weight) in table {
            let got = observed(&r, a.as_ref());
            assert_eq!((got.reason(), got.weight()), (reason, weight), "{a:?}");
        }
    }

    #[test]
    fn a_new_phase_or_step_starts_its_clock_and_a_put_back_does_not() {
        use AlarmState::*;
        use Phase::*;
        let ok = states(&[("errors", Ok)]);
        let firing = states(&[("errors", Alarm)]);
        let p0 = rec(Progressing, "3", "4", 0, 30);
        let p0_due = rec(Progressing, "3", "4", 0, 60);
        let p1_due = rec(Progressing, "3", "4", 1, 61);
        let p1 = rec(Progressing, "3", "4", 1, 10);
        // (what, manifest version, alias, alarms, whether the record's clock
        // is now, the record's stable and target versions and step)
        type Row<'a> = (
            &'a str,
            &'a str,
            AliasView,
            &'a BTreeMap<String, AlarmState>,
            bool,
            (&'a str, &'a str, usize),
        );
        let table: Vec<Row> = vec![
            (
                "next step",
                "4",
                alias("3", Some(("4", 0.1)), Some(&p0_due)),
                &ok,
                true,
                ("3", "4", 1),
            ),
            (
                "promotion",
                "4",
                alias("3", Some(("4", 0.5)), Some(&p1_due)),
                &ok,
                true,
                ("4", "4", 0),
            ),
            (
                "rollback",
                "4",
                alias("3", Some(("4", 0.1)), Some(&p0)),
                &firing,
                true,
                ("3", "4", 0),
            ),
            (
                "revert",
                "3",
                alias("3", Some(("4", 0.5)), Some(&p1)),
                &ok,
                true,
                ("3", "3", 0),
            ),
            (
                "promoted by hand",
                "4",
                alias("4", None, Some(&p0)),
                &ok,
                true,
                ("4", "4", 0),
            ),
            (
                "cleared by hand",
                "4",
                alias("3", None, Some(&p0)),
                &ok,
                true,
                ("3", "4", 0),
            ),
            (
                "set by hand",
                "4",
                alias("2", None, Some(&p0)),
                &ok,
                true,
                ("2", "4", 0),
            ),
            (
                "restart",
                "5",
                alias("3", Some(("4", 0.1)), Some(&p0)),
                &ok,
                true,
                ("3", "5", 0),
            ),
            (
                "put back",
                "4",
                alias("3", Some(("4", 0.3)), Some(&p0)),
                &ok,
                false,
                ("3", "4", 0),
            ),
        ];
        let m = mount();
        for (what, version, a, alarms, now, (stable, target, step)) in table {
            let r = release(version);
            let d = decide(&Input {
                owner: "apimount",
                mount: &m,
                release: &r,
                alias: Some(&a),
                alarms: Some(alarms),
                guard: None,
                unreadable_since_ms: None,
                now_ms: NOW,
            });
            let Some(Write::Update { record, .. }) = &d.write else {
                panic!("{what}: no write");
            };
            assert_eq!(record.since_ms == NOW, now, "{what}");
            let why = match what {
                "rollback" => "the alarm 'errors' went to ALARM",
                "cleared by hand" => "by hand: the alias's routing weights were cleared",
                "set by hand" => "by hand: the alias was set to version 2",
                _ => "",
            };
            assert_eq!(record.why, why, "{what}");
            if what == "next step" {
                assert_eq!(d.deadline_ms, Some(NOW + 60_000), "{what}");
            }
            assert_eq!(
                (record.stable.as_str(), record.target.as_str(), record.step),
                (stable, target, step),
                "{what}"
            );
        }
    }

    #[test]
    fn a_removed_mounts_release_is_withdrawn_to_its_stable_version() {
        let p = rec(Phase::Progressing, "3", "4", 1, 10);
        let d = withdraw(p, NOW);
        assert_eq!(written(&d), w("3", None, Phase::RolledBack, 1));
        assert_eq!(d.guard, GuardAction::Delete);
        assert_eq!(d.status.reason(), "RolledBack");
        let Some(Write::Update { record, .. }) = &d.write else {
            panic!("an update");
        };
        assert_eq!(
            (record.since_ms, record.why.as_str()),
            (NOW, "the mount was removed")
        );
    }

    #[test]
    fn alarm_states_and_release_versions() {
        for (text, want) in [
            ("OK", Some(AlarmState::Ok)),
            ("ALARM", Some(AlarmState::Alarm)),
            ("INSUFFICIENT_DATA", Some(AlarmState::InsufficientData)),
            ("alarm", None),
            ("", None),
        ] {
            assert_eq!(AlarmState::parse(text), want, "{text}");
        }
        let p = Released::Progressing {
            stable: "3".into(),
            target: "4".into(),
            step: 0,
            steps: 2,
            weight: 10,
        };
        assert_eq!(p.version(), Some("4"));
        assert_eq!(
            Released::Promoted {
                version: "5".into()
            }
            .version(),
            Some("5")
        );
        let back = Released::RolledBack {
            from: "6".into(),
            to: "5".into(),
            why: "x".into(),
        };
        assert_eq!(back.version(), Some("6"));
        assert_eq!(Released::Held { why: "x".into() }.version(), None);
    }

    #[test]
    fn a_release_condition_says_where_it_stands() {
        let table: Vec<(Released, ConditionStatus, &str, &str)> = vec![
            (
                Released::Progressing {
                    stable: "3".into(),
                    target: "4".into(),
                    step: 1,
                    steps: 3,
                    weight: 25,
                },
                ConditionStatus::False,
                "Progressing",
                "step 2 of 3: version 4 takes 25% (stable 3)",
            ),
            (
                Released::Promoted {
                    version: "4".into(),
                },
                ConditionStatus::True,
                "Promoted",
                "version 4 takes all traffic",
            ),
            (
                Released::RolledBack {
                    from: "4".into(),
                    to: "3".into(),
                    why: "alarm pay-errors is ALARM".into(),
                },
                ConditionStatus::False,
                "RolledBack",
                "version 4 rolled back to 3: alarm pay-errors is ALARM",
            ),
            (
                Released::Held {
                    why: "alarms unreadable".into(),
                },
                ConditionStatus::False,
                "Held",
                "alarms unreadable",
            ),
            (
                Released::Waiting {
                    why: "alarm x is missing".into(),
                },
                ConditionStatus::False,
                "Waiting",
                "alarm x is missing",
            ),
            (
                Released::Conflict {
                    why: "alias of another owner".into(),
                },
                ConditionStatus::False,
                "AliasConflict",
                "alias of another owner",
            ),
        ];
        for (released, status, reason, message) in table {
            let c = released.condition();
            assert_eq!(c.kind, ConditionType::Released);
            assert_eq!((c.status, c.reason), (status, reason), "{message}");
            assert_eq!(c.message, message);
        }
    }

    #[test]
    fn a_reason_of_wide_characters_is_cut_to_fit_too() {
        let mut r = rec(Phase::RolledBack, "3", "4", 1, 0);
        for wide in ["é", "→", "😀"] {
            r.why = wide.repeat(200);
            let s = r.render();
            assert!(s.len() <= MAX_DESCRIPTION, "{wide}: {}", s.len());
            assert!(Record::parse(&s).is_some(), "{wide}");
        }
    }

    #[test]
    fn guard_names_fit_cloudwatch() {
        let n = guard_alarm_name(&"f".repeat(64), &"a".repeat(128));
        assert!(n.len() <= 255);
        assert_eq!(
            guard_alarm_name("pay", "apimount_pay"),
            "apimount-guard-pay-apimount_pay"
        );
    }
}
