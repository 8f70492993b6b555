//! Functions in other AWS accounts of the organisation: which account a
//! function reference names, whether a mount may use it, and the role
//! apimount assumes there. Pure.
//!
//! - A function named by name is in the API's account; one named by ARN is
//!   in the ARN's account.
//! - A function in another account needs a role for that account (from the
//!   tenant policy's `accounts`, or `--account-role`): without one apimount
//!   cannot manage its invoke permission (`AccountNotAllowed`).
//! - Under a tenant policy, a tenant that lists `accounts` may use exactly
//!   those; one that lists none, the API's account only
//!   (`AccountNotAllowed`). Both hold before any call reaches that account.
//! - The permission's SourceArn always names the API's account: API Gateway
//!   invokes with the API owner's account, whatever the function's.

use std::collections::BTreeMap;

use super::conditions::{Problem, Reason};
pub use crate::manifest::accounts::{parse_account_role, AccountRole};
use crate::manifest::tenants::Tenant;
use crate::manifest::FunctionRef;

/// The roles by account.
pub type AccountRoles = BTreeMap<String, AccountRole>;

/// The account a function reference names: its ARN's, or the API's.
pub fn account_of<'a>(function: &'a FunctionRef, api_account: &'a str) -> &'a str {
    match function {
        FunctionRef::Arn { account, .. } => account,
        FunctionRef::Name { .. } => api_account,
    }
}

/// Whether a mount of `tenant` (`None`: no tenant policy) may name
/// `function`: see the module's rules.
pub fn check_account(
    function: &FunctionRef,
    api_account: &str,
    roles: &AccountRoles,
    tenant: Option<&Tenant>,
) -> Result<(), Problem> {
    let account = account_of(function, api_account);
    if let Some(t) = tenant {
        let allowed = match &t.accounts {
            None => account == api_account,
            Some(list) => list.iter().any(|a| a == account),
        };
        if !allowed {
            let listed = match &t.accounts {
                None => format!("only the API's account {api_account}: it lists no accounts"),
                Some(list) => list.join(", "),
            };
            return Err(Problem::new(
                Reason::AccountNotAllowed,
                format!(
                    "function {function} is in account {account}, which tenant '{}' may not use ({listed})",
                    t.name
                ),
            )
            .at("spec.function"));
        }
    }
    if account != api_account && !roles.contains_key(account) {
        return Err(Problem::new(
            Reason::AccountNotAllowed,
            format!(
                "function {function} is in account {account}, for which no role is configured (accounts in the tenant policy, or --account-role {account}=ROLE_ARN)"
            ),
        )
        .at("spec.function"));
    }
    Ok(())
}

/// The role apimount's Lambda calls for `function` use: `None` for the
/// API's account (the controller's own credentials).
pub fn role_for<'r>(
    function: &FunctionRef,
    api_account: &str,
    roles: &'r AccountRoles,
) -> Option<&'r AccountRole> {
    let account = account_of(function, api_account);
    (account != api_account)
        .then(|| roles.get(account))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::tenants::parse_policy;

    const API: &str = "111111111111";
    const TEAM: &str = "222222222222";
    const OTHER: &str = "333333333333";

    fn f(s: &str) -> FunctionRef {
        FunctionRef::parse(s).unwrap()
    }

    fn roles() -> AccountRoles {
        [(
            TEAM.to_string(),
            AccountRole {
                account: TEAM.into(),
                role_arn: format!("arn:aws:iam::{TEAM}:role/apimount-grants"),
                external_id: None,
            },
        )]
        .into()
    }

    fn tenant(accounts: Option<&[&str]>) -> Tenant {
        let accounts = accounts
            .map(|a| {
                format!(
                    "    accounts: [{}]\n",
                    a.iter()
                        .map(|x| format!("\"{x}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .unwrap_or_default();
        let text = format!(
            "apiVersion: apimount/v1\nkind: TenantPolicy\ntenants:\n  - name: payments\n    paths: [/payments]\n    functions: [\"payment-*\"]\n{accounts}"
        );
        parse_policy(std::path::Path::new("tenants.yaml"), text.as_bytes())
            .unwrap()
            .tenants
            .remove(0)
    }

    #[test]
    fn the_account_of_a_reference() {
        assert_eq!(account_of(&f("payment-service"), API), API);
        assert_eq!(
            account_of(
                &f(&format!(
                    "arn:aws:lambda:eu-west-2:{TEAM}:function:payment-service"
                )),
                API
            ),
            TEAM
        );
    }

    #[test]
    fn accounts_by_table() {
        let local = f("payment-service");
        let team = f(&format!(
            "arn:aws:lambda:eu-west-2:{TEAM}:function:payment-service"
        ));
        let other = f(&format!(
            "arn:aws:lambda:eu-west-2:{OTHER}:function:payment-service"
        ));
        let api_by_arn = f(&format!(
            "arn:aws:lambda:eu-west-2:{API}:function:payment-service:live"
        ));
        let none: Option<&[&str]> = None;
        // (function, tenant's accounts (None: no policy; Some(None): lists none), allowed)
        type Row<'a> = (&'a FunctionRef, Option<Option<&'a [&'a str]>>, bool);
        let table: Vec<Row> = vec![
            // No policy: the API's account, and accounts with a role.
            (&local, None, true),
            (&api_by_arn, None, true),
            (&team, None, true),
            (&other, None, false),
            // A tenant that lists no accounts: the API's only.
            (&local, Some(none), true),
            (&api_by_arn, Some(none), true),
            (&team, Some(none), false),
            // A tenant that lists the team's account: that one only.
            (&team, Some(Some(&[TEAM])), true),
            (&local, Some(Some(&[TEAM])), false),
            (&local, Some(Some(&[TEAM, API])), true),
            // Listed, but no role: still refused.
            (&other, Some(Some(&[OTHER])), false),
        ];
        for (function, accounts, allowed) in table {
            let t = accounts.map(tenant);
            let got = check_account(function, API, &roles(), t.as_ref());
            assert_eq!(got.is_ok(), allowed, "{function} {accounts:?}: {got:?}");
            if let Err(p) = got {
                assert_eq!(p.reason, Reason::AccountNotAllowed);
                assert!(
                    p.message.contains(account_of(function, API)),
                    "{}",
                    p.message
                );
                assert_eq!(p.field, Some("spec.function"));
            }
        }
    }

    #[test]
    fn the_role_is_the_functions_accounts() {
        let team = f(&format!(
            "arn:aws:lambda:eu-west-2:{TEAM}:function:payment-service"
        ));
        assert_eq!(
            role_for(&team, API, &roles()).map(|r| r.role_arn.as_str()),
            Some("arn:aws:iam::222222222222:role/apimount-grants")
        );
        assert_eq!(role_for(&f("payment-service"), API, &roles()), None);
        // The API's own account never uses a role, even if one is listed.
        let mut with_api = roles();
        with_api.insert(
            API.into(),
            AccountRole {
                account: API.into(),
                role_arn: format!("arn:aws:iam::{API}:role/x"),
                external_id: None,
            },
        );
        assert_eq!(role_for(&f("payment-service"), API, &with_api), None);
    }
}
