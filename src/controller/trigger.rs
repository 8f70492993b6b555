//! Why the loop runs a pass. The reconciler never sees it (a pass reads
//! everything whatever woke it); it is logged, and it decides which
//! functions the pass reads.

use crate::reconcile::Reads;

/// What started a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// The first pass after the process started.
    Start,
    /// The folder changed, or the S3 listing shows a new revision.
    ManifestsChanged,
    /// The periodic resync.
    Resync,
    /// A retry after a transient failure of the pass as a whole.
    Retry,
    /// A retry of mounts that failed for a transient reason.
    RetryMounts,
    /// This instance just became the leader.
    LeaseAcquired,
    /// This instance lost the lease during its wait (it stands by next).
    LeaseLost,
    /// SIGHUP: the tenant policy read again, the folder watch re-armed.
    Reload,
}

impl Trigger {
    /// The word in the `pass finished` log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::ManifestsChanged => "manifests changed",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
            Trigger::RetryMounts => "retry mounts",
            Trigger::LeaseAcquired => "lease acquired",
            Trigger::LeaseLost => "lease lost",
            Trigger::Reload => "reload",
        }
    }

    /// Which functions a pass started this way reads. A changed manifest,
    /// or a retry of some mounts (whose functions were forgotten), is acted
    /// on with what is known of the functions, unless the pass as a whole
    /// failed before; every other pass reads them all again.
    pub fn reads(self, after_failed_pass: bool) -> Reads {
        let narrow = matches!(self, Trigger::ManifestsChanged | Trigger::RetryMounts);
        if narrow && !after_failed_pass {
            Reads::Changed
        } else {
            Reads::All
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_change_or_a_mount_retry_after_a_clean_pass_reads_less() {
        for t in [
            Trigger::Start,
            Trigger::ManifestsChanged,
            Trigger::Resync,
            Trigger::Retry,
            Trigger::RetryMounts,
            Trigger::LeaseAcquired,
            Trigger::LeaseLost,
        ] {
            let want = if matches!(t, Trigger::ManifestsChanged | Trigger::RetryMounts) {
                Reads::Changed
            } else {
                Reads::All
            };
            assert_eq!(t.reads(false), want, "{t:?}");
            assert_eq!(t.reads(true), Reads::All, "{t:?}");
        }
    }
}
