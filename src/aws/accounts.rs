//! Accounts: the account of the controller's own credentials, which is the
//! API's (a REST API is always called in its own account), learnt once from
//! STS GetCallerIdentity; and Lambda in the teams' accounts, through the
//! role apimount assumes in each (the SDK's assume-role provider: the
//! credentials are cached and refreshed before they expire). Each team
//! account has its own Lambda client and its own pacing buckets, since
//! Lambda's control-plane quotas are per account.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use super::error::map_err;
use super::pacing::Pacer;
use super::{Aws, AwsError, AwsErrorKind};
use crate::plan::accounts::{AccountRole, AccountRoles};

/// Lambda (and, once a release needs it, CloudWatch) in one team account.
pub(crate) struct Team {
    pub role: AccountRole,
    pub client: aws_sdk_lambda::Client,
    pub pacer: Arc<Pacer>,
    credentials: aws_sdk_lambda::config::SharedCredentialsProvider,
    cloudwatch: OnceLock<aws_sdk_cloudwatch::Client>,
}

/// The team accounts by id.
type TeamMap = Arc<BTreeMap<String, Arc<Team>>>;

/// The team accounts' clients, replaced whole when the roles change.
#[derive(Clone)]
pub(crate) struct Teams {
    sdk: aws_config::SdkConfig,
    /// The API account's Lambda configuration (timeouts, retries, the call
    /// log, the write gate), which every team client shares but for its
    /// credentials.
    lambda: aws_sdk_lambda::Config,
    /// What every CloudWatch client gets: the call log and the write gate.
    calls: super::calls::CallCounter,
    guard: super::calls::LeaseGuard,
    /// CloudWatch in the API's account, made when first needed.
    cloudwatch: Arc<OnceLock<aws_sdk_cloudwatch::Client>>,
    /// How long an assumed role's credentials are asked for.
    session: std::time::Duration,
    by_account: Arc<RwLock<TeamMap>>,
}

impl Teams {
    pub(crate) fn new(
        sdk: aws_config::SdkConfig,
        lambda: aws_sdk_lambda::Config,
        calls: super::calls::CallCounter,
        guard: super::calls::LeaseGuard,
    ) -> Teams {
        Teams {
            sdk,
            lambda,
            calls,
            guard,
            cloudwatch: Arc::default(),
            session: std::time::Duration::from_secs(3600),
            by_account: Arc::default(),
        }
    }

    fn get(&self, account: &str) -> Option<Arc<Team>> {
        self.by_account
            .read()
            .expect("teams lock")
            .get(account)
            .cloned()
    }

    /// Sets the roles: a client for each new or changed role, the same one
    /// (and its cached credentials, and its buckets) for a role that stays.
    async fn set(&self, roles: &AccountRoles, pacer: &Pacer) {
        let current = self.by_account.read().expect("teams lock").clone();
        let mut next = BTreeMap::new();
        for (account, role) in roles {
            let team = match current.get(account) {
                Some(t) if t.role == *role => t.clone(),
                _ => {
                    let mut provider =
                        aws_config::sts::AssumeRoleProvider::builder(role.role_arn.clone())
                            .session_name("apimount")
                            .session_length(self.session)
                            .configure(&self.sdk);
                    if let Some(id) = &role.external_id {
                        provider = provider.external_id(id.clone());
                    }
                    let credentials = aws_sdk_lambda::config::SharedCredentialsProvider::new(
                        provider.build().await,
                    );
                    let conf = self
                        .lambda
                        .to_builder()
                        .credentials_provider(credentials.clone())
                        .build();
                    Arc::new(Team {
                        role: role.clone(),
                        client: aws_sdk_lambda::Client::from_conf(conf),
                        pacer: Arc::new(pacer.fresh()),
                        credentials,
                        cloudwatch: OnceLock::new(),
                    })
                }
            };
            next.insert(account.clone(), team);
        }
        *self.by_account.write().expect("teams lock") = Arc::new(next);
    }
}

