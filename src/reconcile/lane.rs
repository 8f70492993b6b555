//! The permission lane: a mount's Lambda permission changes run in the
//! background beside the API Gateway calls of the mounts after it (the two
//! services have separate quotas), one mount's at a time.

use std::sync::Arc;

use super::executor::{apply_permission, InOrder, Outcomes};
use super::report::MountReport;
use super::stop::Stop;
use crate::aws::Aws;
use crate::plan::{Change, Problem, Reason, State};

/// At most one mount's permissions in flight beside the API Gateway calls.
/// One at a time, so that two writes never race on one function's policy.
#[derive(Default)]
pub(crate) struct PermissionLane {
    /// The mount report the running grants belong to, and the task.
    running: Option<(usize, tokio::task::JoinHandle<Outcomes>)>,
}

impl PermissionLane {
    /// Starts `grants` (for the mount whose report will be at `report`) in
    /// the background, in order, stopping at the first failure.
    pub(crate) fn start(&mut self, report: usize, aws: &Aws, stop: &Arc<Stop>, grants: &[Change]) {
        debug_assert!(self.running.is_none(), "finish the previous grants first");
        let (aws, stop, grants) = (aws.clone(), stop.clone(), grants.to_vec());
        let task = tokio::spawn(async move {
            let mut seq = InOrder::new(&grants);
            while let Some(c) = seq.next(&stop) {
                let result = apply_permission(&aws, c).await;
                seq.record(result);
            }
            seq.finish()
        });
        self.running = Some((report, task));
    }

    /// Waits for the running grants and adds their outcomes to their mount.
    pub(crate) async fn finish(&mut self, reports: &mut [MountReport]) {
        let Some((index, task)) = self.running.take() else {
            return;
        };
        let (outcomes, problem) = task.await.unwrap_or_else(|e| {
            let p = Problem::new(Reason::AwsError, format!("permission task failed: {e}"));
            (Vec::new(), Some(p))
        });
        let mr = &mut reports[index];
        mr.changes.extend(outcomes);
        if let Some(p) = problem {
            if mr.problem.is_none() {
                mr.state = State::Failed;
                mr.problem = Some(p);
            }
        }
    }
}
