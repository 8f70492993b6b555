//! What a tenant policy means for a mount: which tenant a path is delegated
//! to, and whether a mount stays within what its tenant may do. Pure.
//!
//! - Delegation is by path subtree, and the most specific delegation owns
//!   its subtree: with `accounts: [/accounts]` and `admin: [/accounts/admin]`,
//!   `/accounts/admin` and below are admin's, the rest of `/accounts` is
//!   accounts'. A mount outside its tenant's subtrees is `NotDelegated`; so a
//!   team cannot shadow another's routes with a more specific literal path.
//! - A function must match one of the tenant's patterns, by its resolved
//!   name (an alias or version of an allowed function is allowed) or, for
//!   ARN patterns, by its ARN (`FunctionNotAllowed`).
//! - An authorization type must be one the tenant may use; NONE only when
//!   listed (`AuthorizationNotAllowed`). A `CUSTOM` or `COGNITO_USER_POOLS`
//!   mount must name one of the authorizers delegated to its tenant (by id,
//!   or by the name the API gives that id): an authorizer decides who gets
//!   in, so another team's, or one that lets everyone in, is not the
//!   tenant's to choose.
//! - `adopt` only where the tenant may adopt (`AdoptNotAllowed`).
//! - The resources a tenant's mounts need (their paths, `{proxy+}` children
//!   and parents) stay within its `maxResources` (`OverBudget`), so one team
//!   cannot use up the API's resource quota for everyone.
//! - Route options within the tenant's bounds (`OptionNotAllowed`): `cors`
//!   only where the tenant may answer preflights; with `maxRateLimit` or
//!   `maxBurstLimit`, every mount throttles, within them (an unthrottled
//!   route runs at the stage's and the account's limits, shared by every
//!   team); with `maxTimeoutMs`, the timeout (29,000 ms when the manifest
//!   sets none) stays within it.

use std::collections::{BTreeMap, BTreeSet};

use super::conditions::{Problem, Reason};
use super::model::ResolvedFunction;
use super::{ancestors, routes};
use crate::manifest::options::MAX_TIMEOUT_MS;
use crate::manifest::tenants::{Tenant, TenantPolicy};
use crate::manifest::{FunctionRef, Mount};

/// Whether a delegated subtree `root` covers `path`.
fn covers(root: &str, path: &str) -> bool {
    root == "/"
        || path == root
        || (path.starts_with(root) && path.as_bytes().get(root.len()) == Some(&b'/'))
}

/// The tenant `path` is delegated to: the one with the most specific
/// delegated subtree at or above it.
pub fn delegate_of<'p>(policy: &'p TenantPolicy, path: &str) -> Option<&'p Tenant> {
    policy
        .tenants
        .iter()
        .flat_map(|t| t.paths.iter().map(move |p| (p, t)))
        .filter(|(root, _)| covers(root, path))
        .max_by_key(|(root, _)| if root.as_str() == "/" { 0 } else { root.len() })
        .map(|(_, t)| t)
}

/// Whether deciding `mount` needs the names of the API's authorizers: it
/// names an authorizer that its tenant does not list by id, and the tenant
/// lists some (which may be names). Otherwise the ids alone decide, and the
/// API's authorizers need not be read.
pub fn needs_authorizer_names(policy: &TenantPolicy, mount: &Mount) -> bool {
    let Some(id) = mount
        .authorization
        .needs_authorizer()
        .then_some(mount.authorizer_id.as_deref())
        .flatten()
    else {
        return false;
    };
    mount
        .tenant
        .as_deref()
        .and_then(|t| tenant(policy, t))
        .is_some_and(|t| !t.authorizers.is_empty() && !t.authorizers.iter().any(|a| a == id))
}

/// Whether `path` is delegated to the tenant named `tenant`.
pub fn is_delegated(policy: &TenantPolicy, tenant: &str, path: &str) -> bool {
    delegate_of(policy, path).is_some_and(|t| t.name == tenant)
}

/// The tenant of `name`, if the policy has one.
pub fn tenant<'p>(policy: &'p TenantPolicy, name: &str) -> Option<&'p Tenant> {
    policy.tenants.iter().find(|t| t.name == name)
}

