//! Settings shared by every command: which API, which stage, which owner.
//! Parsed from flags and environment in `cli`; validated here so a bad value
//! is refused before any AWS call.

/// Longest owner id: it appears in statement ids, which Lambda caps at 100 characters.
pub const MAX_OWNER_LEN: usize = 40;

/// Checks an owner id: lowercase letters, digits and '-', 1 to 40 characters.
pub fn check_owner(owner: &str) -> Result<(), String> {
    let ok = !owner.is_empty()
        && owner.len() <= MAX_OWNER_LEN
        && owner
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !owner.starts_with('-')
        && !owner.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "owner '{}' must be 1 to {MAX_OWNER_LEN} lowercase letters, digits or '-', not starting or ending with '-'",
            owner.escape_debug()
        ))
    }
}

/// Checks a REST API id as API Gateway prints it (10 lowercase letters and digits).
pub fn check_rest_api_id(id: &str) -> Result<(), String> {
    if !id.is_empty() && id.len() <= 32 && id.chars().all(|c| c.is_ascii_alphanumeric()) {
        Ok(())
    } else {
        Err(format!(
            "REST API id '{}' should look like 'a1b2c3d4e5' (letters and digits)",
            id.escape_debug()
        ))
    }
}

/// Checks a stage name (API Gateway: letters, digits, '-' and '_', up to 128).
pub fn check_stage(stage: &str) -> Result<(), String> {
    if !stage.is_empty()
        && stage.len() <= 128
        && stage
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(())
    } else {
        Err(format!(
            "stage '{}' must be letters, digits, '-' or '_'",
            stage.escape_debug()
        ))
    }
}

/// What one reconcile pass needs to know about its target.
#[derive(Debug, Clone)]
pub struct Target {
    pub rest_api_id: String,
    pub stage: String,
    pub owner: String,
    /// Region of the API, from the AWS configuration chain.
    pub region: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners() {
        assert!(check_owner("apimount").is_ok());
        assert!(check_owner("team-a1").is_ok());
        for bad in ["", "-a", "a-", "Team", "a_b", "a:b", &"x".repeat(41)] {
            assert!(check_owner(bad).is_err(), "{bad}");
        }
    }
}
