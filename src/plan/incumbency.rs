//! Which of the manifests that claim a name or a path is desired: a live
//! mount belongs to the file it came from. Pure.
//!
//! - Two manifests with the same mount (name, within a tenant) or the same
//!   path: the incumbent wins, the one whose file made the live route (its
//!   source tag is in the route's markers); between newcomers the first by
//!   file name. The others are reported as `DuplicateManifest`.
//! - While the file that made a live mount is present (valid, invalid or
//!   unreadable), no other file may take its name, whatever the newcomer's
//!   file name: a copy never displaces the original.
//! - A rename (the old file gone, a new file with the same name) takes over.
//!
//! The marker is on AWS, so the rule is the same in one-shot commands and in
//! the daemon, and across restarts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::model::ObservedApi;
use super::names::source_tag;
use crate::manifest::{duplicate_error, find_duplicates, ErrorKind, ManifestError, Mount, MountId};

/// The outcome: which manifests are desired, and what the others cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settled {
    /// Indices of the desired manifests, in input order.
    pub desired: Vec<usize>,
    /// The reported problem of each losing manifest.
    pub losers: Vec<ManifestError>,
    /// Mounts whose routes stay as they are because their manifest lost
    /// under another name (a clash of paths).
    pub retained: BTreeSet<MountId>,
}

