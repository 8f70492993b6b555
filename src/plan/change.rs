//! One change to the gateway or to a function's policy: what it is, how it
//! reads in a plan, and how it alters a model of the API once AWS made it.

use std::fmt;

use super::model::{Behaviour, MethodSettings, Rate, ResolvedFunction};
use super::model::{Methods, ObservedApi, ObservedIntegration, ObservedMethod, ObservedResource};
use super::route_options::Preflight;
use super::stage_settings::describe_throttling;
use crate::manifest::{HttpMethod, Throttle};

/// One change to the gateway or to a function's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Create a resource; its parent exists or is created before it.
    CreateResource {
        path: String,
    },
    /// Create a method that does not exist yet.
    PutMethod {
        path: String,
        verb: HttpMethod,
        settings: MethodSettings,
    },
    /// A method of ours whose settings drifted (or one being adopted or taken
    /// over): delete it and put it again. Nothing is live until the deployment.
    ReplaceMethod {
        path: String,
        verb: HttpMethod,
        settings: MethodSettings,
        why: String,
    },
    /// Create or overwrite the Lambda proxy integration of a method, with
    /// its timeout (`None`: API Gateway's default).
    PutIntegration {
        path: String,
        verb: HttpMethod,
        uri: String,
        timeout_ms: Option<u32>,
        why: Option<String>,
    },
    /// Give the OPTIONS method at `path` its CORS preflight answer: a method
    /// response, a MOCK integration and an integration response with the
    /// Access-Control-* headers. Nothing when it has them already (a method
    /// repaired in place keeps them); made again whole when they differ.
    PutPreflight {
        path: String,
        settings: MethodSettings,
        preflight: Preflight,
        why: Option<String>,
    },
    /// Set the throttling of one route and verb in the stage's method
    /// settings (`was`: what it had, when it had an entry). `copy`: the
    /// stage default's other settings, written into a new entry and into one
    /// that no longer has them. Takes effect without a deployment.
    PutThrottle {
        path: String,
        verb: HttpMethod,
        throttle: Throttle,
        copy: Option<Behaviour>,
        was: Option<String>,
    },
    /// Take this owner's throttling off one route and verb: the entry goes,
    /// unless it also carries settings of someone's (`keep`); then its
    /// throttling becomes the stage default's (`to`). `to` is also what a
    /// backend that would not remove the entry is given.
    ClearThrottle {
        path: String,
        verb: String,
        keep: bool,
        to: (Rate, i32),
        was: String,
    },
    AddPermission {
        function: String,
        sid: String,
        source_arn: String,
    },
    /// Our statement id exists with other content: remove it and add it again.
    ReplacePermission {
        function: String,
        sid: String,
        source_arn: String,
    },
    RemovePermission {
        function: String,
        sid: String,
    },
    DeleteMethod {
        path: String,
        verb: String,
    },
    /// Delete a resource (and, on AWS, its subtree; we delete deepest first).
    DeleteResource {
        path: String,
    },
}

/// Coarse kind of a change, for summaries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Create,
    Update,
    Delete,
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match self {
            Change::CreateResource { .. }
            | Change::PutMethod { .. }
            | Change::AddPermission { .. } => ChangeKind::Create,
            Change::PutIntegration { why: None, .. }
            | Change::PutPreflight { why: None, .. }
            | Change::PutThrottle { was: None, .. } => ChangeKind::Create,
            Change::ReplaceMethod { .. }
            | Change::PutIntegration { .. }
            | Change::PutPreflight { .. }
            | Change::PutThrottle { .. }
            | Change::ReplacePermission { .. } => ChangeKind::Update,
            Change::RemovePermission { .. }
            | Change::DeleteMethod { .. }
            | Change::DeleteResource { .. }
            | Change::ClearThrottle { .. } => ChangeKind::Delete,
        }
    }

    /// Whether the change is to the stage's method settings: made after the
    /// routes, needs the stage, and is never deployed.
    pub fn is_stage_setting(&self) -> bool {
        matches!(
            self,
            Change::PutThrottle { .. } | Change::ClearThrottle { .. }
        )
    }

    /// Whether the change gives a route its invoke permission.
    pub fn is_grant(&self) -> bool {
        matches!(
            self,
            Change::AddPermission { .. } | Change::ReplacePermission { .. }
        )
    }

    /// Whether the change, made on `api` as it is just before it, alters what
    /// a deployment would serve. Permissions are not part of a deployment,
    /// nor are the stage's method settings (throttling takes effect at
    /// once), and a bare resource (no method at or below it) serves nothing.
    pub fn alters_routes(&self, api: &ObservedApi) -> bool {
        match self {
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. }
            | Change::PutThrottle { .. }
            | Change::ClearThrottle { .. }
            | Change::CreateResource { .. } => false,
            Change::DeleteResource { path } => api.serves_at_or_below(path),
            _ => true,
        }
    }
}

