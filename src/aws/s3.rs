//! The S3 calls of an S3 manifest source: listing a prefix and reading an
//! object.

use super::error::map_err;
use super::{AwsConfig, AwsError};

/// One object of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// S3, through the SDK.
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    pub fn new(config: &AwsConfig) -> S3Objects {
        // Emulators serve buckets by path, not by virtual host.
        let conf = aws_sdk_s3::config::Builder::from(&config.sdk)
            .force_path_style(config.has_endpoint_override())
            .interceptor(config.calls());
        S3Objects {
            client: aws_sdk_s3::Client::from_conf(conf.build()),
        }
    }

    /// One level below `prefix` (delimiter `/`), all pages: the objects
    /// directly under it, and the sub-prefixes (`prefix/x/`).
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Listing, AwsError> {
        let mut listing = Listing::default();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .delimiter("/")
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| map_err("s3:ListObjectsV2", e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                listing.objects.push(ObjectInfo {
                    key: key.to_string(),
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                });
            }
            listing.prefixes.extend(
                page.common_prefixes()
                    .iter()
                    .filter_map(|p| p.prefix().map(str::to_string)),
            );
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(listing)
    }

    /// At most the first `limit + 1` bytes of one object (a Range request,
    /// and the body cut there whatever the server sends), so an object that
    /// grew past a cap since the listing is read no further.
    pub async fn get(&self, bucket: &str, key: &str, limit: u64) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .range(format!("bytes=0-{limit}"))
            .send()
            .await
            .map_err(|e| map_err("s3:GetObject", e))?;
        let mut body = out.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| {
            AwsError::local(
                "s3:GetObject",
                super::AwsErrorKind::Other,
                format!("reading the object failed: {e}"),
            )
        })? {
            let room = (limit + 1).saturating_sub(bytes.len() as u64) as usize;
            bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if bytes.len() as u64 > limit {
                break;
            }
        }
        Ok(bytes)
    }
}

impl S3Objects {
    /// Writes one object.
    pub async fn put(&self, bucket: &str, key: &str, body: Vec<u8>) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| map_err("s3:PutObject", e))?;
        Ok(())
    }

    /// Deletes one object (nothing when it is gone already).
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), AwsError> {
        self.client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err("s3:DeleteObject", e))?;
        Ok(())
    }
}

/// One level of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub objects: Vec<ObjectInfo>,
    /// Sub-prefixes, each ending in `/`.
    pub prefixes: Vec<String>,
}
