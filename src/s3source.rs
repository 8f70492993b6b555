//! The S3 source: manifests stored under `s3://bucket/prefix`, polled with
//! ListObjectsV2 and re-read only when an object's ETag changes.
//!
//! A listing that fails is an error of the source, never "no manifests": the
//! caller skips the pass and deletes nothing.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::manifest::{self, MAX_MANIFEST_BYTES};
use crate::source::{build_snapshot, FileEntry, NameMemory, Snapshot};

/// Where the manifests live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix, ending in '/' unless empty.
    pub prefix: String,
}

impl S3Location {
    /// Parses `s3://bucket/prefix`.
    pub fn parse(url: &str) -> Result<S3Location, String> {
        let rest = url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("'{url}' is not an s3:// URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!("'{url}' names no bucket"));
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
    client: aws_sdk_s3::Client,
    location: S3Location,
    cache: HashMap<String, (String, Vec<u8>)>,
}

impl S3Source {
    pub fn new(
        config: &aws_config::SdkConfig,
        location: S3Location,
        metrics: Option<&std::sync::Arc<crate::metrics::Metrics>>,
    ) -> S3Source {
        // Emulators serve buckets by path, not by virtual host.
        let mut builder = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(std::env::var_os("AWS_ENDPOINT_URL").is_some());
        if let Some(m) = metrics {
            builder = builder.interceptor(m.interceptor());
        }
        let s3_config = builder.build();
        S3Source {
            client: aws_sdk_s3::Client::from_conf(s3_config),
            location,
            cache: HashMap::new(),
        }
    }

    pub fn describe(&self) -> String {
        format!("s3://{}/{}", self.location.bucket, self.location.prefix)
    }

    /// Lists the prefix and reads what changed.
    pub async fn load(&mut self, memory: &mut NameMemory) -> Result<Snapshot, String> {
        let mut objects: Vec<(String, String, i64)> = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.location.bucket)
                .prefix(&self.location.prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| {
                    format!(
                        "listing {} failed: {}",
                        self.describe(),
                        aws_smithy_types::error::display::DisplayErrorContext(&e)
                    )
                })?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let name = &key[self.location.prefix.len()..];
                if name.contains('/') || !manifest::is_manifest_file_name(name) {
                    continue;
                }
                objects.push((
                    key.to_string(),
                    o.e_tag().unwrap_or_default().to_string(),
                    o.size().unwrap_or(0),
                ));
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        let mut entries = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for (key, etag, size) in objects {
            seen.insert(key.clone());
            let shown = PathBuf::from(format!("s3://{}/{}", self.location.bucket, key));
            if size as u64 > MAX_MANIFEST_BYTES {
                entries.push(FileEntry {
                    shown,
                    content: Err(format!(
                        "object is {size} bytes; manifests are limited to {MAX_MANIFEST_BYTES} bytes"
                    )),
                });
                continue;
            }
            if let Some((cached_etag, body)) = self.cache.get(&key) {
                if *cached_etag == etag && !etag.is_empty() {
                    entries.push(FileEntry {
                        shown,
                        content: Ok(body.clone()),
                    });
                    continue;
                }
            }
            let content = match self
                .client
                .get_object()
                .bucket(&self.location.bucket)
                .key(&key)
                .send()
                .await
            {
                Ok(out) => match out.body.collect().await {
                    Ok(b) => {
                        let bytes = b.into_bytes().to_vec();
                        self.cache.insert(key.clone(), (etag, bytes.clone()));
                        Ok(bytes)
                    }
                    Err(e) => Err(format!("reading the object failed: {e}")),
                },
                Err(e) => Err(format!(
                    "cannot be read: {}",
                    aws_smithy_types::error::display::DisplayErrorContext(&e)
                )),
            };
            entries.push(FileEntry { shown, content });
        }
        self.cache.retain(|k, _| seen.contains(k));
        Ok(build_snapshot(entries, memory))
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
}
