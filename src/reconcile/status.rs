//! Status documents: what a pass found of each manifest, with its
//! conditions (`Accepted`, `ResolvedRefs`, `Programmed`), in the one shape
//! that `apimount status --output json` prints and `apimount run
//! --status-dir` / `--status-prefix` writes, one document per manifest.
//!
//! ```json
//! {"apiVersion": "apimount/v1", "kind": "ServiceMountStatus",
//!  "manifest": "manifests/accounts.yaml", "name": "accounts", "tenant": null,
//!  "path": "/accounts", "function": "arn:…", "observedGeneration": "3fa2c1d0",
//!  "state": "Ready", "reason": "", "message": "",
//!  "conditions": [{"type": "Accepted", "status": "True", "reason": "Accepted",
//!                  "message": "", "lastTransitionTime": "2026-12-02T10:00:00Z"}, …]}
//! ```
//!
//! `observedGeneration` is the manifest's generation, a digest of its
//! meaning (comments and formatting do not change it); it is recorded in
//! the ownership marker of every route, so `Programmed` can be told from AWS.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use super::report::{invalid_reason, PassReport};
use crate::plan::conditions::{conditions, Condition, ConditionStatus, ConditionType};
use crate::plan::{Problem, State};

/// What a pass found of one manifest file.
#[derive(Debug, Clone, PartialEq)]
pub struct ManifestStatus {
    /// The file, as shown (a path, or s3://bucket/key).
    pub manifest: String,
    pub name: Option<String>,
    pub tenant: Option<String>,
    pub path: Option<String>,
    pub function: Option<String>,
    /// The account of the function (the API's for a function named by name).
    pub function_account: Option<String>,
    pub observed_generation: Option<String>,
    pub state: State,
    pub reason: String,
    pub message: String,
    pub conditions: [Condition; 3],
    /// The `Released` condition, for a mount with a release.
    pub released: Option<Condition>,
    /// The version the manifest releases, and the share of traffic it has.
    pub release: Option<(String, u8)>,
}

/// The status of every manifest of a pass.
pub fn statuses(r: &PassReport) -> Vec<ManifestStatus> {
    let mut out = Vec::new();
    for m in &r.mounts {
        // In line, but not served yet: the stage is behind the API.
        let state = match (m.state, r.stage_behind) {
            (State::Ready, true) => State::Progressing,
            (s, _) => s,
        };
        let pending = m.problem.is_none() && state != State::Ready;
        out.push(ManifestStatus {
            manifest: m.file.clone(),
            name: Some(m.name.clone()),
            tenant: m.tenant.clone(),
            path: Some(m.path.clone()),
            function: Some(m.function.clone()),
            function_account: m.function_account.clone().or_else(|| r.api_account.clone()),
            observed_generation: Some(m.generation.clone()),
            state,
            reason: match &m.problem {
                Some(p) => p.reason.to_string(),
                None if pending => crate::plan::conditions::PENDING.into(),
                None => String::new(),
            },
            message: m
                .problem
                .as_ref()
                .map(|p| p.message.clone())
                .unwrap_or_default(),
            conditions: conditions(m.problem.as_ref(), pending),
            released: m.released.as_ref().map(|r| r.condition()),
            release: m
                .release_version
                .clone()
                .map(|v| (v, m.released.as_ref().map_or(0, |r| r.weight()))),
        });
    }
    // A file with several problems reports the first.
    let mut seen = std::collections::BTreeSet::new();
    for e in &r.invalid {
        let file = e.file.display().to_string();
        if !seen.insert(file.clone()) {
            continue;
        }
        let problem = Problem::new(invalid_reason(e), e.to_string());
        out.push(ManifestStatus {
            manifest: file,
            name: None,
            tenant: None,
            path: None,
            function: None,
            function_account: None,
            observed_generation: None,
            state: State::Failed,
            reason: problem.reason.to_string(),
            message: problem.message.clone(),
            conditions: conditions(Some(&problem), false),
            released: None,
            release: None,
        });
    }
    out
}

/// The statuses to publish after a pass that could not observe AWS: the
/// last known status of each manifest still in the source (`present`, by
/// shown name), with `Programmed` Unknown for `reason` and its message; the
/// rest of what was known is kept. Manifests gone from the source are left
/// out (their documents go); one not known before gets none yet.
pub fn during_outage(
    last: &[ManifestStatus],
    present: &std::collections::BTreeSet<String>,
    reason: crate::plan::Reason,
    message: &str,
) -> Vec<ManifestStatus> {
    last.iter()
        .filter(|s| present.contains(&s.manifest))
        .cloned()
        .map(|mut s| {
            for c in s.conditions.iter_mut() {
                if c.kind == ConditionType::Programmed {
                    c.status = ConditionStatus::Unknown;
                    c.reason = reason.as_str();
                    c.message = format!("AWS could not be observed: {message}");
                }
            }
            s
        })
        .collect()
}

/// When each condition of each manifest last changed status, so documents
/// carry `lastTransitionTime` across passes (the daemon keeps one).
#[derive(Debug, Default)]
pub struct Transitions(BTreeMap<(String, ConditionType), (ConditionStatus, String)>);

