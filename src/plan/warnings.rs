//! Notes before per-API and per-function limits are hit: API Gateway's
//! resource quota and Lambda's cap on a function's resource policy; and
//! throttles above the account's default limit in the region.

use std::collections::BTreeMap;

use super::model::ObservedApi;
use super::{Change, DesiredMount, Plan};

/// The regions whose default account-level throttle is 2,500 requests/s
/// with a burst of 1,250 (elsewhere 10,000 / 5,000); raisable on request.
pub const LOW_THROTTLE_REGIONS: [&str; 13] = [
    "af-south-1",
    "eu-south-1",
    "ap-southeast-3",
    "me-central-1",
    "ap-south-2",
    "ap-southeast-4",
    "eu-south-2",
    "eu-central-2",
    "il-central-1",
    "ca-west-1",
    "ap-southeast-5",
    "ap-southeast-7",
    "mx-central-1",
];

/// The default account-level throttle of a region: (requests/s, burst).
pub fn account_throttle_default(region: &str) -> (f64, u32) {
    if LOW_THROTTLE_REGIONS.contains(&region) {
        (2_500.0, 1_250)
    } else {
        (10_000.0, 5_000)
    }
}

/// A note per mount whose throttle is above the region's default account
/// limit: unless the account's limit was raised, the account's applies and
/// the mount's number is never reached.
pub fn throttle_warnings(region: &str, mounts: &[DesiredMount]) -> Vec<String> {
    let (rate, burst) = account_throttle_default(region);
    mounts
        .iter()
        .filter_map(|d| {
            let t = d.mount.throttle?;
            (t.rate_limit.get() > rate || t.burst_limit > burst).then(|| {
                format!(
                    "mount '{}' throttles at {t}, above {region}'s default account limit ({rate} requests/s, burst {burst}): unless the account's limit was raised, that limit applies first",
                    d.mount.id()
                )
            })
        })
        .collect()
}

/// Default per-API resource quota (raisable; CreateResource fails past it).
pub const RESOURCE_QUOTA: usize = 300;
/// Lambda's cap on one function's resource policy.
pub const POLICY_CAP_BYTES: usize = 20 * 1024;
/// A generous estimate of one permission statement's size in a policy.
const STATEMENT_BYTES: usize = 400;

/// Warnings before per-API and per-function limits are hit (at 90 % and 80 %).
pub fn quota_warnings(
    api: &ObservedApi,
    plan: &Plan,
    statement_counts: &BTreeMap<String, usize>,
) -> Vec<String> {
    let mut out = Vec::new();
    let creates = plan
        .changes()
        .filter(|c| matches!(c, Change::CreateResource { .. }))
        .count();
    let after = api.resources.len() + creates;
    if after * 10 >= RESOURCE_QUOTA * 9 {
        out.push(format!(
            "the API will have {after} resources; API Gateway's default quota is {RESOURCE_QUOTA} per API (ask AWS to raise it before CreateResource starts failing with LimitExceeded)"
        ));
    }
    for (function, &count) in statement_counts {
        let adds = plan
            .changes()
            .filter(|c| matches!(c, Change::AddPermission { function: f, .. } if f == function))
            .count();
        let estimate = (count + adds) * STATEMENT_BYTES;
        if estimate * 10 >= POLICY_CAP_BYTES * 8 {
            out.push(format!(
                "{function} will carry {} policy statements (about {} KB of Lambda's 20 KB policy cap); mount fewer routes on it or use one mount with proxy: true",
                count + adds,
                estimate / 1024
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttles_above_the_regions_default_are_noted() {
        assert_eq!(account_throttle_default("eu-west-2"), (10_000.0, 5_000));
        assert_eq!(account_throttle_default("af-south-1"), (2_500.0, 1_250));
        let mount = |rate: u32, burst: u32| {
            DesiredMount {
            mount: crate::manifest::parse(
                std::path::Path::new("m.yaml"),
                format!("apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: m\nspec:\n  path: /m\n  function: f\n  throttle:\n    rateLimit: {rate}\n    burstLimit: {burst}\n").as_bytes(),
            )
            .unwrap(),
            function: Ok(crate::plan::model::ResolvedFunction::from_arn(
                "arn:aws:lambda:eu-west-2:111122223333:function:f",
            )
            .unwrap()),
        }
        };
        assert!(throttle_warnings("eu-west-2", &[mount(9_000, 4_000)]).is_empty());
        assert!(throttle_warnings("af-south-1", &[mount(2_500, 1_250)]).is_empty());
        let notes = throttle_warnings("af-south-1", &[mount(3_000, 100), mount(100, 2_000)]);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(
            notes[0].contains("af-south-1's default account limit (2500 requests/s, burst 1250)"),
            "{notes:?}"
        );
    }

    #[test]
    fn the_policy_size_warning_counts_every_statement_of_the_function() {
        let api = ObservedApi::default();
        let plan = Plan::default();
        // The fewest statements that reach 80 % of the cap.
        let near_cap = (POLICY_CAP_BYTES * 8).div_ceil(10 * STATEMENT_BYTES);
        let counts: BTreeMap<String, usize> = [
            ("arn:big".to_string(), near_cap),
            ("arn:small".to_string(), near_cap - 1),
        ]
        .into();
        let notes = quota_warnings(&api, &plan, &counts);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("arn:big will carry"), "{notes:?}");
    }
}
