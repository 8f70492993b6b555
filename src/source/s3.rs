//! The S3 source: manifests stored under `s3://bucket/prefix`, polled with
//! ListObjectsV2 and re-read only when an object's ETag changes.
//!
//! A listing that fails is an error of the source, never "no manifests": the
//! caller skips the pass and deletes nothing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::{
    build_snapshot, within_caps, FileEntry, Layout, Listed, NameMemory, Placement, Snapshot,
    SourceError,
};
use futures::stream::{self, StreamExt};

use crate::aws::s3::{ObjectInfo, S3Objects};
use crate::errors::chain;
use crate::manifest::{self, MAX_MANIFEST_BYTES};

/// Where the manifests live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix, ending in '/' unless empty.
    pub prefix: String,
}

/// An `s3://` URL that does not name a bucket and prefix.
#[derive(Debug, thiserror::Error)]
#[error("'{url}' {problem}")]
pub struct BadS3Url {
    url: String,
    problem: &'static str,
}

impl S3Location {
    /// Parses `s3://bucket/prefix`.
    pub fn parse(url: &str) -> Result<S3Location, BadS3Url> {
        let bad = |problem| BadS3Url {
            url: url.to_string(),
            problem,
        };
        let rest = url
            .strip_prefix("s3://")
            .ok_or(bad("is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("names no bucket"));
        }
        let mut prefix = prefix.to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix,
        })
    }
}

/// Polls one prefix, caching object bodies by ETag.
pub struct S3Source {
    objects: S3Objects,
    location: S3Location,
    cache: HashMap<String, (String, Vec<u8>)>,
}

impl S3Source {
    pub fn new(objects: S3Objects, location: S3Location) -> S3Source {
        S3Source {
            objects,
            location,
            cache: HashMap::new(),
        }
    }

