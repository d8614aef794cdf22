//! Shared emulator state: call entries, status transitions (the one place statuses change),
//! status-callback queueing, waiting, and task bookkeeping.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use chrono::{DateTime, Utc};
use tokio::runtime::Handle;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;

use crate::tasks::{Tasks, lock};

use super::{
    CallOutcomeScript, CallbackRecord, EmulatedCallRecord, EmulatedCallStatus, StatusChange,
    TwilioEmulatorConfig,
};

/// Oldest finished calls are forgotten beyond this, so a long benchmark cannot grow memory
/// without bound.
const MAX_CALLS: usize = 10_000;

/// The create request's options that matter after creation.
#[derive(Debug, Clone)]
pub(crate) struct CallOptions {
    pub status_callback: Option<String>,
    pub status_callback_method: String,
    /// `StatusCallbackEvent` values; empty means only the terminal event.
    pub events: Vec<String>,
    pub machine_detection: bool,
}

/// A status callback waiting to be sent.
#[derive(Debug)]
pub(crate) struct PendingCallback {
    pub url: String,
    pub method: String,
    pub params: Vec<(String, String)>,
}

pub(crate) struct CallEntry {
    pub record: EmulatedCallRecord,
    pub options: CallOptions,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    pub start_time: Option<DateTime<Utc>>,
    pub end_time: Option<DateTime<Utc>>,
    pub phone_number_sid: String,
    answered_at: Option<Instant>,
    hangup: Arc<Notify>,
    /// Dropped at the terminal transition, which ends the call's callback delivery.
    callbacks: Option<mpsc::UnboundedSender<PendingCallback>>,
    next_sequence: u64,
}

#[derive(Default)]
struct State {
    calls: HashMap<String, CallEntry>,
    order: VecDeque<String>,
}

pub(crate) struct Shared {
    pub config: TwilioEmulatorConfig,
    pub http: reqwest::Client,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// The emulator's tasks; `spawn` refuses new ones once shut down.
    pub(crate) tasks: Tasks,
}

/// Whole seconds, rounded up: a call answered for 0.3 s lasted "1" second.
fn whole_seconds_up(duration: Duration) -> u64 {
    duration.as_millis().div_ceil(1000) as u64
}

