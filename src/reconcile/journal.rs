//! The in-flight journal: which resources a pass may leave without any method
//! if it is cut short, kept in one tag on the stage.
//!
//! API Gateway resources carry nothing that says who made them; only methods
//! do (apimount's marker is in their operationName). A resource created just
//! before a crash, before its first method, or a parent whose last child was
//! deleted just before a crash, would look like anybody's resource to the next
//! pass. If its manifest is gone by then, nobody would ever remove it.
//!
//! So before a group of changes that can leave such a resource, the executor
//! writes the short hashes of those paths into the tag `apimount:{owner}:inflight`
//! (TagResource merges, other tags stay). The next pass reads the tag with the
//! stage (no extra call) and removes any journaled resource that is still
//! method-less in its whole subtree and that no manifest needs. The tag is
//! removed at the end of a pass that leaves nothing of the kind behind.
//!
//! A tag value holds at most 256 characters, so changes are journaled in
//! chunks of whole groups (a mount, a removal) of at most [`CAPACITY`] paths;
//! a chunk is written before its first group runs. A pass that creates or
//! empties no resource writes nothing. Before the stage first exists there is
//! nothing to tag: the very first pass is not journaled.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::plan::model::ObservedApi;
use crate::plan::{ancestors, Change};

/// Hashes per tag value: 28 × 8 hex digits with 27 separators = 251
/// characters, under API Gateway's 256-character tag value limit.
pub const CAPACITY: usize = 28;

/// Between two hashes: a character of the set API Gateway documents for tag
/// values (letters, digits, `+ - = . _ : /`), which has no space.
const SEPARATOR: char = '.';

/// The stage tag holding this owner's journal.
pub fn key(owner: &str) -> String {
    format!("apimount:{owner}:inflight")
}

/// A short, stable hash of a resource path: 32 bits are plenty, as a hash is
/// only ever compared with the paths of method-less resources.
pub fn path_hash(path: &str) -> String {
    let digest = Sha256::digest(path.as_bytes());
    digest[..4].iter().map(|b| format!("{b:02x}")).collect()
}

pub fn encode(hashes: &BTreeSet<String>) -> String {
    hashes
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join(&SEPARATOR.to_string())
}

