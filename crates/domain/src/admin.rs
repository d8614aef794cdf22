//! Admin accounts: the agency's operators.

use std::fmt;

use crate::Timestamp;
use crate::values::SecretHash;

/// An admin's login name: 3..=64 letters, digits, `_`, `-`, `.` or `@`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AdminUsername(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("admin username must be 3 to 64 letters, digits, '_', '-', '.' or '@'")]
pub struct AdminUsernameError;

impl AdminUsername {
    /// # Errors
    /// [`AdminUsernameError`] when the name breaks the rule.
    pub fn parse(raw: &str) -> Result<Self, AdminUsernameError> {
        let valid = (3..=64).contains(&raw.len())
            && raw
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'));
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(AdminUsernameError)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for AdminUsername {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An admin's plain password, held only transiently. `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminPassword(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminPasswordError {
    #[error("admin password must be at least {min} characters", min = AdminPassword::MIN_LEN)]
    TooShort,
    #[error("admin password must be at most {max} characters", max = AdminPassword::MAX_LEN)]
    TooLong,
}

impl AdminPassword {
    pub const MIN_LEN: usize = 12;
    pub const MAX_LEN: usize = 256;

    /// # Errors
    /// [`AdminPasswordError`] when the password is too short or too long.
    pub fn parse(raw: &str) -> Result<Self, AdminPasswordError> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            Err(AdminPasswordError::TooShort)
        } else if len > Self::MAX_LEN {
            Err(AdminPasswordError::TooLong)
        } else {
            Ok(Self(raw.to_owned()))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for AdminPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AdminPassword(<redacted>)")
    }
}

/// A stored admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminAccount {
    pub username: AdminUsername,
    pub password_hash: SecretHash,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_usernames_and_passwords_have_rules() {
        assert!(AdminUsername::parse("admin").is_ok());
        assert!(AdminUsername::parse("ops@agency.example").is_ok());
        assert!(AdminUsername::parse("ad").is_err());
        assert!(AdminUsername::parse("ad min").is_err());
        assert_eq!(
            AdminPassword::parse("short").err(),
            Some(AdminPasswordError::TooShort)
        );
        assert!(AdminPassword::parse("a long enough password").is_ok());
        let shown = format!(
            "{:?}",
            AdminPassword::parse("a long enough password").expect("ok")
        );
        assert!(!shown.contains("long enough"));
    }
}