/// Checks a mount of `tenant` against what the tenant may do (all but the
/// resource budget, which needs the tenant's other mounts).
///
/// `function` is `None` when the mount's function could not be resolved
/// (then only what the manifest's reference tells is checked);
/// `authorizer_names` maps the API's authorizer ids to their names.
pub fn check(
    policy: &TenantPolicy,
    tenant: &Tenant,
    mount: &Mount,
    function: Option<&ResolvedFunction>,
    authorizer_names: &BTreeMap<String, String>,
) -> Result<(), Problem> {
    check_delegation(policy, tenant, mount)?;
    match function {
        Some(f) if !function_allowed(tenant, f) => {
            return Err(function_not_allowed(tenant, &f.arn()));
        }
        Some(_) => {}
        None => check_function_reference(tenant, mount)?,
    }
    check_authorization(tenant, mount, Some(authorizer_names))?;
    check_options(tenant, mount)
}

/// What can be checked without AWS (for `apimount validate`): the
/// delegation, the authorization and adoption, and the function where the
/// manifest's reference tells (by name against name patterns, by ARN
/// against every pattern).
pub fn check_static(policy: &TenantPolicy, tenant: &Tenant, mount: &Mount) -> Result<(), Problem> {
    check_delegation(policy, tenant, mount)?;
    check_function_reference(tenant, mount)?;
    // The account, where the reference names one and the tenant lists its
    // accounts (without the API's account, a list is all there is to go by).
    if let (FunctionRef::Arn { account, .. }, Some(list)) = (&mount.function, &tenant.accounts) {
        if !list.contains(account) {
            return Err(Problem::new(
                crate::plan::conditions::Reason::AccountNotAllowed,
                format!(
                    "function {} is in account {account}, which tenant '{}' may not use ({})",
                    mount.function,
                    tenant.name,
                    list.join(", ")
                ),
            )
            .at("spec.function"));
        }
    }
    check_authorization(tenant, mount, None)?;
    check_options(tenant, mount)
}

/// Whether a mount may have the alias of its release made on `function`
/// (the function as the manifest names it, resolved): what can be checked
/// without AWS, and the function against the tenant's patterns. Checked
/// before apimount writes anything to the function for a release, since
/// the alias is made before the mount's route can resolve.
pub fn check_release(
    policy: &TenantPolicy,
    tenant: &Tenant,
    mount: &Mount,
    function: &ResolvedFunction,
) -> Result<(), Problem> {
    check_static(policy, tenant, mount)?;
    if !function_allowed(tenant, function) {
        return Err(function_not_allowed(tenant, &function.arn()));
    }
    Ok(())
}

/// The function as far as the manifest's reference tells: by name against
/// name patterns, by ARN against every pattern.
fn check_function_reference(tenant: &Tenant, mount: &Mount) -> Result<(), Problem> {
    let by_reference = match &mount.function {
        FunctionRef::Arn { .. } => ResolvedFunction::from_arn(&mount.function.to_string())
            .map(|f| function_allowed(tenant, &f)),
        FunctionRef::Name { name, .. } => tenant
            .functions
            .iter()
            .any(|p| !p.is_arn() && p.matches(name))
            .then_some(true)
            // Only ARN patterns could still allow it: that needs the resolved ARN.
            .or_else(|| {
                tenant
                    .functions
                    .iter()
                    .all(|p| !p.is_arn())
                    .then_some(false)
            }),
    };
    if by_reference == Some(false) {
        return Err(function_not_allowed(tenant, &mount.function.to_string()));
    }
    Ok(())
}

