//! The executor: makes a plan's changes through the AWS adapter, group by
//! group (a mount, a removal), in order within a group, keeping a model of
//! the API current and the in-flight journal written ahead of the changes
//! that need it.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};

use super::journal;
use super::report::ChangeOutcome;
use crate::aws::{Aws, AwsError, AwsErrorKind};
use crate::errors::chain;
use crate::plan::model::{ObservedApi, ResolvedFunction};
use crate::plan::{Change, Problem, Reason};

/// The outcomes of a run of changes, and the failure that ended it.
pub(crate) type Outcomes = (Vec<ChangeOutcome>, Option<Problem>);

/// A failed AWS call as a mount's problem: the reason it is reported under,
/// what apimount was doing, and AWS's words.
pub(crate) fn problem_from(e: &AwsError, what: &str) -> Problem {
    let reason = match e.kind {
        AwsErrorKind::AccessDenied => Reason::AccessDenied,
        AwsErrorKind::Throttled => Reason::Throttled,
        AwsErrorKind::LimitExceeded => Reason::LimitExceeded,
        _ => Reason::AwsError,
    };
    let hint = match e.kind {
        AwsErrorKind::AccessDenied => {
            " (grant apimount this action; see the IAM policy in the README)"
        }
        _ => "",
    };
    Problem::new(reason, format!("{what}: {}{hint}", chain(e)))
}

/// Applies changes, keeping a model of the API current: its resource ids
/// serve later changes, and its state is what the deployment records.
pub(crate) struct Executor<'a> {
    pub(crate) aws: &'a Aws,
    pub(crate) api_id: &'a str,
    /// The API as observed at the start of the pass, with every change made since.
    pub(crate) api: ObservedApi,
    /// Whether any change altered what a deployment would contain.
    pub(crate) wrote_routes: bool,
    pub(crate) stop: &'a AtomicBool,
    pub(crate) journal: Journal<'a>,
}

/// The executor's side of the in-flight journal (see `journal`).
pub(crate) struct Journal<'a> {
    /// The stage to tag; `None` before the stage exists.
    pub(crate) stage: Option<&'a str>,
    pub(crate) key: String,
    /// Per group, in execution order: the chunk to write before it runs.
    pub(crate) chunks: Vec<Option<BTreeSet<String>>>,
    pub(crate) next_group: usize,
    /// The hashes the tag holds now.
    pub(crate) in_force: BTreeSet<String>,
}

