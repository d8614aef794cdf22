//! Identifiers. Each is a short ASCII token; the rules differ per kind and live in one table
//! (the `identifier!` invocations below) so that they are easy to read side by side.

use std::fmt;

/// Declares an identifier newtype with its own error type.
/// `$valid` decides whether a (non-empty, length-checked) string is acceptable.
macro_rules! identifier {
    (
        $(#[$doc:meta])*
        $name:ident, $error:ident, what = $what:literal, max = $max:literal,
        rule = $rule:literal, valid = $valid:expr
    ) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        #[doc = concat!("Why a string is not a valid ", $what, ".")]
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
        pub enum $error {
            #[error("{} must not be empty", $what)]
            Empty,
            #[error("{} must be at most {} characters", $what, $max)]
            TooLong,
            #[error("{} must be {}", $what, $rule)]
            Invalid,
        }

        impl $name {
            /// The longest accepted value, in bytes (identifiers are ASCII).
            pub const MAX_LEN: usize = $max;

            #[doc = concat!("Parses a ", $what, ": ", $rule, ".")]
            ///
            /// # Errors
            /// When the value is empty, longer than [`Self::MAX_LEN`] or breaks the rule.
            pub fn parse(raw: &str) -> Result<Self, $error> {
                if raw.is_empty() {
                    return Err($error::Empty);
                }
                if raw.len() > $max {
                    return Err($error::TooLong);
                }
                let valid: fn(&str) -> bool = $valid;
                if !valid(raw) {
                    return Err($error::Invalid);
                }
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
    };
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Letters, digits, `_`, `-`, `.`; starting with a letter or digit.
fn is_plain_token(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_alphanumeric()) && s.chars().all(is_token_char)
}

identifier!(
    /// A client account's public identifier (`client_12345abcde`), chosen by the admin or
    /// generated.
    ClientId, ClientIdError, what = "clientId", max = 64,
    rule = "letters, digits, '_', '-' or '.', starting with a letter or digit",
    valid = is_plain_token
);

identifier!(
    /// The id of the ElevenLabs Conversational AI agent a client's calls use.
    AgentId, AgentIdError, what = "agentId", max = 128,
    rule = "letters, digits, '_', '-' or '.', starting with a letter or digit",
    valid = is_plain_token
);

identifier!(
    /// outcall's own id for one call record.
    CallId, CallIdError, what = "callId", max = 64,
    rule = "letters, digits, '_', '-' or '.', starting with a letter or digit",
    valid = is_plain_token
);

identifier!(
    /// Twilio's call SID: `CA` followed by 32 letters or digits (Twilio uses hex).
    CallSid, CallSidError, what = "callSid", max = 34,
    rule = "'CA' followed by 32 letters or digits",
    valid = |s| s.len() == 34 && s.starts_with("CA") && s.chars().all(|c| c.is_ascii_alphanumeric())
);

identifier!(
    /// The id ElevenLabs gives a conversation (`conv_...`).
    ConversationId, ConversationIdError, what = "conversationId", max = 128,
    rule = "letters, digits, '_', '-' or '.', starting with a letter or digit",
    valid = is_plain_token
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_follow_the_token_rule() {
        let cases: &[(&str, Result<(), ClientIdError>)] = &[
            ("client_12345abcde", Ok(())),
            ("a", Ok(())),
            ("A.b-c_9", Ok(())),
            ("", Err(ClientIdError::Empty)),
            ("_leading", Err(ClientIdError::Invalid)),
            ("has space", Err(ClientIdError::Invalid)),
            ("semi;colon", Err(ClientIdError::Invalid)),
            ("ünïcode", Err(ClientIdError::Invalid)),
            ("../etc", Err(ClientIdError::Invalid)),
        ];
        for (raw, expected) in cases {
            assert_eq!(ClientId::parse(raw).map(|_| ()), *expected, "{raw:?}");
        }
        assert_eq!(ClientId::parse(&"x".repeat(64)).map(|_| ()), Ok(()));
        assert_eq!(
            ClientId::parse(&"x".repeat(65)),
            Err(ClientIdError::TooLong)
        );
    }

    #[test]
    fn call_sids_are_ca_and_32_alphanumerics() {
        let cases: &[(&str, bool)] = &[
            ("CA0123456789abcdef0123456789abcdef", true),
            ("CAXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", true),
            ("CA0123456789abcdef0123456789abcde", false),
            ("XX0123456789abcdef0123456789abcdef", false),
            ("CA0123456789abcdef0123456789abcd-f", false),
        ];
        for (raw, ok) in cases {
            assert_eq!(CallSid::parse(raw).is_ok(), *ok, "{raw:?}");
        }
    }

    #[test]
    fn error_messages_name_the_field() {
        assert_eq!(
            AgentId::parse("").err().map(|e| e.to_string()).as_deref(),
            Some("agentId must not be empty")
        );
    }
}
