//! Notes before per-API and per-function limits are hit: API Gateway's
//! resource quota and Lambda's cap on a function's resource policy.

use std::collections::BTreeMap;

use super::model::ObservedApi;
use super::{Change, Plan};

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
        // The statements a plan adds count too: two short of the mark, and
        // two added.
        use super::super::{MountAction, MountPlan};
        let adding = |function: &str, n: usize| Plan {
            mounts: vec![MountPlan {
                id: crate::manifest::MountId {
                    tenant: None,
                    name: "m".into(),
                },
                path: "/m".into(),
                action: MountAction::Apply(
                    (0..n)
                        .map(|i| Change::AddPermission {
                            function: function.into(),
                            sid: format!("s{i}"),
                            source_arn: "arn:src".into(),
                        })
                        .collect(),
                ),
            }],
            ..Plan::default()
        };
        let counts: BTreeMap<String, usize> = [("arn:big".to_string(), near_cap - 2)].into();
        for (plan, warned) in [
            (adding("arn:big", 2), true),
            (adding("arn:big", 1), false),
            (adding("arn:other", 2), false),
        ] {
            let notes = quota_warnings(&api, &plan, &counts);
            assert_eq!(notes.len(), usize::from(warned), "{notes:?}");
            if warned {
                assert!(
                    notes[0]
                        .starts_with(&format!("arn:big will carry {near_cap} policy statements")),
                    "{notes:?}"
                );
            }
        }
    }

    #[test]
    fn the_resource_quota_warning_counts_live_and_planned_resources_from_90_percent() {
        use super::super::model::{Methods, ObservedResource};
        use super::super::{MountAction, MountPlan};
        use crate::manifest::MountId;
        let api_of = |n: usize| {
            ObservedApi::from_resources(
                (0..n)
                    .map(|i| ObservedResource {
                        id: format!("r{i}"),
                        path: format!("/r{i}"),
                        methods: Methods::default(),
                    })
                    .collect(),
            )
        };
        let creating = |n: usize| Plan {
            mounts: vec![MountPlan {
                id: MountId {
                    tenant: None,
                    name: "m".into(),
                },
                path: "/new".into(),
                action: MountAction::Apply(
                    (0..n)
                        .map(|i| Change::CreateResource {
                            path: format!("/new{i}"),
                        })
                        .collect(),
                ),
            }],
            ..Plan::default()
        };
        let none = BTreeMap::new();
        let threshold = RESOURCE_QUOTA * 9 / 10;
        // (live resources, resources the plan creates, warned)
        for (live, creates, warned) in [
            (threshold, 0, true),
            (threshold - 1, 0, false),
            (threshold - 5, 5, true),
            (threshold - 5, 4, false),
            (0, threshold, true),
        ] {
            let notes = quota_warnings(&api_of(live), &creating(creates), &none);
            assert_eq!(
                notes.len(),
                usize::from(warned),
                "{live} + {creates}: {notes:?}"
            );
            if warned {
                assert!(
                    notes[0]
                        .starts_with(&format!("the API will have {} resources", live + creates)),
                    "{notes:?}"
                );
            }
        }
    }
}
