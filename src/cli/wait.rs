//! `apimount wait`: waits until the live stage serves exactly a given
//! version of a manifest, for a pipeline that dropped it and must know when
//! its route is live. It needs no running controller: it reads the manifest
//! and the gateway, and tells from AWS alone which version is served (every
//! route's ownership marker records its manifest's generation, and the
//! stage's deployment records a fingerprint of the routes it holds).
//!
//! It is cheap on the account's quotas, which every tool shares
//! (GetResources is 5 per 2 s for the whole account). With the controller's
//! status documents it reads the manifest's document and confirms on AWS
//! only when the document says this version is live or failed
//! ([`Document`]). Without them it reads the stage alone (GetStage) and the
//! whole API only when the stage changed, the manifest changed, or a minute
//! passed ([`full_look_due`]), polling within its share of the quotas
//! ([`Pace`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::aws::pacing::{APIGW_TOTAL_PER_SEC, GET_RESOURCES_PER_SEC};
use crate::manifest::MountId;
use crate::plan::model::ObservedStage;
use crate::plan::release::Released;
use crate::plan::{Reason, State};
use crate::reconcile::{invalid_reason, PassReport};
use crate::source::Snapshot;

/// Which manifest to wait for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitFor {
    File(PathBuf),
    Name {
        name: String,
        tenant: Option<String>,
    },
}

/// Where the wait stands after one look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The stage serves exactly this version.
    Served,
    /// Not yet; waiting can change it (the controller is at work).
    Pending(String),
    /// It cannot happen without a change (to the manifest, the policy, the
    /// gateway): give up at once.
    Impossible(Reason, String),
    /// The route is live, but its release went back (or cannot go on)
    /// until the manifest names a new version: give up at once.
    ReleaseStopped(String),
}

/// What a release's standing means for a wait whose route is live.
pub fn release_verdict(r: &Released) -> Verdict {
    match r {
        Released::Promoted { .. } => Verdict::Served,
        Released::RolledBack { .. } | Released::Conflict { .. } => {
            Verdict::ReleaseStopped(format!("{}: {r}", r.reason()))
        }
        _ => Verdict::Pending(format!("release {}: {r}", r.reason())),
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(x), Ok(y)) if x == y)
}

/// The mount a wait is about (and its file), or why there is none to wait for.
pub fn find(snap: &Snapshot, target: &WaitFor) -> Result<(MountId, PathBuf), Verdict> {
    let found = snap.mounts.iter().find(|m| match target {
        WaitFor::File(f) => same_file(&m.file, f),
        WaitFor::Name { name, tenant } => &m.name == name && &m.tenant == tenant,
    });
    if let Some(m) = found {
        return Ok((m.id(), m.file.clone()));
    }
    if let WaitFor::File(f) = target {
        if let Some(e) = snap.errors.iter().find(|e| same_file(&e.file, f)) {
            return Err(Verdict::Impossible(invalid_reason(e), e.to_string()));
        }
    }
    let what = match target {
        WaitFor::File(f) => format!("{} is not a manifest of the source", f.display()),
        WaitFor::Name { name, tenant } => {
            let id = MountId {
                tenant: tenant.clone(),
                name: name.clone(),
            };
            format!("no valid manifest is named '{id}'")
        }
    };
    Err(Verdict::Impossible(Reason::InvalidManifest, what))
}

/// What a plan-mode pass says of `id`, whose manifest is `file`.
pub fn verdict(r: &PassReport, id: &MountId, file: &Path) -> Verdict {
    if let Some(f) = &r.fatal {
        return match r.fatal_reason {
            Some(reason) if reason.needs_a_change() => Verdict::Impossible(reason, f.clone()),
            _ => Verdict::Pending(f.clone()),
        };
    }
    let Some(m) = r.mounts.iter().find(|m| &m.id() == id) else {
        // A losing duplicate is reported among the manifest problems.
        return match r.invalid.iter().find(|e| same_file(&e.file, file)) {
            Some(e) => Verdict::Impossible(invalid_reason(e), e.to_string()),
            None => Verdict::Impossible(Reason::InvalidManifest, format!("'{id}' was not planned")),
        };
    };
    if let Some(p) = &m.problem {
        return if p.reason.needs_a_change() {
            Verdict::Impossible(p.reason, p.message.clone())
        } else {
            Verdict::Pending(format!("{}: {}", p.reason, p.message))
        };
    }
    if m.state != State::Ready {
        return Verdict::Pending(format!(
            "{} change(s) to make on the gateway",
            m.changes.len()
        ));
    }
    if r.stage_behind {
        return Verdict::Pending("the stage does not serve the routes yet".into());
    }
    match (&m.release_version, &m.released) {
        (None, _) => Verdict::Served,
        (Some(_), Some(released)) => release_verdict(released),
        (Some(v), None) => Verdict::Pending(format!("the release of version {v} is not known yet")),
    }
}