/// The route options within the tenant's bounds.
fn check_options(tenant: &Tenant, mount: &Mount) -> Result<(), Problem> {
    let refuse = |field: &'static str, message: String| {
        Err(Problem::new(Reason::OptionNotAllowed, message).at(field))
    };
    let name = &tenant.name;
    if mount.cors.is_some() && !tenant.cors {
        let why = "(cors: false in the tenant policy); drop spec.cors";
        return refuse(
            "spec.cors",
            format!("tenant '{name}' may not answer CORS preflights {why}"),
        );
    }
    if tenant.max_rate_limit.is_some() || tenant.max_burst_limit.is_some() {
        let bounds = match (tenant.max_rate_limit, tenant.max_burst_limit) {
            (Some(r), Some(b)) => format!("at most {r} requests/s, burst {b}"),
            (Some(r), None) => format!("at most {r} requests/s"),
            (None, Some(b)) => format!("a burst of at most {b}"),
            (None, None) => unreachable!("checked above"),
        };
        let Some(t) = mount.throttle else {
            let why = "without spec.throttle they run at the stage's and the account's limits, shared by every team";
            return refuse(
                "spec.throttle",
                format!("tenant '{name}' must throttle its routes ({bounds}): {why}"),
            );
        };
        if tenant.max_rate_limit.is_some_and(|max| t.rate_limit > max) {
            return refuse(
                "spec.throttle.rateLimit",
                format!(
                    "throttle.rateLimit {} is above what tenant '{name}' may set ({bounds})",
                    t.rate_limit
                ),
            );
        }
        if tenant
            .max_burst_limit
            .is_some_and(|max| t.burst_limit > max)
        {
            return refuse(
                "spec.throttle.burstLimit",
                format!(
                    "throttle.burstLimit {} is above what tenant '{name}' may set ({bounds})",
                    t.burst_limit
                ),
            );
        }
    }
    if let Some(r) = &mount.release {
        let b = &tenant.release;
        if !b.allowed {
            return refuse(
                "spec.release",
                format!("tenant '{name}' may not release progressively (release.allowed: false in the tenant policy); drop spec.release"),
            );
        }
        if b.require_alarms && r.alarms.is_empty() && r.guard.is_none() {
            return refuse(
                "spec.release.alarms",
                format!(
                    "tenant '{name}' must name an alarm (or a guard) that can stop each release"
                ),
            );
        }
        if let Some(min) = b.min_pause {
            if let Some(s) = r.steps.iter().find(|s| s.pause < min) {
                return refuse(
                    "spec.release.steps",
                    format!(
                        "a step of {} s is shorter than the {} s tenant '{name}' allows",
                        s.pause.as_secs_f64(),
                        min.as_secs_f64()
                    ),
                );
            }
        }
        if let Some(max) = b.max_first_weight {
            let first = r.steps.first().map_or(100, |s| s.weight);
            if first > max {
                return refuse(
                    "spec.release.steps",
                    format!(
                        "the first step gives the new version {first}% of the traffic (100% all at once); tenant '{name}' allows {max}% at most"
                    ),
                );
            }
        }
    }
    if let Some(max) = tenant.max_timeout_ms {
        let timeout = mount.timeout_ms.unwrap_or(MAX_TIMEOUT_MS);
        if timeout > max {
            let which = match mount.timeout_ms {
                Some(_) => format!("timeoutMs {timeout}"),
                None => format!("the default timeout of {timeout} ms (no spec.timeoutMs)"),
            };
            return refuse(
                "spec.timeoutMs",
                format!(
                    "{which} is above the {max} ms tenant '{name}' may use; set spec.timeoutMs"
                ),
            );
        }
    }
    Ok(())
}

fn check_delegation(policy: &TenantPolicy, tenant: &Tenant, mount: &Mount) -> Result<(), Problem> {
    let path = mount.path.as_str();
    if is_delegated(policy, &tenant.name, path) {
        return Ok(());
    }
    let why = match delegate_of(policy, path) {
        Some(other) => format!("it is delegated to tenant '{}'", other.name),
        None => "no tenant is delegated it".to_string(),
    };
    Err(Problem::new(
        Reason::NotDelegated,
        format!(
            "{path} is outside the paths of tenant '{}' ({}): {why}",
            tenant.name,
            tenant.paths.join(", ")
        ),
    ))
}

fn function_allowed(tenant: &Tenant, function: &ResolvedFunction) -> bool {
    tenant.functions.iter().any(|p| {
        if p.is_arn() {
            p.matches(&function.arn()) || p.matches(&function.unqualified_arn())
        } else {
            p.matches(&function.name)
        }
    })
}

fn function_not_allowed(tenant: &Tenant, function: &str) -> Problem {
    let patterns: Vec<&str> = tenant.functions.iter().map(|p| p.as_str()).collect();
    Problem::new(
        Reason::FunctionNotAllowed,
        format!(
            "function {function} is not one tenant '{}' may mount ({})",
            tenant.name,
            patterns.join(", ")
        ),
    )
}

