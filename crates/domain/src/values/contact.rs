use std::fmt;

/// A phone number in E.164 form: `+`, then 2 to 15 digits, the first not `0`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneNumberError {
    #[error("phone number must not be empty")]
    Empty,
    #[error("phone number must be in E.164 format (e.g. +12125551234)")]
    NotE164,
}

impl PhoneNumber {
    /// Parses an E.164 number exactly; no spaces, dashes or brackets are tolerated, so what
    /// is stored is what Twilio will dial.
    ///
    /// # Errors
    /// [`PhoneNumberError`] when `raw` is empty or not E.164.
    pub fn parse(raw: &str) -> Result<Self, PhoneNumberError> {
        if raw.is_empty() {
            return Err(PhoneNumberError::Empty);
        }
        let digits = raw.strip_prefix('+').ok_or(PhoneNumberError::NotE164)?;
        let valid = (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if !valid {
            return Err(PhoneNumberError::NotE164);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number with all but its last four digits hidden, for log lines.
    pub fn redacted(&self) -> String {
        let keep = self.0.len().saturating_sub(4).max(1);
        format!("+{}{}", "*".repeat(keep - 1), &self.0[keep..])
    }
}

impl fmt::Debug for PhoneNumber {
    /// Debug output is redacted so that a phone number never lands in a log by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.redacted())
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address: one `@`, a plausible local part and a dotted domain. Stored as given;
/// uniqueness is case-insensitive (see [`Email::normalized`]).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("email must not be empty")]
    Empty,
    #[error("email must be at most 254 characters")]
    TooLong,
    #[error("email format is invalid")]
    Invalid,
}

impl Email {
    pub const MAX_LEN: usize = 254;

    /// Parses a practical subset of RFC 5322 addresses: `local@domain.tld`, no whitespace,
    /// no quoted local parts, domain labels of letters, digits and hyphens.
    ///
    /// # Errors
    /// [`EmailError`] when `raw` is empty, too long or malformed.
    pub fn parse(raw: &str) -> Result<Self, EmailError> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(EmailError::Empty);
        }
        if raw.len() > Self::MAX_LEN {
            return Err(EmailError::TooLong);
        }
        let (local, domain) = raw.split_once('@').ok_or(EmailError::Invalid)?;
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            })
            && labels.last().is_some_and(|tld| {
                tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic)
            });
        if !(local_ok && domain_ok) {
            return Err(EmailError::Invalid);
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The lower-cased form used for uniqueness and search.
    pub fn normalized(&self) -> String {
        self.0.to_lowercase()
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_must_be_e164() {
        let cases: &[(&str, Result<(), PhoneNumberError>)] = &[
            ("+12125551234", Ok(())),
            ("+44", Ok(())),
            ("+123456789012345", Ok(())),
            ("+1234567890123456", Err(PhoneNumberError::NotE164)),
            ("+1", Err(PhoneNumberError::NotE164)),
            ("+0123456789", Err(PhoneNumberError::NotE164)),
            ("12125551234", Err(PhoneNumberError::NotE164)),
            ("+1 212 555 1234", Err(PhoneNumberError::NotE164)),
            ("+1-212-555-1234", Err(PhoneNumberError::NotE164)),
            ("+1212555123a", Err(PhoneNumberError::NotE164)),
            ("++12125551234", Err(PhoneNumberError::NotE164)),
            ("+١٢٣٤٥", Err(PhoneNumberError::NotE164)),
            ("", Err(PhoneNumberError::Empty)),
            ("+", Err(PhoneNumberError::NotE164)),
        ];
        for (raw, expected) in cases {
            assert_eq!(PhoneNumber::parse(raw).map(|_| ()), *expected, "{raw:?}");
        }
    }

    #[test]
    fn phone_numbers_are_redacted_in_debug_output() {
        let phone = PhoneNumber::parse("+12125551234").expect("valid");
        let shown = format!("{phone:?}");
        assert!(!shown.contains("212555"), "{shown}");
        assert!(shown.ends_with("1234)"), "{shown}");
    }

    #[test]
    fn emails_are_checked_for_a_plausible_shape() {
        let cases: &[(&str, Result<(), EmailError>)] = &[
            ("john@example.com", Ok(())),
            ("John.Doe+tag@Example.co.uk", Ok(())),
            ("zoë@exämple.de", Ok(())),
            (" padded@example.com ", Ok(())),
            ("", Err(EmailError::Empty)),
            ("john", Err(EmailError::Invalid)),
            ("john@", Err(EmailError::Invalid)),
            ("@example.com", Err(EmailError::Invalid)),
            ("john@example", Err(EmailError::Invalid)),
            ("john@@example.com", Err(EmailError::Invalid)),
            ("jo hn@example.com", Err(EmailError::Invalid)),
            ("john@exa mple.com", Err(EmailError::Invalid)),
            ("john@-example.com", Err(EmailError::Invalid)),
            ("john@example..com", Err(EmailError::Invalid)),
            (".john@example.com", Err(EmailError::Invalid)),
            ("jo..hn@example.com", Err(EmailError::Invalid)),
            ("john@example.c", Err(EmailError::Invalid)),
            ("john@example.123", Err(EmailError::Invalid)),
            ("\"q\"@example.com", Err(EmailError::Invalid)),
            ("john@example.com<script>", Err(EmailError::Invalid)),
        ];
        for (raw, expected) in cases {
            assert_eq!(Email::parse(raw).map(|_| ()), *expected, "{raw:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert_eq!(Email::parse(&long).map(|_| ()), Err(EmailError::TooLong));
    }

    #[test]
    fn email_uniqueness_form_is_lower_case() {
        let email = Email::parse("John@Example.COM").expect("valid");
        assert_eq!(email.as_str(), "John@Example.COM");
        assert_eq!(email.normalized(), "john@example.com");
    }
}
