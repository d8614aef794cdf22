use std::fmt;

/// A client's plain secret. Only ever held transiently: between the request that carries it
/// and the hasher, or between generation and the one response that shows it.
/// `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientSecret(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientSecretError {
    #[error("clientSecret must be at least {min} characters", min = ClientSecret::MIN_LEN)]
    TooShort,
    #[error("clientSecret must be at most {max} characters", max = ClientSecret::MAX_LEN)]
    TooLong,
    #[error("clientSecret must not contain whitespace or control characters")]
    InvalidCharacter,
}

impl ClientSecret {
    pub const MIN_LEN: usize = 16;
    pub const MAX_LEN: usize = 128;

    /// Accepts 16..=128 characters without whitespace or control characters.
    ///
    /// # Errors
    /// [`ClientSecretError`] naming the broken rule.
    pub fn parse(raw: &str) -> Result<Self, ClientSecretError> {
        let len = raw.chars().count();
        if len < Self::MIN_LEN {
            return Err(ClientSecretError::TooShort);
        }
        if len > Self::MAX_LEN {
            return Err(ClientSecretError::TooLong);
        }
        if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ClientSecretError::InvalidCharacter);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The plain text, for hashing or for the single response that reveals it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ClientSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecret(<redacted>)")
    }
}

/// A password hash in PHC string format (`$argon2id$v=19$...`), as produced by the
/// `SecretHasher`. Never serialised into an API response.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(String);

impl SecretHash {
    /// Wraps a PHC string read back from storage; the hasher decides whether it is usable.
    pub fn from_phc(phc: String) -> Self {
        Self(phc)
    }

    pub fn as_phc(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_length_and_character_rules() {
        let cases: &[(&str, Result<(), ClientSecretError>)] = &[
            ("client_secure_secret_key", Ok(())),
            ("0123456789abcdef", Ok(())),
            ("0123456789abcde", Err(ClientSecretError::TooShort)),
            (
                "0123456789 abcdef",
                Err(ClientSecretError::InvalidCharacter),
            ),
            (
                "0123456789\tabcdef",
                Err(ClientSecretError::InvalidCharacter),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(ClientSecret::parse(raw).map(|_| ()), *expected, "{raw:?}");
        }
        assert_eq!(
            ClientSecret::parse(&"x".repeat(129)).map(|_| ()),
            Err(ClientSecretError::TooLong)
        );
    }

    #[test]
    fn secrets_and_hashes_never_show_in_debug_output() {
        let secret = ClientSecret::parse("super-secret-value-123").expect("valid");
        assert!(!format!("{secret:?}").contains("super-secret"));
        let hash = SecretHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$abc$def".into());
        assert!(!format!("{hash:?}").contains("argon2id"));
    }
}