impl Executor<'_> {
    /// Runs one group of changes (a mount, a removal), journaling first when
    /// the group starts a new chunk.
    pub(crate) async fn run_group(&mut self, changes: &[Change]) -> Outcomes {
        let group = self.journal.next_group;
        self.journal.next_group += 1;
        let chunk = self.journal.chunks.get_mut(group).and_then(Option::take);
        if let (Some(mut chunk), Some(stage)) = (chunk, self.journal.stage) {
            // Keep what earlier groups left method-less (a failed change).
            let left = journal::abandoned(&self.api, &self.journal.in_force);
            for path in left {
                if chunk.len() < journal::CAPACITY {
                    chunk.insert(journal::path_hash(&path));
                }
            }
            if chunk != self.journal.in_force && !self.stop.load(Ordering::Relaxed) {
                match self
                    .aws
                    .tag_stage(
                        self.api_id,
                        stage,
                        &self.journal.key,
                        &journal::encode(&chunk),
                    )
                    .await
                {
                    Ok(()) => {
                        self.journal.in_force = chunk;
                    }
                    // Going on is safe: at worst a crash now leaves an empty
                    // resource behind, never a deleted route.
                    Err(e) => {
                        tracing::warn!(error = %e, "could not write the in-flight journal (stage tag)")
                    }
                }
            }
        }
        self.run_all(changes).await
    }

    /// Ends the journal: removes the tag when nothing it names is left
    /// method-less, or narrows it to what is.
    pub(crate) async fn settle_journal(&self) {
        let Some(stage) = self.journal.stage else {
            return;
        };
        if self.journal.in_force.is_empty() {
            return;
        }
        let left: BTreeSet<String> = journal::abandoned(&self.api, &self.journal.in_force)
            .iter()
            .map(|p| journal::path_hash(p))
            .collect();
        let result = if left.is_empty() {
            self.aws
                .untag_stage(self.api_id, stage, &self.journal.key)
                .await
        } else if left != self.journal.in_force {
            self.aws
                .tag_stage(
                    self.api_id,
                    stage,
                    &self.journal.key,
                    &journal::encode(&left),
                )
                .await
        } else {
            Ok(())
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not update the in-flight journal (stage tag)");
        }
    }

    /// Runs changes in order; stops at the first failure (later changes of the
    /// same mount depend on earlier ones) and reports it as the mount's problem.
    pub(crate) async fn run_all(&mut self, changes: &[Change]) -> Outcomes {
        let mut seq = InOrder::new(changes);
        while let Some(c) = seq.next(self.stop) {
            let alters_routes = c.alters_routes(&self.api);
            let result = self.run(c).await;
            if result.is_ok() {
                c.apply_to(&mut self.api);
                self.wrote_routes |= alters_routes;
            }
            seq.record(result);
        }
        seq.finish()
    }

    /// Records a resource that exists on AWS with its id.
    fn record_resource(&mut self, path: &str, id: String) {
        Change::CreateResource {
            path: path.to_string(),
        }
        .apply_to(&mut self.api);
        if let Some(r) = self.api.resources.get_mut(path) {
            r.id = id;
        }
    }

    /// The id of a resource, creating it (and missing parents) when absent.
    async fn ensure_path(&mut self, path: &str) -> Result<String, Problem> {
        if let Some(r) = self.api.get(path) {
            return Ok(r.id.clone());
        }
        let (parent, part) = path.rsplit_once('/').expect("absolute path");
        let parent = if parent.is_empty() { "/" } else { parent };
        let parent_id = Box::pin(self.ensure_path(parent)).await?;
        match self
            .aws
            .create_resource(self.api_id, &parent_id, part)
            .await
        {
            Ok(id) => {
                tracing::info!(path, "created resource");
                self.record_resource(path, id.clone());
                Ok(id)
            }
            Err(e) if e.kind == AwsErrorKind::Conflict => {
                // Someone created it since we looked: use theirs.
                let api = self
                    .aws
                    .observe_api(self.api_id)
                    .await
                    .map_err(|e| problem_from(&e, "re-reading the API"))?;
                match api.get(path) {
                    Some(r) => {
                        self.record_resource(path, r.id.clone());
                        Ok(r.id.clone())
                    }
                    None => Err(problem_from(&e, &format!("creating resource {path}"))),
                }
            }
            Err(e) => Err(problem_from(&e, &format!("creating resource {path}"))),
        }
    }

    fn id_of(&self, path: &str) -> Result<String, Problem> {
        self.api.get(path).map(|r| r.id.clone()).ok_or_else(|| {
            Problem::new(
                Reason::AwsError,
                format!("resource {path} disappeared during the pass"),
            )
        })
    }

    async fn run(&mut self, c: &Change) -> Result<(), Problem> {
        let api_id = self.api_id;
        match c {
            Change::CreateResource { path } => {
                self.ensure_path(path).await?;
            }
            Change::PutMethod {
                path,
                verb,
                settings,
            } => {
                let id = self.ensure_path(path).await?;
                self.aws
                    .put_method(api_id, &id, *verb, settings)
                    .await
                    .map_err(|e| problem_from(&e, &format!("creating {verb} {path}")))?;
            }
            Change::ReplaceMethod {
                path,
                verb,
                settings,
                ..
            } => {
                let id = self.id_of(path)?;
                self.aws
                    .delete_method(api_id, &id, verb.as_str())
                    .await
                    .map_err(|e| problem_from(&e, &format!("replacing {verb} {path}")))?;
                self.aws
                    .put_method(api_id, &id, *verb, settings)
                    .await
                    .map_err(|e| problem_from(&e, &format!("replacing {verb} {path}")))?;
            }
            Change::PutIntegration {
                path, verb, uri, ..
            } => {
                let id = self.id_of(path)?;
                self.aws
                    .put_integration(api_id, &id, *verb, uri)
                    .await
                    .map_err(|e| problem_from(&e, &format!("integrating {verb} {path}")))?;
            }
            Change::AddPermission { .. }
            | Change::ReplacePermission { .. }
            | Change::RemovePermission { .. } => apply_permission(self.aws, c).await?,
            Change::DeleteMethod { path, verb } => {
                let id = self.id_of(path)?;
                self.aws
                    .delete_method(api_id, &id, verb)
                    .await
                    .map_err(|e| problem_from(&e, &format!("deleting {verb} {path}")))?;
            }
            Change::DeleteResource { path } => {
                if let Some(child) = self.api.descendants(path).first() {
                    return Err(Problem::new(
                        Reason::AwsError,
                        format!(
                            "{path} still has {} below it; it is kept for now",
                            child.path
                        ),
                    ));
                }
                let id = self.id_of(path)?;
                self.aws
                    .delete_resource(api_id, &id)
                    .await
                    .map_err(|e| problem_from(&e, &format!("deleting resource {path}")))?;
            }
        }
        Ok(())
    }
}

