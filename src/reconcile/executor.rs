//! The executor: makes a plan's changes through the AWS adapter, group by
//! group (a mount, a removal), in order within a group, keeping a model of
//! the API current and the in-flight journal written ahead of the changes
//! that need it.

use std::collections::BTreeSet;

use super::journal;
use super::report::ChangeOutcome;
use super::stop::Stop;
use crate::aws::{Aws, AwsError, AwsErrorKind, Patching};
use crate::errors::chain;
use crate::manifest::HttpMethod;
use crate::plan::model::{
    MethodSettings, ObservedApi, ObservedIntegration, ObservedMethod, PatchOp, ResolvedFunction,
};
use crate::plan::route_options::{Preflight, PreflightRepair, PREFLIGHT_STATUS};
use crate::plan::stage_settings::{fallback, pack, patches, took_effect, StagePatch};
use crate::plan::{Change, Problem, Reason};

/// How a change to the stage's method settings went: made (with a note
/// when it was made otherwise than planned) or failed.
pub(crate) type StageOutcome = Result<Option<String>, Problem>;

/// `(path, value)` pairs as replace operations.
fn replacing(patches: &[(&str, String)]) -> Vec<PatchOp> {
    patches
        .iter()
        .map(|(path, value)| PatchOp::Replace(path.to_string(), value.clone()))
        .collect()
}

/// A write AWS answered without making it: a failed change, never a success.
fn unmade(what: &str, call: &str, shown: String) -> Problem {
    Problem::new(
        Reason::AwsError,
        format!("{what}: {call} answered, but {shown}: the backend did not make the change"),
    )
}

/// What a stage-settings change is doing, for its failure.
fn stage_what(c: &Change) -> String {
    match c {
        Change::PutThrottle { path, verb, .. } => format!("throttling {verb} {path}"),
        Change::ClearThrottle { path, verb, .. } => {
            format!("taking the throttling off {verb} {path}")
        }
        other => unreachable!("not a stage setting: {other}"),
    }
}

/// The outcomes of a run of changes, and the failure that ended it.
pub(crate) type Outcomes = (Vec<ChangeOutcome>, Option<Problem>);