/// The hashes of a tag value; values written by earlier versions, joined
/// with spaces, read the same.
pub fn decode(value: &str) -> BTreeSet<String> {
    value
        .split(|c: char| c == SEPARATOR || c.is_whitespace())
        .filter(|h| h.len() == 8 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .map(str::to_string)
        .collect()
}

/// Journaled resources with no method anywhere in their subtree: what a pass
/// cut short left behind.
pub fn abandoned(api: &ObservedApi, journal: &BTreeSet<String>) -> BTreeSet<String> {
    if journal.is_empty() {
        return BTreeSet::new();
    }
    api.resources
        .values()
        .filter(|r| r.path != "/" && journal.contains(&path_hash(&r.path)))
        .filter(|r| !api.serves_at_or_below(&r.path))
        .map(|r| r.path.clone())
        .collect()
}

/// Paths a group of changes can leave method-less if cut short: resources it
/// creates (a method comes later), method-less resources it deletes (a
/// parent whose child goes first), and resources whose every method it
/// deletes while nothing below them is served (a verb dropped before its
/// replacement is put). A method repaired by delete-and-put, where the
/// backend cannot patch, is journaled by the executor when it happens.
pub fn at_risk(api: &ObservedApi, changes: &[Change]) -> BTreeSet<String> {
    let mut paths = BTreeSet::new();
    let mut deleting: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    for c in changes {
        if let Change::DeleteMethod { path, verb } = c {
            deleting.entry(path).or_default().insert(verb);
        }
    }
    for (path, verbs) in deleting {
        let emptied = api.get(path).is_some_and(|r| {
            r.methods.keys().all(|v| verbs.contains(v.as_str()))
                && api.descendants(path).iter().all(|d| d.methods.is_empty())
        });
        if emptied {
            paths.insert(path_hash(path));
        }
    }
    for c in changes {
        match c {
            Change::CreateResource { path } | Change::PutMethod { path, .. } => {
                let levels = ancestors(path).into_iter().chain([path.clone()]);
                paths.extend(
                    levels
                        .filter(|p| api.get(p).is_none())
                        .map(|p| path_hash(&p)),
                );
            }
            Change::DeleteResource { path }
                if api.get(path).is_some_and(|r| r.methods.is_empty()) =>
            {
                paths.insert(path_hash(path));
            }
            _ => {}
        }
    }
    paths
}

/// Groups consecutive groups' at-risk paths into chunks that fit one tag.
/// Returns, for each group, the chunk to write before it runs (`None` when it
/// is covered by the chunk written before an earlier group, or needs none).
/// A group larger than a tag gets a chunk of its own, truncated: its tail is
/// then not journaled (such a group would be a path over 28 levels deep).
pub fn chunks(needs: &[BTreeSet<String>]) -> Vec<Option<BTreeSet<String>>> {
    let mut out: Vec<Option<BTreeSet<String>>> = vec![None; needs.len()];
    let mut open: Option<(usize, BTreeSet<String>)> = None;
    for (i, need) in needs.iter().enumerate() {
        if need.is_empty() {
            continue;
        }
        match &mut open {
            Some((_, set)) if set.union(need).count() <= CAPACITY => {
                set.extend(need.iter().cloned())
            }
            _ => {
                if let Some((start, set)) = open.take() {
                    out[start] = Some(set);
                }
                open = Some((i, need.iter().take(CAPACITY).cloned().collect()));
            }
        }
    }
    if let Some((start, set)) = open {
        out[start] = Some(set);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::model::{ObservedMethod, ObservedResource};

    fn api(paths: &[(&str, bool)]) -> ObservedApi {
        let mut api = ObservedApi::default();
        for (i, (path, with_method)) in paths.iter().enumerate() {
            let mut r = ObservedResource {
                id: format!("r{i}"),
                path: path.to_string(),
                methods: Default::default(),
            };
            if *with_method {
                let m = ObservedMethod {
                    authorization_type: "NONE".into(),
                    authorizer_id: None,
                    api_key_required: false,
                    operation_name: None,
                    integration: None,
                    responses: Default::default(),
                };
                r.methods.insert("GET".into(), m);
            }
            api.resources.insert(path.to_string(), r);
        }
        api
    }

    #[test]
    fn hashes_fit_one_tag_value() {
        let set: BTreeSet<String> = (0..CAPACITY)
            .map(|i| path_hash(&format!("/p{i}")))
            .collect();
        assert_eq!(set.len(), CAPACITY);
        let value = encode(&set);
        assert!(value.len() <= 256, "{} characters", value.len());
        assert_eq!(decode(&value), set);
        // Only characters API Gateway documents for tag values.
        assert!(
            value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-=._:/".contains(c)),
            "{value}"
        );
        assert!(decode("not-a-hash 0123abcd").contains("0123abcd"));
        assert_eq!(decode("not-a-hash 0123abcd").len(), 1);
        // Values an earlier version wrote (space-separated) read the same.
        let old = set.iter().cloned().collect::<Vec<_>>().join(" ");
        assert_eq!(decode(&old), set);
    }

    #[test]
    fn creations_journal_every_missing_level() {
        let a = api(&[("/", false), ("/v1", true)]);
        let changes = vec![Change::CreateResource {
            path: "/v1/accounts/{proxy+}".into(),
        }];
        let got = at_risk(&a, &changes);
        let want: BTreeSet<String> = ["/v1/accounts/{proxy+}", "/v1/accounts"]
            .iter()
            .map(|p| path_hash(p))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn deletions_journal_only_method_less_resources() {
        let a = api(&[("/", false), ("/a", false), ("/a/b", true)]);
        let changes = vec![
            Change::DeleteResource {
                path: "/a/b".into(),
            },
            Change::DeleteResource { path: "/a".into() },
        ];
        assert_eq!(at_risk(&a, &changes), BTreeSet::from([path_hash("/a")]));
    }

    #[test]
    fn deleting_every_method_of_a_resource_journals_it() {
        let mut a = api(&[
            ("/", false),
            ("/a", true),
            ("/b", true),
            ("/c", false),
            ("/c/d", true),
        ]);
        let get = a.resources["/a"].methods["GET"].clone();
        a.resources
            .get_mut("/b")
            .unwrap()
            .methods
            .insert("POST".into(), get);
        let del = |path: &str, verb: &str| Change::DeleteMethod {
            path: path.into(),
            verb: verb.into(),
        };
        // /a loses its only method; /b keeps POST; /c has nothing to lose.
        assert_eq!(
            at_risk(&a, &[del("/a", "GET"), del("/b", "GET")]),
            BTreeSet::from([path_hash("/a")])
        );
        // Both of /b's methods go: journaled.
        assert_eq!(
            at_risk(&a, &[del("/b", "GET"), del("/b", "POST")]),
            BTreeSet::from([path_hash("/b")])
        );
        // A method below keeps the resource served: not journaled.
        let methods = a.resources["/a"].methods.clone();
        a.resources.get_mut("/c").unwrap().methods = methods;
        assert!(at_risk(&a, &[del("/c", "GET")]).is_empty());
    }

    #[test]
    fn abandoned_needs_a_method_less_subtree_and_a_journal_entry() {
        let a = api(&[
            ("/", false),
            ("/a", false),
            ("/a/b", false),
            ("/c", false),
            ("/c/d", true),
            ("/e", false),
        ]);
        let journal: BTreeSet<String> = ["/a", "/a/b", "/c"].iter().map(|p| path_hash(p)).collect();
        // /c holds a method below it; /e is not journaled (someone else's).
        assert_eq!(
            abandoned(&a, &journal),
            BTreeSet::from(["/a".to_string(), "/a/b".to_string()])
        );
        assert!(abandoned(&a, &BTreeSet::new()).is_empty());
    }

    #[test]
    fn chunks_keep_groups_whole_and_fit_a_tag() {
        let group = |from: usize, n: usize| -> BTreeSet<String> {
            (from..from + n)
                .map(|i| path_hash(&format!("/m{i}")))
                .collect()
        };
        let needs = vec![
            group(0, 10),
            BTreeSet::new(),
            group(10, 10),
            group(20, 10),
            group(30, 2),
        ];
        let c = chunks(&needs);
        assert_eq!(c.len(), 5);
        assert_eq!(c[0].as_ref().map(BTreeSet::len), Some(20));
        assert!(c[1].is_none() && c[2].is_none());
        assert_eq!(c[3].as_ref().map(BTreeSet::len), Some(12));
        assert!(c[4].is_none());
        assert!(c.iter().flatten().all(|s| s.len() <= CAPACITY));
        // Every need is inside the chunk in force when its group runs.
        let mut current = BTreeSet::new();
        for (need, chunk) in needs.iter().zip(&c) {
            if let Some(s) = chunk {
                current = s.clone();
            }
            assert!(need.is_subset(&current));
        }
    }
}
