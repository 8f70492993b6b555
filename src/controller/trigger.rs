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
    /// A retry after a transient failure.
    Retry,
    /// This instance just became the leader.
    LeaseAcquired,
    /// This instance lost the lease during its wait (it stands by next).
    LeaseLost,
}

impl Trigger {
    /// The word in the `pass finished` log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::ManifestsChanged => "manifests changed",
            Trigger::Resync => "resync",
            Trigger::Retry => "retry",
            Trigger::LeaseAcquired => "lease acquired",
            Trigger::LeaseLost => "lease lost",
        }
    }

    /// Which functions a pass started this way reads. A changed manifest is
    /// acted on with what is known of the functions, unless the pass before
    /// failed for a transient reason; every other pass reads them all again.
    pub fn reads(self, after_transient_failure: bool) -> Reads {
        if self == Trigger::ManifestsChanged && !after_transient_failure {
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
    fn only_a_manifest_change_after_a_clean_pass_reads_less() {
        for t in [
            Trigger::Start,
            Trigger::ManifestsChanged,
            Trigger::Resync,
            Trigger::Retry,
            Trigger::LeaseAcquired,
            Trigger::LeaseLost,
        ] {
            let want = if t == Trigger::ManifestsChanged {
                Reads::Changed
            } else {
                Reads::All
            };
            assert_eq!(t.reads(false), want, "{t:?}");
            assert_eq!(t.reads(true), Reads::All, "{t:?}");
        }
    }
}