/// A failed AWS call as a mount's problem: the reason it is reported under,
/// what apimount was doing, and AWS's words.
pub(crate) fn problem_from(e: &AwsError, what: &str) -> Problem {
    let reason = match e.kind {
        AwsErrorKind::AccessDenied => Reason::AccessDenied,
        AwsErrorKind::CredentialsRejected => Reason::CredentialsRejected,
        AwsErrorKind::Throttled => Reason::Throttled,
        AwsErrorKind::LimitExceeded => Reason::LimitExceeded,
        AwsErrorKind::BadRequest => Reason::InvalidRequest,
        _ => Reason::AwsError,
    };
    let hint = match e.kind {
        AwsErrorKind::AccessDenied => {
            " (grant apimount this action; see the IAM policy in the README)"
        }
        AwsErrorKind::CredentialsRejected => {
            " (AWS refused the credentials themselves: check the credential chain apimount runs with (environment variables, profile, web identity token, container or instance role) and that they are current; the IAM policy is not the cause)"
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
    pub(crate) owner: &'a str,
    /// The stage whose method settings hold the routes' throttling.
    pub(crate) stage_name: &'a str,
    /// The API as observed at the start of the pass, with every change made since.
    pub(crate) api: ObservedApi,
    /// Whether any change altered what a deployment would contain.
    pub(crate) wrote_routes: bool,
    pub(crate) stop: &'a Stop,
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
    /// The last chunk this pass wrote: what its groups still need.
    pub(crate) chunk: BTreeSet<String>,
    /// Why writing the tag failed, if it did this pass (a note of the pass).
    pub(crate) failed: Option<String>,
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
            let mut dropped = Vec::new();
            for path in left {
                if chunk.len() < journal::CAPACITY {
                    chunk.insert(journal::path_hash(&path));
                } else {
                    dropped.push(path);
                }
            }
            if !dropped.is_empty() {
                tracing::warn!(paths = ?dropped, "the in-flight journal is full: these method-less resources are no longer in it");
                self.journal.failed = Some(format!(
                    "the journal is full; {} are no longer in it",
                    dropped.join(", ")
                ));
            }
            let in_force = chunk == self.journal.in_force
                || (!self.stop.requested() && self.write_journal(stage, &chunk).await);
            if in_force {
                self.journal.chunk = chunk;
            }
        }
        self.run_all(changes).await
    }

    /// Before `verb` at `path` is deleted to be put again (a repair where the
    /// backend cannot patch), makes sure the journal names `path` when that
    /// delete leaves nothing served at or below it: cut short between the
    /// delete and the put, the pass would leave a bare resource that, once
    /// its manifest is gone, nothing would remove. Like a chunk, a journal
    /// that cannot be written is a note of the pass, not a failure.
    async fn journal_ahead(&mut self, path: &str, verb: HttpMethod) {
        let Some(stage) = self.journal.stage else {
            return;
        };
        let hash = journal::path_hash(path);
        let empties = self.api.get(path).is_some_and(|r| {
            r.methods.keys().all(|v| v == verb.as_str())
                && self
                    .api
                    .descendants(path)
                    .iter()
                    .all(|d| d.methods.is_empty())
        });
        if !empties || self.journal.in_force.contains(&hash) {
            return;
        }
        // What the tag must keep: the chunk of the groups still running and
        // what is method-less now; earlier repairs that were put back go.
        let mut next = self.journal.chunk.clone();
        next.extend(
            journal::abandoned(&self.api, &self.journal.in_force)
                .iter()
                .map(|p| journal::path_hash(p)),
        );
        next.insert(hash);
        if next.len() > journal::CAPACITY {
            let why = format!("the journal is full; {path} is not in it");
            tracing::warn!(
                path,
                "could not journal a method about to be put again: the journal is full"
            );
            self.journal.failed = Some(why);
            return;
        }
        self.write_journal(stage, &next).await;
    }

    /// Writes the journal's tag; says whether it was written. Going on after
    /// a failure is safe: at worst a crash then leaves an empty resource
    /// behind, never a deleted route; the pass notes it.
    async fn write_journal(&mut self, stage: &str, hashes: &BTreeSet<String>) -> bool {
        match self
            .aws
            .tag_stage(
                self.api_id,
                stage,
                &self.journal.key,
                &journal::encode(hashes),
            )
            .await
        {
            Ok(()) => {
                self.journal.in_force = hashes.clone();
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not write the in-flight journal (stage tag)");
                self.journal.failed = Some(chain(&e));
                false
            }
        }
    }

    /// Ends the journal: removes the tag when nothing it names is left
    /// method-less, or narrows it to what is. Says why, when it could not.
    pub(crate) async fn settle_journal(&self) -> Option<String> {
        let stage = self.journal.stage?;
        if self.journal.in_force.is_empty() {
            return None;
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
        match result {
            Ok(()) => None,
            Err(e) => {
                tracing::warn!(error = %e, "could not update the in-flight journal (stage tag)");
                Some(chain(&e))
            }
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
                // "Another resource with the same parent already has this
                // name": AWS made it and the answer was lost (the SDK's retry
                // got the 409), or someone made it since the pass looked.
                // Take it when it is this owner's: journaled, bare, or marked.
                let api = self
                    .aws
                    .observe_api(self.api_id)
                    .await
                    .map_err(|e| problem_from(&e, "re-reading the API"))?;
                let theirs = || problem_from(&e, &format!("creating resource {path}"));
                let r = api.get(path).ok_or_else(theirs)?;
                let ours = self.journal.in_force.contains(&journal::path_hash(path))
                    || r.methods.is_empty()
                    || r.methods.values().any(|m| m.ownership().is(self.owner));
                if !ours {
                    return Err(theirs());
                }
                tracing::info!(path, "created resource (found after a conflict)");
                self.record_resource(path, r.id.clone());
                Ok(r.id.clone())
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

    /// Makes one change and brings the model up to date with what it did.
    pub(crate) async fn run(&mut self, c: &Change) -> Result<(), Problem> {
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
                let what = format!("creating {verb} {path}");
                match self.aws.put_method(api_id, &id, *verb, settings).await {
                    Ok(answer) => answer
                        .answered(settings)
                        .map_err(|shown| unmade(&what, "PutMethod", shown))?,
                    // "Method already exists": AWS made it and the answer was
                    // lost (the SDK's retry got the 409), or someone else did.
                    // It is ours when it carries exactly our marker.
                    Err(e) if e.kind == AwsErrorKind::Conflict => {
                        let found = self
                            .aws
                            .get_method(api_id, &id, *verb)
                            .await
                            .map_err(|e| problem_from(&e, &what))?;
                        match found {
                            Some(m)
                                if m.operation_name.as_deref()
                                    == Some(settings.operation_name.as_str()) =>
                            {
                                tracing::info!(path, %verb, "method found in place after a conflict");
                                self.insert_method(path, *verb, m);
                                return Ok(());
                            }
                            _ => return Err(problem_from(&e, &what)),
                        }
                    }
                    Err(e) => return Err(problem_from(&e, &what)),
                }
            }
            Change::ReplaceMethod {
                path,
                verb,
                settings,
                ..
            } => return self.repair_method(path, *verb, settings).await,
            Change::PutIntegration {
                path,
                verb,
                uri,
                timeout_ms,
                ..
            } => {
                let want = ObservedIntegration::lambda_proxy(uri).with_timeout(*timeout_ms);
                return self.put_integration(path, *verb, &want).await;
            }
            Change::PutPreflight {
                path,
                settings,
                preflight,
                ..
            } => return self.put_preflight(path, settings, preflight).await,
            Change::PutThrottle { .. } | Change::ClearThrottle { .. } => {
                let mut out = self.run_stage_settings(&[c]).await;
                return out.pop().expect("one outcome").map(|_| ());
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
        c.apply_to(&mut self.api);
        Ok(())
    }

    fn method(&self, path: &str, verb: HttpMethod) -> Option<&ObservedMethod> {
        self.api.get(path)?.methods.get(verb.as_str())
    }

    fn method_mut(&mut self, path: &str, verb: HttpMethod) -> Option<&mut ObservedMethod> {
        self.api
            .resources
            .get_mut(path)?
            .methods
            .get_mut(verb.as_str())
    }

    /// Repairs a method's settings in place (UpdateMethod), so the method and
    /// its integration never leave the API. Where the backend cannot patch
    /// (an emulator), it is deleted and put again; if that put fails, the
    /// method is put back as it was.
    async fn repair_method(
        &mut self,
        path: &str,
        verb: HttpMethod,
        settings: &MethodSettings,
    ) -> Result<(), Problem> {
        let id = self.id_of(path)?;
        let was = self.method(path, verb).cloned().ok_or_else(|| {
            Problem::new(
                Reason::AwsError,
                format!("{verb} {path} disappeared during the pass"),
            )
        })?;
        if !self.aws.patching_unsupported(Patching::Method) {
            let patches = settings.patches_from(&was);
            match self
                .aws
                .update_method(self.api_id, &id, verb, &replacing(&patches))
                .await
            {
                Ok(answer) => {
                    answer.answered(settings).map_err(|shown| {
                        unmade(&format!("repairing {verb} {path}"), "UpdateMethod", shown)
                    })?;
                    let m = self.method_mut(path, verb).expect("seen above");
                    let integration = m.integration.take();
                    let responses = std::mem::take(&mut m.responses);
                    *m = ObservedMethod {
                        integration,
                        responses,
                        ..ObservedMethod::from_settings(settings)
                    };
                    return Ok(());
                }
                Err(e)
                    if e.kind == AwsErrorKind::NotImplemented
                        && self.aws.note_patching_unsupported(Patching::Method) => {}
                Err(e) => return Err(problem_from(&e, &format!("repairing {verb} {path}"))),
            }
        }
        let what = format!("replacing {verb} {path}");
        self.journal_ahead(path, verb).await;
        self.aws
            .delete_method(self.api_id, &id, verb.as_str())
            .await
            .map_err(|e| problem_from(&e, &what))?;
        let put = self
            .aws
            .put_method(self.api_id, &id, verb, settings)
            .await
            .map_err(|e| problem_from(&e, &what))
            .and_then(|answer| {
                answer
                    .answered(settings)
                    .map_err(|shown| unmade(&what, "PutMethod", shown))
            });
        match put {
            Ok(()) => {
                self.api
                    .resources
                    .get_mut(path)
                    .expect("seen above")
                    .methods
                    .insert(
                        verb.as_str().into(),
                        ObservedMethod::from_settings(settings),
                    );
                Ok(())
            }
            Err(e) => {
                let failed = e;
                self.api
                    .resources
                    .get_mut(path)
                    .expect("seen above")
                    .methods
                    .remove(verb.as_str());
                let back = self.put_back(path, verb, &was).await;
                let how = match back {
                    Ok(()) => "; the method was put back as it was".to_string(),
                    Err(p) => format!("; putting the method back failed too: {p}"),
                };
                Err(Problem::new(
                    failed.reason,
                    format!("{}{how}", failed.message),
                ))
            }
        }
    }

    /// Gives a method the Lambda proxy integration `want`: patched in
    /// place when only its target or timeout changed, put otherwise;
    /// nothing when it has it already (a method repaired in place keeps its
    /// integration).
    async fn put_integration(
        &mut self,
        path: &str,
        verb: HttpMethod,
        want: &ObservedIntegration,
    ) -> Result<(), Problem> {
        let id = self.id_of(path)?;
        let want = want.clone();
        let have = self.method(path, verb).and_then(|m| m.integration.clone());
        if have.as_ref().is_some_and(|h| h.same_as(&want)) {
            return Ok(());
        }
        let what = format!("integrating {verb} {path}");
        let patches = have.as_ref().and_then(|h| h.patches_to(&want));
        let mut done = false;
        if let (Some(patches), false) = (
            patches,
            self.aws.patching_unsupported(Patching::Integration),
        ) {
            match self
                .aws
                .update_integration(self.api_id, &id, verb, &replacing(&patches))
                .await
            {
                Ok(answer) => {
                    answer
                        .answered(&want)
                        .map_err(|shown| unmade(&what, "UpdateIntegration", shown))?;
                    done = true
                }
                Err(e)
                    if e.kind == AwsErrorKind::NotImplemented
                        && self.aws.note_patching_unsupported(Patching::Integration) => {}
                Err(e) => return Err(problem_from(&e, &what)),
            }
        }
        if !done {
            self.aws
                .put_integration(self.api_id, &id, verb, &want)
                .await
                .map_err(|e| problem_from(&e, &what))?
                .answered(&want)
                .map_err(|shown| unmade(&what, "PutIntegration", shown))?;
        }
        if let Some(m) = self.method_mut(path, verb) {
            m.integration = Some(want);
        }
        Ok(())
    }

    /// Gives the OPTIONS method at `path` its CORS preflight answer. A
    /// method just put (or put again after a delete) gets the method
    /// response, the MOCK integration and the integration response; one that
    /// answers otherwise is deleted and made again whole, which is safe for
    /// a MOCK (nothing is live before the deployment, and a preflight that
    /// cannot be made again keeps the deployment from going ahead).
    async fn put_preflight(
        &mut self,
        path: &str,
        settings: &MethodSettings,
        preflight: &Preflight,
    ) -> Result<(), Problem> {
        let verb = HttpMethod::Options;
        let id = self.id_of(path)?;
        let what = format!("answering CORS preflights on {path}");
        let have = self.method(path, verb).cloned().ok_or_else(|| {
            Problem::new(
                Reason::AwsError,
                format!("OPTIONS {path} disappeared during the pass"),
            )
        })?;
        if preflight.answered_by(&have) {
            return Ok(());
        }
        // In place where the backend can: the method keeps answering
        // throughout, and nothing of it is deleted.
        if let Some(repair) = preflight.repairs(&have) {
            if !self.aws.patching_unsupported(Patching::Responses) {
                match self.patch_preflight(&id, &repair, preflight).await {
                    Ok(()) => {
                        if let Some(m) = self.method_mut(path, verb) {
                            m.responses = preflight.method_responses();
                            m.integration = Some(preflight.integration());
                        }
                        return Ok(());
                    }
                    Err(e)
                        if e.kind == AwsErrorKind::NotImplemented
                            && self.aws.note_patching_unsupported(Patching::Responses) => {}
                    Err(e) if e.kind == AwsErrorKind::NotImplemented => {
                        return Err(problem_from(&e, &what))
                    }
                    // The backend answered without making the change: an
                    // emulator falls back to making it again whole.
                    Err(e) if self.aws.note_patching_unsupported(Patching::Responses) => {
                        tracing::info!(path, error = %e, "the preflight could not be patched in place; it is made again whole");
                    }
                    Err(e) => return Err(problem_from(&e, &what)),
                }
            }
        }
        if have.integration.is_some() || !have.responses.is_empty() {
            self.aws
                .delete_method(self.api_id, &id, verb.as_str())
                .await
                .map_err(|e| problem_from(&e, &what))?;
            if let Some(r) = self.api.resources.get_mut(path) {
                r.methods.remove(verb.as_str());
            }
            self.aws
                .put_method(self.api_id, &id, verb, settings)
                .await
                .map_err(|e| problem_from(&e, &what))?;
            self.insert_method(path, verb, ObservedMethod::from_settings(settings));
        }
        let (responses, integration) = (preflight.method_responses(), preflight.integration());
        // On a failure the model keeps the bare method: the pass re-reads
        // the API before deploying after a failed change.
        self.put_parts(&id, verb, &responses, &integration)
            .await
            .map_err(|e| problem_from(&e, &what))?;
        if let Some(m) = self.method_mut(path, verb) {
            m.responses = responses;
            m.integration = Some(integration);
        }
        Ok(())
    }

    /// Patches a preflight in place (see `PreflightRepair`), each answer
    /// checked: a part the backend did not change is an error
    /// (`AwsErrorKind::Other`, the operation and what it shows).
    async fn patch_preflight(
        &self,
        id: &str,
        repair: &PreflightRepair,
        preflight: &Preflight,
    ) -> Result<(), AwsError> {
        let verb = HttpMethod::Options;
        let status = PREFLIGHT_STATUS;
        let want_declared = &preflight.method_responses()[status];
        let unmade = |operation: &'static str, shown: &str| {
            AwsError::local(
                operation,
                AwsErrorKind::Other,
                format!("answered, but {shown}: the backend did not make the change"),
            )
        };
        if !repair.declare.is_empty() {
            let declared = self
                .aws
                .update_method_response(self.api_id, id, verb, status, &repair.declare)
                .await?;
            if want_declared.keys().any(|k| !declared.contains_key(k)) {
                return Err(unmade(
                    "apigateway:UpdateMethodResponse",
                    "a header is not declared",
                ));
            }
        }
        if !repair.request.is_empty() {
            let got = self
                .aws
                .update_integration(self.api_id, id, verb, &repair.request)
                .await?;
            if got.request_templates != preflight.integration().request_templates {
                return Err(unmade(
                    "apigateway:UpdateIntegration",
                    "the request template is not the one asked for",
                ));
            }
        }
        if !repair.response.is_empty() {
            let got = self
                .aws
                .update_integration_response(self.api_id, id, verb, status, &repair.response)
                .await?;
            let want = &preflight.integration().responses[status];
            let templates_ok = want
                .templates
                .iter()
                .all(|(k, v)| got.templates.get(k) == Some(v))
                && got
                    .templates
                    .iter()
                    .all(|(k, v)| v.is_empty() || want.templates.contains_key(k));
            if got.parameters != want.parameters || !templates_ok {
                return Err(unmade(
                    "apigateway:UpdateIntegrationResponse",
                    "its header mappings or template are not the ones asked for",
                ));
            }
        }
        if !repair.undeclare.is_empty() {
            let declared = self
                .aws
                .update_method_response(self.api_id, id, verb, status, &repair.undeclare)
                .await?;
            if declared.keys().any(|k| !want_declared.contains_key(k)) {
                return Err(unmade(
                    "apigateway:UpdateMethodResponse",
                    "a header is still declared",
                ));
            }
        }
        Ok(())
    }

    /// Puts a method's responses and its integration with its integration
    /// responses, in the order AWS needs (a method response before the
    /// integration response that maps to it).
    async fn put_parts(
        &self,
        id: &str,
        verb: HttpMethod,
        responses: &crate::plan::model::MethodResponses,
        integration: &ObservedIntegration,
    ) -> Result<(), AwsError> {
        for (status, params) in responses {
            self.aws
                .put_method_response(self.api_id, id, verb, status, params)
                .await?;
        }
        self.aws
            .put_integration(self.api_id, id, verb, integration)
            .await?;
        for (status, r) in &integration.responses {
            self.aws
                .put_integration_response(self.api_id, id, verb, status, r)
                .await?;
        }
        Ok(())
    }

    /// Makes changes to the stage's method settings: as few UpdateStage
    /// calls as fit them (at most `MAX_PATCHES_PER_CALL` operations each),
    /// each change judged by the stage the call answers with. A removal the
    /// backend kept or refused falls back to following the stage default,
    /// and its outcome says so.
    pub(crate) async fn run_stage_settings(&mut self, changes: &[&Change]) -> Vec<StageOutcome> {
        let mut out: Vec<Option<StageOutcome>> = vec![None; changes.len()];
        let mut falling_back: Vec<(usize, String)> = Vec::new();
        let all: Vec<usize> = (0..changes.len()).collect();
        self.send_stage_runs(changes, &all, &mut out, &mut falling_back)
            .await;
        // The fallbacks, packed the same way.
        let sizes: Vec<usize> = falling_back
            .iter()
            .map(|(i, _)| fallback(changes[*i]).map_or(0, |p| p.len()))
            .collect();
        for run in pack(&sizes) {
            if self.stop.requested() {
                break;
            }
            let ops: Vec<StagePatch> = falling_back[run.clone()]
                .iter()
                .flat_map(|(i, _)| fallback(changes[*i]).unwrap_or_default())
                .collect();
            let answer = self
                .aws
                .patch_stage_settings(self.api_id, self.stage_name, &ops)
                .await;
            for (i, why) in &falling_back[run] {
                let c = changes[*i];
                out[*i] = Some(match &answer {
                    Err(e) => Err(problem_from(e, &format!("{} ({why})", stage_what(c)))),
                    Ok(answer) => match took_effect(c, false, answer) {
                        Ok(()) => Ok(Some(format!(
                            "not removed: {why}; the entry stays and follows the stage default's throttling"
                        ))),
                        Err(shown) => Err(Problem::new(
                            Reason::AwsError,
                            format!(
                                "{}: {why}, and giving it the stage default's throttling did not take either ({shown})",
                                stage_what(c)
                            ),
                        )),
                    },
                });
            }
        }
        out.into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(Problem::new(
                        Reason::AwsError,
                        "interrupted: not sent (shutting down, or the lease is not held)"
                            .to_string(),
                    ))
                })
            })
            .collect()
    }

    /// Sends the changes `which` in packed calls, recording each outcome in
    /// `out`, or the removals to fall back in `falling_back`.
    async fn send_stage_runs(
        &mut self,
        changes: &[&Change],
        which: &[usize],
        out: &mut [Option<StageOutcome>],
        falling_back: &mut Vec<(usize, String)>,
    ) {
        let sizes: Vec<usize> = which.iter().map(|i| patches(changes[*i]).len()).collect();
        for run in pack(&sizes) {
            if self.stop.requested() {
                return;
            }
            let run = &which[run];
            let ops: Vec<StagePatch> = run.iter().flat_map(|i| patches(changes[*i])).collect();
            let e = match self
                .aws
                .patch_stage_settings(self.api_id, self.stage_name, &ops)
                .await
            {
                Ok(answer) => {
                    for i in run {
                        let c = changes[*i];
                        match took_effect(c, true, &answer) {
                            Ok(()) => out[*i] = Some(Ok(None)),
                            Err(shown) if fallback(c).is_some() => falling_back.push((
                                *i,
                                format!("the backend answered without removing it ({shown})"),
                            )),
                            Err(shown) => {
                                out[*i] = Some(Err(Problem::new(
                                    Reason::AwsError,
                                    format!(
                                        "{}: UpdateStage answered, but {shown}: the backend did not make the change",
                                        stage_what(c)
                                    ),
                                )))
                            }
                        }
                    }
                    continue;
                }
                Err(e) => e,
            };
            let refused = e.kind == AwsErrorKind::BadRequest;
            let removals: Vec<usize> = run
                .iter()
                .copied()
                .filter(|i| fallback(changes[*i]).is_some())
                .collect();
            if refused && e.message.contains("Invalid method setting path") && !removals.is_empty()
            {
                // A backend that cannot remove entries at all (LocalStack):
                // the removals fall back, the rest go again without them.
                for i in &removals {
                    falling_back.push((
                        *i,
                        "the backend refuses to remove method-settings entries".to_string(),
                    ));
                }
                let rest: Vec<usize> = run
                    .iter()
                    .copied()
                    .filter(|i| !removals.contains(i))
                    .collect();
                Box::pin(self.send_stage_runs(changes, &rest, out, falling_back)).await;
            } else if refused && run.len() > 1 {
                // One change's refusal refuses the whole call: each alone,
                // so the others are made and the refusal is its own.
                for i in run {
                    Box::pin(self.send_stage_runs(changes, &[*i], out, falling_back)).await;
                }
            } else if refused && e.message.contains("no method setting") && !removals.is_empty() {
                // Removed by hand since the read: done.
                out[run[0]] = Some(Ok(None));
            } else {
                for i in run {
                    out[*i] = Some(Err(problem_from(&e, &stage_what(changes[*i]))));
                }
            }
        }
    }

    /// Puts a method back as it was observed, integration and responses
    /// included.
    async fn put_back(
        &mut self,
        path: &str,
        verb: HttpMethod,
        was: &ObservedMethod,
    ) -> Result<(), Problem> {
        let settings = MethodSettings::of_observed(was).ok_or_else(|| {
            Problem::new(
                Reason::AwsError,
                format!(
                    "{verb} {path} had the authorization type {}, which apimount cannot put back",
                    was.authorization_type
                ),
            )
        })?;
        let id = self.id_of(path)?;
        let what = format!("putting {verb} {path} back");
        self.aws
            .put_method(self.api_id, &id, verb, &settings)
            .await
            .map_err(|e| problem_from(&e, &what))?;
        let mut restored = ObservedMethod {
            integration: None,
            responses: Default::default(),
            ..was.clone()
        };
        for (status, params) in &was.responses {
            let put = self
                .aws
                .put_method_response(self.api_id, &id, verb, status, params)
                .await;
            if let Err(e) = put {
                self.insert_method(path, verb, restored);
                return Err(problem_from(&e, &what));
            }
            restored.responses.insert(status.clone(), params.clone());
        }
        if let Some(i) = &was.integration {
            if let Err(e) = self.aws.put_integration(self.api_id, &id, verb, i).await {
                self.insert_method(path, verb, restored);
                return Err(problem_from(&e, &what));
            }
            let mut put = ObservedIntegration {
                responses: Default::default(),
                ..i.clone()
            };
            for (status, r) in &i.responses {
                let result = self
                    .aws
                    .put_integration_response(self.api_id, &id, verb, status, r)
                    .await;
                if let Err(e) = result {
                    // The integration is there without all of its responses:
                    // the next pass sees that and repairs it.
                    restored.integration = Some(put);
                    self.insert_method(path, verb, restored);
                    return Err(problem_from(&e, &what));
                }
                put.responses.insert(status.clone(), r.clone());
            }
            restored.integration = Some(put);
        }
        self.insert_method(path, verb, restored);
        Ok(())
    }

    fn insert_method(&mut self, path: &str, verb: HttpMethod, m: ObservedMethod) {
        if let Some(r) = self.api.resources.get_mut(path) {
            r.methods.insert(verb.as_str().into(), m);
        }
    }

    /// Puts the methods `keys` of a mount whose changes failed back to their
    /// shape in `observed` (the API at the start of the pass): what it
    /// changed is restored, what it newly made is removed. When a method
    /// cannot be put back, its half-made form is removed so that the API
    /// stays deployable. Returns what could not be done.
    pub(crate) async fn roll_back(
        &mut self,
        keys: &BTreeSet<(String, HttpMethod)>,
        observed: &ObservedApi,
    ) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (path, verb) in keys {
            let was = observed
                .get(path)
                .and_then(|r| r.methods.get(verb.as_str()));
            let now = self.method(path, *verb).cloned();
            if was == now.as_ref() {
                continue;
            }
            let result = match (was, &now) {
                (None, None) => Ok(()),
                (None, Some(_)) => {
                    let c = Change::DeleteMethod {
                        path: path.clone(),
                        verb: verb.as_str().into(),
                    };
                    Box::pin(self.run(&c)).await
                }
                (Some(was), _) => {
                    if now.is_some() {
                        let id = self.id_of(path);
                        if let Ok(id) = id {
                            let _ = self
                                .aws
                                .delete_method(self.api_id, &id, verb.as_str())
                                .await;
                        }
                    }
                    self.put_back(path, *verb, was).await
                }
            };
            if let Err(p) = result {
                problems.push(p);
            }
        }
        problems
    }

    /// Reads the whole API again, for a check of what a deployment would
    /// publish after a pass in which changes failed: a failed call may have
    /// been carried out all the same (its answer lost), so the model may be
    /// behind.
    pub(crate) async fn reread(&mut self) -> Result<(), Problem> {
        let api = self
            .aws
            .observe_api(self.api_id)
            .await
            .map_err(|e| problem_from(&e, "re-reading the API before deploying"))?;
        self.api = api;
        Ok(())
    }

    /// Removes this owner's methods that have no integration: AWS refuses to
    /// deploy an API while any method lacks one. Returns what could not be
    /// removed.
    pub(crate) async fn remove_half_made(&mut self) -> Vec<Problem> {
        let half_made: Vec<(String, String)> = self
            .api
            .methods()
            .filter(|(_, _, m)| m.integration.is_none() && m.ownership().is(self.owner))
            .map(|(p, v, _)| (p.to_string(), v.to_string()))
            .collect();
        let mut problems = Vec::new();
        for (path, verb) in half_made {
            tracing::warn!(
                path,
                verb,
                "removing a method without integration so the API stays deployable"
            );
            let c = Change::DeleteMethod { path, verb };
            if let Err(p) = self.run(&c).await {
                problems.push(p);
            }
        }
        problems
    }
}