/// Settles the manifests `mounts` of one owner. `keys` holds every file of
/// the source (key → shown name), valid or not.
pub fn settle(
    api: &ObservedApi,
    owner: &str,
    mounts: &[Mount],
    keys: &BTreeMap<String, PathBuf>,
) -> Settled {
    // The source tags in the markers of each live mount of this owner.
    let mut holders: BTreeMap<MountId, BTreeSet<String>> = BTreeMap::new();
    for (_, _, m) in api.methods() {
        if let Some(mk) = m.ownership().of(owner) {
            let tags = holders.entry(mk.mount.clone()).or_default();
            tags.extend(mk.source.clone());
        }
    }
    let present: BTreeMap<String, &PathBuf> = keys
        .iter()
        .map(|(k, shown)| (source_tag(k), shown))
        .collect();
    let mut out = Settled::default();
    // A file that made the live mount is present: every other file naming
    // that mount loses to it.
    let mut held_by_other: BTreeMap<usize, &PathBuf> = BTreeMap::new();
    for (i, m) in mounts.iter().enumerate() {
        let Some(tags) = holders.get(&m.id()) else {
            continue;
        };
        if tags.contains(&source_tag(&m.key)) {
            continue;
        }
        if let Some(holder) = tags.iter().find_map(|t| present.get(t)) {
            held_by_other.insert(i, holder);
        }
    }
    let incumbent = |m: &Mount| {
        api.get(m.path.as_str()).is_some_and(|r| {
            r.methods.values().any(|x| {
                x.ownership().of(owner).is_some_and(|mk| {
                    mk.mount == m.id()
                        && mk.source.as_ref().is_none_or(|t| *t == source_tag(&m.key))
                })
            })
        })
    };
    let contenders: Vec<usize> = (0..mounts.len())
        .filter(|i| !held_by_other.contains_key(i))
        .collect();
    let pool: Vec<Mount> = contenders.iter().map(|&i| mounts[i].clone()).collect();
    let dups = find_duplicates(&pool, &incumbent);
    let losing: BTreeSet<usize> = dups.iter().map(|d| contenders[d.loser]).collect();
    for d in &dups {
        out.losers.push(duplicate_error(&pool, d));
        let (loser, winner) = (&pool[d.loser], &pool[d.winner]);
        if loser.id() != winner.id() {
            out.retained.insert(loser.id());
        }
    }
    for (&i, holder) in &held_by_other {
        let m = &mounts[i];
        out.losers.push(ManifestError {
            file: m.file.clone(),
            position: None,
            field: Some("metadata.name".into()),
            message: format!(
                "mount '{}' is live and belongs to {}, the file that made it; this manifest is ignored while that file exists",
                m.id(),
                holder.display()
            ),
            kind: ErrorKind::Duplicate,
        });
    }
    out.losers.sort_by(|a, b| a.file.cmp(&b.file));
    out.desired = (0..mounts.len())
        .filter(|i| !held_by_other.contains_key(i) && !losing.contains(i))
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{Methods, ObservedMethod, ObservedResource};
    use crate::plan::names::marker;
    use std::path::Path;

    const OWNER: &str = "team";

    fn mount(key: &str, name: &str, path: &str) -> Mount {
        let text = format!(
            "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: {path}\n  function: f\n"
        );
        Mount {
            key: key.into(),
            ..crate::manifest::parse(Path::new(&format!("/m/{key}")), text.as_bytes()).unwrap()
        }
    }

    /// An API where `live` is mounted (by the file of its key).
    fn api_with(live: &[&Mount], legacy: bool) -> ObservedApi {
        let mut resources = vec![ObservedResource {
            id: "root".into(),
            path: "/".into(),
            methods: Methods::new(),
        }];
        for m in live {
            let operation_name = if legacy {
                format!("apimount:{OWNER}:{}", m.name)
            } else {
                marker(OWNER, m)
            };
            let method = ObservedMethod {
                authorization_type: "NONE".into(),
                authorizer_id: None,
                api_key_required: false,
                operation_name: Some(operation_name),
                integration: None,
                responses: Default::default(),
            };
            resources.push(ObservedResource {
                id: m.path.to_string(),
                path: m.path.to_string(),
                methods: [("ANY".to_string(), method)].into_iter().collect(),
            });
        }
        ObservedApi::from_resources(resources)
    }

    fn keys(files: &[&str]) -> BTreeMap<String, PathBuf> {
        files
            .iter()
            .map(|k| (k.to_string(), PathBuf::from(format!("/m/{k}"))))
            .collect()
    }

    fn desired_keys(s: &Settled, mounts: &[Mount]) -> Vec<String> {
        s.desired.iter().map(|&i| mounts[i].key.clone()).collect()
    }

    #[test]
    fn incumbency_follows_the_file() {
        let original = mount("accounts.yaml", "accounts", "/accounts");
        // (what is on the source, which files exist, what is live, who wins)
        type Case = (
            &'static str,
            Vec<Mount>,
            Vec<&'static str>,
            bool,
            Vec<&'static str>,
        );
        let table: Vec<Case> = vec![
            (
                "a copy of name and path sorting first loses",
                vec![
                    mount("0-copy.yaml", "accounts", "/accounts"),
                    original.clone(),
                ],
                vec!["0-copy.yaml", "accounts.yaml"],
                false,
                vec!["accounts.yaml"],
            ),
            (
                "a copy of the name on another path loses",
                vec![mount("0-copy.yaml", "accounts", "/other"), original.clone()],
                vec!["0-copy.yaml", "accounts.yaml"],
                false,
                vec!["accounts.yaml"],
            ),
            (
                "a copy loses while the original file is present but broken",
                vec![mount("0-copy.yaml", "accounts", "/accounts")],
                vec!["0-copy.yaml", "accounts.yaml"],
                false,
                vec![],
            ),
            (
                "a rename takes over",
                vec![mount("renamed.yaml", "accounts", "/accounts")],
                vec!["renamed.yaml"],
                false,
                vec!["renamed.yaml"],
            ),
            (
                "markers from before files were recorded: the first by file name",
                vec![
                    mount("0-copy.yaml", "accounts", "/accounts"),
                    original.clone(),
                ],
                vec!["0-copy.yaml", "accounts.yaml"],
                true,
                vec!["0-copy.yaml"],
            ),
            (
                "a legacy marker holds the path for its mount, not for another name",
                vec![
                    mount("0-copy.yaml", "accounts-new", "/accounts"),
                    original.clone(),
                ],
                vec!["0-copy.yaml", "accounts.yaml"],
                true,
                vec!["accounts.yaml"],
            ),
        ];
        for (what, mounts, files, legacy, want) in table {
            let api = api_with(&[&original], legacy);
            let s = settle(&api, OWNER, &mounts, &keys(&files));
            assert_eq!(desired_keys(&s, &mounts), want, "{what}");
            assert_eq!(
                s.losers.len(),
                mounts.len() - want.len(),
                "{what}: {:?}",
                s.losers
            );
            for e in &s.losers {
                assert_eq!(e.kind, ErrorKind::Duplicate, "{what}");
                assert!(
                    e.message.contains("accounts.yaml") || e.message.contains("0-copy.yaml"),
                    "{what}: names the other file: {e}"
                );
            }
        }
    }

    #[test]
    fn newcomers_and_other_tenants() {
        let mounts = vec![
            mount("a.yaml", "x", "/x"),
            mount("b.yaml", "x", "/y"),
            mount("c.yaml", "z", "/x"),
        ];
        let s = settle(
            &ObservedApi::default(),
            OWNER,
            &mounts,
            &keys(&["a.yaml", "b.yaml", "c.yaml"]),
        );
        assert_eq!(desired_keys(&s, &mounts), vec!["a.yaml"]);
        // c lost on the path under another name: its own routes stay.
        assert!(s.retained.contains(&mounts[2].id()));
        // The same name in two tenants is two mounts.
        let mut other = mounts[1].clone();
        other.tenant = Some("payments".into());
        let two = vec![mounts[0].clone(), other];
        let s = settle(
            &ObservedApi::default(),
            OWNER,
            &two,
            &keys(&["a.yaml", "b.yaml"]),
        );
        assert_eq!(s.desired, vec![0, 1]);
    }
}
