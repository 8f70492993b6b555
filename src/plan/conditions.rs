//! The status vocabulary: mount states and the fixed set of reasons a mount can
//! fail for. Logs, `apimount status` and metrics all use these names, so they
//! are named here rather than written as strings through the code.

use std::fmt;

/// The state of one mount after a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum State {
    /// The gateway matches the manifest and the stage serves it.
    Ready,
    /// Changes are pending or being made.
    Progressing,
    /// The mount could not be brought in line; see the reason.
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "Ready",
            State::Progressing => "Progressing",
            State::Failed => "Failed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a mount is not Ready. Each reason says whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reason {
    /// The manifest file is unreadable or invalid; its last routes are kept.
    InvalidManifest,
    /// Another manifest already uses this name or path.
    DuplicateManifest,
    /// The Lambda function does not exist or is in another region or partition.
    FunctionNotFound,
    /// The path is already served by a route apimount does not own.
    PathConflict,
    /// AWS refused a call for lack of permission.
    AccessDenied,
    /// AWS refused the credentials themselves (expired, unknown, badly
    /// signed), or none could be loaded: the credential chain, not IAM.
    CredentialsRejected,
    /// AWS kept throttling after the SDK's retries.
    Throttled,
    /// Any other AWS failure (timeouts, 5xx, unexpected answers).
    AwsError,
    /// AWS refused the request as invalid (400): a wrong authorizer id, an
    /// ARN it does not accept. Retrying the same request cannot help.
    InvalidRequest,
    /// A per-API quota was reached (e.g. 300 resources).
    LimitExceeded,
    /// The path is outside the subtrees the tenant policy delegates to the
    /// manifest's tenant.
    NotDelegated,
    /// The function is not one the manifest's tenant may mount.
    FunctionNotAllowed,
    /// The function is in an account the manifest's tenant may not use, or
    /// one for which no role is configured.
    AccountNotAllowed,
    /// The authorization type is not one the manifest's tenant may use.
    AuthorizationNotAllowed,
    /// The manifest asks to adopt, which its tenant may not.
    AdoptNotAllowed,
    /// The mount would take its tenant over its resource budget.
    OverBudget,
    /// A route option (`cors`, `throttle`, `timeoutMs`) is outside what the
    /// manifest's tenant may set.
    OptionNotAllowed,
    /// The stage cannot be deployed: a method lacks an integration (AWS
    /// refuses the whole deployment), or deploying would take a served
    /// route offline. The stage keeps serving its last deployment.
    DeployBlocked,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::InvalidManifest => "InvalidManifest",
            Reason::DuplicateManifest => "DuplicateManifest",
            Reason::FunctionNotFound => "FunctionNotFound",
            Reason::PathConflict => "PathConflict",
            Reason::AccessDenied => "AccessDenied",
            Reason::CredentialsRejected => "CredentialsRejected",
            Reason::Throttled => "Throttled",
            Reason::AwsError => "AwsError",
            Reason::InvalidRequest => "InvalidRequest",
            Reason::LimitExceeded => "LimitExceeded",
            Reason::NotDelegated => "NotDelegated",
            Reason::FunctionNotAllowed => "FunctionNotAllowed",
            Reason::AccountNotAllowed => "AccountNotAllowed",
            Reason::AuthorizationNotAllowed => "AuthorizationNotAllowed",
            Reason::AdoptNotAllowed => "AdoptNotAllowed",
            Reason::OverBudget => "OverBudget",
            Reason::OptionNotAllowed => "OptionNotAllowed",
            Reason::DeployBlocked => "DeployBlocked",
        }
    }

    /// The condition a failure of this reason is reported under.
    pub fn condition(self) -> ConditionType {
        use Reason::*;
        match self {
            InvalidManifest
            | DuplicateManifest
            | PathConflict
            | NotDelegated
            | FunctionNotAllowed
            | AccountNotAllowed
            | AuthorizationNotAllowed
            | AdoptNotAllowed
            | OverBudget
            | OptionNotAllowed => ConditionType::Accepted,
            FunctionNotFound => ConditionType::ResolvedRefs,
            AccessDenied | CredentialsRejected | Throttled | AwsError | InvalidRequest
            | LimitExceeded | DeployBlocked => ConditionType::Programmed,
        }
    }

    /// Whether the stage cannot come to serve the manifest without someone
    /// changing something (the manifest, the policy, the gateway): `apimount
    /// wait` gives up at once on these.
    pub fn needs_a_change(self) -> bool {
        !self.is_transient()
    }

    /// Whether waiting and retrying may fix it without anyone changing anything.
    /// The others wait for a change to the manifests (or to the gateway, seen at
    /// the next resync) instead of retrying with backoff.
    pub fn is_transient(self) -> bool {
        // Credentials the chain refreshes by itself (a rotated role, a new
        // token file) come right without anyone changing anything.
        matches!(
            self,
            Reason::Throttled | Reason::AwsError | Reason::CredentialsRejected
        )
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The conditions each manifest reports, in the Kubernetes style (as Gateway
/// API routes report `Accepted` and `ResolvedRefs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionType {
    /// Valid, not a losing duplicate, within what its tenant may do, and its
    /// routes are free for it to take.
    Accepted,
    /// What it refers to exists: the function.
    ResolvedRefs,
    /// The live stage serves exactly this version of the manifest.
    Programmed,
    /// The release's version takes all of the route's traffic (mounts with
    /// `spec.release` only; not in [`ConditionType::ALL`]).
    Released,
}

impl ConditionType {
    pub const ALL: [ConditionType; 3] = [
        ConditionType::Accepted,
        ConditionType::ResolvedRefs,
        ConditionType::Programmed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ConditionType::Accepted => "Accepted",
            ConditionType::ResolvedRefs => "ResolvedRefs",
            ConditionType::Programmed => "Programmed",
            ConditionType::Released => "Released",
        }
    }

    /// The reason of the condition when it holds.
    pub fn true_reason(self) -> &'static str {
        match self {
            ConditionType::Accepted => ACCEPTED,
            ConditionType::ResolvedRefs => RESOLVED_REFS,
            ConditionType::Programmed => DEPLOYED,
            ConditionType::Released => "Promoted",
        }
    }
}