/// The authorization type, the authorizer and adoption. `names` maps the
/// API's authorizer ids to their names; `None` when the API is not read
/// (`apimount validate`): an authorizer listed by name is then not refused.
fn check_authorization(
    tenant: &Tenant,
    mount: &Mount,
    names: Option<&BTreeMap<String, String>>,
) -> Result<(), Problem> {
    if !tenant.authorizations.contains(&mount.authorization) {
        let allowed: Vec<&str> = tenant.authorizations.iter().map(|a| a.as_str()).collect();
        return Err(Problem::new(
            Reason::AuthorizationNotAllowed,
            format!(
                "authorization {} is not one tenant '{}' may use ({})",
                mount.authorization.as_str(),
                tenant.name,
                allowed.join(", ")
            ),
        ));
    }
    if let Some(id) = mount
        .authorization
        .needs_authorizer()
        .then_some(mount.authorizer_id.as_deref())
        .flatten()
    {
        let name = names.and_then(|n| n.get(id));
        let listed = tenant
            .authorizers
            .iter()
            .any(|a| a == id || Some(a) == name);
        // Without the API's names, an entry that is not this id may still be its name.
        let unknown = names.is_none() && !tenant.authorizers.is_empty();
        if !listed && !unknown {
            let allowed = if tenant.authorizers.is_empty() {
                "none are delegated to it; list them under authorizers: in the tenant policy"
                    .to_string()
            } else {
                format!("it may use {}", tenant.authorizers.join(", "))
            };
            let shown = match name {
                Some(n) => format!("{id} ({n})"),
                None => id.to_string(),
            };
            return Err(Problem::new(
                Reason::AuthorizationNotAllowed,
                format!(
                    "authorizer {shown} is not one tenant '{}' may use: {allowed}",
                    tenant.name
                ),
            )
            .at("spec.authorizerId"));
        }
    }
    if mount.adopt && !tenant.adopt {
        return Err(Problem::new(
            Reason::AdoptNotAllowed,
            format!(
                "tenant '{}' may not adopt routes made by other tools (adopt: true in the tenant policy allows it)",
                tenant.name
            ),
        ));
    }
    Ok(())
}

