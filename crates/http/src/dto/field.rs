//! Request members as received, before any validation.
//!
//! Request structs declare every member as [`Field`] (or [`Obj`] for nested objects), whose
//! deserialisation never fails. serde's own type errors carry only a line and column; here a
//! wrong type becomes data, and the conversion into a domain command reports it with the
//! member's JSON path (`clientMeta.phone must be a string`). Absent and `null` stay distinct,
//! which partial updates need (`null` clears an optional field).

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{Deserializer, Error as _, IgnoredAny};
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::Value;

use crate::error::{ApiError, Problem};

/// One JSON member.
#[derive(Default)]
pub enum Field {
    #[default]
    Absent,
    Null,
    Text(String),
    Number(serde_json::Number),
    /// A boolean, array or object where a scalar was expected.
    Other,
}

impl<'de> Deserialize<'de> for Field {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(deserializer)? {
            Value::Null => Self::Null,
            Value::String(text) => Self::Text(text),
            Value::Number(number) => Self::Number(number),
            Value::Bool(_) | Value::Array(_) | Value::Object(_) => Self::Other,
        })
    }
}

impl fmt::Debug for Field {
    /// Only the kind: members may hold secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Absent => "Absent",
            Self::Null => "Null",
            Self::Text(_) => "Text(..)",
            Self::Number(_) => "Number(..)",
            Self::Other => "Other",
        })
    }
}

impl Field {
    pub fn is_absent(&self) -> bool {
        matches!(self, Self::Absent)
    }

    /// A string member where `null` means the same as absent.
    pub fn text(self, path: &str) -> Result<Option<String>, FieldError> {
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Text(text) => Ok(Some(text)),
            Self::Number(_) | Self::Other => Err(FieldError::must_be(path, "a string")),
        }
    }

    /// A string member where absent, `null` and `""` all mean "not given".
    pub fn non_empty_text(self, path: &str) -> Result<Option<String>, FieldError> {
        Ok(self.text(path)?.filter(|text| !text.is_empty()))
    }

    /// A string member of a partial update: absent leaves the value as it is (`None`),
    /// `null` asks to clear it (`Some(None)`).
    pub fn nullable_text(self, path: &str) -> Result<Option<Option<String>>, FieldError> {
        match self {
            Self::Absent => Ok(None),
            Self::Null => Ok(Some(None)),
            Self::Text(text) => Ok(Some(Some(text))),
            Self::Number(_) | Self::Other => Err(FieldError::must_be(path, "a string")),
        }
    }

    /// A non-negative integer that fits `u32`; absent and `null` mean "not given".
    pub fn count(self, path: &str) -> Result<Option<u32>, FieldError> {
        let must_be = || FieldError::must_be(path, "a non-negative integer");
        match self {
            Self::Absent | Self::Null => Ok(None),
            Self::Number(number) => number
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(Some)
                .ok_or_else(must_be),
            Self::Text(_) | Self::Other => Err(must_be()),
        }
    }
}

/// A nested JSON object member (`clientMeta`, `callData`, ...).
#[derive(Default)]
pub enum Obj<T> {
    #[default]
    Absent,
    Object(T),
    /// `null` or a value that is not an object.
    NotAnObject,
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            object @ Value::Object(_) => T::deserialize(object)
                .map(Self::Object)
                .map_err(D::Error::custom),
            _ => Ok(Self::NotAnObject),
        }
    }
}

impl<T> Obj<T> {
    /// The object if present; `null` or another type is an error naming `path`.
    pub fn object(self, path: &str) -> Result<Option<T>, FieldError> {
        match self {
            Self::Absent => Ok(None),
            Self::Object(inner) => Ok(Some(inner)),
            Self::NotAnObject => Err(FieldError::must_be(path, "an object")),
        }
    }
}

/// Members a request struct does not declare, kept by name only.
pub type Unknown = BTreeMap<String, IgnoredAny>;

/// The JSON paths of undeclared members, e.g. `clientMeta.nickname`.
pub fn unknown_paths(prefix: Option<&str>, unknown: &Unknown) -> Vec<String> {
    unknown
        .keys()
        .map(|key| match prefix {
            Some(prefix) => format!("{prefix}.{key}"),
            None => key.clone(),
        })
        .collect()
}

/// A member that is present but wrong, described for the `details` of a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError(String);

impl FieldError {
    /// `reason` is usually a domain error whose `Display` already names the field
    /// (`agentId must not be empty`); when it does not (`phone number must be in E.164
    /// format`), the path is put in front: `twilioPhoneNumber: phone number must be ...`.
    pub fn new(path: &str, reason: impl fmt::Display) -> Self {
        let reason = reason.to_string();
        if reason.starts_with(path) {
            Self(reason)
        } else {
            Self(format!("{path}: {reason}"))
        }
    }

