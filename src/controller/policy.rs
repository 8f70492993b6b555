//! The tenant policy in the daemon: the file is read again before every pass
//! (its folder is watched, so a change starts one). A valid new version is
//! in force from that pass on, without a restart; an invalid one is reported
//! once, and the last valid version stays in force.

use std::path::PathBuf;
use std::sync::Arc;

use crate::manifest::tenants::{load_policy, TenantPolicy};

/// The policy file and the version in force.
pub struct PolicyFile {
    path: PathBuf,
    current: Arc<TenantPolicy>,
    /// The problems of the invalid version last reported, so each is reported once.
    reported: Option<String>,
}

impl PolicyFile {
    /// A policy file whose version `valid` (read at start) is in force.
    pub fn new(path: PathBuf, valid: TenantPolicy) -> PolicyFile {
        PolicyFile {
            path,
            current: Arc::new(valid),
            reported: None,
        }
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The version in force.
    pub fn current(&self) -> &Arc<TenantPolicy> {
        &self.current
    }

    /// Reads the file again and puts a valid new version in force.
    pub fn refresh(&mut self) {
        match load_policy(&self.path) {
            Ok(p) => {
                if p != *self.current {
                    tracing::info!(
                        file = %self.path.display(),
                        tenants = p.tenants.len(),
                        "tenant policy changed; the new version is in force"
                    );
                    self.current = Arc::new(p);
                }
                self.reported = None;
            }
            Err(errors) => {
                let text: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                let text = text.join("\n");
                if self.reported.as_deref() != Some(text.as_str()) {
                    for e in &errors {
                        tracing::warn!(
                            file = %e.file.display(),
                            detail = %e,
                            "tenant policy rejected; the last valid version stays in force"
                        );
                    }
                    self.reported = Some(text);
                }
            }
        }
    }
}