/// `from + duration`, saturating at about 30 years, since configured durations may be huge
/// (`Duration::MAX` for "forever") and `Instant` addition panics on overflow.
pub(crate) fn after(from: Instant, duration: Duration) -> Instant {
    from.checked_add(duration)
        .or_else(|| from.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(from)
}

/// RFC 2822 in UTC with `+0000`, as Twilio writes `Timestamp` and the REST dates.
pub(crate) fn rfc2822(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S +0000").to_string()
}

impl Shared {
    pub(crate) fn new(config: TwilioEmulatorConfig, runtime: Handle) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            // Twilio's default total time for a webhook (connection override `tt`).
            .timeout(Duration::from_secs(15))
            .user_agent("TwilioProxy/1.1")
            .build()
            .context("building the emulator's HTTP client")?;
        Ok(Self {
            config,
            http,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            tasks: Tasks::new(runtime),
        })
    }

    fn bump(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Inserts a new queued call and returns the receiver of its status callbacks and its
    /// hang-up signal.
    pub(crate) fn insert_call(
        &self,
        record: EmulatedCallRecord,
        options: CallOptions,
        phone_number_sid: String,
    ) -> (mpsc::UnboundedReceiver<PendingCallback>, Arc<Notify>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let hangup = Arc::new(Notify::new());
        let now = Utc::now();
        let sid = record.sid.clone();
        let entry = CallEntry {
            record,
            options,
            date_created: now,
            date_updated: now,
            start_time: None,
            end_time: None,
            phone_number_sid,
            answered_at: None,
            hangup: hangup.clone(),
            callbacks: Some(tx),
            next_sequence: 0,
        };
        {
            let mut state = lock(&self.state);
            state.calls.insert(sid.clone(), entry);
            state.order.push_back(sid);
            evict(&mut state);
        }
        self.bump();
        (rx, hangup)
    }

    /// Runs `f` on a call's entry (if the call is known) and wakes waiters.
    pub(crate) fn with_call<R>(&self, sid: &str, f: impl FnOnce(&mut CallEntry) -> R) -> Option<R> {
        let result = lock(&self.state).calls.get_mut(sid).map(f);
        if result.is_some() {
            self.bump();
        }
        result
    }

    /// Reads a call's entry without waking waiters.
    pub(crate) fn read_call<R>(&self, sid: &str, f: impl FnOnce(&CallEntry) -> R) -> Option<R> {
        lock(&self.state).calls.get(sid).map(f)
    }

    /// Moves a call to `to` unless it already ended; queues the status callback if one is due.
    /// Returns false if the call is unknown or already in a terminal status.
    pub(crate) fn transition(&self, sid: &str, to: EmulatedCallStatus) -> bool {
        let changed = self
            .with_call(sid, |entry| apply_transition(&self.config, entry, to))
            .unwrap_or(false);
        if changed {
            tracing::debug!(call_sid = sid, status = %to, "emulated call status");
        }
        changed
    }

    /// REST `Status=completed|canceled`. Returns the call's JSON-relevant state afterwards via
    /// `f`, or `None` for an unknown call.
    pub(crate) fn update_status<R>(
        &self,
        sid: &str,
        requested: EmulatedCallStatus,
        form: Vec<(String, String)>,
        f: impl FnOnce(&CallEntry) -> R,
    ) -> Option<R> {
        self.with_call(sid, |entry| {
            entry.record.updates.push(form);
            let current = entry.record.status;
            let target = match (requested, current) {
                (_, s) if s.is_terminal() => None,
                (EmulatedCallStatus::Completed, EmulatedCallStatus::InProgress) => {
                    Some(EmulatedCallStatus::Completed)
                }
                // Hanging up a call that has not been answered cancels it.
                (_, EmulatedCallStatus::InProgress) => None,
                _ => Some(EmulatedCallStatus::Canceled),
            };
            if let Some(target) = target
                && apply_transition(&self.config, entry, target)
            {
                entry.hangup.notify_one();
            }
            f(entry)
        })
    }

    pub(crate) fn mark_finished(&self, sid: &str) {
        self.with_call(sid, |entry| entry.record.finished = true);
    }

    pub(crate) fn records(&self) -> Vec<EmulatedCallRecord> {
        let state = lock(&self.state);
        state
            .order
            .iter()
            .filter_map(|sid| state.calls.get(sid))
            .map(|entry| entry.record.clone())
            .collect()
    }

    pub(crate) fn record(&self, sid: &str) -> Option<EmulatedCallRecord> {
        self.read_call(sid, |entry| entry.record.clone())
    }

    pub(crate) async fn wait_for_status(
        &self,
        sid: &str,
        wanted: EmulatedCallStatus,
        timeout: Duration,
    ) -> anyhow::Result<EmulatedCallRecord> {
        let deadline = after(Instant::now(), timeout);
        // Subscribe before checking, so a change between check and wait is not missed.
        let mut changes = self.changed.subscribe();
        loop {
            let current = self
                .read_call(sid, |entry| {
                    let record = &entry.record;
                    let reached = record.status_history.iter().find(|c| c.status == wanted);
                    let ready = match reached {
                        None => false,
                        Some(_) if wanted.is_terminal() => record.finished,
                        Some(change) => {
                            !change.callback_requested
                                || record
                                    .callbacks
                                    .iter()
                                    .any(|c| c.param("CallStatus") == Some(wanted.as_str()))
                        }
                    };
                    (ready, reached.is_some(), record.clone())
                })
                .ok_or_else(|| anyhow!("the emulator knows no call {sid}"))?;
            let (ready, reached, record) = current;
            if ready {
                return Ok(record);
            }
            if record.finished && !reached {
                return Err(anyhow!(
                    "call {sid} ended {} without reaching {wanted}",
                    record.status
                ));
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(anyhow!("the emulator stopped")),
                Err(_) => {
                    return Err(anyhow!(
                        "timed out after {timeout:?} waiting for call {sid} to reach {wanted}; it is {}",
                        record.status
                    ));
                }
            }
        }
    }
}

fn evict(state: &mut State) {
    let mut scanned = 0;
    while state.calls.len() > MAX_CALLS && scanned < state.order.len() {
        let Some(sid) = state.order.pop_front() else {
            break;
        };
        let finished = state.calls.get(&sid).is_none_or(|e| e.record.finished);
        if finished {
            state.calls.remove(&sid);
        } else {
            // Live calls are kept; look further.
            state.order.push_back(sid);
            scanned += 1;
        }
    }
}

/// The status-callback event name a status belongs to (`StatusCallbackEvent` values).
fn event_of(status: EmulatedCallStatus) -> Option<&'static str> {
    match status {
        EmulatedCallStatus::Queued => None,
        EmulatedCallStatus::Initiated => Some("initiated"),
        EmulatedCallStatus::Ringing => Some("ringing"),
        EmulatedCallStatus::InProgress => Some("answered"),
        _ => Some("completed"),
    }
}

