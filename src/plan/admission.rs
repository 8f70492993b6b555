//! Which manifests take part in a pass, decided inside each tenant first.
//! Pure.
//!
//! Under a tenant policy every manifest is first weighed against its own
//! tenant's rules (delegation, function, authorization and authorizer,
//! adoption, route options; see `plan::tenancy`). Only the manifests their
//! tenant accepts take part in the settling of contested names and paths
//! (`plan::incumbency`): a manifest refused for its tenant clashes with
//! nothing, so no file one team writes can make another team's manifest a
//! losing duplicate. Across tenants, accepted manifests cannot meet at all:
//! a mount's name is qualified by its tenant, and delegation (the most
//! specific subtree) gives every path to exactly one tenant.
//!
//! Refused manifests still reach the planner, which reports each with its
//! reason and keeps its tenant's routes as they are; one that names the same
//! mount as a manifest its tenant accepts is reported as a duplicate
//! instead, so a mount is planned once.
//!
//! Without a policy this is `incumbency::settle` itself.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::incumbency::{settle, Settled};
use super::model::{ObservedApi, ResolvedFunction};
use super::tenancy;
use super::Problem;
use crate::manifest::tenants::TenantPolicy;
use crate::manifest::{ErrorKind, ManifestError, Mount, MountId};

/// Settles the manifests `mounts` of one owner, tenant first. `keys` holds
/// every file of the source (key → shown name); `function` gives a mount's
/// resolved function, where it could be resolved.
pub fn admit<'f>(
    api: &ObservedApi,
    owner: &str,
    mounts: &[Mount],
    keys: &BTreeMap<String, PathBuf>,
    tenancy: Option<&TenantPolicy>,
    function: &dyn Fn(&Mount) -> Option<&'f ResolvedFunction>,
) -> Settled {
    let Some(policy) = tenancy else {
        return settle(api, owner, mounts, keys);
    };
    let (accepted, refused): (Vec<usize>, Vec<usize>) =
        (0..mounts.len()).partition(|&i| refusal(policy, api, &mounts[i], function).is_none());
    let pool: Vec<Mount> = accepted.iter().map(|&i| mounts[i].clone()).collect();
    let inner = settle(api, owner, &pool, keys);
    let mut out = Settled {
        desired: inner.desired.iter().map(|&k| accepted[k]).collect(),
        losers: inner.losers,
        retained: inner.retained,
    };
    // A refused manifest is planned (and so reported with its reason)
    // unless its tenant already has a manifest for that mount.
    let mut named: BTreeMap<MountId, &PathBuf> =
        pool.iter().map(|m| (m.id(), &m.file)).rev().collect();
    for i in refused {
        let m = &mounts[i];
        match named.get(&m.id()) {
            Some(other) => out.losers.push(ManifestError {
                file: m.file.clone(),
                position: None,
                field: Some("metadata.name".into()),
                message: format!(
                    "name '{}' is already used by {}; this manifest is ignored until the clash is resolved (it would be refused anyway: {})",
                    m.id(),
                    other.display(),
                    refusal(policy, api, m, function).map(|p| p.to_string()).unwrap_or_default()
                ),
                kind: ErrorKind::Duplicate,
            }),
            None => {
                named.insert(m.id(), &m.file);
                out.desired.push(i);
            }
        }
    }
    out.desired.sort_unstable();
    out.losers.sort_by(|a, b| a.file.cmp(&b.file));
    out
}