/// Outcomes for changes that were not tried, and why.
pub(crate) fn skipped(changes: &[Change], why: &str) -> Vec<ChangeOutcome> {
    changes
        .iter()
        .map(|c| ChangeOutcome {
            change: c.clone(),
            error: Some(why.into()),
            note: None,
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
    pub(crate) fn next(&mut self, stop: &Stop) -> Option<&'c Change> {
        if self.problem.is_some() || self.next == self.changes.len() {
            return None;
        }
        if stop.requested() {
            let why = if stop.shutting_down() {
                "shutting down"
            } else {
                "the leader lease is not held"
            };
            self.out.extend(skipped(
                &self.changes[self.next..],
                &format!("skipped: {why}"),
            ));
            self.problem = Some(Problem::new(
                Reason::AwsError,
                format!("interrupted: {why}"),
            ));
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
                tracing::debug!(change = %c, "applied");
                self.out.push(ChangeOutcome {
                    change: c.clone(),
                    error: None,
                    note: None,
                });
            }
            Err(p) => {
                tracing::warn!(change = %c, error = %p, "change failed");
                self.out.push(ChangeOutcome {
                    change: c.clone(),
                    error: Some(p.to_string()),
                    note: None,
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

/// Adds a statement. A 409 "the statement id provided already exists" is
/// success when that statement is exactly the one wanted (AWS executed the
/// call and the answer was lost, so the SDK's retry found it), and a
/// conflict to report otherwise.
async fn add_permission(
    aws: &Aws,
    f: &ResolvedFunction,
    sid: &str,
    source_arn: &str,
) -> Result<(), Problem> {
    let what = format!("adding permission {sid}");
    match aws.add_permission(f, sid, source_arn).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind == AwsErrorKind::Conflict => {
            let statements = aws
                .get_policy(f)
                .await
                .map_err(|e| problem_from(&e, &what))?;
            match statements.iter().find(|s| s.sid == sid) {
                Some(s) if s.grants_invoke_from(source_arn) => {
                    tracing::info!(sid, function = %f, "permission found in place after a conflict");
                    Ok(())
                }
                _ => Err(problem_from(&e, &what)),
            }
        }
        Err(e) => Err(problem_from(&e, &what)),
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
            add_permission(aws, &function(arn)?, sid, source_arn).await?;
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
            add_permission(aws, &f, sid, source_arn).await?;
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
