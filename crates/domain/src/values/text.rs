use std::fmt;

/// Free text with surrounding whitespace trimmed and a length limit in characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BoundedText(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {max} characters")]
    TooLong { max: usize },
    #[error("must not contain control characters")]
    ControlCharacter,
}

impl BoundedText {
    /// Trims `raw` and checks it holds 1..=`max` characters; line breaks and tabs are allowed,
    /// other control characters are not.
    ///
    /// # Errors
    /// [`TextError`] when the trimmed text is empty, too long or holds control characters.
    pub fn parse(raw: &str, max: usize) -> Result<Self, TextError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(TextError::Empty);
        }
        if trimmed.chars().count() > max {
            return Err(TextError::TooLong { max });
        }
        if trimmed
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(TextError::ControlCharacter);
        }
        Ok(Self(trimmed.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Debug for BoundedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for BoundedText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BoundedText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_bounded_in_characters_not_bytes() {
        assert_eq!(
            BoundedText::parse("  Zoë  ", 3).map(|t| t.into_string()),
            Ok("Zoë".into())
        );
        assert_eq!(
            BoundedText::parse("Zoëy", 3),
            Err(TextError::TooLong { max: 3 })
        );
        assert_eq!(BoundedText::parse("   ", 3), Err(TextError::Empty));
        assert_eq!(
            BoundedText::parse("a\u{0}b", 3),
            Err(TextError::ControlCharacter)
        );
        assert!(BoundedText::parse("line\nbreak", 20).is_ok());
    }
}