/// Outcomes for changes that were not tried, and why.
pub(crate) fn skipped(changes: &[Change], why: &str) -> Vec<ChangeOutcome> {
    changes
        .iter()
        .map(|c| ChangeOutcome {
            change: c.clone(),
            error: Some(why.into()),
        })
        .collect()
}

/// The bookkeeping of changes run one after another: each outcome is logged
/// and recorded; at the first failure, or on shutdown, the rest are marked
/// skipped and the failure becomes the problem.
pub(crate) struct InOrder<'c> {
    changes: &'c [Change],
    next: usize,
    out: Vec<ChangeOutcome>,
    problem: Option<Problem>,
}

impl<'c> InOrder<'c> {
    pub(crate) fn new(changes: &'c [Change]) -> InOrder<'c> {
        InOrder {
            changes,
            next: 0,
            out: Vec::with_capacity(changes.len()),
            problem: None,
        }
    }

    /// The next change to make, unless done, failed or shutting down.
    pub(crate) fn next(&mut self, stop: &AtomicBool) -> Option<&'c Change> {
        if self.problem.is_some() || self.next == self.changes.len() {
            return None;
        }
        if stop.load(Ordering::Relaxed) {
            self.out.extend(skipped(
                &self.changes[self.next..],
                "skipped: shutting down",
            ));
            self.problem = Some(Problem::new(Reason::AwsError, "interrupted by shutdown"));
            return None;
        }
        self.next += 1;
        Some(&self.changes[self.next - 1])
    }

    /// Records how the change [`InOrder::next`] gave went.
    pub(crate) fn record(&mut self, result: Result<(), Problem>) {
        let c = &self.changes[self.next - 1];
        match result {
            Ok(()) => {
                tracing::info!(change = %c, "applied");
                self.out.push(ChangeOutcome {
                    change: c.clone(),
                    error: None,
                });
            }
            Err(p) => {
                tracing::warn!(change = %c, error = %p, "change failed");
                self.out.push(ChangeOutcome {
                    change: c.clone(),
                    error: Some(p.to_string()),
                });
                self.out.extend(skipped(
                    &self.changes[self.next..],
                    "skipped: an earlier change of this mount failed",
                ));
                self.problem = Some(p);
            }
        }
    }

    pub(crate) fn finish(self) -> Outcomes {
        (self.out, self.problem)
    }
}

/// Makes one change to a function's resource policy.
pub(crate) async fn apply_permission(aws: &Aws, c: &Change) -> Result<(), Problem> {
    let function = |arn: &str| {
        ResolvedFunction::from_arn(arn)
            .ok_or_else(|| Problem::new(Reason::AwsError, format!("not a function ARN: {arn}")))
    };
    match c {
        Change::AddPermission {
            function: arn,
            sid,
            source_arn,
        } => {
            aws.add_permission(&function(arn)?, sid, source_arn)
                .await
                .map_err(|e| problem_from(&e, &format!("adding permission {sid}")))?;
        }
        Change::ReplacePermission {
            function: arn,
            sid,
            source_arn,
        } => {
            let f = function(arn)?;
            aws.remove_permission(&f, sid)
                .await
                .map_err(|e| problem_from(&e, &format!("resetting permission {sid}")))?;
            aws.add_permission(&f, sid, source_arn)
                .await
                .map_err(|e| problem_from(&e, &format!("resetting permission {sid}")))?;
        }
        Change::RemovePermission { function: arn, sid } => {
            aws.remove_permission(&function(arn)?, sid)
                .await
                .map_err(|e| problem_from(&e, &format!("removing permission {sid}")))?;
        }
        other => unreachable!("not a permission change: {other}"),
    }
    Ok(())
}
