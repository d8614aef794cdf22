//! The call-status rules: one type, one transition function.
//!
//! Twilio sends status callbacks as separate HTTP requests that may arrive late, twice, or out
//! of order. The rules make that harmless: a status only ever moves forward along
//! `queued -> initiated -> ringing -> in-progress -> (terminal)`, may skip steps, and once a
//! terminal status is reached nothing changes it.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallStatus {
    Queued,
    Initiated,
    Ringing,
    InProgress,
    Completed,
    Busy,
    Failed,
    NoAnswer,
    Canceled,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "status must be one of queued, initiated, ringing, in-progress, completed, busy, failed, no-answer, canceled"
)]
pub struct CallStatusError;

/// What applying a status to a call's current status means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// The new status is later in the call's life: apply it.
    Advance,
    /// The same status again (a retried callback): nothing to do.
    Repeat,
    /// Earlier than the current status, or the call already ended: ignore it.
    Stale,
}

impl CallStatus {
    pub const ALL: [CallStatus; 9] = [
        Self::Queued,
        Self::Initiated,
        Self::Ringing,
        Self::InProgress,
        Self::Completed,
        Self::Busy,
        Self::Failed,
        Self::NoAnswer,
        Self::Canceled,
    ];

    /// Parses the wire spelling used by Twilio and the API (`in-progress`, `no-answer`).
    ///
    /// # Errors
    /// [`CallStatusError`] for anything else.
    pub fn parse(raw: &str) -> Result<Self, CallStatusError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or(CallStatusError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Initiated => "initiated",
            Self::Ringing => "ringing",
            Self::InProgress => "in-progress",
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::Failed => "failed",
            Self::NoAnswer => "no-answer",
            Self::Canceled => "canceled",
        }
    }

    /// A terminal status ends the call; it never changes again.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled
        )
    }

    /// Position in the life of a call; all terminal statuses share the last stage.
    fn stage(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Initiated => 1,
            Self::Ringing => 2,
            Self::InProgress => 3,
            Self::Completed | Self::Busy | Self::Failed | Self::NoAnswer | Self::Canceled => 4,
        }
    }

    /// The one transition function: what moving from `self` to `next` means.
    pub fn transition(self, next: CallStatus) -> StatusChange {
        if self == next {
            StatusChange::Repeat
        } else if !self.is_terminal() && next.stage() > self.stage() {
            StatusChange::Advance
        } else {
            StatusChange::Stale
        }
    }
}

impl fmt::Display for CallStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::CallStatus::*;
    use super::StatusChange::{Advance as A, Repeat as R, Stale as S};
    use super::*;

    /// Every (from, to) pair. Rows: current status; columns: incoming status in the order
    /// queued, initiated, ringing, in-progress, completed, busy, failed, no-answer, canceled.
    const TABLE: [(CallStatus, [StatusChange; 9]); 9] = [
        (Queued, [R, A, A, A, A, A, A, A, A]),
        (Initiated, [S, R, A, A, A, A, A, A, A]),
        (Ringing, [S, S, R, A, A, A, A, A, A]),
        (InProgress, [S, S, S, R, A, A, A, A, A]),
        (Completed, [S, S, S, S, R, S, S, S, S]),
        (Busy, [S, S, S, S, S, R, S, S, S]),
        (Failed, [S, S, S, S, S, S, R, S, S]),
        (NoAnswer, [S, S, S, S, S, S, S, R, S]),
        (Canceled, [S, S, S, S, S, S, S, S, R]),
    ];

    #[test]
    fn every_status_pair_follows_the_table() {
        for (from, row) in TABLE {
            for (to, expected) in CallStatus::ALL.into_iter().zip(row) {
                assert_eq!(from.transition(to), expected, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn terminal_statuses_never_change() {
        for from in CallStatus::ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in CallStatus::ALL {
                assert_ne!(from.transition(to), StatusChange::Advance, "{from} -> {to}");
            }
        }
    }

    #[test]
    fn a_late_ringing_after_in_progress_is_ignored_not_an_error() {
        assert_eq!(InProgress.transition(Ringing), StatusChange::Stale);
    }

    #[test]
    fn any_order_of_events_ends_in_the_same_terminal_state() {
        // Fold every permutation of a full answered-call sequence through the rules.
        let events = [Initiated, Ringing, InProgress, Completed];
        let mut permutation = events;
        let mut count = 0;
        permute(&mut permutation, 0, &mut |order| {
            count += 1;
            let mut status = Queued;
            for next in order.iter().chain(order.iter()) {
                if status.transition(*next) == StatusChange::Advance {
                    status = *next;
                }
            }
            assert_eq!(status, Completed, "{order:?}");
        });
        assert_eq!(count, 24);
    }

    fn permute(items: &mut [CallStatus; 4], k: usize, visit: &mut dyn FnMut(&[CallStatus; 4])) {
        if k == items.len() {
            visit(items);
            return;
        }
        for i in k..items.len() {
            items.swap(k, i);
            permute(items, k + 1, visit);
            items.swap(k, i);
        }
    }

    #[test]
    fn wire_spellings_round_trip_and_nothing_else_parses() {
        for status in CallStatus::ALL {
            assert_eq!(CallStatus::parse(status.as_str()), Ok(status));
        }
        for wrong in ["in_progress", "Completed", "noanswer", "", "cancelled"] {
            assert_eq!(CallStatus::parse(wrong), Err(CallStatusError), "{wrong:?}");
        }
    }
}