impl Aws {
    /// The API's account: the account of the controller's credentials,
    /// asked of STS once (GetCallerIdentity needs no permission).
    pub async fn api_account(&self) -> Result<String, AwsError> {
        self.caller
            .get_or_try_init(|| async {
                let out = self
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| map_err("sts:GetCallerIdentity", e))?;
                out.account().map(str::to_string).ok_or_else(|| {
                    AwsError::local(
                        "sts:GetCallerIdentity",
                        AwsErrorKind::Other,
                        "the answer named no account",
                    )
                })
            })
            .await
            .cloned()
    }

    /// Asks for assumed roles' credentials valid this long (before any
    /// role is set); they are refreshed before they expire.
    pub fn with_role_session(mut self, session: std::time::Duration) -> Aws {
        self.teams.session = session;
        self
    }

    /// The API's account, if it has been learnt.
    pub fn known_api_account(&self) -> Option<String> {
        self.caller.get().cloned()
    }

    /// Sets the roles for the teams' accounts (at start, and when the
    /// tenant policy that names them changes).
    pub async fn set_account_roles(&self, roles: &AccountRoles) {
        self.teams.set(roles, &self.pacer).await;
    }

    /// The Lambda client and pacer for a function in `account`, and the
    /// role they act through: the controller's own for the API's account
    /// or an account without a role (which the plan refuses before any
    /// call; a call there acts in the API's account and finds nothing).
    pub(crate) fn lambda_in(
        &self,
        account: Option<&str>,
    ) -> (aws_sdk_lambda::Client, Arc<Pacer>, Option<AccountRole>) {
        let own = |a: &str| self.caller.get().is_some_and(|api| api == a);
        match account.filter(|a| !own(a)).and_then(|a| self.teams.get(a)) {
            Some(team) => (
                team.client.clone(),
                team.pacer.clone(),
                Some(team.role.clone()),
            ),
            None => (self.lambda.clone(), self.pacer.clone(), None),
        }
    }
}

impl Teams {
    /// A CloudWatch client with the controller's credentials, or `credentials`.
    fn cloudwatch_client(
        &self,
        credentials: Option<&aws_sdk_lambda::config::SharedCredentialsProvider>,
    ) -> aws_sdk_cloudwatch::Client {
        let mut conf = aws_sdk_cloudwatch::config::Builder::from(&self.sdk)
            .interceptor(self.calls.clone())
            .interceptor(self.guard.clone());
        if let Some(c) = credentials {
            conf = conf.credentials_provider(c.clone());
        }
        aws_sdk_cloudwatch::Client::from_conf(conf.build())
    }
}

impl Aws {
    /// The CloudWatch client and pacer for alarms in `account`, and the
    /// role they act through (as [`Aws::lambda_in`]).
    pub(crate) fn cloudwatch_in(
        &self,
        account: Option<&str>,
    ) -> (aws_sdk_cloudwatch::Client, Arc<Pacer>, Option<AccountRole>) {
        let own = |a: &str| self.caller.get().is_some_and(|api| api == a);
        match account.filter(|a| !own(a)).and_then(|a| self.teams.get(a)) {
            Some(team) => (
                team.cloudwatch
                    .get_or_init(|| self.teams.cloudwatch_client(Some(&team.credentials)))
                    .clone(),
                team.pacer.clone(),
                Some(team.role.clone()),
            ),
            None => (
                self.teams
                    .cloudwatch
                    .get_or_init(|| self.teams.cloudwatch_client(None))
                    .clone(),
                self.pacer.clone(),
                None,
            ),
        }
    }
}

/// An error of a call made through `role`: a failure to assume the role
/// (the credentials could not be had) is `AccessDenied`, with the role's
/// ARN and AWS's words; any other error names the role too.
pub(crate) fn through_role(mut e: AwsError, role: Option<&AccountRole>) -> AwsError {
    let Some(role) = role else {
        return e;
    };
    if e.kind == AwsErrorKind::CredentialsRejected {
        e.kind = AwsErrorKind::AccessDenied;
        e.message = format!(
            "role {} could not be assumed for account {}: {}",
            role.role_arn, role.account, e.message
        );
    } else {
        e.message = format!("{} (through role {})", e.message, role.role_arn);
    }
    e
}