    pub fn location(&self) -> &S3Location {
        &self.location
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    /// Lists the prefix and reads what changed: the objects directly under
    /// it, or under each tenant's sub-prefix (one level each, delimiter
    /// `/`). Objects are read smallest first within the source's caps, four
    /// at a time, each cut at the manifest size cap.
    pub async fn load(
        &mut self,
        layout: &Layout,
        memory: &mut NameMemory,
    ) -> Result<Snapshot, SourceError> {
        let loc = self.location.clone();
        let top = self
            .objects
            .list(&loc.bucket, &loc.prefix)
            .await
            .map_err(|source| SourceError::Listing {
                location: self.describe(),
                source: Box::new(source),
            })?;
        let shown = |key: &str| PathBuf::from(format!("s3://{}/{key}", loc.bucket));
        let mut entries = Vec::new();
        let mut found: Vec<(ObjectInfo, String, Placement)> = Vec::new();
        let place = |o: ObjectInfo, found: &mut Vec<_>| {
            let key = o.key[loc.prefix.len()..].to_string();
            if let Some(p) = placement(layout, &key) {
                found.push((o, key, p));
            }
        };
        for o in top.objects {
            place(o, &mut found);
        }
        if let Layout::Tenants(tenants) = layout {
            for sub in &top.prefixes {
                let folder = sub[loc.prefix.len()..].trim_end_matches('/').to_string();
                let key = format!("{folder}/");
                if !tenants.contains(&folder) {
                    entries.push(FileEntry {
                        shown: shown(sub),
                        key,
                        placement: Placement::Elsewhere,
                        content: Err(String::new()),
                    });
                    continue;
                }
                match self.objects.list(&loc.bucket, sub).await {
                    Ok(inner) => {
                        for o in inner.objects {
                            place(o, &mut found);
                        }
                    }
                    // Its manifests are unknown: the tenant's removals are held.
                    Err(e) => entries.push(FileEntry {
                        shown: shown(sub),
                        key,
                        placement: Placement::Tenant(folder),
                        content: Err(format!(
                            "is a tenant's prefix that cannot be listed: {}",
                            chain(&e)
                        )),
                    }),
                }
            }
        }
        let mut listed = Vec::new();
        for (o, key, placement) in found {
            if placement == Placement::Elsewhere {
                entries.push(FileEntry {
                    shown: shown(&o.key),
                    key,
                    placement,
                    content: Err(String::new()),
                });
                continue;
            }
            listed.push(Listed {
                size: o.size,
                shown: shown(&o.key),
                key,
                placement,
                item: o,
            });
        }
        // An object over the size cap counts as the cap: it is refused
        // below without being read.
        for l in &mut listed {
            l.size = l.size.min(MAX_MANIFEST_BYTES + 1);
        }
        let (read, over_caps) = within_caps(listed);
        let mut downloads = Vec::new();
        let mut seen = HashSet::new();
        for l in read {
            let o = l.item;
            seen.insert(o.key.clone());
            let (shown, key, placement) = (l.shown, l.key, l.placement);
            let entry = |content| FileEntry {
                shown: shown.clone(),
                key: key.clone(),
                placement: placement.clone(),
                content,
            };
            if o.size > MAX_MANIFEST_BYTES {
                entries.push(entry(Err(format!(
                    "object is {} bytes; manifests are limited to {MAX_MANIFEST_BYTES} bytes",
                    o.size
                ))));
            } else if let Some(body) = self
                .cache
                .get(&o.key)
                .filter(|(etag, _)| *etag == o.etag && !o.etag.is_empty())
                .map(|(_, body)| body.clone())
            {
                entries.push(entry(Ok(body)));
            } else {
                downloads.push((o, key, placement));
            }
        }
        for u in &over_caps {
            // Still listed: its cached body stays for when it fits again.
            seen.insert(format!("{}{}", loc.prefix, u.key));
        }
        let objects = &self.objects;
        let bucket = loc.bucket.as_str();
        let read: Vec<_> = stream::iter(downloads)
            .map(|(o, key, placement)| async move {
                let got = objects.get(bucket, &o.key, MAX_MANIFEST_BYTES).await;
                (o, key, placement, got)
            })
            .buffer_unordered(DOWNLOADS)
            .collect()
            .await;
        for (o, key, placement, got) in read {
            let content = match got {
                Ok(bytes) if bytes.len() as u64 > MAX_MANIFEST_BYTES => Err(format!(
                    "object grew past {MAX_MANIFEST_BYTES} bytes since it was listed"
                )),
                Ok(bytes) => {
                    self.cache.insert(o.key.clone(), (o.etag, bytes.clone()));
                    Ok(bytes)
                }
                Err(e) => Err(format!("cannot be read: {}", chain(&e))),
            };
            entries.push(FileEntry {
                shown: shown(&o.key),
                key,
                placement,
                content,
            });
        }
        self.cache.retain(|k, _| seen.contains(k));
        Ok(build_snapshot(entries, over_caps, memory))
    }
}

/// Objects downloaded at once.
const DOWNLOADS: usize = 4;

/// Where an object (by its key below the prefix) lies; `None` when it is
/// not a manifest at all.
fn placement(layout: &Layout, key: &str) -> Option<Placement> {
    let (folder, file) = match key.rsplit_once('/') {
        Some((folder, file)) => (Some(folder), file),
        None => (None, key),
    };
    if !manifest::is_manifest_file_name(file) {
        return None;
    }
    match (layout, folder) {
        (Layout::Flat, None) => Some(Placement::Flat),
        // Below a single-tenant prefix only its own level counts, as in a folder.
        (Layout::Flat, Some(_)) => None,
        (Layout::Tenants(_), None) => Some(Placement::TopLevel),
        (Layout::Tenants(tenants), Some(folder)) if tenants.contains(folder) => {
            Some(Placement::Tenant(folder.to_string()))
        }
        (Layout::Tenants(_), Some(_)) => Some(Placement::Elsewhere),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let l = S3Location::parse("s3://b/team/mounts").unwrap();
        assert_eq!(
            (l.bucket.as_str(), l.prefix.as_str()),
            ("b", "team/mounts/")
        );
        let l = S3Location::parse("s3://b").unwrap();
        assert_eq!(l.prefix, "");
        assert!(S3Location::parse("http://b").is_err());
        assert!(S3Location::parse("s3:///x").is_err());
    }

    #[test]
    fn placements() {
        let tenants = Layout::Tenants(["accounts".to_string()].into());
        let table: &[(&Layout, &str, Option<Placement>)] = &[
            (&Layout::Flat, "a.yaml", Some(Placement::Flat)),
            (&Layout::Flat, "sub/a.yaml", None),
            (&Layout::Flat, "README.md", None),
            (&tenants, "a.yaml", Some(Placement::TopLevel)),
            (
                &tenants,
                "accounts/a.yaml",
                Some(Placement::Tenant("accounts".into())),
            ),
            (&tenants, "accounts/x/a.yaml", Some(Placement::Elsewhere)),
            (&tenants, "payments/a.yaml", Some(Placement::Elsewhere)),
            (&tenants, "accounts/notes.txt", None),
        ];
        for (layout, key, want) in table {
            assert_eq!(&placement(layout, key), want, "{key}");
        }
    }
}