/// `Accepted` holds.
pub const ACCEPTED: &str = "Accepted";
/// `ResolvedRefs` holds.
pub const RESOLVED_REFS: &str = "ResolvedRefs";
/// `Programmed` holds: the stage serves this version.
pub const DEPLOYED: &str = "Deployed";
/// `Programmed` does not hold yet: changes are to be made or deployed.
pub const PENDING: &str = "Pending";
/// A condition that cannot be told because an earlier one does not hold.
pub const NOT_EVALUATED: &str = "NotEvaluated";

/// Whether a condition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl ConditionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConditionStatus::True => "True",
            ConditionStatus::False => "False",
            ConditionStatus::Unknown => "Unknown",
        }
    }
}

/// One condition of a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: ConditionType,
    pub status: ConditionStatus,
    /// A [`Reason`] name, or one of the named constants of this module.
    pub reason: &'static str,
    pub message: String,
}

/// The three conditions of a manifest, from what a pass found: its problem
/// (if any), and whether it is in line but not yet served (`pending`).
pub fn conditions(problem: Option<&Problem>, pending: bool) -> [Condition; 3] {
    let failed_at = problem.map(|p| p.reason.condition());
    ConditionType::ALL.map(|kind| {
        let (status, reason, message) = match (problem, failed_at) {
            (Some(p), Some(at)) if at == kind => {
                (ConditionStatus::False, p.reason.as_str(), p.message.clone())
            }
            (Some(p), Some(at)) if at < kind => {
                let why = format!("{} is False ({})", at.as_str(), p.reason);
                if kind == ConditionType::Programmed {
                    (ConditionStatus::False, p.reason.as_str(), why)
                } else {
                    (ConditionStatus::Unknown, NOT_EVALUATED, why)
                }
            }
            _ if kind == ConditionType::Programmed && pending => (
                ConditionStatus::False,
                PENDING,
                "changes are to be made or deployed".to_string(),
            ),
            _ => (ConditionStatus::True, kind.true_reason(), String::new()),
        };
        Condition {
            kind,
            status,
            reason,
            message,
        }
    })
}