/// How often `wait` looks, within a share of the account's quotas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// Between looks (one GetStage, or one status document read).
    pub poll: Duration,
    /// A whole read of the API at least this often, even when nothing seems
    /// to have changed (a change that moves nothing on the stage).
    pub full_every: Duration,
}

/// The shortest time between looks.
pub const MIN_POLL: Duration = Duration::from_secs(2);
/// The longest time between whole reads when nothing changes.
pub const FULL_EVERY: Duration = Duration::from_secs(60);

impl Pace {
    /// The pace that keeps one waiting pipeline within `share` of the
    /// account's API Gateway quotas: GetStage from the 10 calls/s every
    /// API Gateway call shares, whole reads from GetResources' 2.5/s.
    pub fn within(share: f64) -> Pace {
        let share = share.clamp(0.001, 1.0);
        let poll = Duration::from_secs_f64(1.0 / (share * APIGW_TOTAL_PER_SEC)).max(MIN_POLL);
        let full = Duration::from_secs_f64(1.0 / (share * GET_RESOURCES_PER_SEC));
        Pace {
            poll,
            full_every: full.max(FULL_EVERY),
        }
    }
}

/// What the last whole read saw: the stage and the manifest's version, and when.
#[derive(Debug, Clone)]
pub struct LastLook {
    pub stage: Option<ObservedStage>,
    pub generation: String,
    pub at: Instant,
}

/// Whether what a stage answers differs in what a wait cares about: the
/// deployment it serves and its method settings (its tags change during
/// every pass and say nothing of what is served).
fn stage_moved(a: &Option<ObservedStage>, b: &Option<ObservedStage>) -> bool {
    let key = |s: &Option<ObservedStage>| {
        s.as_ref()
            .map(|s| (s.deployment_id.clone(), s.method_settings.clone()))
    };
    key(a) != key(b)
}

/// Whether the next look reads the whole API: the first look, a stage that
/// moved, a manifest that changed, or [`Pace::full_every`] since the last.
pub fn full_look_due(
    last: Option<&LastLook>,
    stage: &Option<ObservedStage>,
    generation: &str,
    now: Instant,
    pace: &Pace,
) -> bool {
    match last {
        None => true,
        Some(l) => {
            stage_moved(&l.stage, stage)
                || l.generation != generation
                || now.duration_since(l.at) >= pace.full_every
        }
    }
}

/// What a manifest's status document says of the version waited for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Document {
    /// None yet (the controller has not finished a pass with this file).
    Missing,
    /// Not a status document apimount wrote.
    Unreadable(String),
    /// About another version of the manifest.
    OtherVersion,
    /// This version is live (`Programmed` True).
    Live,
    /// This version failed: AWS is asked whether that can pass.
    Failed(String),
    /// This version is on its way.
    InProgress(String),
}

