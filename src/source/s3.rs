//! The S3 source: manifests stored under `s3://bucket/prefix`, polled with
//! ListObjectsV2 and re-read only when an object's ETag changes.
//!
//! A listing that fails is an error of the source, never "no manifests": the
//! caller skips the pass and deletes nothing.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use super::{build_snapshot, FileEntry, Layout, NameMemory, Placement, Snapshot, SourceError};
use crate::aws::s3::S3Objects;
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

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    /// Lists the prefix and reads what changed: the objects directly under
    /// it, or under each tenant's sub-prefix.
    pub async fn load(
        &mut self,
        layout: &Layout,
        memory: &mut NameMemory,
    ) -> Result<Snapshot, SourceError> {
        let loc = &self.location;
        let listed = self
            .objects
            .list(&loc.bucket, &loc.prefix)
            .await
            .map_err(|source| SourceError::Listing {
                location: self.describe(),
                source: Box::new(source),
            })?;
        let mut entries = Vec::new();
        let mut seen = HashSet::new();
        for o in listed {
            let key = o.key[loc.prefix.len()..].to_string();
            let Some(placement) = placement(layout, &key) else {
                continue;
            };
            seen.insert(o.key.clone());
            let shown = PathBuf::from(format!("s3://{}/{}", loc.bucket, o.key));
            if placement == Placement::Elsewhere {
                entries.push(FileEntry {
                    shown,
                    key,
                    placement,
                    content: Err(String::new()),
                });
                continue;
            }
            if o.size > MAX_MANIFEST_BYTES {
                entries.push(FileEntry {
                    shown,
                    key,
                    placement,
                    content: Err(format!(
                        "object is {} bytes; manifests are limited to {MAX_MANIFEST_BYTES} bytes",
                        o.size
                    )),
                });
                continue;
            }
            if let Some((cached_etag, body)) = self.cache.get(&o.key) {
                if *cached_etag == o.etag && !o.etag.is_empty() {
                    entries.push(FileEntry {
                        shown,
                        key,
                        placement,
                        content: Ok(body.clone()),
                    });
                    continue;
                }
            }
            let content = match self.objects.get(&loc.bucket, &o.key).await {
                Ok(bytes) => {
                    self.cache.insert(o.key.clone(), (o.etag, bytes.clone()));
                    Ok(bytes)
                }
                Err(e) => Err(format!("cannot be read: {}", chain(&e))),
            };
            entries.push(FileEntry {
                shown,
                key,
                placement,
                content,
            });
        }
        self.cache.retain(|k, _| seen.contains(k));
        Ok(build_snapshot(entries, memory))
    }
}

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
