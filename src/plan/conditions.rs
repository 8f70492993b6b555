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
    /// The authorization type is not one the manifest's tenant may use.
    AuthorizationNotAllowed,
    /// The manifest asks to adopt, which its tenant may not.
    AdoptNotAllowed,
    /// The mount would take its tenant over its resource budget.
    OverBudget,
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
            Reason::Throttled => "Throttled",
            Reason::AwsError => "AwsError",
            Reason::InvalidRequest => "InvalidRequest",
            Reason::LimitExceeded => "LimitExceeded",
            Reason::NotDelegated => "NotDelegated",
            Reason::FunctionNotAllowed => "FunctionNotAllowed",
            Reason::AuthorizationNotAllowed => "AuthorizationNotAllowed",
            Reason::AdoptNotAllowed => "AdoptNotAllowed",
            Reason::OverBudget => "OverBudget",
            Reason::DeployBlocked => "DeployBlocked",
        }
    }

    /// Whether waiting and retrying may fix it without anyone changing anything.
    /// The others wait for a change to the manifests (or to the gateway, seen at
    /// the next resync) instead of retrying with backoff.
    pub fn is_transient(self) -> bool {
        matches!(self, Reason::Throttled | Reason::AwsError)
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A reason with a message a person can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: Reason,
    pub message: String,
}

impl Problem {
    pub fn new(reason: Reason, message: impl Into<String>) -> Problem {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}
