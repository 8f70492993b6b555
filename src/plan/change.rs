//! One change to the gateway or to a function's policy: what it is, how it
//! reads in a plan, and how it alters a model of the API once AWS made it.

use std::fmt;

use super::model::{MethodSettings, ResolvedFunction};
use super::model::{Methods, ObservedApi, ObservedIntegration, ObservedMethod, ObservedResource};
use crate::manifest::HttpMethod;

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
    /// Create or overwrite the Lambda proxy integration of a method.
    PutIntegration {
        path: String,
        verb: HttpMethod,
        uri: String,
        why: Option<String>,
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
            Change::PutIntegration { why: None, .. } => ChangeKind::Create,
            Change::ReplaceMethod { .. }
            | Change::PutIntegration { .. }
            | Change::ReplacePermission { .. } => ChangeKind::Update,
            Change::RemovePermission { .. }
            | Change::DeleteMethod { .. }
            | Change::DeleteResource { .. } => ChangeKind::Delete,
        }
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
    /// and a bare resource (no method at or below it) serves nothing.
    pub fn alters_routes(&self, api: &ObservedApi) -> bool {
        match self {
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. }
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
                path, verb, uri, ..
            } => {
                if let Some(m) = api
                    .resources
                    .get_mut(path)
                    .and_then(|r| r.methods.get_mut(verb.as_str()))
                {
                    m.integration = Some(ObservedIntegration::lambda_proxy(uri));
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
            | Change::RemovePermission { .. } => {}
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
                why,
            } => match why {
                None => write!(f, "+ integration {verb} {path} -> {}", short_uri(uri)),
                Some(w) => write!(f, "~ integration {verb} {path} -> {}: {w}", short_uri(uri)),
            },
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
