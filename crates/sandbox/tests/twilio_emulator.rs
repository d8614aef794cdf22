//! The Twilio emulator against a fake outcall: REST refusals, full call sequences, signed
//! callbacks, TwiML fetch, media stream, REST hang-up, marks and clear, shutdown.

mod support;

use std::time::Duration;

use base64::Engine as _;
use outcall_sandbox::{
    CallOutcomeScript, EmulatedCallStatus, MediaScript, StreamEnd, StreamMessage, TwilioEmulator,
};
use serde_json::{Value, json};
use support::*;

const WAIT: Duration = Duration::from_secs(10);

fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == 34
        && value.starts_with(prefix)
        && value[2..]
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

#[test]
fn the_tests_signature_checker_reproduces_the_official_twilio_vector() {
    let params: Vec<(String, String)> = [
        ("Digits", "1234"),
        ("To", "+18005551212"),
        ("From", "+14158675310"),
        ("Caller", "+14158675310"),
        ("CallSid", "CA1234567890ABCDE"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    assert_eq!(
        expected_signature(
            "12345",
            "https://example.com/myapp.php?foo=1&bar=2",
            &params
        ),
        "L/OH5YylLD5NRKLltdqwSvS0BnU="
    );
    // And it is sensitive to what it signs.
    assert_ne!(
        expected_signature(
            "12345",
            "https://example.com/myapp.php?foo=1&bar=3",
            &params
        ),
        "L/OH5YylLD5NRKLltdqwSvS0BnU="
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_is_refused_with_20003_when_basic_auth_is_wrong_or_missing() {
    let emulator = TwilioEmulator::start(config(ms(50), ms(100)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let form = standard_form(&fake, TO, &[]);
    let authenticate = json!({
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401
    });
    for credentials in [
        Some((ACCOUNT_SID, "wrong-token")),
        Some(("AC00000000000000000000000000000000", AUTH_TOKEN)),
        None,
    ] {
        let (status, body) = rest
            .post(&rest.calls_url(ACCOUNT_SID), credentials, &form)
            .await;
        assert_eq!(status, 401, "{credentials:?}");
        assert_eq!(body, authenticate);
    }
    // Right credentials, another account in the path.
    let other = "AC11111111111111111111111111111111";
    let (status, body) = rest
        .post(
            &rest.calls_url(other),
            Some((ACCOUNT_SID, AUTH_TOKEN)),
            &form,
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 20404);
    assert_eq!(body["status"], 404);
    assert!(emulator.calls().is_empty());
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_refuses_a_missing_or_invalid_to_and_scripted_rejections_with_twilio_errors() {
    let mut cfg = config(ms(50), ms(100));
    cfg.scripts.insert(
        "+15005550009".to_owned(),
        CallOutcomeScript::RejectOnCreate {
            http_status: 429,
            code: 20429,
            message: "Too Many Requests".to_owned(),
        },
    );
    let emulator = TwilioEmulator::start(cfg).await.unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let url = rest.calls_url(ACCOUNT_SID);
    let auth = Some((ACCOUNT_SID, AUTH_TOKEN));

    let mut no_to = standard_form(&fake, TO, &[]);
    no_to.retain(|(k, _)| *k != "To");
    let (status, body) = rest.post(&url, auth, &no_to).await;
    assert_eq!((status, body["code"].clone()), (400, json!(21201)));

    let (status, body) = rest
        .post(&url, auth, &standard_form(&fake, "5551234567", &[]))
        .await;
    assert_eq!(
        body,
        json!({
            "code": 21211,
            "message": "The 'To' number 5551234567 is not a valid phone number.",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400
        })
    );
    assert_eq!(status, 400);

    let (status, body) = rest
        .post(&url, auth, &standard_form(&fake, "+15005550009", &[]))
        .await;
    assert_eq!(status, 429);
    assert_eq!(body["code"], 20429);
    assert_eq!(body["message"], "Too Many Requests");

    assert!(emulator.calls().is_empty());
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answered_call_sends_signed_callbacks_fetches_twiml_and_streams_real_time_media() {
    let emulator = TwilioEmulator::start(config(ms(50), ms(800)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);

    let (status, created) = rest
        .post(
            &rest.calls_url(ACCOUNT_SID),
            Some((ACCOUNT_SID, AUTH_TOKEN)),
            &standard_form(&fake, TO, &[]),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let sid = created["sid"].as_str().unwrap().to_owned();
    assert!(is_sid(&sid, "CA"), "{sid}");
    assert_eq!(created["status"], "queued");
    assert_eq!(created["account_sid"], ACCOUNT_SID);
    assert_eq!(created["to"], TO);
    assert_eq!(created["from"], FROM);
    assert_eq!(created["direction"], "outbound-api");
    assert_eq!(created["api_version"], "2010-04-01");
    assert_eq!(created["duration"], Value::Null);
    assert_eq!(
        created["uri"],
        format!("/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json")
    );

    let record = emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();

    // Status callbacks: in order, numbered from 0, complete, signed over URL+query+port.
    let callbacks = fake.callbacks_for(&sid);
    assert_eq!(
        statuses(&callbacks),
        ["initiated", "ringing", "in-progress", "completed"]
    );
    assert_eq!(sequence_numbers(&callbacks), ["0", "1", "2", "3"]);
    for callback in &callbacks {
        assert_eq!(callback.method, "POST");
        assert_eq!(
            callback.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(callback.url, fake.status_url());
        assert!(callback.signature_is_valid(), "{callback:?}");
        let p = params_map(callback);
        assert_eq!(p["CallSid"], sid);
        assert_eq!(p["AccountSid"], ACCOUNT_SID);
        assert_eq!((p["From"].as_str(), p["Caller"].as_str()), (FROM, FROM));
        assert_eq!((p["To"].as_str(), p["Called"].as_str()), (TO, TO));
        assert_eq!(p["ApiVersion"], "2010-04-01");
        assert_eq!(p["Direction"], "outbound-api");
        assert_eq!(p["CallbackSource"], "call-progress-events");
        assert!(p["Timestamp"].ends_with(" +0000"), "{}", p["Timestamp"]);
        assert!(chrono::DateTime::parse_from_rfc2822(&p["Timestamp"]).is_ok());
        assert!(!p.contains_key("AnsweredBy"));
        let terminal = p["CallStatus"] == "completed";
        assert_eq!(p.contains_key("CallDuration"), terminal);
        assert_eq!(p.contains_key("SipResponseCode"), terminal);
    }
    let completed = params_map(&callbacks[3]);
    assert_eq!(completed["CallDuration"], "1");
    assert_eq!(completed["Duration"], "1");
    assert_eq!(completed["SipResponseCode"], "200");
    // A forged value must not verify: the checker really checks.
    let mut forged = callbacks[3].clone();
    forged
        .params
        .push(("CallDuration".to_owned(), "999".to_owned()));
    forged
        .params
        .retain(|(k, v)| k != "CallDuration" || v == "999");
    assert!(!forged.signature_is_valid());

    // TwiML: one signed POST with the call's parameters, before the call completed.
    let twiml = fake.twiml_requests_for(&sid);
    assert_eq!(twiml.len(), 1);
    assert_eq!(twiml[0].method, "POST");
    assert_eq!(twiml[0].url, format!("{}/twiml", fake.http_base));
    assert!(twiml[0].signature_is_valid());
    assert_eq!(twiml[0].param("CallStatus"), Some("in-progress"));
    assert_eq!(twiml[0].param("To"), Some(TO));
    assert!(twiml[0].at < callbacks[3].at);

    // Media stream: signed upgrade, connected, start, real-time media, stop last.
    let session = fake.ended_session_for(&sid).await;
    assert_eq!(session.path, "/media");
    assert_eq!(
        session.signature.as_deref(),
        Some(expected_signature(AUTH_TOKEN, &fake.ws_url, &[]).as_str())
    );
    let messages: Vec<&Value> = session.messages.iter().map(|(_, m)| m).collect();
    assert_eq!(
        *messages[0],
        json!({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    );
    let start = messages[1];
    assert_eq!(start["event"], "start");
    assert_eq!(start["sequenceNumber"], "1");
    let stream_sid = start["streamSid"].as_str().unwrap();
    assert!(is_sid(stream_sid, "MZ"));
    assert_eq!(
        start["start"],
        json!({
            "accountSid": ACCOUNT_SID,
            "streamSid": stream_sid,
            "callSid": sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"callId": "call-123", "note": "a & \"b\""}
        })
    );
    let stop = messages[messages.len() - 1];
    let media: Vec<&(tokio::time::Instant, Value)> = session
        .messages
        .iter()
        .filter(|(_, m)| m["event"] == "media")
        .collect();
    assert_eq!(
        media.len(),
        messages.len() - 3,
        "only media between start and stop"
    );
    for (i, (_, m)) in media.iter().enumerate() {
        let i = i as u64;
        assert_eq!(m["sequenceNumber"], (i + 2).to_string());
        assert_eq!(m["streamSid"], stream_sid);
        assert_eq!(m["media"]["track"], "inbound");
        assert_eq!(m["media"]["chunk"], (i + 1).to_string());
        assert_eq!(m["media"]["timestamp"], (i * 20).to_string());
        let audio = base64::engine::general_purpose::STANDARD
            .decode(m["media"]["payload"].as_str().unwrap())
            .unwrap();
        assert_eq!(audio, vec![0xFF; 160]);
    }
    // ~50 frames per second over the talk time, paced in real time rather than bursted.
    let span = media[media.len() - 1].0 - media[0].0;
    let rate = (media.len() - 1) as f64 / span.as_secs_f64();
    assert!(
        (40.0..=60.0).contains(&rate),
        "{} frames over {span:?}",
        media.len()
    );
    assert!(
        (30..=45).contains(&media.len()),
        "{} frames in 800 ms",
        media.len()
    );
    assert_eq!(
        *stop,
        json!({
            "event": "stop",
            "sequenceNumber": (media.len() + 2).to_string(),
            "stop": {"accountSid": ACCOUNT_SID, "callSid": sid},
            "streamSid": stream_sid
        })
    );

    // The emulator's own record agrees.
    let history: Vec<EmulatedCallStatus> = record.status_history.iter().map(|c| c.status).collect();
    assert_eq!(
        history,
        [
            EmulatedCallStatus::Queued,
            EmulatedCallStatus::Initiated,
            EmulatedCallStatus::Ringing,
            EmulatedCallStatus::InProgress,
            EmulatedCallStatus::Completed
        ]
    );
    assert_eq!(record.duration_secs, Some(1));
    assert!(record.callbacks.iter().all(|c| c.http_status == Some(204)));
    assert_eq!(record.form_values("StatusCallbackEvent").len(), 4);
    let stream = record.stream.unwrap();
    assert_eq!(stream.end, Some(StreamEnd::CallEnded));
    assert_eq!(stream.stream_sid, stream_sid);
    assert_eq!(stream.media_frames_sent, media.len() as u64);
    assert!(record.twiml.unwrap().error.is_none());

    let (status, fetched) = rest.get(&rest.call_url(&sid)).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["status"], "completed");
    assert_eq!(fetched["duration"], "1");
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_no_answer_and_failed_calls_send_their_sequences_and_fetch_no_twiml() {
    let mut cfg = config(ms(50), ms(100));
    cfg.scripts
        .insert("+15005550002".to_owned(), CallOutcomeScript::Busy);
    cfg.scripts
        .insert("+15005550003".to_owned(), CallOutcomeScript::NoAnswer);
    cfg.scripts
        .insert("+15005550004".to_owned(), CallOutcomeScript::Failed);
    let emulator = TwilioEmulator::start(cfg).await.unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);

    let cases = [
        (
            "+15005550002",
            EmulatedCallStatus::Busy,
            vec!["initiated", "ringing", "busy"],
            "486",
        ),
        (
            "+15005550003",
            EmulatedCallStatus::NoAnswer,
            vec!["initiated", "ringing", "no-answer"],
            "487",
        ),
        (
            "+15005550004",
            EmulatedCallStatus::Failed,
            vec!["initiated", "failed"],
            "404",
        ),
    ];
    for (to, terminal, expected, sip) in cases {
        let sid = rest.create(&fake, to, &[]).await;
        let record = emulator
            .wait_for_status(&sid, terminal, WAIT)
            .await
            .unwrap();
        let callbacks = fake.callbacks_for(&sid);
        assert_eq!(statuses(&callbacks), expected, "{to}");
        let numbers: Vec<String> = (0..expected.len()).map(|n| n.to_string()).collect();
        assert_eq!(sequence_numbers(&callbacks), numbers);
        assert!(callbacks.iter().all(ReceivedRequest::signature_is_valid));
        let last = callbacks.last().unwrap();
        assert_eq!(last.param("SipResponseCode"), Some(sip));
        assert_eq!(last.param("CallDuration"), Some("0"));
        assert!(fake.twiml_requests_for(&sid).is_empty());
        assert!(record.stream.is_none());
        assert_eq!(record.duration_secs, Some(0));
        // Waiting for a status the call never reached fails at once rather than timing out.
        let started = std::time::Instant::now();
        assert!(
            emulator
                .wait_for_status(&sid, EmulatedCallStatus::InProgress, WAIT)
                .await
                .is_err()
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_shorter_than_the_ring_time_ends_an_answerable_call_as_no_answer() {
    let emulator = TwilioEmulator::start(config(ms(1500), ms(100)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let started = std::time::Instant::now();
    let sid = rest.create(&fake, TO, &[("Timeout", "1".to_owned())]).await;
    emulator
        .wait_for_status(&sid, EmulatedCallStatus::NoAnswer, WAIT)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(950) && elapsed < Duration::from_millis(1450),
        "{elapsed:?}"
    );
    assert_eq!(
        statuses(&fake.callbacks_for(&sid)),
        ["initiated", "ringing", "no-answer"]
    );
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_requested_events_are_sent_and_none_requested_means_only_the_terminal_one() {
    let emulator = TwilioEmulator::start(config(ms(30), ms(100)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);

    let some = rest
        .create(
            &fake,
            TO,
            &[
                ("StatusCallbackEvent", "answered".to_owned()),
                ("StatusCallbackEvent", "completed".to_owned()),
            ],
        )
        .await;
    let none = rest.create(&fake, TO, &[("NoEvents", String::new())]).await;
    for sid in [&some, &none] {
        emulator
            .wait_for_status(sid, EmulatedCallStatus::Completed, WAIT)
            .await
            .unwrap();
    }
    let some_callbacks = fake.callbacks_for(&some);
    assert_eq!(statuses(&some_callbacks), ["in-progress", "completed"]);
    assert_eq!(sequence_numbers(&some_callbacks), ["0", "1"]);
    let none_callbacks = fake.callbacks_for(&none);
    assert_eq!(statuses(&none_callbacks), ["completed"]);
    assert_eq!(sequence_numbers(&none_callbacks), ["0"]);
    assert!(none_callbacks[0].signature_is_valid());
    // The call itself still went through every status.
    let record = emulator.call(&none).unwrap();
    assert_eq!(record.status_history.len(), 5);
    assert_eq!(
        record
            .status_history
            .iter()
            .filter(|c| c.callback_requested)
            .count(),
        1
    );
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_callbacks_and_twiml_carry_the_parameters_in_the_signed_query() {
    let emulator = TwilioEmulator::start(config(ms(30), ms(100)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let sid = rest
        .create(
            &fake,
            TO,
            &[
                ("StatusCallbackMethod", "GET".to_owned()),
                ("Method", "GET".to_owned()),
            ],
        )
        .await;
    emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();
    let callbacks = fake.callbacks_for(&sid);
    assert_eq!(
        statuses(&callbacks),
        ["initiated", "ringing", "in-progress", "completed"]
    );
    let twiml = fake.twiml_requests_for(&sid);
    assert_eq!(twiml.len(), 1);
    for request in callbacks.iter().chain(&twiml) {
        assert_eq!(request.method, "GET");
        assert!(request.params.is_empty());
        // The configured query comes first, Twilio's parameters after it.
        if request.path == "/status" {
            assert_eq!(request.query[0], ("call_id".to_owned(), "abc".to_owned()));
        }
        assert_eq!(request.param("AccountSid"), Some(ACCOUNT_SID));
        assert!(request.signature_is_valid(), "{request:?}");
    }
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_status_completed_ends_an_answered_call_early_with_the_duration_so_far() {
    let emulator = TwilioEmulator::start(config(ms(30), ms(8000)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let sid = rest.create(&fake, TO, &[]).await;
    emulator
        .wait_for_status(&sid, EmulatedCallStatus::InProgress, WAIT)
        .await
        .unwrap();

    // Canceling only applies to queued or ringing calls: an answered call goes on.
    let (status, body) = rest.update(&sid, "canceled").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (200, Some("in-progress"))
    );

    tokio::time::sleep(ms(1200)).await;
    let (status, body) = rest.update(&sid, "completed").await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "completed");
    assert_eq!(body["duration"], "2");
    assert!(body["end_time"].is_string());

    let record = emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();
    let callbacks = fake.callbacks_for(&sid);
    assert_eq!(
        statuses(&callbacks),
        ["initiated", "ringing", "in-progress", "completed"]
    );
    assert_eq!(callbacks[3].param("CallDuration"), Some("2"));
    assert_eq!(record.updates.len(), 2);
    let session = fake.ended_session_for(&sid).await;
    assert_eq!(session.messages.last().unwrap().1["event"], "stop");
    assert_eq!(record.stream.unwrap().end, Some(StreamEnd::CallEnded));

    // Ending it again changes nothing; an unknown sid is Twilio's 404.
    let (status, body) = rest.update(&sid, "completed").await;
    assert_eq!((status, body["duration"].as_str()), (200, Some("2")));
    let (status, body) = rest
        .update("CA00000000000000000000000000000000", "completed")
        .await;
    assert_eq!((status, body["code"].clone()), (404, json!(20404)));
    let (status, _) = rest
        .get(&rest.call_url("CA00000000000000000000000000000000"))
        .await;
    assert_eq!(status, 404);
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canceling_a_ringing_call_ends_it_canceled_without_fetching_twiml() {
    let emulator = TwilioEmulator::start(config(ms(3000), ms(100)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let sid = rest.create(&fake, TO, &[]).await;
    emulator
        .wait_for_status(&sid, EmulatedCallStatus::Ringing, WAIT)
        .await
        .unwrap();
    let (status, body) = rest.update(&sid, "canceled").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("canceled")));
    let record = emulator
        .wait_for_status(&sid, EmulatedCallStatus::Canceled, ms(1000))
        .await
        .unwrap();
    let callbacks = fake.callbacks_for(&sid);
    assert_eq!(statuses(&callbacks), ["initiated", "ringing", "canceled"]);
    assert_eq!(callbacks[2].param("SipResponseCode"), Some("487"));
    assert!(fake.twiml_requests_for(&sid).is_empty());
    assert!(record.twiml.is_none());
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_stream_endpoint_is_not_listening_still_completes_after_its_talk_time() {
    let dead = format!("ws://{}/media", dead_address());
    let fake = FakeOutcall::start(FakeOptions {
        twiml: Some(default_twiml(&dead)),
        ..FakeOptions::default()
    })
    .await;
    let emulator = TwilioEmulator::start(config(ms(30), ms(300)))
        .await
        .unwrap();
    let rest = Rest::new(&emulator);
    let started = std::time::Instant::now();
    let sid = rest.create(&fake, TO, &[]).await;
    let record = emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(300));
    let stream = record.stream.unwrap();
    assert_eq!(stream.url, dead);
    assert!(stream.connect_error.is_some());
    assert_eq!(stream.media_frames_sent, 0);
    let callbacks = fake.callbacks_for(&sid);
    assert_eq!(statuses(&callbacks).last().unwrap(), "completed");
    assert_eq!(callbacks.last().unwrap().param("CallDuration"), Some("1"));
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_closing_the_stream_completes_the_call() {
    let fake = FakeOutcall::start(FakeOptions {
        script: vec![(ms(200), Step::Close)],
        ..FakeOptions::default()
    })
    .await;
    let emulator = TwilioEmulator::start(config(ms(30), ms(8000)))
        .await
        .unwrap();
    let rest = Rest::new(&emulator);
    let started = std::time::Instant::now();
    let sid = rest.create(&fake, TO, &[]).await;
    let record = emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(record.stream.unwrap().end, Some(StreamEnd::ServerClosed));
    let callbacks = fake.callbacks_for(&sid);
    assert_eq!(
        callbacks.last().unwrap().param("CallStatus"),
        Some("completed")
    );
    assert_eq!(callbacks.last().unwrap().param("CallDuration"), Some("1"));
    let session = fake.ended_session_for(&sid).await;
    assert!(session.messages.iter().all(|(_, m)| m["event"] != "stop"));
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn marks_are_echoed_when_their_audio_has_played_and_clear_returns_pending_marks_at_once() {
    let fake = FakeOutcall::start(FakeOptions {
        script: vec![
            (ms(0), Step::Media(4000)), // 500 ms of audio
            (ms(0), Step::Mark("after-half-second")),
            (ms(700), Step::Media(8000)), // 1 s of audio, cleared below
            (ms(700), Step::Mark("cleared")),
            (ms(900), Step::Clear),
            (ms(1000), Step::Mark("nothing-buffered")),
        ],
        ..FakeOptions::default()
    })
    .await;
    let mut cfg = config(ms(30), ms(1300));
    cfg.media = MediaScript::Tone { frequency_hz: 440 };
    let emulator = TwilioEmulator::start(cfg).await.unwrap();
    let rest = Rest::new(&emulator);
    let sid = rest.create(&fake, TO, &[]).await;
    let record = emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();
    let session = fake.ended_session_for(&sid).await;
    let start_at = session
        .messages
        .iter()
        .find(|(_, m)| m["event"] == "start")
        .unwrap()
        .0;
    let marks: Vec<(String, u128)> = session
        .messages
        .iter()
        .filter(|(_, m)| m["event"] == "mark")
        .map(|(at, m)| {
            assert!(m["sequenceNumber"].is_string());
            (
                m["mark"]["name"].as_str().unwrap().to_owned(),
                (*at - start_at).as_millis(),
            )
        })
        .collect();
    let names: Vec<&str> = marks.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["after-half-second", "cleared", "nothing-buffered"]);
    assert!((450..650).contains(&marks[0].1), "{marks:?}");
    assert!((850..1100).contains(&marks[1].1), "{marks:?}");
    assert!((950..1200).contains(&marks[2].1), "{marks:?}");
    // Tone audio is not silence.
    let media = session
        .messages
        .iter()
        .find(|(_, m)| m["event"] == "media")
        .unwrap();
    let audio = base64::engine::general_purpose::STANDARD
        .decode(media.1["media"]["payload"].as_str().unwrap())
        .unwrap();
    assert_eq!(audio.len(), 160);
    assert!(audio.iter().any(|b| *b != 0xFF));

    let stream = record.stream.unwrap();
    assert_eq!(stream.media_messages_received, 2);
    assert_eq!(stream.media_bytes_received, 12_000);
    assert_eq!(
        stream.marks_echoed,
        ["after-half-second", "cleared", "nothing-buffered"]
    );
    assert!(
        stream
            .received
            .iter()
            .any(|r| r.message == StreamMessage::Clear)
    );
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machine_detection_reports_answered_by_only_when_requested() {
    let mut cfg = config(ms(30), ms(100));
    cfg.default_outcome = CallOutcomeScript::AnsweredByMachine;
    let emulator = TwilioEmulator::start(cfg).await.unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let detected = rest
        .create(&fake, TO, &[("MachineDetection", "Enable".to_owned())])
        .await;
    let plain = rest.create(&fake, TO, &[]).await;
    for sid in [&detected, &plain] {
        emulator
            .wait_for_status(sid, EmulatedCallStatus::Completed, WAIT)
            .await
            .unwrap();
    }
    let callbacks = fake.callbacks_for(&detected);
    let answered_by: Vec<Option<&str>> = callbacks.iter().map(|c| c.param("AnsweredBy")).collect();
    assert_eq!(
        answered_by,
        [None, None, Some("machine_start"), Some("machine_start")]
    );
    assert_eq!(
        fake.twiml_requests_for(&detected)[0].param("AnsweredBy"),
        Some("machine_start")
    );
    assert!(callbacks.iter().all(ReceivedRequest::signature_is_valid));
    assert!(
        fake.callbacks_for(&plain)
            .iter()
            .all(|c| c.param("AnsweredBy").is_none())
    );
    let (_, body) = rest.get(&rest.call_url(&detected)).await;
    assert_eq!(body["answered_by"], "machine_start");
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_twiml_ends_the_call_at_once_as_an_application_error() {
    let emulator = TwilioEmulator::start(config(ms(30), ms(5000)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let broken = rest
        .create(
            &fake,
            TO,
            &[("Url", format!("{}/broken-twiml", fake.http_base))],
        )
        .await;
    let missing = rest
        .create(&fake, TO, &[("Url", format!("{}/missing", fake.http_base))])
        .await;
    let query = rest
        .create(
            &fake,
            TO,
            &[(
                "Twiml",
                r#"<Response><Connect><Stream url="wss://x.example/m?token=1"/></Connect></Response>"#
                    .to_owned(),
            )],
        )
        .await;
    let started = std::time::Instant::now();
    for sid in [&broken, &missing, &query] {
        let record = emulator
            .wait_for_status(sid, EmulatedCallStatus::Completed, WAIT)
            .await
            .unwrap();
        let twiml = record.twiml.unwrap();
        assert!(twiml.error.is_some(), "{sid}");
        assert!(record.stream.is_none());
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_requests_get_twilio_errors_and_the_emulator_keeps_working() {
    let emulator = TwilioEmulator::start(config(ms(30), ms(100)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let client = &rest.client;
    let calls = rest.calls_url(ACCOUNT_SID);
    let garbage_auth = client
        .post(&calls)
        .header("Authorization", "Basic %%%not-base64")
        .body("To=%ZZ&&=&From")
        .send()
        .await
        .unwrap();
    assert_eq!(garbage_auth.status().as_u16(), 401);
    let bad_form = client
        .post(&calls)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .body(vec![0xFF_u8, 0xFE, b'=', 0x00, b'&'])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_form.status().as_u16(), 400);
    let huge = client
        .post(&calls)
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .body(vec![b'a'; 200_000])
        .send()
        .await
        .unwrap();
    assert!(huge.status().is_client_error());
    let unknown = client
        .get(format!("{}/nowhere", rest.base))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let not_json = client
        .get(format!(
            "{}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/CA1",
            rest.base
        ))
        .basic_auth(ACCOUNT_SID, Some(AUTH_TOKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status().as_u16(), 404);
    let (status, body) = rest
        .post(
            &rest.call_url("CA1"),
            Some((ACCOUNT_SID, AUTH_TOKEN)),
            &[("Status", "exploded".to_owned())],
        )
        .await;
    assert_eq!((status, body["code"].clone()), (404, json!(20404)));

    // Still serving calls afterwards.
    let sid = rest.create(&fake, TO, &[]).await;
    emulator
        .wait_for_status(&sid, EmulatedCallStatus::Completed, WAIT)
        .await
        .unwrap();
    emulator.shutdown().await;
    fake.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_live_calls_and_the_server() {
    let emulator = TwilioEmulator::start(config(ms(30), ms(30_000)))
        .await
        .unwrap();
    let fake = FakeOutcall::start(FakeOptions::default()).await;
    let rest = Rest::new(&emulator);
    let sid = rest.create(&fake, TO, &[]).await;
    emulator
        .wait_for_status(&sid, EmulatedCallStatus::InProgress, WAIT)
        .await
        .unwrap();
    // Let the stream start.
    tokio::time::sleep(ms(200)).await;
    let base = emulator.base_url();
    emulator.shutdown().await;
    // The stream socket is dropped, so the fake sees it end.
    let session = fake.ended_session_for(&sid).await;
    let frames = session.messages.len();
    tokio::time::sleep(ms(200)).await;
    assert_eq!(fake.sessions()[0].messages.len(), frames);
    assert!(
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap()
            .get(format!(
                "{base}/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
            ))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_err()
    );
    fake.stop().await;
}