/// A reason with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
    /// The manifest field the problem is about, where one field is
    /// (`spec.throttle.rateLimit`), for `apimount validate`'s wording.
    pub field: Option<&'static str>,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Problem {
        Problem {
            reason,
            message: message.into(),
            field: None,
        }
    }

    /// The same problem, about `field`.
    pub fn at(mut self, field: &'static str) -> Problem {
        self.field = Some(field);
        self
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_spelt_as_kubernetes_does() {
        assert_eq!(ConditionStatus::True.as_str(), "True");
        assert_eq!(ConditionStatus::False.as_str(), "False");
        assert_eq!(ConditionStatus::Unknown.as_str(), "Unknown");
        // States and reasons are shown (logs, `status`) as they are spelt.
        let shown: Vec<String> = [State::Ready, State::Progressing, State::Failed]
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(shown, ["Ready", "Progressing", "Failed"]);
        assert_eq!(Reason::DeployBlocked.to_string(), "DeployBlocked");
    }

    #[test]
    fn each_reason_goes_to_its_condition() {
        use ConditionType::*;
        use Reason::*;
        let table = [
            (InvalidManifest, Accepted),
            (DuplicateManifest, Accepted),
            (PathConflict, Accepted),
            (NotDelegated, Accepted),
            (FunctionNotAllowed, Accepted),
            (AccountNotAllowed, Accepted),
            (AuthorizationNotAllowed, Accepted),
            (AdoptNotAllowed, Accepted),
            (OverBudget, Accepted),
            (OptionNotAllowed, Accepted),
            (FunctionNotFound, ResolvedRefs),
            (AccessDenied, Programmed),
            (CredentialsRejected, Programmed),
            (Throttled, Programmed),
            (AwsError, Programmed),
            (InvalidRequest, Programmed),
            (LimitExceeded, Programmed),
            (DeployBlocked, Programmed),
        ];
        // One row per reason: each name appears once.
        let names: std::collections::BTreeSet<&str> =
            table.iter().map(|(r, _)| r.as_str()).collect();
        assert_eq!(names.len(), 18, "a row for every reason");
        for (reason, want) in table {
            assert_eq!(reason.condition(), want, "{reason}");
            let conds = conditions(Some(&Problem::new(reason, "m")), false);
            let c = &conds[want as usize];
            assert_eq!(
                (c.status, c.reason),
                (ConditionStatus::False, reason.as_str()),
                "{reason}"
            );
            // What comes before it holds; Programmed never holds after a failure.
            for earlier in &conds[..want as usize] {
                assert_eq!(earlier.status, ConditionStatus::True, "{reason}");
            }
            assert_eq!(conds[2].status, ConditionStatus::False, "{reason}");
        }
        assert_eq!(
            (Throttled.needs_a_change(), DeployBlocked.needs_a_change()),
            (false, true)
        );
    }

    #[test]
    fn a_mount_in_line_is_programmed_once_served() {
        let ready = conditions(None, false);
        assert!(ready.iter().all(|c| c.status == ConditionStatus::True));
        assert_eq!(ready[2].reason, DEPLOYED);
        let pending = conditions(None, true);
        assert_eq!(
            (pending[2].status, pending[2].reason),
            (ConditionStatus::False, PENDING)
        );
        assert_eq!(pending[0].status, ConditionStatus::True);
    }
}