impl Document {
    /// Reads a document's text for the manifest version `generation` (and
    /// the release of `release`, for a mount with one).
    pub fn read(text: Option<&str>, generation: &str, release: Option<&str>) -> Document {
        let Some(text) = text else {
            return Document::Missing;
        };
        let doc: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => return Document::Unreadable(e.to_string()),
        };
        if doc["kind"] != "ServiceMountStatus" {
            return Document::Unreadable("not a ServiceMountStatus document".into());
        }
        if doc["observedGeneration"].as_str() != Some(generation) {
            return Document::OtherVersion;
        }
        let programmed = doc["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Programmed" && c["status"] == "True");
        let field = |name: &str| doc[name].as_str().unwrap_or_default().to_string();
        if let (true, Some(version)) = (programmed, release) {
            if doc["release"]["version"].as_str() != Some(version) {
                return Document::OtherVersion;
            }
            let released = doc["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Released");
            let Some(c) = released else {
                return Document::InProgress("without a Released condition yet".into());
            };
            let reason = c["reason"].as_str().unwrap_or_default();
            let message = c["message"].as_str().unwrap_or_default();
            return match (c["status"].as_str(), reason) {
                (Some("True"), _) => Document::Live,
                (_, "RolledBack" | "AliasConflict") => {
                    Document::Failed(format!("{reason}: {message}"))
                }
                _ => Document::InProgress(format!("releasing: {reason} {message}")),
            };
        }
        match (programmed, field("state").as_str()) {
            (true, _) => Document::Live,
            (false, "Failed") => {
                Document::Failed(format!("{}: {}", field("reason"), field("message")))
            }
            (false, state) => {
                Document::InProgress(format!("{state} {}", field("reason")).trim().to_string())
            }
        }
    }

    /// Whether AWS is to confirm what the document says (it says the
    /// version is live, or failed).
    pub fn to_confirm(&self) -> bool {
        matches!(self, Document::Live | Document::Failed(_))
    }

    /// Why the wait goes on, in words.
    pub fn why(&self) -> String {
        match self {
            Document::Missing => {
                "no status document for this manifest yet (is the controller writing them there?)"
                    .into()
            }
            Document::Unreadable(e) => format!("the status document cannot be read: {e}"),
            Document::OtherVersion => {
                "the controller has not reported this version of the manifest yet".into()
            }
            Document::Live => "the status document says it is live; confirming on AWS".into(),
            Document::Failed(why) => {
                format!("the status document says it failed ({why}); confirming on AWS")
            }
            Document::InProgress(state) => format!("the controller reports it {state}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn stage(deployment: &str) -> Option<ObservedStage> {
        Some(ObservedStage {
            deployment_id: Some(deployment.into()),
            tags: BTreeMap::new(),
            method_settings: BTreeMap::new(),
        })
    }

    #[test]
    fn the_pace_stays_within_the_share() {
        let p = Pace::within(0.05);
        // GetStage: 1 every 2 s is 0.5/s, 5 % of the 10/s all calls share.
        assert_eq!(p.poll, Duration::from_secs(2));
        assert_eq!(p.full_every, Duration::from_secs(60));
        let p = Pace::within(0.01);
        assert_eq!(p.poll, Duration::from_secs(10));
        // 1 % of GetResources' 2.5/s: one whole read every 40 s at most; a minute here.
        assert_eq!(p.full_every, Duration::from_secs(60));
        let p = Pace::within(0.002);
        assert_eq!(p.full_every, Duration::from_secs(200));
        assert_eq!(Pace::within(1.0).poll, MIN_POLL);
    }

    #[test]
    fn the_api_is_read_only_when_something_moved() {
        let pace = Pace::within(0.05);
        let t0 = Instant::now();
        let last = LastLook {
            stage: stage("d1"),
            generation: "g1".into(),
            at: t0,
        };
        let soon = t0 + Duration::from_secs(10);
        // (last look, stage now, generation now, when, due)
        type Row<'a> = (
            Option<&'a LastLook>,
            Option<ObservedStage>,
            &'a str,
            Instant,
            bool,
        );
        let rows: Vec<Row> = vec![
            (None, stage("d1"), "g1", soon, true),
            (Some(&last), stage("d1"), "g1", soon, false),
            (Some(&last), stage("d2"), "g1", soon, true),
            (Some(&last), None, "g1", soon, true),
            (Some(&last), stage("d1"), "g2", soon, true),
            (
                Some(&last),
                stage("d1"),
                "g1",
                t0 + Duration::from_secs(60),
                true,
            ),
        ];
        for (i, (l, s, g, now, due)) in rows.into_iter().enumerate() {
            assert_eq!(full_look_due(l, &s, g, now, &pace), due, "row {i}");
        }
        // Tags alone (the journal) do not count; method settings do.
        let mut tagged = stage("d1");
        tagged.as_mut().unwrap().tags.insert("k".into(), "v".into());
        assert!(!full_look_due(Some(&last), &tagged, "g1", soon, &pace));
        let mut throttled = stage("d1");
        throttled.as_mut().unwrap().method_settings.insert(
            "~1a/GET".into(),
            crate::plan::model::StageMethodSetting {
                rate_limit: crate::plan::model::Rate(1.0),
                burst_limit: 1,
                behaviour: Default::default(),
            },
        );
        assert!(full_look_due(Some(&last), &throttled, "g1", soon, &pace));
    }

    #[test]
    fn documents_by_table() {
        let doc = |generation: &str, programmed: &str, state: &str| {
            format!(
                r#"{{"kind": "ServiceMountStatus", "observedGeneration": "{generation}", "state": "{state}", "reason": "R", "message": "m",
                    "conditions": [{{"type": "Programmed", "status": "{programmed}"}}]}}"#
            )
        };
        let rows = [
            (None, Document::Missing),
            (Some("{".to_string()), Document::Unreadable(String::new())),
            (Some("{}".to_string()), Document::Unreadable(String::new())),
            (Some(doc("g0", "True", "Ready")), Document::OtherVersion),
            (Some(doc("g1", "True", "Ready")), Document::Live),
            (
                Some(doc("g1", "False", "Failed")),
                Document::Failed("R: m".into()),
            ),
            (
                Some(doc("g1", "False", "Progressing")),
                Document::InProgress("Progressing R".into()),
            ),
        ];
        for (text, want) in rows {
            let got = Document::read(text.as_deref(), "g1", None);
            match (&got, &want) {
                (Document::Unreadable(_), Document::Unreadable(_)) => {}
                _ => assert_eq!(got, want, "{text:?}"),
            }
        }
        assert!(Document::Live.to_confirm() && Document::Failed(String::new()).to_confirm());
        assert!(!Document::Missing.to_confirm() && !Document::OtherVersion.to_confirm());
        assert!(!Document::InProgress(String::new()).to_confirm());
    }
}
