//! The real clock.

use chrono::{DurationRound, TimeDelta, Utc};
use outcall_domain::Timestamp;
use outcall_domain::ports::Clock;

/// Wall-clock time truncated to milliseconds, the precision the API and storage keep.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let now = Utc::now();
        now.duration_trunc(TimeDelta::milliseconds(1))
            .unwrap_or(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    #[test]
    fn the_clock_keeps_millisecond_precision() {
        let now = SystemClock.now();
        assert_eq!(now.nanosecond() % 1_000_000, 0);
    }
}
