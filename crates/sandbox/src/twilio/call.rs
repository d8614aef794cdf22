//! Plays one call: the timeline (initiated, ringing, outcome, answered phase) and, alongside
//! it, in-order delivery of the status callbacks the timeline queues.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use super::state::{PendingCallback, Shared, after, base_params, send_signed};
use super::twiml::{self, StreamSpec};
use super::{CallOutcomeScript, EmulatedCallStatus, TwimlFetchRecord, stream};

/// TwiML larger than this is refused (Twilio's inline limit is 4000 characters).
const TWIML_LIMIT: usize = 64 * 1024;

/// What the create request and the script decided.
#[derive(Debug, Clone)]
pub(crate) struct CallPlan {
    pub outcome: CallOutcomeScript,
    /// Ringing time: the configured ring time, or the `Timeout` if that is shorter.
    pub ring: Duration,
    /// `Timeout` ran out before the scripted outcome: the call ends `no-answer`.
    pub times_out: bool,
    /// Answered call length: talk time, or `TimeLimit` if shorter.
    pub talk: Duration,
    pub url: Option<String>,
    pub method: String,
    pub inline_twiml: Option<String>,
}

pub(crate) async fn play(
    shared: Arc<Shared>,
    sid: String,
    plan: CallPlan,
    callbacks: mpsc::UnboundedReceiver<PendingCallback>,
    hangup: Arc<Notify>,
) {
    tokio::join!(
        async {
            timeline(&shared, &sid, &plan, &hangup).await;
            // Every path above ends the call; this only guards against a path that forgot.
            shared.transition(&sid, EmulatedCallStatus::Completed);
        },
        deliver(&shared, &sid, callbacks),
    );
    shared.mark_finished(&sid);
}

/// Sends the queued callbacks one after another, in firing order. Ends when the call's
/// terminal transition drops the sender and the queue is empty.
async fn deliver(shared: &Shared, sid: &str, mut queue: mpsc::UnboundedReceiver<PendingCallback>) {
    while let Some(callback) = queue.recv().await {
        let (record, _) = send_signed(
            &shared.http,
            &shared.config.auth_token,
            &callback.url,
            &callback.method,
            callback.params,
            0,
        )
        .await;
        if let Some(error) = &record.error {
            tracing::debug!(call_sid = sid, %error, "status callback failed");
        }
        shared.with_call(sid, |entry| entry.record.callbacks.push(record));
    }
}

async fn timeline(shared: &Shared, sid: &str, plan: &CallPlan, hangup: &Notify) {
    if !shared.transition(sid, EmulatedCallStatus::Initiated) {
        return;
    }
    if plan.outcome == CallOutcomeScript::Failed {
        shared.transition(sid, EmulatedCallStatus::Failed);
        return;
    }
    if !shared.transition(sid, EmulatedCallStatus::Ringing) {
        return;
    }
    tokio::select! {
        () = hangup.notified() => return,
        () = tokio::time::sleep(plan.ring) => {}
    }
    let next = match (&plan.outcome, plan.times_out) {
        (_, true) | (CallOutcomeScript::NoAnswer, _) => EmulatedCallStatus::NoAnswer,
        (CallOutcomeScript::Busy, _) => EmulatedCallStatus::Busy,
        _ => EmulatedCallStatus::InProgress,
    };
    if !shared.transition(sid, next) || next != EmulatedCallStatus::InProgress {
        return;
    }
    let deadline = after(Instant::now(), plan.talk);
    answered(shared, sid, plan, hangup, deadline).await;
    shared.transition(sid, EmulatedCallStatus::Completed);
}