impl Change {
    /// Mirrors a change that AWS carried out onto a model of the API, so the
    /// state after a pass is known without reading the whole API again.
    /// Resources this creates get an empty id (the executor records real ids);
    /// permission changes do not touch the API model.
    pub fn apply_to(&self, api: &mut ObservedApi) {
        fn resource(api: &mut ObservedApi, path: &str) {
            if api.get(path).is_none() {
                api.resources.insert(
                    path.to_string(),
                    ObservedResource {
                        id: String::new(),
                        path: path.to_string(),
                        methods: Methods::new(),
                    },
                );
            }
        }
        match self {
            Change::CreateResource { path } => resource(api, path),
            Change::PutMethod {
                path,
                verb,
                settings,
            }
            | Change::ReplaceMethod {
                path,
                verb,
                settings,
                ..
            } => {
                resource(api, path);
                // A replaced method loses its integration until it is put back.
                api.resources
                    .get_mut(path)
                    .expect("just ensured")
                    .methods
                    .insert(
                        verb.as_str().into(),
                        ObservedMethod::from_settings(settings),
                    );
            }
            Change::PutIntegration {
                path,
                verb,
                uri,
                timeout_ms,
                ..
            } => {
                if let Some(m) = api
                    .resources
                    .get_mut(path)
                    .and_then(|r| r.methods.get_mut(verb.as_str()))
                {
                    m.integration =
                        Some(ObservedIntegration::lambda_proxy(uri).with_timeout(*timeout_ms));
                }
            }
            Change::PutPreflight {
                path, preflight, ..
            } => {
                if let Some(m) = api
                    .resources
                    .get_mut(path)
                    .and_then(|r| r.methods.get_mut(HttpMethod::Options.as_str()))
                {
                    m.integration = Some(preflight.integration());
                    m.responses = preflight.method_responses();
                }
            }
            Change::DeleteMethod { path, verb } => {
                if let Some(r) = api.resources.get_mut(path) {
                    r.methods.remove(verb);
                }
            }
            Change::DeleteResource { path } => {
                // AWS deletes the whole subtree.
                let below = format!("{path}/");
                api.resources
                    .retain(|p, _| p != path && !p.starts_with(&below));
            }
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. }
            | Change::PutThrottle { .. }
            | Change::ClearThrottle { .. } => {}
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::CreateResource { path } => write!(f, "+ resource {path}"),
            Change::PutMethod {
                path,
                verb,
                settings,
            } => write!(
                f,
                "+ method {verb} {path} (authorization {}{})",
                settings.authorization.as_str(),
                if settings.api_key_required {
                    ", API key required"
                } else {
                    ""
                }
            ),
            Change::ReplaceMethod {
                path, verb, why, ..
            } => write!(f, "~ method {verb} {path}: {why}"),
            Change::PutIntegration {
                path,
                verb,
                uri,
                timeout_ms,
                why,
            } => {
                let timeout = timeout_ms
                    .map(|t| format!(" (timeout {t} ms)"))
                    .unwrap_or_default();
                match why {
                    None => write!(
                        f,
                        "+ integration {verb} {path} -> {}{timeout}",
                        short_uri(uri)
                    ),
                    Some(w) => write!(
                        f,
                        "~ integration {verb} {path} -> {}{timeout}: {w}",
                        short_uri(uri)
                    ),
                }
            }
            Change::PutPreflight {
                path,
                preflight,
                why,
                ..
            } => match why {
                None => write!(f, "+ CORS preflight OPTIONS {path}: {}", preflight.summary),
                Some(w) => write!(f, "~ CORS preflight OPTIONS {path}: {w}"),
            },
            Change::PutThrottle {
                path,
                verb,
                throttle,
                was,
                ..
            } => match was {
                None => write!(f, "+ throttle {verb} {path}: {throttle}"),
                Some(w) => write!(f, "~ throttle {verb} {path}: {throttle} (was {w})"),
            },
            Change::ClearThrottle {
                path,
                verb,
                keep,
                to,
                was,
            } => {
                write!(f, "- throttle {verb} {path} (was {was})")?;
                if *keep {
                    write!(
                        f,
                        "; its other method settings stay, its throttling follows the stage default ({})",
                        describe_throttling(*to)
                    )?;
                }
                Ok(())
            }
            Change::AddPermission {
                function,
                sid,
                source_arn,
            } => write!(f, "+ permission {sid} on {function} for {source_arn}"),
            Change::ReplacePermission {
                function,
                sid,
                source_arn,
            } => write!(f, "~ permission {sid} on {function}: reset to {source_arn}"),
            Change::RemovePermission { function, sid } => {
                write!(f, "- permission {sid} on {function}")
            }
            Change::DeleteMethod { path, verb } => write!(f, "- method {verb} {path}"),
            Change::DeleteResource { path } => write!(f, "- resource {path}"),
        }
    }
}

/// The function ARN inside a Lambda integration URI, for display.
pub(crate) fn short_uri(uri: &str) -> String {
    match ResolvedFunction::from_integration_uri(uri) {
        Some(f) => f.arn(),
        None => uri.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_integration_is_shown_by_its_functions_arn() {
        let arn = "arn:aws-cn:lambda:cn-north-1:111122223333:function:payments:live";
        let uri = format!(
            "arn:aws-cn:apigateway:cn-north-1:lambda:path/2015-03-31/functions/{arn}/invocations"
        );
        assert_eq!(short_uri(&uri), arn);
        // Anything else is shown as it is.
        assert_eq!(short_uri("http://example.com/x"), "http://example.com/x");
        let put = |why: Option<&str>| Change::PutIntegration {
            path: "/pay".into(),
            verb: HttpMethod::Post,
            uri: uri.clone(),
            timeout_ms: Some(3000),
            why: why.map(str::to_string),
        };
        assert_eq!(
            put(None).to_string(),
            format!("+ integration POST /pay -> {arn} (timeout 3000 ms)")
        );
        assert_eq!(
            put(Some("it invokes another function")).to_string(),
            format!(
                "~ integration POST /pay -> {arn} (timeout 3000 ms): it invokes another function"
            )
        );
    }
}