fn sip_response_code(status: EmulatedCallStatus) -> &'static str {
    match status {
        EmulatedCallStatus::Busy => "486",
        EmulatedCallStatus::Failed => "404",
        EmulatedCallStatus::NoAnswer | EmulatedCallStatus::Canceled => "487",
        _ => "200",
    }
}

fn apply_transition(
    config: &TwilioEmulatorConfig,
    entry: &mut CallEntry,
    to: EmulatedCallStatus,
) -> bool {
    let from = entry.record.status;
    if from.is_terminal() || from == to {
        return false;
    }
    let now = Utc::now();
    entry.record.status = to;
    entry.date_updated = now;
    match to {
        EmulatedCallStatus::Initiated => entry.start_time = Some(now),
        EmulatedCallStatus::InProgress => {
            entry.answered_at = Some(Instant::now());
            if entry.options.machine_detection {
                let by = match entry.record.outcome {
                    CallOutcomeScript::AnsweredByMachine => "machine_start",
                    _ => "human",
                };
                entry.record.answered_by = Some(by.to_owned());
            }
        }
        _ => {}
    }
    if to.is_terminal() {
        entry.end_time = Some(now);
        let talked = entry
            .answered_at
            .map_or(0, |answered| whole_seconds_up(answered.elapsed()));
        entry.record.duration_secs = Some(talked);
    }

    let subscribed = event_of(to).is_some_and(|event| {
        if entry.options.events.is_empty() {
            to.is_terminal()
        } else {
            entry.options.events.iter().any(|e| e == event)
        }
    });
    // Twilio sends nothing at all for a call canceled while still queued.
    let silent_cancel = to == EmulatedCallStatus::Canceled && from == EmulatedCallStatus::Queued;
    let requested = subscribed && !silent_cancel && entry.options.status_callback.is_some();
    entry.record.status_history.push(StatusChange {
        status: to,
        at: now,
        callback_requested: requested,
    });
    if requested && let Some(url) = entry.options.status_callback.clone() {
        let params = callback_params(config, entry, to, now);
        entry.next_sequence += 1;
        if let Some(tx) = &entry.callbacks {
            let _ = tx.send(PendingCallback {
                url,
                method: entry.options.status_callback_method.clone(),
                params,
            });
        }
    }
    if to.is_terminal() {
        entry.callbacks = None;
    }
    true
}

/// The parameters every call request from Twilio carries (protocols 2), for the TwiML fetch.
pub(crate) fn base_params(
    config: &TwilioEmulatorConfig,
    entry: &CallEntry,
    status: EmulatedCallStatus,
) -> Vec<(String, String)> {
    let record = &entry.record;
    let mut params = vec![
        ("AccountSid".to_owned(), config.account_sid.clone()),
        ("ApiVersion".to_owned(), "2010-04-01".to_owned()),
        ("CallSid".to_owned(), record.sid.clone()),
        ("CallStatus".to_owned(), status.as_str().to_owned()),
        ("Called".to_owned(), record.to.clone()),
        ("Caller".to_owned(), record.from.clone()),
        ("Direction".to_owned(), "outbound-api".to_owned()),
        ("From".to_owned(), record.from.clone()),
        ("To".to_owned(), record.to.clone()),
    ];
    if let Some(by) = &record.answered_by {
        params.push(("AnsweredBy".to_owned(), by.clone()));
    }
    params
}

