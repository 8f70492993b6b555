//! Whether a pass deploys: one pure decision, made from what the stage
//! serves and what the API holds, for plan mode and apply mode alike.
//!
//! A deployment is a snapshot of the whole API. apimount records in each
//! deployment's description a fingerprint of every owner's routes (see
//! `names`), so the stage is known to be behind this owner's routes when the
//! fingerprint of the deployment it serves differs from the API's, even when
//! the change that made the difference was made by a pass that died before
//! it could deploy.

use super::model::ObservedApi;

/// What the decision is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeployFacts<'a> {
    /// The stage exists.
    pub stage_exists: bool,
    /// This owner's fingerprint in the deployment the stage serves; `None`
    /// when that deployment does not mention this owner or could not be read.
    pub deployed: Option<&'a str>,
    /// This owner's fingerprint of the API as it is (after this pass's
    /// changes, in apply mode).
    pub current: &'a str,
    /// This owner has at least one method on the API.
    pub owner_has_routes: bool,
    /// The API has at least one method (AWS refuses to deploy an empty API).
    pub api_has_methods: bool,
    /// This pass changed what a deployment would contain (apply mode), or
    /// would (plan mode).
    pub changes_routes: bool,
    /// Shutdown was asked for: the next start deploys instead.
    pub stopping: bool,
    /// Something on the API would make AWS refuse the deployment, or the
    /// deployment would take a served route offline (see [`blocker`]).
    pub blocked: bool,
}

impl<'a> DeployFacts<'a> {
    /// The facts about `api` as it is now. `current` must be this owner's
    /// fingerprint of `api` (see `names::owner_fingerprint`).
    pub fn of(
        api: &ObservedApi,
        owner: &str,
        current: &'a str,
        stage_exists: bool,
        deployed: Option<&'a str>,
    ) -> DeployFacts<'a> {
        DeployFacts {
            stage_exists,
            deployed,
            current,
            owner_has_routes: api.methods().any(|(_, _, m)| m.ownership().is(owner)),
            api_has_methods: api.methods().next().is_some(),
            changes_routes: false,
            stopping: false,
            blocked: false,
        }
    }
}

/// The decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deploy {
    /// The stage serves this owner's routes as they are: nothing to deploy.
    UpToDate,
    /// Make one deployment and point the stage at it.
    Now,
    /// A deployment is due, but shutdown was asked for; the next start makes it.
    Deferred,
    /// A deployment is due, but API Gateway would refuse it: the API has no
    /// method left. The stage keeps serving its last deployment.
    EmptyApi,
    /// A deployment is due, but it would be refused, or would take a served
    /// route offline: the stage keeps serving its last deployment.
    Blocked,
}

impl Deploy {
    /// Whether the stage is (or would be) behind when the pass ends.
    pub fn is_pending(self) -> bool {
        self != Deploy::UpToDate
    }
}

/// Whether the stage is behind this owner's routes.
pub fn stage_is_behind(f: &DeployFacts<'_>) -> bool {
    if !f.stage_exists {
        return f.owner_has_routes;
    }
    match f.deployed {
        Some(fp) => fp != f.current,
        // A deployment that does not mention this owner: behind if it has routes.
        None => f.owner_has_routes,
    }
}

/// Decides whether to deploy.
pub fn decide(f: &DeployFacts<'_>) -> Deploy {
    if !(f.changes_routes || stage_is_behind(f)) {
        Deploy::UpToDate
    } else if f.stopping {
        Deploy::Deferred
    } else if !f.api_has_methods {
        Deploy::EmptyApi
    } else if f.blocked {
        Deploy::Blocked
    } else {
        Deploy::Now
    }
}

