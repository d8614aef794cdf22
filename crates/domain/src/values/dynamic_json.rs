//! Dynamic variables as one JSON object (keys sorted): the form they are stored in by every
//! storage adapter and sent in to providers. Text values are JSON strings, `Integer` a JSON
//! integer, `Number` a JSON float (always written with a `.` or an exponent, so it reads back as
//! a `Number`), `Bool` a JSON boolean.

use std::collections::BTreeMap;

use serde_json::Value;

use super::dynamic::{DynamicValue, DynamicVariables};

/// Why stored or received JSON is not a set of dynamic variables.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DynamicJsonError(String);

macro_rules! bail {
    ($($arg:tt)*) => { return Err(DynamicJsonError(format!($($arg)*))) };
}

/// The JSON object stored for `vars`.
///
/// # Errors
/// Only for a non-finite number, which [`DynamicVariables::new`] never admits.
pub fn to_json(vars: &DynamicVariables) -> Result<String, DynamicJsonError> {
    // A `BTreeMap` serializes in key order whatever features `serde_json` is built with.
    let object = vars
        .iter()
        .map(|(key, value)| {
            let json = match value {
                DynamicValue::Text(text) => Value::String(text.clone()),
                DynamicValue::Integer(n) => Value::from(*n),
                DynamicValue::Number(n) => serde_json::Number::from_f64(*n)
                    .map(Value::Number)
                    .ok_or_else(|| {
                        DynamicJsonError(format!("dynamic variable {key:?} is not a finite number"))
                    })?,
                DynamicValue::Bool(b) => Value::Bool(*b),
            };
            Ok((key, json))
        })
        .collect::<Result<BTreeMap<&str, Value>, DynamicJsonError>>()?;
    serde_json::to_string(&object)
        .map_err(|e| DynamicJsonError(format!("encoding dynamic variables as JSON: {e}")))
}