fn callback_params(
    config: &TwilioEmulatorConfig,
    entry: &CallEntry,
    status: EmulatedCallStatus,
    now: DateTime<Utc>,
) -> Vec<(String, String)> {
    let mut params = base_params(config, entry, status);
    params.push((
        "CallbackSource".to_owned(),
        "call-progress-events".to_owned(),
    ));
    params.push(("SequenceNumber".to_owned(), entry.next_sequence.to_string()));
    params.push(("Timestamp".to_owned(), rfc2822(now)));
    if status.is_terminal() {
        let seconds = entry.record.duration_secs.unwrap_or(0);
        params.push(("CallDuration".to_owned(), seconds.to_string()));
        params.push(("Duration".to_owned(), seconds.div_ceil(60).to_string()));
        params.push((
            "SipResponseCode".to_owned(),
            sip_response_code(status).to_owned(),
        ));
    }
    params
}

/// Sends one signed request the way Twilio does; the record says what happened.
pub(crate) async fn send_signed(
    http: &reqwest::Client,
    auth_token: &str,
    configured_url: &str,
    method: &str,
    params: Vec<(String, String)>,
    body_limit: usize,
) -> (CallbackRecord, Option<String>) {
    let signed_base = super::signature::signing_url(configured_url);
    let is_get = method.eq_ignore_ascii_case("GET");
    let (signed_url, body_params): (String, &[(String, String)]) = if is_get {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        let separator = if signed_base.contains('?') { '&' } else { '?' };
        let url = if query.is_empty() {
            signed_base
        } else {
            format!("{signed_base}{separator}{query}")
        };
        (url, &[])
    } else {
        (signed_base, &params)
    };
    let signature = super::signature::twilio_signature(auth_token, &signed_url, body_params);
    let mut record = CallbackRecord {
        url: signed_url.clone(),
        method: if is_get { "GET" } else { "POST" }.to_owned(),
        params: params.clone(),
        signature: signature.clone(),
        http_status: None,
        error: None,
    };
    let credentials = url::Url::parse(configured_url).ok().and_then(|u| {
        (!u.username().is_empty())
            .then(|| (u.username().to_owned(), u.password().map(str::to_owned)))
    });
    let mut request = if is_get {
        http.get(&signed_url)
    } else {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(params.iter())
            .finish();
        http.post(&signed_url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
    };
    request = request
        .header("X-Twilio-Signature", signature)
        .header(reqwest::header::ACCEPT, "*/*");
    if let Some((user, password)) = credentials {
        request = request.basic_auth(user, password);
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(error) => {
            record.error = Some(error_chain(&error));
            return (record, None);
        }
    };
    record.http_status = Some(response.status().as_u16());
    if body_limit == 0 {
        return (record, None);
    }
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > body_limit {
                    record.error = Some(format!("response body exceeds {body_limit} bytes"));
                    return (record, None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(error) => {
                record.error = Some(error_chain(&error));
                return (record, None);
            }
        }
    }
    (record, Some(String::from_utf8_lossy(&body).into_owned()))
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_seconds_and_huge_deadlines_saturate() {
        assert_eq!(whole_seconds_up(Duration::ZERO), 0);
        assert_eq!(whole_seconds_up(Duration::from_millis(1)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1000)), 1);
        assert_eq!(whole_seconds_up(Duration::from_millis(1001)), 2);
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > now + Duration::from_secs(365 * 86_400));
        assert_eq!(
            after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
    }

    #[test]
    fn timestamps_are_rfc_2822_with_a_plus_zero_offset() {
        let at = DateTime::parse_from_rfc3339("2025-07-01T12:00:42Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(rfc2822(at), "Tue, 01 Jul 2025 12:00:42 +0000");
    }
}