/// Every resource a mount needs: its parents, its path and its `{proxy+}`.
pub fn resources_needed(mount: &Mount) -> BTreeSet<String> {
    routes(mount)
        .into_iter()
        .flat_map(|r| {
            let mut v = ancestors(&r.0);
            v.push(r.0);
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tenants::parse_policy;
    use std::path::Path;

    fn policy() -> TenantPolicy {
        parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: accounts
    paths: [/accounts]
    functions: [\"accounts-*\"]
    maxResources: 4
  - name: admin
    paths: [/accounts/admin]
    functions: [\"arn:aws:lambda:eu-west-2:111122223333:function:admin-*\"]
    authorizations: [NONE]
    adopt: true
  - name: root
    paths: [/]
    functions: [\"*\"]
",
        )
        .unwrap()
    }

    fn mount(path: &str, function: &str, extra: &str) -> Mount {
        crate::manifest::parse(
            Path::new("m.yaml"),
            format!(
                "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: m\nspec:\n  path: {path}\n  function: {function}\n{extra}"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    fn function(name: &str, qualifier: Option<&str>) -> ResolvedFunction {
        ResolvedFunction {
            partition: "aws".into(),
            region: "eu-west-2".into(),
            account: "111122223333".into(),
            name: name.into(),
            qualifier: qualifier.map(str::to_string),
        }
    }

    #[test]
    fn the_most_specific_delegation_owns_its_subtree() {
        let p = policy();
        let table = [
            ("/accounts", "accounts"),
            ("/accounts/login", "accounts"),
            ("/accounts/admin", "admin"),
            ("/accounts/admin/users", "admin"),
            ("/accounts/administrator", "accounts"),
            ("/accountsx", "root"),
            ("/payments", "root"),
        ];
        for (path, want) in table {
            assert_eq!(
                delegate_of(&p, path).map(|t| t.name.as_str()),
                Some(want),
                "{path}"
            );
        }
        let mut no_root = p.clone();
        no_root.tenants.pop();
        assert!(delegate_of(&no_root, "/payments").is_none());
    }

    #[test]
    fn a_mount_stays_within_what_its_tenant_may_do() {
        let p = policy();
        let accounts = tenant(&p, "accounts").unwrap();
        let admin = tenant(&p, "admin").unwrap();
        let iam = "  authorization: AWS_IAM\n";
        let table: &[(&Tenant, Mount, ResolvedFunction, Option<Reason>)] = &[
            (
                accounts,
                mount("/accounts", "accounts-api", iam),
                function("accounts-api", None),
                None,
            ),
            // An alias of an allowed function.
            (
                accounts,
                mount("/accounts/v2", "accounts-api:live", iam),
                function("accounts-api", Some("live")),
                None,
            ),
            (
                accounts,
                mount("/accounts/admin", "accounts-api", iam),
                function("accounts-api", None),
                Some(Reason::NotDelegated),
            ),
            (
                accounts,
                mount("/payments", "accounts-api", iam),
                function("accounts-api", None),
                Some(Reason::NotDelegated),
            ),
            (
                accounts,
                mount("/accounts", "payments-api", iam),
                function("payments-api", None),
                Some(Reason::FunctionNotAllowed),
            ),
            // NONE is the manifest default and must be granted.
            (
                accounts,
                mount("/accounts", "accounts-api", ""),
                function("accounts-api", None),
                Some(Reason::AuthorizationNotAllowed),
            ),
            (
                accounts,
                mount(
                    "/accounts",
                    "accounts-api",
                    "  authorization: AWS_IAM\n  adopt: true\n",
                ),
                function("accounts-api", None),
                Some(Reason::AdoptNotAllowed),
            ),
            (
                admin,
                mount("/accounts/admin", "admin-ui", "  adopt: true\n"),
                function("admin-ui", None),
                None,
            ),
            // ARN patterns match the ARN: another account is not allowed.
            (
                admin,
                mount("/accounts/admin", "admin-ui", ""),
                ResolvedFunction {
                    account: "999999999999".into(),
                    ..function("admin-ui", None)
                },
                Some(Reason::FunctionNotAllowed),
            ),
        ];
        for (t, m, f, want) in table {
            let got = check(&p, t, m, Some(f), &BTreeMap::new())
                .err()
                .map(|e| e.reason);
            assert_eq!(got, *want, "{} {} {}", t.name, m.path, f);
        }
    }

    #[test]
    fn a_refused_function_is_told_what_its_tenant_may_mount() {
        let p = policy();
        let admin = tenant(&p, "admin").unwrap();
        let e = check(
            &p,
            admin,
            &mount("/accounts/admin", "payments-api", ""),
            Some(&function("payments-api", None)),
            &BTreeMap::new(),
        )
        .unwrap_err();
        assert_eq!(e.reason, Reason::FunctionNotAllowed);
        assert_eq!(
            e.message,
            "function arn:aws:lambda:eu-west-2:111122223333:function:payments-api \
             is not one tenant 'admin' may mount \
             (arn:aws:lambda:eu-west-2:111122223333:function:admin-*)"
        );
    }

    #[test]
    fn without_aws_the_function_is_judged_as_far_as_its_reference_tells() {
        let p = policy();
        let accounts = tenant(&p, "accounts").unwrap();
        let admin = tenant(&p, "admin").unwrap();
        let arn = |account: &str, name: &str| {
            format!("arn:aws:lambda:eu-west-2:{account}:function:{name}")
        };
        let table: &[(&Tenant, String, Option<Reason>)] = &[
            // A name against name patterns.
            (accounts, "accounts-api".into(), None),
            (
                accounts,
                "payments-api".into(),
                Some(Reason::FunctionNotAllowed),
            ),
            // A name against ARN patterns only: it takes the resolved ARN.
            (admin, "payments-api".into(), None),
            // An ARN against every pattern.
            (admin, arn("111122223333", "admin-ui"), None),
            (
                admin,
                arn("999999999999", "admin-ui"),
                Some(Reason::FunctionNotAllowed),
            ),
            (accounts, arn("111122223333", "accounts-api"), None),
            (
                accounts,
                arn("111122223333", "payments-api"),
                Some(Reason::FunctionNotAllowed),
            ),
        ];
        for (t, function, want) in table {
            // (each tenant's path, and an authorization it grants)
            let m = match t.name.as_str() {
                "admin" => mount("/accounts/admin", function, ""),
                _ => mount("/accounts", function, "  authorization: AWS_IAM\n"),
            };
            let static_check = check_static(&p, t, &m).err().map(|e| e.reason);
            assert_eq!(static_check, *want, "{} {function} (static)", t.name);
            let unresolved = check(&p, t, &m, None, &BTreeMap::new())
                .err()
                .map(|e| e.reason);
            assert_eq!(unresolved, *want, "{} {function} (unresolved)", t.name);
        }
    }

    #[test]
    fn route_options_within_the_tenants_bounds() {
        let p = parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: bounded
    paths: [/]
    functions: [\"*\"]
    authorizations: [NONE]
    cors: false
    maxRateLimit: 100
    maxBurstLimit: 50
    maxTimeoutMs: 10000
  - name: free
    paths: [/free]
    functions: [\"*\"]
    authorizations: [NONE]
",
        )
        .unwrap();
        let bounded = tenant(&p, "bounded").unwrap();
        let free = tenant(&p, "free").unwrap();
        let f = function("f", None);
        let ok = "  throttle:\n    rateLimit: 100\n    burstLimit: 50\n  timeoutMs: 10000\n";
        // (tenant, path, manifest lines, refusal: (field, message part))
        type Row<'a> = (&'a Tenant, &'a str, &'a str, Option<(&'a str, &'a str)>);
        let table: &[Row] = &[
            (bounded, "/a", ok, None),
            (
                bounded,
                "/a",
                "  timeoutMs: 100\n",
                Some((
                    "spec.throttle",
                    "must throttle its routes (at most 100 requests/s, burst 50)",
                )),
            ),
            (
                bounded,
                "/a",
                "  throttle:\n    rateLimit: 100.5\n    burstLimit: 50\n  timeoutMs: 100\n",
                Some((
                    "spec.throttle.rateLimit",
                    "throttle.rateLimit 100.5 is above",
                )),
            ),
            (
                bounded,
                "/a",
                "  throttle:\n    rateLimit: 1\n    burstLimit: 51\n  timeoutMs: 100\n",
                Some((
                    "spec.throttle.burstLimit",
                    "throttle.burstLimit 51 is above",
                )),
            ),
            (
                bounded,
                "/a",
                "  throttle:\n    rateLimit: 1\n    burstLimit: 1\n",
                Some((
                    "spec.timeoutMs",
                    "the default timeout of 29000 ms (no spec.timeoutMs) is above the 10000 ms",
                )),
            ),
            (
                bounded,
                "/a",
                "  throttle:\n    rateLimit: 1\n    burstLimit: 1\n  timeoutMs: 10001\n",
                Some(("spec.timeoutMs", "timeoutMs 10001 is above")),
            ),
            (
                bounded,
                "/a",
                &format!("{ok}  cors:\n    allowOrigins: [\"*\"]\n"),
                Some(("spec.cors", "may not answer CORS preflights")),
            ),
            (free, "/free", "  cors:\n    allowOrigins: [\"*\"]\n", None),
        ];
        for (t, path, extra, want) in table {
            let m = mount(path, "f", extra);
            let got = check(&p, t, &m, Some(&f), &BTreeMap::new()).err();
            match want {
                None => assert_eq!(got, None, "{extra}"),
                Some((field, w)) => {
                    let got = got.unwrap_or_else(|| panic!("{extra}: allowed"));
                    assert_eq!(got.reason, Reason::OptionNotAllowed, "{extra}");
                    assert_eq!(got.field, Some(*field), "{extra}");
                    assert!(got.message.contains(w), "{extra}: {}", got.message);
                }
            }
            // `apimount validate` says the same.
            assert_eq!(
                check_static(&p, t, &m).err().map(|e| e.reason),
                want.map(|_| Reason::OptionNotAllowed),
                "{extra}"
            );
        }
    }

    #[test]
    fn validate_refuses_a_function_arn_in_an_account_the_tenant_may_not_use() {
        let p = parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
accounts:
  - id: \"222222222222\"
    roleArn: arn:aws:iam::222222222222:role/apimount-grants
  - id: \"333333333333\"
    roleArn: arn:aws:iam::333333333333:role/apimount-grants
tenants:
  - name: team
    paths: [/t]
    functions: [\"*\"]
    authorizations: [NONE]
    accounts: [\"222222222222\"]
",
        )
        .unwrap();
        let team = tenant(&p, "team").unwrap();
        let arn = |account: &str| format!("arn:aws:lambda:eu-west-2:{account}:function:f");
        let at = |account: &str| {
            let mut m = mount("/t", &arn(account), "  authorization: NONE\n");
            m.tenant = Some("team".into());
            check_static(&p, team, &m).map_err(|e| (e.reason, e.field))
        };
        assert_eq!(at("222222222222"), Ok(()));
        assert_eq!(
            at("333333333333"),
            Err((Reason::AccountNotAllowed, Some("spec.function")))
        );
    }

    #[test]
    fn releases_within_the_tenants_bounds() {
        let p = parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: careful
    paths: [/c]
    functions: [\"*\"]
    authorizations: [NONE]
    release: {requireAlarms: true, minPause: 1m, maxFirstWeight: 25}
  - name: none
    paths: [/n]
    functions: [\"*\"]
    authorizations: [NONE]
    release: {allowed: false}
  - name: free
    paths: [/f]
    functions: [\"*\"]
    authorizations: [NONE]
",
        )
        .unwrap();
        let careful = tenant(&p, "careful").unwrap();
        let none = tenant(&p, "none").unwrap();
        let free = tenant(&p, "free").unwrap();
        let release = |body: &str| format!("  release:\n    version: \"2\"\n{body}");
        let step =
            |w: u8, pause: &str| format!("    steps:\n      - {{weight: {w}, pause: {pause}}}\n");
        let alarms = "    alarms: [a]\n";
        type Row<'a> = (&'a Tenant, &'a str, String, Option<(&'a str, &'a str)>);
        let table: Vec<Row> = vec![
            (
                careful,
                "/c",
                release(&format!("{}{alarms}", step(25, "1m"))),
                None,
            ),
            (
                careful,
                "/c",
                release(&format!(
                    "{}    guard: {{maxErrorRate: 5}}\n",
                    step(10, "5m")
                )),
                None,
            ),
            (
                careful,
                "/c",
                release(&step(10, "5m")),
                Some(("spec.release.alarms", "must name an alarm")),
            ),
            (
                careful,
                "/c",
                release(&format!("{}{alarms}", step(10, "59s"))),
                Some(("spec.release.steps", "shorter than the 60 s")),
            ),
            (
                careful,
                "/c",
                release(&format!("{}{alarms}", step(26, "5m"))),
                Some(("spec.release.steps", "gives the new version 26%")),
            ),
            (
                careful,
                "/c",
                release(&format!("    strategy: AllAtOnce\n{alarms}")),
                Some(("spec.release.steps", "100% all at once")),
            ),
            (
                none,
                "/n",
                release(alarms),
                Some(("spec.release", "may not release")),
            ),
            (free, "/f", release("    strategy: AllAtOnce\n"), None),
            (none, "/n", String::new(), None),
        ];
        let f = function("f", None);
        for (t, path, extra, want) in table {
            let m = mount(path, "f", &extra);
            let got = check(&p, t, &m, Some(&f), &BTreeMap::new()).err();
            match want {
                None => assert_eq!(got, None, "{extra}"),
                Some((field, w)) => {
                    let got = got.unwrap_or_else(|| panic!("{extra}: allowed"));
                    assert_eq!(got.reason, Reason::OptionNotAllowed, "{extra}");
                    assert_eq!(got.field, Some(field), "{extra}");
                    assert!(got.message.contains(w), "{extra}: {}", got.message);
                }
            }
            assert_eq!(
                check_release(&p, t, &m, &f).err().map(|e| e.reason),
                want.map(|_| Reason::OptionNotAllowed),
                "{extra}"
            );
        }
        // A function the tenant may not use gets no alias either.
        let m = mount("/f", "f", &release(""));
        let other =
            ResolvedFunction::from_arn("arn:aws:lambda:eu-west-2:111122223333:function:g").unwrap();
        let limited = parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: free
    paths: [/f]
    functions: [\"arn:aws:lambda:*:*:function:f\"]
    authorizations: [NONE]
",
        )
        .unwrap();
        let t = tenant(&limited, "free").unwrap();
        assert_eq!(
            check_release(&limited, t, &m, &other)
                .err()
                .map(|e| e.reason),
            Some(Reason::FunctionNotAllowed)
        );
    }

    #[test]
    fn arn_patterns_allow_aliases_by_their_function_only() {
        let p = parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: team
    paths: [/team]
    functions: [\"arn:aws:lambda:eu-west-2:111122223333:function:*-team\"]
    authorizations: [NONE]
",
        )
        .unwrap();
        let t = tenant(&p, "team").unwrap();
        let none = BTreeMap::new();
        let m = mount("/team", "payments:x-team", "");
        // An alias named like an allowed function does not make its function allowed.
        let got = check(
            &p,
            t,
            &m,
            Some(&function("payments", Some("x-team"))),
            &none,
        );
        assert_eq!(got.map_err(|e| e.reason), Err(Reason::FunctionNotAllowed));
        // An alias of an allowed function is allowed.
        let m = mount("/team", "a-team:live", "");
        assert_eq!(
            check(&p, t, &m, Some(&function("a-team", Some("live"))), &none),
            Ok(())
        );
    }

    #[test]
    fn authorizers_are_delegated_by_id_or_name() {
        let p = parse_policy(
            Path::new("tenants.yaml"),
            b"apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: team
    paths: [/team]
    functions: [\"*\"]
    authorizations: [CUSTOM, COGNITO_USER_POOLS, AWS_IAM]
    authorizers: [abc123, team-jwt]
  - name: bare
    paths: [/bare]
    functions: [\"*\"]
    authorizations: [CUSTOM]
",
        )
        .unwrap();
        let team = tenant(&p, "team").unwrap();
        let bare = tenant(&p, "bare").unwrap();
        let names: BTreeMap<String, String> = [
            ("abc123".to_string(), "team-lambda".to_string()),
            ("zzz999".to_string(), "team-jwt".to_string()),
            ("open00".to_string(), "allow-all".to_string()),
        ]
        .into();
        let f = function("f", None);
        let custom = |path: &str, id: &str| {
            mount(
                path,
                "f",
                &format!("  authorization: CUSTOM\n  authorizerId: {id}\n"),
            )
        };
        // (tenant, mount, allowed)
        let table: &[(&Tenant, Mount, bool)] = &[
            (team, custom("/team", "abc123"), true),
            // By the name the API gives the id.
            (team, custom("/team", "zzz999"), true),
            // Another team's, or one that lets everyone in.
            (team, custom("/team", "open00"), false),
            (team, custom("/team", "nope01"), false),
            // No authorizer delegated: none may be named.
            (bare, custom("/bare", "abc123"), false),
            // AWS_IAM names no authorizer.
            (
                team,
                mount("/team", "f", "  authorization: AWS_IAM\n"),
                true,
            ),
        ];
        for (t, m, allowed) in table {
            let got = check(&p, t, m, Some(&f), &names);
            if *allowed {
                assert_eq!(got, Ok(()), "{} {:?}", t.name, m.authorizer_id);
            } else {
                let e = got.expect_err("refused");
                assert_eq!(e.reason, Reason::AuthorizationNotAllowed);
                assert_eq!(e.field, Some("spec.authorizerId"));
            }
        }
        // The API's names are read only when an id is not listed as it is.
        let mut named = custom("/team", "zzz999");
        named.tenant = Some("team".into());
        let mut by_id = custom("/team", "abc123");
        by_id.tenant = Some("team".into());
        let mut bare_mount = custom("/bare", "abc123");
        bare_mount.tenant = Some("bare".into());
        assert!(needs_authorizer_names(&p, &named));
        assert!(!needs_authorizer_names(&p, &by_id));
        assert!(!needs_authorizer_names(&p, &bare_mount));
        // `apimount validate` cannot read names: only a tenant with none is refused.
        assert!(check_static(&p, team, &custom("/team", "open00")).is_ok());
        assert_eq!(
            check_static(&p, bare, &custom("/bare", "abc123")).map_err(|e| e.reason),
            Err(Reason::AuthorizationNotAllowed)
        );
    }

    #[test]
    fn a_mount_needs_its_parents_and_proxy() {
        assert_eq!(
            resources_needed(&mount("/a/b/c", "f", "")),
            ["/a", "/a/b", "/a/b/c", "/a/b/c/{proxy+}"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        );
    }
}
