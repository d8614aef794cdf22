//! Read models: list queries, pages and statistics the repositories compute in the database.

use std::collections::BTreeMap;

use crate::Timestamp;
use crate::call::{Call, CallOutcome, Sentiment};
use crate::call_status::CallStatus;
use crate::client::Client;
use crate::values::{BoundedText, CallId, CallSid, ClientId, ClientStatus, PhoneNumber};

/// A case-insensitive substring to look for in a client's name, email and business name.
/// Any characters are allowed (`%`, `_`, quotes, regex syntax): adapters match it literally.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchTerm(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SearchTermError {
    #[error("search must be at most {max} characters", max = SearchTerm::MAX_LEN)]
    TooLong,
    /// Control characters cannot occur in what is searched (and NUL is not storable text).
    #[error("search must not contain control characters")]
    ControlCharacter,
}

impl SearchTerm {
    pub const MAX_LEN: usize = 200;

    /// Trims and lower-cases `raw`; a blank term means "no search" (`Ok(None)`).
    ///
    /// # Errors
    /// [`SearchTermError`] when longer than [`Self::MAX_LEN`] characters.
    pub fn parse(raw: &str) -> Result<Option<Self>, SearchTermError> {
        let trimmed = raw.trim();
        if trimmed.chars().count() > Self::MAX_LEN {
            return Err(SearchTermError::TooLong);
        }
        if trimmed.chars().any(char::is_control) {
            return Err(SearchTermError::ControlCharacter);
        }
        Ok((!trimmed.is_empty()).then(|| Self(trimmed.to_lowercase())))
    }

    /// The lower-cased needle, to be matched against `ClientMeta::search_text`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientListQuery {
    pub status: Option<ClientStatus>,
    pub search: Option<SearchTerm>,
    pub limit: u32,
    pub offset: u64,
}

impl ClientListQuery {
    pub const DEFAULT_LIMIT: u32 = 10;
    pub const MAX_LIMIT: u32 = 100;
}

/// One page of clients, newest first, and how many match the filters in all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientPage {
    pub total: u64,
    pub clients: Vec<Client>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallListQuery {
    pub status: Option<CallStatus>,
    pub limit: u32,
    pub offset: u64,
}

impl CallListQuery {
    pub const DEFAULT_LIMIT: u32 = 20;
    pub const MAX_LIMIT: u32 = 200;
}

/// Which calls the missed-report fetch may try now (`CallRepository::calls_awaiting_report`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBacklogQuery {
    /// A call never tried must have ended strictly before this instant (the grace period
    /// for the webhook)...
    pub ended_before: Timestamp,
    /// ...and at or after this one: older calls are past the window and never tried.
    pub ended_after: Timestamp,
    /// A call tried before is due when its next try is at or before this instant.
    pub now: Timestamp,
    /// At most this many calls.
    pub limit: u32,
}

/// One call of the missed-report backlog, with how many fetches of its report came back
/// without one.
#[derive(Debug, Clone, PartialEq)]
pub struct AwaitingReport {
    pub call: Call,
    pub fetch_attempts: u32,
}

/// One page of a client's calls, newest first. `total` counts all the client's calls,
/// `filtered` those matching the status filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPage {
    pub total: u64,
    pub filtered: u64,
    pub calls: Vec<Call>,
}

/// Counts per key, where every key of the set is present (0 when none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally<K: Ord>(BTreeMap<K, u64>);

impl<K: Ord + Copy> Tally<K> {
    /// A tally with every key of `all` at zero.
    pub fn zeroed(all: &[K]) -> Self {
        Self(all.iter().map(|k| (*k, 0)).collect())
    }

    pub fn add(&mut self, key: K, count: u64) {
        *self.0.entry(key).or_insert(0) += count;
    }

    pub fn get(&self, key: K) -> u64 {
        self.0.get(&key).copied().unwrap_or(0)
    }

    pub fn iter(&self) -> impl Iterator<Item = (K, u64)> + '_ {
        self.0.iter().map(|(k, v)| (*k, *v))
    }

    pub fn sum(&self) -> u64 {
        self.0.values().sum()
    }
}