/// What stands in the way of deploying `api`: a method without an
/// integration (AWS refuses to deploy the whole API while one exists: "No
/// integration defined for method"), or a route in `lost` (served before the
/// pass, still wanted, and without its method now). `None` when the
/// deployment can go ahead.
pub fn blocker(api: &ObservedApi, lost: &[(String, String)]) -> Option<String> {
    if let Some((path, verb)) = lost.first() {
        return Some(format!(
            "{verb} {path} is served by the stage and still wanted, but lost its method in this pass; deploying would take it offline"
        ));
    }
    api.methods()
        .find(|(_, _, m)| m.integration.is_none())
        .map(|(path, verb, m)| {
            format!(
                "{verb} {path} has no integration (operationName {}), and API Gateway refuses to deploy an API while any method lacks one",
                m.operation_name.as_deref().unwrap_or("unset")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> DeployFacts<'static> {
        DeployFacts {
            stage_exists: true,
            deployed: Some("aaaa"),
            current: "aaaa",
            owner_has_routes: true,
            api_has_methods: true,
            changes_routes: false,
            stopping: false,
            blocked: false,
        }
    }

    #[test]
    fn decisions() {
        type Edit = fn(&mut DeployFacts<'static>);
        let table: &[(&str, Edit, Deploy)] = &[
            ("in sync", |_| {}, Deploy::UpToDate),
            ("routes changed", |f| f.changes_routes = true, Deploy::Now),
            (
                "a change a crash left undeployed",
                |f| f.current = "bbbb",
                Deploy::Now,
            ),
            ("no stage yet", |f| f.stage_exists = false, Deploy::Now),
            (
                "no stage and nothing of ours",
                |f| {
                    f.stage_exists = false;
                    f.owner_has_routes = false;
                },
                Deploy::UpToDate,
            ),
            (
                "a deployment made by hand that does not mention us",
                |f| f.deployed = None,
                Deploy::Now,
            ),
            (
                "a foreign deployment and nothing of ours",
                |f| {
                    f.deployed = None;
                    f.owner_has_routes = false;
                },
                Deploy::UpToDate,
            ),
            (
                "shutting down",
                |f| {
                    f.changes_routes = true;
                    f.stopping = true;
                },
                Deploy::Deferred,
            ),
            (
                "the last method of the API was removed",
                |f| {
                    f.changes_routes = true;
                    f.owner_has_routes = false;
                    f.api_has_methods = false;
                },
                Deploy::EmptyApi,
            ),
            (
                "in sync while shutting down",
                |f| f.stopping = true,
                Deploy::UpToDate,
            ),
            (
                "a method without integration",
                |f| {
                    f.changes_routes = true;
                    f.blocked = true;
                },
                Deploy::Blocked,
            ),
            (
                "blocked but nothing to deploy",
                |f| f.blocked = true,
                Deploy::UpToDate,
            ),
        ];
        for (what, edit, want) in table {
            let mut f = facts();
            edit(&mut f);
            assert_eq!(decide(&f), *want, "{what}");
            assert_eq!(decide(&f).is_pending(), *want != Deploy::UpToDate, "{what}");
        }
    }

    #[test]
    fn blockers() {
        use crate::plan::model::{ObservedIntegration, ObservedMethod, ObservedResource};
        let method = |integration: bool| ObservedMethod {
            authorization_type: "NONE".into(),
            authorizer_id: None,
            api_key_required: false,
            operation_name: Some("x".into()),
            integration: integration.then(|| ObservedIntegration::lambda_proxy("u")),
            responses: Default::default(),
        };
        let api = |integration: bool| {
            ObservedApi::from_resources(vec![ObservedResource {
                id: "a".into(),
                path: "/a".into(),
                methods: [("GET".to_string(), method(integration))]
                    .into_iter()
                    .collect(),
            }])
        };
        assert_eq!(blocker(&api(true), &[]), None);
        let why = blocker(&api(false), &[]).unwrap();
        assert!(why.starts_with("GET /a has no integration"), "{why}");
        let lost = [("/b".to_string(), "ANY".to_string())];
        assert!(blocker(&api(true), &lost)
            .unwrap()
            .starts_with("ANY /b is served"));
    }
}