/// The answered call: fetch TwiML, then run the stream or just wait for the end.
async fn answered(shared: &Shared, sid: &str, plan: &CallPlan, hangup: &Notify, deadline: Instant) {
    let fetched = tokio::select! {
        () = hangup.notified() => return,
        () = tokio::time::sleep_until(deadline) => return,
        fetched = fetch_twiml(shared, sid, plan) => fetched,
    };
    match fetched {
        // Twilio says "an application error has occurred" and hangs up.
        Err(()) => {}
        Ok(Some(stream)) => stream::run(shared, sid, stream, hangup, deadline).await,
        Ok(None) => {
            tokio::select! {
                () = hangup.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }
}

/// Fetches (or takes inline) the TwiML and records it. `Ok(Some)` is a stream to open,
/// `Ok(None)` a call that just goes on (no `Url`/`Twiml`, or TwiML without `<Connect><Stream>`),
/// `Err` an application error or a `<Hangup/>` that ends the call now.
async fn fetch_twiml(
    shared: &Shared,
    sid: &str,
    plan: &CallPlan,
) -> Result<Option<StreamSpec>, ()> {
    let (request, body, base) = match (&plan.url, &plan.inline_twiml) {
        (Some(url), _) => {
            let Some(params) = shared.read_call(sid, |entry| {
                base_params(&shared.config, entry, EmulatedCallStatus::InProgress)
            }) else {
                return Err(());
            };
            let (record, body) = send_signed(
                &shared.http,
                &shared.config.auth_token,
                url,
                &plan.method,
                params,
                TWIML_LIMIT,
            )
            .await;
            (Some(record), body, Some(url.as_str()))
        }
        (None, Some(inline)) => (None, Some(inline.clone()), None),
        (None, None) => return Ok(None),
    };
    let outcome = interpret(request.as_ref(), body.as_deref(), base);
    let result = match &outcome {
        Ok(twiml) if twiml.hangup && twiml.stream.is_none() => Err(()),
        Ok(twiml) => Ok(twiml.stream.clone()),
        Err(_) => Err(()),
    };
    let record = TwimlFetchRecord {
        request,
        body,
        error: outcome.err(),
    };
    shared.with_call(sid, |entry| entry.record.twiml = Some(record));
    result
}

fn interpret(
    request: Option<&super::CallbackRecord>,
    body: Option<&str>,
    base: Option<&str>,
) -> Result<twiml::Twiml, String> {
    if let Some(request) = request {
        if let Some(error) = &request.error {
            return Err(format!("fetching TwiML failed: {error}"));
        }
        match request.http_status {
            Some(status) if (200..300).contains(&status) => {}
            Some(status) => return Err(format!("fetching TwiML answered HTTP {status}")),
            None => return Err("fetching TwiML got no answer".to_owned()),
        }
    }
    let body = body.ok_or_else(|| "no TwiML body".to_owned())?;
    let mut parsed = twiml::parse(body).map_err(|e| format!("unparsable TwiML: {e}"))?;
    if let Some(stream) = parsed.stream.as_mut() {
        stream.url = resolve_stream_url(&stream.url, base)?;
    }
    Ok(parsed)
}

/// `<Stream url>` must be `wss://` (the emulator also allows `ws://` for local use), may be
/// relative to the TwiML URL, and must not carry a query string (protocols 4).
pub(crate) fn resolve_stream_url(written: &str, base: Option<&str>) -> Result<String, String> {
    let (url, resolved) = match url::Url::parse(written) {
        Ok(url) => (url, written.to_owned()),
        Err(url::ParseError::RelativeUrlWithoutBase) => {
            let base = base
                .and_then(|b| url::Url::parse(b).ok())
                .ok_or_else(|| format!("relative <Stream url> {written:?} with no base URL"))?;
            let mut joined = base
                .join(written)
                .map_err(|e| format!("invalid <Stream url> {written:?}: {e}"))?;
            let scheme = if joined.scheme() == "https" {
                "wss"
            } else {
                "ws"
            };
            joined
                .set_scheme(scheme)
                .map_err(|()| format!("cannot make {joined} a WebSocket URL"))?;
            joined.set_fragment(None);
            let text = joined.to_string();
            (joined, text)
        }
        Err(e) => return Err(format!("invalid <Stream url> {written:?}: {e}")),
    };
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(format!(
            "<Stream url> {written:?} is not a wss:// (or ws://) URL"
        ));
    }
    if url.query().is_some() {
        return Err(format!(
            "<Stream url> {written:?} has a query string; Twilio does not support that, use <Parameter>"
        ));
    }
    Ok(resolved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_urls_are_kept_as_written_or_resolved_and_checked() {
        assert_eq!(
            resolve_stream_url("wss://b.example.com/media", None).unwrap(),
            "wss://b.example.com/media"
        );
        assert_eq!(
            resolve_stream_url("/media", Some("https://b.example.com/twilio/twiml?x=1")).unwrap(),
            "wss://b.example.com/media"
        );
        assert_eq!(
            resolve_stream_url("media", Some("http://127.0.0.1:8080/twilio/twiml")).unwrap(),
            "ws://127.0.0.1:8080/twilio/media"
        );
        assert!(resolve_stream_url("https://b.example.com/media", None).is_err());
        assert!(resolve_stream_url("wss://b.example.com/media?token=1", None).is_err());
        assert!(resolve_stream_url("/media", None).is_err());
        assert!(resolve_stream_url("wss://", None).is_err());
    }

    #[test]
    fn twiml_is_refused_for_http_errors_and_accepted_for_2xx() {
        let ok = super::super::CallbackRecord {
            url: "http://x/".to_owned(),
            method: "POST".to_owned(),
            params: vec![],
            signature: String::new(),
            http_status: Some(200),
            error: None,
        };
        let body = r#"<Response><Connect><Stream url="ws://h/m"/></Connect></Response>"#;
        let parsed = interpret(Some(&ok), Some(body), Some("http://x/")).unwrap();
        assert_eq!(parsed.stream.unwrap().url, "ws://h/m");
        let not_found = super::super::CallbackRecord {
            http_status: Some(404),
            ..ok
        };
        assert!(interpret(Some(&not_found), Some(body), None).is_err());
    }
}