impl Tally<CallStatus> {
    pub fn statuses() -> Self {
        Self::zeroed(&CallStatus::ALL)
    }
}

impl Tally<CallOutcome> {
    /// Calls without an outcome are counted by the adapter under `Unknown`.
    pub fn outcomes() -> Self {
        Self::zeroed(&CallOutcome::ALL)
    }
}

impl Tally<Sentiment> {
    /// Calls without a sentiment are counted by the adapter under `Unknown`.
    pub fn sentiments() -> Self {
        Self::zeroed(&Sentiment::ALL)
    }
}

/// One client's call statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStats {
    pub total: u64,
    pub by_status: Tally<CallStatus>,
    pub by_outcome: Tally<CallOutcome>,
    pub by_sentiment: Tally<Sentiment>,
    /// Sum of durations, in seconds, of the calls that have one.
    pub total_duration: u64,
    /// How many calls have a duration.
    pub calls_with_duration: u64,
}

impl CallStats {
    pub fn empty() -> Self {
        Self {
            total: 0,
            by_status: Tally::statuses(),
            by_outcome: Tally::outcomes(),
            by_sentiment: Tally::sentiments(),
            total_duration: 0,
            calls_with_duration: 0,
        }
    }

    /// Mean duration of the calls that have one, rounded half up; 0 when none do.
    pub fn average_duration(&self) -> u64 {
        (self.total_duration + self.calls_with_duration / 2)
            .checked_div(self.calls_with_duration)
            .unwrap_or(0)
    }
}

/// Clients per status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientCounts {
    pub active: u64,
    pub inactive: u64,
    pub suspended: u64,
}

impl ClientCounts {
    pub fn total(&self) -> u64 {
        self.active + self.inactive + self.suspended
    }
}

/// Call counts across all clients for the admin dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallDashboard {
    pub total: u64,
    /// Calls started at or after the `since` instant given to the query.
    pub recent: u64,
    pub by_status: Tally<CallStatus>,
    pub by_outcome: Tally<CallOutcome>,
}

/// One line of the admin's recent-activity feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallActivity {
    pub client_id: ClientId,
    pub client_name: BoundedText,
    pub business_name: Option<BoundedText>,
    pub call_id: CallId,
    pub call_sid: Option<CallSid>,
    pub phone: PhoneNumber,
    pub status: CallStatus,
    pub start_time: Timestamp,
    pub duration: Option<u32>,
    pub outcome: Option<CallOutcome>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_duration_rounds_half_up_and_is_zero_without_durations() {
        let mut stats = CallStats::empty();
        assert_eq!(stats.average_duration(), 0);
        stats.total_duration = 5;
        stats.calls_with_duration = 2;
        assert_eq!(stats.average_duration(), 3);
        stats.total_duration = 4;
        stats.calls_with_duration = 3;
        assert_eq!(stats.average_duration(), 1);
    }

    #[test]
    fn tallies_hold_every_key() {
        let mut tally = Tally::outcomes();
        tally.add(CallOutcome::Callback, 2);
        assert_eq!(tally.iter().count(), CallOutcome::ALL.len());
        assert_eq!(tally.get(CallOutcome::Interested), 0);
        assert_eq!(tally.sum(), 2);
    }

    #[test]
    fn search_terms_are_trimmed_lower_cased_and_bounded() {
        assert_eq!(SearchTerm::parse("  ").ok().flatten(), None);
        assert_eq!(
            SearchTerm::parse(" ÄBC%_ ")
                .ok()
                .flatten()
                .map(|t| t.as_str().to_owned()),
            Some("äbc%_".to_owned())
        );
        assert_eq!(
            SearchTerm::parse(&"x".repeat(201)),
            Err(SearchTermError::TooLong)
        );
        for control in ["\u{0}", "a\u{1f}b", "\u{7f}"] {
            assert_eq!(
                SearchTerm::parse(control),
                Err(SearchTermError::ControlCharacter),
                "{control:?}"
            );
        }
    }
}
