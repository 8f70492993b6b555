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

    /// Every object whose key starts with `prefix`, all pages.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, AwsError> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.clone())
                .send()
                .await
                .map_err(|e| map_err("s3:ListObjectsV2", e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                objects.push(ObjectInfo {
                    key: key.to_string(),
                    etag: o.e_tag().unwrap_or_default().to_string(),
                    size: o.size().unwrap_or(0).max(0) as u64,
                });
            }
            match page.next_continuation_token() {
                Some(t) if page.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(objects)
    }

    /// The body of one object.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Vec<u8>, AwsError> {
        let out = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| map_err("s3:GetObject", e))?;
        let body = out.body.collect().await.map_err(|e| {
            AwsError::local(
                "s3:GetObject",
                super::AwsErrorKind::Other,
                format!("reading the object failed: {e}"),
            )
        })?;
        Ok(body.into_bytes().to_vec())
    }
}