/// Dynamic variables back from their stored JSON object, re-validated by the domain.
///
/// # Errors
/// When `raw` is not a JSON object of strings, numbers and booleans, holds an integer outside
/// `i64`, or breaks the domain's rules for dynamic variables.
pub fn from_json(raw: &str) -> Result<DynamicVariables, DynamicJsonError> {
    let object: BTreeMap<String, Value> = serde_json::from_str(raw)
        .map_err(|e| DynamicJsonError(format!("not a JSON object of dynamic variables: {e}")))?;
    let entries = object
        .into_iter()
        .map(|(key, json)| {
            let value = match json {
                Value::String(text) => DynamicValue::Text(text),
                Value::Bool(b) => DynamicValue::Bool(b),
                Value::Number(n) if n.is_f64() => match n.as_f64() {
                    Some(f) => DynamicValue::Number(f),
                    None => bail!("variable {key:?} holds an unreadable number {n}"),
                },
                Value::Number(n) => match n.as_i64() {
                    Some(i) => DynamicValue::Integer(i),
                    None => bail!("variable {key:?} holds an integer outside i64: {n}"),
                },
                other => bail!("variable {key:?} holds a JSON {}", kind(&other)),
            };
            Ok((key, value))
        })
        .collect::<Result<Vec<_>, DynamicJsonError>>()?;
    DynamicVariables::new(entries).map_err(|e| DynamicJsonError(e.to_string()))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]

    use super::*;

    fn vars(entries: &[(&str, DynamicValue)]) -> DynamicVariables {
        DynamicVariables::new(entries.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
            .expect("valid variables")
    }

    #[test]
    fn every_value_kind_is_written_as_its_json_type_with_keys_sorted() {
        let all = vars(&[
            ("name", DynamicValue::Text("Zoë \"Z\" 👋".into())),
            ("big", DynamicValue::Integer(9_007_199_254_740_993)),
            ("ratio", DynamicValue::Number(1.0)),
            ("tiny", DynamicValue::Number(0.1)),
            ("agreed", DynamicValue::Bool(false)),
        ]);
        assert_eq!(
            to_json(&all).expect("encodes"),
            r#"{"agreed":false,"big":9007199254740993,"name":"Zoë \"Z\" 👋","ratio":1.0,"tiny":0.1}"#
        );
        assert_eq!(
            to_json(&DynamicVariables::default()).expect("encodes"),
            "{}"
        );
    }

    #[test]
    fn integers_and_floats_keep_their_kind_and_exact_value_through_json() {
        let mut entries = vec![
            ("one_f", DynamicValue::Number(1.0)),
            ("neg_zero", DynamicValue::Number(-0.0)),
            ("one_i", DynamicValue::Integer(1)),
            ("min_i", DynamicValue::Integer(i64::MIN)),
            ("max_i", DynamicValue::Integer(i64::MAX)),
            ("max_f", DynamicValue::Number(f64::MAX)),
            ("subnormal", DynamicValue::Number(5e-324)),
            ("min_pos", DynamicValue::Number(f64::MIN_POSITIVE)),
            ("third", DynamicValue::Number(1.0 / 3.0)),
            ("sum", DynamicValue::Number(0.1 + 0.2)),
        ];
        // Pseudo-random bit patterns: every finite double must come back bit for bit.
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut names = Vec::new();
        for i in 0..4000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let f = f64::from_bits(state);
            if f.is_finite() {
                names.push((format!("r{i}"), f));
            }
        }
        for chunk in names.chunks(DynamicVariables::MAX_VARIABLES) {
            let random = DynamicVariables::new(
                chunk
                    .iter()
                    .map(|(k, f)| (k.clone(), DynamicValue::Number(*f))),
            )
            .expect("valid variables");
            let back = from_json(&to_json(&random).expect("encodes")).expect("decodes");
            for (key, value) in random.iter() {
                match (value, back.get(key)) {
                    (DynamicValue::Number(a), Some(DynamicValue::Number(b))) => {
                        assert_eq!(a.to_bits(), b.to_bits(), "{key}: {a:e} came back as {b:e}");
                    }
                    (a, b) => panic!("{key}: {a:?} came back as {b:?}"),
                }
            }
        }
        entries.push(("text", DynamicValue::Text(String::new())));
        let fixed = vars(&entries);
        let back = from_json(&to_json(&fixed).expect("encodes")).expect("decodes");
        assert_eq!(back, fixed);
        assert_eq!(back.get("one_f"), Some(&DynamicValue::Number(1.0)));
        assert_eq!(back.get("one_i"), Some(&DynamicValue::Integer(1)));
        match back.get("neg_zero") {
            Some(DynamicValue::Number(z)) => assert!(z.is_sign_negative(), "{z}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stored_json_that_the_domain_would_refuse_is_an_error_naming_the_problem() {
        let cases = [
            ("", "not a JSON object"),
            ("[1]", "not a JSON object"),
            ("{\"a\":1", "not a JSON object"),
            ("{\"a\":null}", "\"a\" holds a JSON null"),
            ("{\"a\":[1]}", "\"a\" holds a JSON array"),
            ("{\"a\":{}}", "\"a\" holds a JSON object"),
            ("{\"a\":18446744073709551615}", "integer outside i64"),
            ("{\"Bad-Key\":1}", "Bad-Key"),
            ("{\"system__x\":1}", "system__x"),
            ("{\"a\":1e999}", "not a JSON object"),
        ];
        for (raw, expected) in cases {
            let err = from_json(raw).expect_err(raw);
            let chain = format!("{err:#}");
            assert!(chain.contains(expected), "{raw}: {chain}");
        }
        let long = format!(
            "{{\"a\":\"{}\"}}",
            "é".repeat(DynamicVariables::MAX_VALUE_LEN + 1)
        );
        assert!(
            format!("{:#}", from_json(&long).expect_err("too long"))
                .contains("dynamicVariables.a ")
        );
    }
}
