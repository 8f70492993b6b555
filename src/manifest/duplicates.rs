//! Checks that need more than one manifest: two files with the same name
//! (within a tenant) or the same path. Which one wins needs the live gateway and is decided by the
//! reconciler; this module only finds the clashes and words the error.

use std::collections::BTreeMap;

use super::{ErrorKind, ManifestError, Mount, MountId, MountPath};

/// A manifest that loses to another with the same name or path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    /// Index into the input slice of the losing manifest.
    pub loser: usize,
    /// Index of the manifest it lost to.
    pub winner: usize,
    pub field: &'static str,
}

/// Finds manifests that share a name or a path. Within each clash the winner is
/// the one `is_incumbent` says is live; among several or none, the first by file
/// path (stable across restarts). Every other manifest of the clash loses.
pub fn find_duplicates(mounts: &[Mount], is_incumbent: &dyn Fn(&Mount) -> bool) -> Vec<Duplicate> {
    let mut order: Vec<usize> = (0..mounts.len()).collect();
    // Incumbents first, then by file path: the winner of any clash comes first.
    order.sort_by(|&a, &b| {
        is_incumbent(&mounts[b])
            .cmp(&is_incumbent(&mounts[a]))
            .then_with(|| mounts[a].file.cmp(&mounts[b].file))
    });
    let mut by_name: BTreeMap<MountId, usize> = BTreeMap::new();
    let mut by_path: BTreeMap<&MountPath, usize> = BTreeMap::new();
    let mut out = Vec::new();
    for i in order {
        let m = &mounts[i];
        if let Some(&w) = by_name.get(&m.id()) {
            out.push(Duplicate {
                loser: i,
                winner: w,
                field: "metadata.name",
            });
            continue;
        }
        if let Some(&w) = by_path.get(&m.path) {
            out.push(Duplicate {
                loser: i,
                winner: w,
                field: "spec.path",
            });
            continue;
        }
        by_name.insert(m.id(), i);
        by_path.insert(&m.path, i);
    }
    out.sort_by_key(|d| d.loser);
    out
}

/// The error to report for a losing duplicate.
pub fn duplicate_error(mounts: &[Mount], d: &Duplicate) -> ManifestError {
    let loser = &mounts[d.loser];
    let winner = &mounts[d.winner];
    let what = if d.field == "metadata.name" {
        format!("name '{}'", loser.id())
    } else {
        format!("path {}", loser.path)
    };
    ManifestError {
        file: loser.file.clone(),
        position: None,
        field: Some(d.field.to_string()),
        message: format!(
            "{what} is already used by {}; this manifest is ignored until the clash is resolved",
            winner.file.display()
        ),
        kind: ErrorKind::Duplicate,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn mount(file: &str, name: &str, path: &str) -> Mount {
        super::super::parse(
            Path::new(file),
            format!(
                "apiVersion: apimount/v1\nkind: ServiceMount\nmetadata:\n  name: {name}\nspec:\n  path: {path}\n  function: f\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn a_clash_is_lost_by_all_but_the_live_or_first_file_and_says_to_whom() {
        let mounts = [
            mount("a.yaml", "accounts", "/accounts"),
            mount("b.yaml", "accounts", "/b"),
            mount("c.yaml", "payments", "/accounts"),
            mount("d.yaml", "profiles", "/profiles"),
        ];
        // None live: the first by file wins each clash.
        let none = find_duplicates(&mounts, &|_| false);
        let words: Vec<(String, Option<String>, String)> = none
            .iter()
            .map(|d| {
                let e = duplicate_error(&mounts, d);
                (e.file.display().to_string(), e.field, e.message)
            })
            .collect();
        assert_eq!(
            words,
            vec![
                (
                    "b.yaml".to_string(),
                    Some("metadata.name".to_string()),
                    "name 'accounts' is already used by a.yaml; this manifest is ignored until the clash is resolved".to_string()
                ),
                (
                    "c.yaml".to_string(),
                    Some("spec.path".to_string()),
                    "path /accounts is already used by a.yaml; this manifest is ignored until the clash is resolved".to_string()
                ),
            ]
        );
        assert!(none
            .iter()
            .all(|d| duplicate_error(&mounts, d).kind == ErrorKind::Duplicate));
        // The live one wins, whatever its file is called; a loser holds
        // nothing, so b's name is free once a has lost.
        let live = find_duplicates(&mounts, &|m| m.file == Path::new("c.yaml"));
        let pairs: Vec<(usize, usize, &str)> =
            live.iter().map(|d| (d.loser, d.winner, d.field)).collect();
        assert_eq!(pairs, vec![(0, 2, "spec.path")]);
    }
}
