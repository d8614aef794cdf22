//! Relay latency: the time from a message's receipt on one socket to the write, on the other
//! socket, of the frames it made the session emit, in
//! `bridge_relay_latency_seconds{direction="caller_to_agent"|"agent_to_caller"}`.
//!
//! On the audio path: the histogram handles are made once per call, and a frame costs a
//! clock read and a sample, nothing more (no allocation, no lock, no label lookup).
//!
//! Only frames caused by the message just received count. Frames released by something
//! else (early caller audio buffered until the agent connects, a timer) have no receipt to
//! measure from, and frames sent back to the socket a message came from (a pong to the
//! agent's ping) are not relayed.

use std::time::Instant;

/// Where a message came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Twilio,
    Agent,
}

/// Where latencies go: a `metrics` histogram in the bridge, a plain list in tests.
pub(super) trait Samples {
    fn record(&self, seconds: f64);
}

impl Samples for metrics::Histogram {
    fn record(&self, seconds: f64) {
        metrics::Histogram::record(self, seconds);
    }
}

/// One call's relay timing.
pub(super) struct RelayTimer<H = metrics::Histogram> {
    caller_to_agent: H,
    agent_to_caller: H,
    /// The message whose outputs are being written, and when it arrived.
    received: Option<(Source, Instant)>,
    /// Frames for Twilio fed since that message arrived and not yet flushed.
    fed_to_twilio: u32,
}

impl RelayTimer {
    pub(super) fn new() -> Self {
        Self::with(
            metrics::histogram!("bridge_relay_latency_seconds", "direction" => "caller_to_agent"),
            metrics::histogram!("bridge_relay_latency_seconds", "direction" => "agent_to_caller"),
        )
    }
}

impl<H: Samples> RelayTimer<H> {
    pub(super) fn with(caller_to_agent: H, agent_to_caller: H) -> Self {
        Self {
            caller_to_agent,
            agent_to_caller,
            received: None,
            fed_to_twilio: 0,
        }
    }

    /// A message arrived from `source` at `at`; the frames written next are its relays.
    pub(super) fn received(&mut self, source: Source, at: Instant) {
        self.received = Some((source, at));
        self.fed_to_twilio = 0;
    }

    /// A frame was written to the agent at `now`.
    pub(super) fn sent_to_agent(&mut self, now: Instant) {
        if let Some((Source::Twilio, at)) = self.received {
            self.caller_to_agent.record(seconds_between(at, now));
        }
    }

    /// A frame was fed to the Twilio socket (written at the next flush).
    pub(super) fn fed_to_twilio(&mut self) {
        if matches!(self.received, Some((Source::Agent, _))) {
            self.fed_to_twilio = self.fed_to_twilio.saturating_add(1);
        }
    }

    /// The Twilio socket was flushed at `now`: every frame fed since the agent's message was
    /// written.
    pub(super) fn flushed_to_twilio(&mut self, now: Instant) {
        if let Some((Source::Agent, at)) = self.received {
            let seconds = seconds_between(at, now);
            for _ in 0..self.fed_to_twilio {
                self.agent_to_caller.record(seconds);
            }
        }
        self.fed_to_twilio = 0;
    }

    /// Everything the last message caused is written; later frames are not its relays.
    pub(super) fn done(&mut self) {
        self.received = None;
        self.fed_to_twilio = 0;
    }
}

fn seconds_between(earlier: Instant, later: Instant) -> f64 {
    later.saturating_duration_since(earlier).as_secs_f64()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::Duration;

    use super::*;

    #[derive(Default)]
    struct List(RefCell<Vec<f64>>);

    impl Samples for List {
        fn record(&self, seconds: f64) {
            self.0.borrow_mut().push(seconds);
        }
    }

    fn timer() -> RelayTimer<List> {
        RelayTimer::with(List::default(), List::default())
    }

    fn recorded(timer: &RelayTimer<List>) -> (Vec<f64>, Vec<f64>) {
        (
            timer.caller_to_agent.0.borrow().clone(),
            timer.agent_to_caller.0.borrow().clone(),
        )
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_caller_frame_is_timed_from_its_receipt_to_its_write_to_the_agent() {
        let t0 = Instant::now();
        let mut timer = timer();
        timer.received(Source::Twilio, t0);
        timer.sent_to_agent(t0 + ms(2));
        timer.done();
        assert_eq!(recorded(&timer), (vec![0.002], vec![]));
    }

    #[test]
    fn agent_frames_are_timed_to_the_flush_that_writes_them_once_each() {
        let t0 = Instant::now();
        let mut timer = timer();
        timer.received(Source::Agent, t0);
        timer.fed_to_twilio();
        timer.fed_to_twilio();
        timer.flushed_to_twilio(t0 + ms(3));
        // A second flush writes nothing new.
        timer.flushed_to_twilio(t0 + ms(9));
        timer.done();
        assert_eq!(recorded(&timer), (vec![], vec![0.003, 0.003]));
    }

    #[test]
    fn a_frame_sent_back_where_its_message_came_from_is_no_relay() {
        let t0 = Instant::now();
        let mut timer = timer();
        // The agent's ping answered with a pong.
        timer.received(Source::Agent, t0);
        timer.sent_to_agent(t0 + ms(1));
        timer.done();
        // A Twilio message answered towards Twilio.
        timer.received(Source::Twilio, t0);
        timer.fed_to_twilio();
        timer.flushed_to_twilio(t0 + ms(1));
        assert_eq!(recorded(&timer), (vec![], vec![]));
    }

    #[test]
    fn frames_released_after_the_message_was_handled_are_not_timed() {
        let t0 = Instant::now();
        let mut timer = timer();
        timer.received(Source::Twilio, t0);
        timer.done();
        // Buffered caller audio flushed when the agent connects, much later.
        timer.sent_to_agent(t0 + ms(1500));
        timer.fed_to_twilio();
        timer.flushed_to_twilio(t0 + ms(1500));
        assert_eq!(recorded(&timer), (vec![], vec![]));
    }

    #[test]
    fn a_clock_that_seems_to_go_backwards_records_zero() {
        let t0 = Instant::now() + ms(10);
        let mut timer = timer();
        timer.received(Source::Twilio, t0);
        timer.sent_to_agent(t0 - ms(5));
        assert_eq!(recorded(&timer), (vec![0.0], vec![]));
    }
}
