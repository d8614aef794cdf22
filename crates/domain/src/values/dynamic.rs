//! Dynamic variables: per-call values the voice agent can use in its prompt and first message.

use std::collections::BTreeMap;
use std::fmt;

/// One dynamic variable's value: ElevenLabs accepts strings, numbers and booleans.
#[derive(Debug, Clone, PartialEq)]
pub enum DynamicValue {
    Text(String),
    Integer(i64),
    Number(f64),
    Bool(bool),
}

impl fmt::Display for DynamicValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Integer(n) => write!(f, "{n}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Why a set of dynamic variables is refused. `Display` names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicVariablesError {
    #[error("dynamicVariables may hold at most {max} variables", max = DynamicVariables::MAX_VARIABLES)]
    TooMany,
    #[error("dynamicVariables key {0:?} must be 1 to 64 characters of a-z, 0-9 and '_'")]
    InvalidKey(String),
    #[error("dynamicVariables key {0:?} uses the reserved prefix 'system__'")]
    ReservedKey(String),
    #[error("dynamicVariables.{0} must be at most {max} characters", max = DynamicVariables::MAX_VALUE_LEN)]
    ValueTooLong(String),
    #[error("dynamicVariables.{0} must not be a non-finite number")]
    NotFinite(String),
}

/// A validated, ordered set of dynamic variables: at most 32 keys of `[a-z0-9_]{1,64}`, none
/// starting with `system__`, each value at most 500 characters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DynamicVariables(BTreeMap<String, DynamicValue>);

// Sound because `new` refuses non-finite numbers, so equality is reflexive for every value held.
impl Eq for DynamicVariables {}

impl DynamicVariables {
    pub const MAX_VARIABLES: usize = 32;
    pub const MAX_KEY_LEN: usize = 64;
    pub const MAX_VALUE_LEN: usize = 500;

    /// # Errors
    /// [`DynamicVariablesError`] naming the first offending variable.
    pub fn new(
        entries: impl IntoIterator<Item = (String, DynamicValue)>,
    ) -> Result<Self, DynamicVariablesError> {
        let mut map = BTreeMap::new();
        for (key, value) in entries {
            let key_ok = (1..=Self::MAX_KEY_LEN).contains(&key.len())
                && key
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !key_ok {
                return Err(DynamicVariablesError::InvalidKey(key));
            }
            if key.starts_with("system__") {
                return Err(DynamicVariablesError::ReservedKey(key));
            }
            match &value {
                DynamicValue::Text(text) if text.chars().count() > Self::MAX_VALUE_LEN => {
                    return Err(DynamicVariablesError::ValueTooLong(key));
                }
                DynamicValue::Number(n) if !n.is_finite() => {
                    return Err(DynamicVariablesError::NotFinite(key));
                }
                _ => {}
            }
            map.insert(key, value);
            if map.len() > Self::MAX_VARIABLES {
                return Err(DynamicVariablesError::TooMany);
            }
        }
        Ok(Self(map))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, key: &str) -> Option<&DynamicValue> {
        self.0.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &DynamicValue)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(key: &str, value: &str) -> (String, DynamicValue) {
        (key.to_owned(), DynamicValue::Text(value.to_owned()))
    }

    #[test]
    fn dynamic_variables_follow_the_key_value_and_count_rules() {
        assert!(DynamicVariables::new([text("first_name", "Jane"), text("a1", "")]).is_ok());
        let cases: Vec<(Vec<(String, DynamicValue)>, DynamicVariablesError)> = vec![
            (
                vec![text("FirstName", "x")],
                DynamicVariablesError::InvalidKey("FirstName".into()),
            ),
            (
                vec![text("", "x")],
                DynamicVariablesError::InvalidKey(String::new()),
            ),
            (
                vec![text("has-dash", "x")],
                DynamicVariablesError::InvalidKey("has-dash".into()),
            ),
            (
                vec![text(&"k".repeat(65), "x")],
                DynamicVariablesError::InvalidKey("k".repeat(65)),
            ),
            (
                vec![text("system__call_sid", "x")],
                DynamicVariablesError::ReservedKey("system__call_sid".into()),
            ),
            (
                vec![text("long", &"é".repeat(501))],
                DynamicVariablesError::ValueTooLong("long".into()),
            ),
            (
                vec![("n".to_owned(), DynamicValue::Number(f64::NAN))],
                DynamicVariablesError::NotFinite("n".into()),
            ),
            (
                (0..33).map(|i| text(&format!("k{i}"), "v")).collect(),
                DynamicVariablesError::TooMany,
            ),
        ];
        for (entries, expected) in cases {
            assert_eq!(
                DynamicVariables::new(entries),
                Err(expected.clone()),
                "{expected}"
            );
        }
        assert!(DynamicVariables::new((0..32).map(|i| text(&format!("k{i}"), "v"))).is_ok());
        assert!(DynamicVariables::new([text("ok", &"é".repeat(500))]).is_ok());
    }
}