impl Transitions {
    /// The documents of `statuses`, with transition times: a condition whose
    /// status is new since the last call gets `now`.
    pub fn documents(
        &mut self,
        statuses: &[ManifestStatus],
        now: SystemTime,
    ) -> Vec<(String, Value)> {
        let stamp = rfc3339(now);
        let mut next = BTreeMap::new();
        let docs = statuses
            .iter()
            .map(|s| {
                let times: Vec<String> = s
                    .conditions
                    .iter()
                    .chain(s.released.iter())
                    .map(|c| {
                        let key = (s.manifest.clone(), c.kind);
                        let time = match self.0.get(&key) {
                            Some((status, since)) if *status == c.status => since.clone(),
                            _ => stamp.clone(),
                        };
                        next.insert(key, (c.status, time.clone()));
                        time
                    })
                    .collect();
                (s.manifest.clone(), document(s, &times))
            })
            .collect();
        self.0 = next;
        docs
    }
}

/// One status document, with each condition's transition time.
pub fn document(s: &ManifestStatus, times: &[String]) -> Value {
    let conditions: Vec<Value> = s
        .conditions
        .iter()
        .chain(s.released.iter())
        .zip(times)
        .map(|(c, t)| {
            json!({
                "type": c.kind.as_str(),
                "status": c.status.as_str(),
                "reason": c.reason,
                "message": c.message,
                "lastTransitionTime": t,
            })
        })
        .collect();
    let mut doc = json!({
        "apiVersion": crate::manifest::API_VERSION,
        "kind": "ServiceMountStatus",
        "manifest": s.manifest,
        "name": s.name,
        "tenant": s.tenant,
        "path": s.path,
        "function": s.function,
        "functionAccount": s.function_account,
        "observedGeneration": s.observed_generation,
        "state": s.state.as_str(),
        "reason": s.reason,
        "message": s.message,
        "conditions": conditions,
    });
    if let Some((version, weight)) = &s.release {
        doc["release"] = json!({"version": version, "weight": weight});
    }
    doc
}

/// A time as RFC 3339 in UTC, to the second.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Days since 1970-01-01 to a civil date (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn an_outage_keeps_each_document_and_marks_programmed_unknown() {
        let known = |manifest: &str, state: State| ManifestStatus {
            manifest: manifest.into(),
            name: Some(manifest.into()),
            tenant: None,
            path: Some("/a".into()),
            function: Some("f".into()),
            function_account: None,
            observed_generation: Some("g".into()),
            state,
            reason: String::new(),
            message: String::new(),
            conditions: conditions(None, false),
            released: None,
            release: None,
        };
        let last = vec![known("a.yaml", State::Ready), known("b.yaml", State::Ready)];
        let present: std::collections::BTreeSet<String> = ["a.yaml".to_string()].into();
        let out = during_outage(
            &last,
            &present,
            crate::plan::Reason::CredentialsRejected,
            "expired",
        );
        assert_eq!(
            out.len(),
            1,
            "b.yaml is gone from the source: its document goes"
        );
        let a = &out[0];
        assert_eq!(a.state, State::Ready, "the last known state is kept");
        assert_eq!(a.observed_generation.as_deref(), Some("g"));
        let programmed = a
            .conditions
            .iter()
            .find(|c| c.kind == ConditionType::Programmed)
            .unwrap();
        assert_eq!(programmed.status, ConditionStatus::Unknown);
        assert_eq!(programmed.reason, "CredentialsRejected");
        assert!(programmed.message.ends_with("expired"));
        let accepted = a
            .conditions
            .iter()
            .find(|c| c.kind == ConditionType::Accepted)
            .unwrap();
        assert_eq!(accepted.status, ConditionStatus::True);
    }

    #[test]
    fn times_read_as_rfc3339() {
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_796_208_645), "2026-12-02T10:50:45Z");
    }

    #[test]
    fn transition_times_move_only_when_a_status_changes() {
        let status = |problem: Option<Problem>| ManifestStatus {
            manifest: "m.yaml".into(),
            name: Some("m".into()),
            tenant: None,
            path: Some("/m".into()),
            function: None,
            function_account: None,
            observed_generation: Some("00000000".into()),
            state: State::Ready,
            reason: String::new(),
            message: String::new(),
            conditions: conditions(problem.as_ref(), false),
            released: None,
            release: None,
        };
        let mut t = Transitions::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1000);
        let first = t.documents(&[status(None)], t0);
        let second = t.documents(&[status(None)], t0 + Duration::from_secs(60));
        assert_eq!(first, second, "nothing changed, the times stay");
        let third = t.documents(
            &[status(Some(Problem::new(
                crate::plan::Reason::Throttled,
                "x",
            )))],
            t0 + Duration::from_secs(120),
        );
        let times: Vec<&str> = third[0].1["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["lastTransitionTime"].as_str().unwrap())
            .collect();
        assert_eq!(times[0], rfc3339(t0), "Accepted still holds");
        assert_eq!(
            times[2],
            rfc3339(t0 + Duration::from_secs(120)),
            "Programmed changed"
        );
    }
}
