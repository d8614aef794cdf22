//! The one wire format for instants: RFC 3339, UTC, milliseconds, `Z`
//! (`2025-03-20T12:00:00.000Z`).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use outcall_domain::Timestamp;
use serde::{Serialize, Serializer};

/// An instant as the API writes it. Wrapping the domain type keeps every response on one
/// format instead of relying on chrono's default (which prints nanoseconds and `+00:00`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub Timestamp);

impl Millis {
    pub fn format(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl Serialize for Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.format())
    }
}

impl From<Timestamp> for Millis {
    fn from(at: Timestamp) -> Self {
        Self(at)
    }
}

/// Why a date-time string was refused. The caller adds the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an RFC 3339 date-time between 1970 and 9999, e.g. 2025-03-20T12:00:00.000Z")]
pub struct TimestampError;

/// Parses any RFC 3339 offset, converts to UTC and truncates to milliseconds, the precision
/// the domain stores.
///
/// # Errors
/// [`TimestampError`] when `raw` is not RFC 3339.
pub fn parse(raw: &str) -> Result<Timestamp, TimestampError> {
    let at = DateTime::parse_from_rfc3339(raw.trim()).map_err(|_| TimestampError)?;
    let at = truncate_to_millis(at.with_timezone(&Utc));
    // Years 1970..=9999 in UTC: anything else is a mistake, and would not print back as RFC 3339.
    if !(1970..=9999).contains(&at.year()) {
        return Err(TimestampError);
    }
    Ok(at)
}

/// The current instant at the domain's precision.
pub fn now() -> Timestamp {
    truncate_to_millis(Utc::now())
}

fn truncate_to_millis(at: Timestamp) -> Timestamp {
    let nanos = at.nanosecond() / 1_000_000 * 1_000_000;
    // Cannot fail: the truncated value is never larger than the valid one it came from.
    at.with_nanosecond(nanos).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_outside_1970_to_9999_are_refused() {
        assert!(parse("1969-12-31T23:59:59Z").is_err());
        assert!(parse("0000-01-01T00:00:00Z").is_err());
        assert!(
            parse("9999-12-31T23:59:59.999-23:59").is_err(),
            "is year 10000 in UTC"
        );
        assert!(parse("1970-01-01T00:00:00Z").is_ok());
        assert!(parse("9999-12-31T23:59:59.999Z").is_ok());
    }
    use outcall_domain::test_support::fixed_now;

    #[test]
    fn instants_are_written_in_utc_with_milliseconds_and_z() {
        assert_eq!(Millis(fixed_now()).format(), "2025-03-20T12:00:00.000Z");
        let json = serde_json::to_string(&Millis(fixed_now())).expect("serialises");
        assert_eq!(json, "\"2025-03-20T12:00:00.000Z\"");
    }

    #[test]
    fn any_offset_is_accepted_converted_to_utc_and_truncated_to_milliseconds() {
        let at = parse("2025-03-20T14:00:00.123456789+02:00").expect("valid");
        assert_eq!(Millis(at).format(), "2025-03-20T12:00:00.123Z");
        assert_eq!(parse("2025-03-20T12:00:00Z").expect("valid"), fixed_now());
    }

    #[test]
    fn dates_that_are_not_rfc_3339_are_refused() {
        for raw in [
            "",
            "2025-03-20",
            "20/03/2025 12:00",
            "2025-03-20T12:00:00",
            "tomorrow",
        ] {
            assert_eq!(parse(raw), Err(TimestampError), "{raw:?}");
        }
    }
}
