//! Accounts other than the API's: their ids, the role apimount assumes in
//! each and its external id, as the tenant policy and `--account-role`
//! give them, checked as IAM and STS take them.

/// The role apimount assumes in a team's account for its Lambda calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRole {
    pub account: String,
    pub role_arn: String,
    pub external_id: Option<String>,
}

/// Whether `s` is an AWS account id: twelve digits.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks that `arn` is an IAM role ARN of `account`
/// (`arn:PARTITION:iam::ACCOUNT:role/NAME`, a path allowed).
pub fn check_role_arn(account: &str, arn: &str) -> Result<(), String> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let [scheme, partition, service, region, owner, resource] = parts[..] else {
        return Err(format!(
            "'{arn}' is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    };
    let name = resource.strip_prefix("role/").unwrap_or("");
    let name_ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/".contains(&b))
        && !name.ends_with('/');
    if scheme != "arn"
        || partition.is_empty()
        || service != "iam"
        || !region.is_empty()
        || !is_account_id(owner)
        || !name_ok
    {
        return Err(format!(
            "'{arn}' is not a role ARN (arn:aws:iam::ACCOUNT:role/NAME)"
        ));
    }
    if owner != account {
        return Err(format!(
            "role {arn} is in account {owner}, not in account {account}"
        ));
    }
    Ok(())
}

/// Checks an external id as STS takes it: 2 to 1,224 characters of letters,
/// digits and `+=,.@:/-_`.
pub fn check_external_id(id: &str) -> Result<(), String> {
    let ok = (2..=1224).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "external id '{}' must be 2 to 1224 letters, digits or +=,.@:/-_",
            id.escape_debug()
        ))
    }
}

/// Parses `--account-role ACCOUNT=ROLE_ARN`.
pub fn parse_account_role(s: &str) -> Result<AccountRole, String> {
    let Some((account, arn)) = s.split_once('=') else {
        return Err(format!(
            "'{s}' is not ACCOUNT=ROLE_ARN (222222222222=arn:aws:iam::222222222222:role/apimount-grants)"
        ));
    };
    let (account, arn) = (account.trim(), arn.trim());
    if !is_account_id(account) {
        return Err(format!("'{account}' is not an account id (12 digits)"));
    }
    check_role_arn(account, arn)?;
    Ok(AccountRole {
        account: account.to_string(),
        role_arn: arn.to_string(),
        external_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEAM: &str = "222222222222";
    const OTHER: &str = "333333333333";

    #[test]
    fn account_role_flags() {
        let ok = parse_account_role(&format!(
            "{TEAM}=arn:aws:iam::{TEAM}:role/team/apimount-grants"
        ))
        .unwrap();
        assert_eq!(ok.account, TEAM);
        assert_eq!(
            ok.role_arn,
            format!("arn:aws:iam::{TEAM}:role/team/apimount-grants")
        );
        assert!(parse_account_role(&format!("{TEAM}=arn:aws-cn:iam::{TEAM}:role/r")).is_ok());
        for bad in [
            "arn:aws:iam::222222222222:role/r".to_string(),
            format!("2222=arn:aws:iam::{TEAM}:role/r"),
            format!("{TEAM}=arn:aws:iam::{OTHER}:role/r"),
            format!("{TEAM}=arn:aws:iam::{TEAM}:user/r"),
            format!("{TEAM}=arn:aws:iam:eu-west-2:{TEAM}:role/r"),
            format!("{TEAM}=arn:aws:sts::{TEAM}:role/r"),
            format!("{TEAM}=arn:aws:iam::{TEAM}:role/"),
            format!("{TEAM}=arn:aws:iam::{TEAM}:role/a b"),
            // Each part wrong on its own: the scheme, an empty partition.
            format!("{TEAM}=urn:aws:iam::{TEAM}:role/r"),
            format!("{TEAM}=arn::iam::{TEAM}:role/r"),
        ] {
            assert!(parse_account_role(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn external_ids() {
        assert!(check_external_id("platform-apimount").is_ok());
        assert!(check_external_id("a").is_err());
        assert!(check_external_id("has space").is_err());
        assert!(check_external_id(&"x".repeat(1225)).is_err());
    }
}