    /// `path: reason`, for reasons that may start with a word that happens to equal the path
    /// (`phone: phone number must be ...`).
    pub fn at(path: &str, reason: impl fmt::Display) -> Self {
        Self(format!("{path}: {reason}"))
    }

    pub fn must_be(path: &str, what: &str) -> Self {
        Self(format!("{path} must be {what}"))
    }

    /// Undeclared members: `unknown fields: nickname, clientMeta.age`.
    pub fn unknown(paths: &[String]) -> Self {
        Self(format!("unknown fields: {}", paths.join(", ")))
    }

    /// Members a caller may not change here: `These fields cannot be updated: status, ...`.
    pub fn not_updatable(paths: &[String]) -> Self {
        Self(format!(
            "These fields cannot be updated: {}",
            paths.join(", ")
        ))
    }

    #[cfg(test)]
    pub fn details(&self) -> &str {
        &self.0
    }

    pub fn into_api(self, problem: Problem) -> ApiError {
        ApiError::invalid(problem, self.0)
    }
}

/// Parses `raw` with a domain parser, naming `path` on failure.
pub fn parse_with<T, E: fmt::Display>(
    path: &str,
    raw: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, FieldError> {
    parse(raw).map_err(|err| FieldError::new(path, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        #[serde(default)]
        agent_id: Field,
        #[serde(default)]
        meta: Obj<Inner>,
        #[serde(flatten)]
        unknown: Unknown,
    }

    #[derive(Deserialize)]
    struct Inner {
        #[serde(default)]
        city: Field,
        #[serde(flatten)]
        unknown: Unknown,
    }

    fn probe(json: &str) -> Probe {
        serde_json::from_str(json).expect("a probe never fails on an object")
    }

    #[test]
    fn absent_null_and_wrong_types_are_told_apart_and_named() {
        assert!(probe("{}").agent_id.is_absent());
        assert_eq!(
            probe(r#"{"agentId": null}"#)
                .agent_id
                .nullable_text("agentId"),
            Ok(Some(None))
        );
        assert_eq!(
            probe(r#"{"agentId": 5}"#).agent_id.text("agentId"),
            Err(FieldError("agentId must be a string".into()))
        );
        assert_eq!(
            probe(r#"{"agentId": [1]}"#).agent_id.text("agentId"),
            Err(FieldError("agentId must be a string".into()))
        );
        assert_eq!(
            probe(r#"{"agentId": "a"}"#).agent_id.text("agentId"),
            Ok(Some("a".into()))
        );
    }

    #[test]
    fn nested_objects_and_unknown_members_are_reported_by_path() {
        let p = probe(r#"{"meta": {"city": "Oslo", "age": 3}, "nick": "x"}"#);
        assert_eq!(unknown_paths(None, &p.unknown), vec!["nick".to_owned()]);
        let inner = p.meta.object("meta").expect("object").expect("present");
        assert_eq!(
            unknown_paths(Some("meta"), &inner.unknown),
            vec!["meta.age".to_owned()]
        );
        assert_eq!(inner.city.text("meta.city"), Ok(Some("Oslo".to_owned())));
        assert_eq!(
            probe(r#"{"meta": null}"#).meta.object("meta").err(),
            Some(FieldError("meta must be an object".into()))
        );
    }

    #[test]
    fn counts_must_be_non_negative_integers_within_range() {
        let count = |json: &str| {
            probe(&format!(r#"{{"agentId": {json}}}"#))
                .agent_id
                .count("d")
        };
        assert_eq!(count("900"), Ok(Some(900)));
        assert_eq!(count("null"), Ok(None));
        for bad in ["-1", "1.5", "\"900\"", "4294967296", "true"] {
            assert_eq!(
                count(bad),
                Err(FieldError("d must be a non-negative integer".into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn field_errors_name_the_path_once() {
        assert_eq!(
            FieldError::new("agentId", "agentId must not be empty").details(),
            "agentId must not be empty"
        );
        assert_eq!(
            FieldError::new("twilioPhoneNumber", "phone number must be in E.164 format").details(),
            "twilioPhoneNumber: phone number must be in E.164 format"
        );
    }

    #[test]
    fn debug_output_never_shows_a_members_value() {
        let shown = format!("{:?}", Field::Text("super-secret-value".into()));
        assert!(!shown.contains("super-secret"), "{shown}");
    }
}