/// Why `m`'s own tenant refuses it, if it does (all but the resource
/// budget, which the planner decides with the tenant's live routes).
pub fn refusal<'f>(
    policy: &TenantPolicy,
    api: &ObservedApi,
    m: &Mount,
    function: &dyn Fn(&Mount) -> Option<&'f ResolvedFunction>,
) -> Option<Problem> {
    let Some(tenant) = m.tenant.as_deref().and_then(|t| tenancy::tenant(policy, t)) else {
        return Some(Problem::new(
            super::Reason::NotDelegated,
            format!(
                "{} is not in the folder of a tenant of the policy",
                m.file.display()
            ),
        ));
    };
    tenancy::check(policy, tenant, m, function(m), &api.authorizers).err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tenants::parse_policy;
    use std::collections::BTreeSet;
    use std::path::Path;

    const POLICY: &str = "apiVersion: apimount/v1
kind: TenantPolicy
tenants:
  - name: a
    paths: [/a]
    functions: [\"*\"]
    authorizations: [NONE]
  - name: b
    paths: [/a/b, /b]
    functions: [\"*\"]
    authorizations: [NONE]
";

    fn mount(tenant: &str, file: &str, name: &str, path: &str) -> Mount {
        let text = format!(
            "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: {path}\n  function: f\n  authorization: NONE\n"
        );
        let key = format!("{tenant}/{file}");
        Mount {
            key: key.clone(),
            tenant: Some(tenant.into()),
            ..crate::manifest::parse(Path::new(&format!("/m/{key}")), text.as_bytes()).unwrap()
        }
    }

    fn keys(mounts: &[Mount]) -> BTreeMap<String, PathBuf> {
        mounts
            .iter()
            .map(|m| (m.key.clone(), m.file.clone()))
            .collect()
    }

    fn run(mounts: &[Mount]) -> Settled {
        let p = parse_policy(Path::new("t.yaml"), POLICY.as_bytes()).unwrap();
        admit(
            &ObservedApi::default(),
            "o",
            mounts,
            &keys(mounts),
            Some(&p),
            &|_| None,
        )
    }

    #[test]
    fn a_refused_manifest_clashes_with_nothing() {
        // a squats /b (b's) and /a/b (b's, carved out of a's /a) with files
        // that sort first; b's own manifests are desired all the same.
        let mounts = vec![
            mount("a", "0.yaml", "x", "/b"),
            mount("a", "1.yaml", "y", "/a/b"),
            mount("b", "z.yaml", "x", "/b"),
            mount("b", "zz.yaml", "y", "/a/b"),
        ];
        let s = run(&mounts);
        assert_eq!(s.desired, vec![0, 1, 2, 3], "{:?}", s.losers);
        assert!(s.losers.is_empty());
        // The squatters are refused by the planner, not by a clash: the
        // refusal is their own tenant's.
        let p = parse_policy(Path::new("t.yaml"), POLICY.as_bytes()).unwrap();
        let api = ObservedApi::default();
        for m in &mounts[..2] {
            let r = refusal(&p, &api, m, &|_| None).expect("refused");
            assert_eq!(r.reason, super::super::Reason::NotDelegated);
        }
        for m in &mounts[2..] {
            assert!(refusal(&p, &api, m, &|_| None).is_none());
        }
    }

    #[test]
    fn within_a_tenant_clashes_are_settled_and_a_refused_copy_loses() {
        let mounts = vec![
            mount("a", "0.yaml", "x", "/elsewhere"),
            mount("a", "1.yaml", "x", "/a"),
            mount("a", "2.yaml", "y", "/a"),
        ];
        let s = run(&mounts);
        // 1.yaml is accepted and wins /a; 2.yaml loses the path; 0.yaml is
        // refused and shares 1.yaml's name: reported, not planned.
        assert_eq!(s.desired, vec![1]);
        let files: Vec<String> = s
            .losers
            .iter()
            .map(|e| e.file.display().to_string())
            .collect();
        assert_eq!(files, vec!["/m/a/0.yaml", "/m/a/2.yaml"]);
        assert!(
            s.losers[0].message.contains("NotDelegated"),
            "{}",
            s.losers[0]
        );
        let retained: BTreeSet<Option<String>> =
            s.retained.iter().map(|id| id.tenant.clone()).collect();
        assert_eq!(retained, [Some("a".to_string())].into());
    }
}
