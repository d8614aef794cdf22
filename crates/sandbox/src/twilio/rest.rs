//! The Calls REST API (protocols 1): create, update (hang up / cancel), fetch.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::Context as _;
use base64::Engine as _;
use chrono::Utc;
use serde_json::{Value, json};

use super::call::{self, CallPlan};
use super::sid::new_sid;
use super::state::{CallEntry, CallOptions, Shared, rfc2822};
use super::{CallOutcomeScript, EmulatedCallRecord, EmulatedCallStatus, StatusChange};

const FORM_LIMIT: usize = 64 * 1024;
/// Twilio's defaults and bounds for `Timeout` (seconds).
const DEFAULT_TIMEOUT_SECS: u64 = 60;
const MAX_TIMEOUT_SECS: u64 = 600;

pub(crate) fn server(
    shared: Arc<Shared>,
    listener: TcpListener,
) -> anyhow::Result<actix_web::dev::Server> {
    let data = web::Data::from(shared);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(web::PayloadConfig::new(FORM_LIMIT))
            .route(
                "/2010-04-01/Accounts/{account_sid}/Calls.json",
                web::post().to(create_call),
            )
            .route(
                "/2010-04-01/Accounts/{account_sid}/Calls/{call}",
                web::post().to(update_call),
            )
            .route(
                "/2010-04-01/Accounts/{account_sid}/Calls/{call}",
                web::get().to(fetch_call),
            )
            .default_service(web::to(not_found))
    })
    // One worker is plenty for an emulator and keeps threads few in test suites.
    .workers(1)
    .disable_signals()
    .shutdown_timeout(1)
    .listen(listener)
    .context("serving the Twilio emulator")?
    .run();
    Ok(server)
}

fn twilio_error(status: u16, code: u32, message: &str) -> HttpResponse {
    let http_status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::build(http_status);
    if status == 401 {
        response.insert_header((WWW_AUTHENTICATE, "Basic realm=\"Twilio API\""));
    }
    response.json(json!({
        "code": code,
        "message": message,
        "more_info": format!("https://www.twilio.com/docs/errors/{code}"),
        "status": status,
    }))
}

fn unauthenticated() -> HttpResponse {
    twilio_error(401, 20003, "Authenticate")
}

fn resource_not_found(path: &str) -> HttpResponse {
    twilio_error(
        404,
        20404,
        &format!("The requested resource {path} was not found"),
    )
}

fn authenticated(request: &HttpRequest, shared: &Shared) -> bool {
    let Some(value) = request
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.trim().split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Ok(decoded) = String::from_utf8(decoded) else {
        return false;
    };
    decoded.split_once(':') == Some((&shared.config.account_sid, &shared.config.auth_token))
}

/// Authentication first (401), then the path's account (404), as Twilio answers.
fn check_access(request: &HttpRequest, shared: &Shared, account_sid: &str) -> Option<HttpResponse> {
    if !authenticated(request, shared) {
        return Some(unauthenticated());
    }
    if account_sid != shared.config.account_sid {
        return Some(resource_not_found(request.path()));
    }
    None
}

fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn first<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// E.164 (`+` then 2–15 digits, no leading 0), or a `client:`/`sip:` address.
pub(crate) fn valid_to(to: &str) -> bool {
    if let Some(digits) = to.strip_prefix('+') {
        return (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
    }
    ["client:", "sip:"].iter().any(|prefix| {
        to.strip_prefix(prefix)
            .is_some_and(|rest| !rest.trim().is_empty())
    })
}

fn is_http_url(value: &str) -> bool {
    url::Url::parse(value).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
}

/// `(415) 555-1212` for NANP numbers, the number itself otherwise.
fn formatted(number: &str) -> String {
    match number.strip_prefix("+1") {
        Some(d) if d.len() == 10 && d.bytes().all(|b| b.is_ascii_digit()) => {
            format!("({}) {}-{}", &d[..3], &d[3..6], &d[6..])
        }
        _ => number.to_owned(),
    }
}

pub(crate) fn call_json(entry: &CallEntry) -> Value {
    let record = &entry.record;
    let base = format!(
        "/2010-04-01/Accounts/{}/Calls/{}",
        record.account_sid, record.sid
    );
    let sub = |name: &str| format!("{base}/{name}.json");
    json!({
        "sid": record.sid,
        "account_sid": record.account_sid,
        "parent_call_sid": null,
        "date_created": rfc2822(entry.date_created),
        "date_updated": rfc2822(entry.date_updated),
        "to": record.to,
        "to_formatted": formatted(&record.to),
        "from": record.from,
        "from_formatted": formatted(&record.from),
        "phone_number_sid": entry.phone_number_sid,
        "status": record.status.rest_str(),
        "start_time": entry.start_time.map(rfc2822),
        "end_time": entry.end_time.map(rfc2822),
        "duration": record.duration_secs.map(|d| d.to_string()),
        "price": null,
        "price_unit": "USD",
        "direction": "outbound-api",
        "answered_by": record.answered_by,
        "annotation": null,
        "api_version": "2010-04-01",
        "forwarded_from": null,
        "group_sid": null,
        "caller_name": null,
        "queue_time": "0",
        "trunk_sid": null,
        "uri": format!("{base}.json"),
        "subresource_uris": {
            "feedback": format!("{base}/Feedback.json"),
            "notifications": sub("Notifications"),
            "recordings": sub("Recordings"),
            "payments": sub("Payments"),
            "events": sub("Events"),
            "siprec": sub("Siprec"),
            "streams": sub("Streams"),
            "transcriptions": sub("Transcriptions"),
            "user_defined_message_subscriptions": sub("UserDefinedMessageSubscriptions"),
            "user_defined_messages": sub("UserDefinedMessages"),
        },
    })
}

async fn create_call(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    if let Some(refusal) = check_access(&request, &shared, &path) {
        return refusal;
    }
    let form = parse_form(&body);
    let to = match first(&form, "To") {
        Some(to) if !to.is_empty() => to.to_owned(),
        _ => return twilio_error(400, 21201, "No 'To' number is specified"),
    };
    if !valid_to(&to) {
        return twilio_error(
            400,
            21211,
            &format!("The 'To' number {to} is not a valid phone number."),
        );
    }
    let from = match first(&form, "From") {
        Some(from) if !from.is_empty() => from.to_owned(),
        _ => return twilio_error(400, 21603, "A 'From' phone number is required."),
    };
    let url = first(&form, "Url")
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    let inline_twiml = first(&form, "Twiml")
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let application = first(&form, "ApplicationSid").filter(|a| !a.is_empty());
    match (&url, &inline_twiml, application) {
        (None, None, None) => {
            return twilio_error(
                400,
                21205,
                "Url parameter is required. For more information, see http://www.twilio.com/docs/api/twiml",
            );
        }
        (Some(url), _, _) if !is_http_url(url) => {
            return twilio_error(400, 21205, &format!("Url is not a valid URL: {url}"));
        }
        _ => {}
    }
    let status_callback = first(&form, "StatusCallback")
        .filter(|u| !u.is_empty())
        .map(str::to_owned);
    if let Some(callback) = &status_callback
        && !is_http_url(callback)
    {
        return twilio_error(
            400,
            21609,
            &format!("StatusCallback is not a valid URL: {callback}"),
        );
    }

    let config = &shared.config;
    let outcome = config
        .scripts
        .get(&to)
        .unwrap_or(&config.default_outcome)
        .clone();
    if let CallOutcomeScript::RejectOnCreate {
        http_status,
        code,
        message,
    } = &outcome
    {
        return twilio_error(*http_status, *code, message);
    }

    let timeout_secs = first(&form, "Timeout")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(DEFAULT_TIMEOUT_SECS, |t| t.clamp(1, MAX_TIMEOUT_SECS));
    let timeout = Duration::from_secs(timeout_secs);
    let talk = first(&form, "TimeLimit")
        .and_then(|t| t.trim().parse::<u64>().ok())
        .map_or(config.talk_time, |limit| {
            config.talk_time.min(Duration::from_secs(limit))
        });
    let plan = CallPlan {
        outcome: outcome.clone(),
        ring: config.ring_time.min(timeout),
        times_out: timeout < config.ring_time,
        talk,
        url,
        method: first(&form, "Method").unwrap_or("POST").to_owned(),
        inline_twiml,
    };
    let options = CallOptions {
        status_callback,
        status_callback_method: first(&form, "StatusCallbackMethod")
            .unwrap_or("POST")
            .to_owned(),
        // Repeated fields are the documented form; space-separated values are accepted too.
        events: form
            .iter()
            .filter(|(k, _)| k == "StatusCallbackEvent")
            .flat_map(|(_, v)| v.split_whitespace().map(str::to_owned))
            .collect(),
        machine_detection: first(&form, "MachineDetection").is_some_and(|m| {
            m.eq_ignore_ascii_case("Enable") || m.eq_ignore_ascii_case("DetectMessageEnd")
        }),
    };
    let sid = new_sid("CA");
    let record = EmulatedCallRecord {
        sid: sid.clone(),
        account_sid: config.account_sid.clone(),
        to,
        from,
        form,
        outcome,
        status: EmulatedCallStatus::Queued,
        status_history: vec![StatusChange {
            status: EmulatedCallStatus::Queued,
            at: Utc::now(),
            callback_requested: false,
        }],
        answered_by: None,
        duration_secs: None,
        callbacks: Vec::new(),
        twiml: None,
        stream: None,
        updates: Vec::new(),
        finished: false,
    };
    let (callbacks, hangup) = shared.insert_call(record, options, new_sid("PN"));
    let Some(body) = shared.read_call(&sid, call_json) else {
        return twilio_error(500, 20500, "Internal Server Error");
    };
    let task = call::play(
        shared.clone().into_inner(),
        sid.clone(),
        plan,
        callbacks,
        hangup,
    );
    if !shared.tasks.spawn(task) {
        shared.update_status(&sid, EmulatedCallStatus::Canceled, Vec::new(), |_| ());
        return twilio_error(503, 20503, "Service Unavailable");
    }
    HttpResponse::Created().json(body)
}

fn call_sid_of(segment: &str) -> Option<&str> {
    segment.strip_suffix(".json")
}

async fn update_call(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (account_sid, segment) = path.into_inner();
    if let Some(refusal) = check_access(&request, &shared, &account_sid) {
        return refusal;
    }
    let Some(sid) = call_sid_of(&segment) else {
        return resource_not_found(request.path());
    };
    if shared.read_call(sid, |_| ()).is_none() {
        return resource_not_found(request.path());
    }
    let form = parse_form(&body);
    let requested = match first(&form, "Status") {
        Some("completed") => EmulatedCallStatus::Completed,
        Some("canceled") => EmulatedCallStatus::Canceled,
        Some(other) => {
            return twilio_error(
                400,
                20001,
                &format!("Status must be 'canceled' or 'completed', not '{other}'"),
            );
        }
        None => {
            return twilio_error(
                400,
                20001,
                "The Twilio emulator only supports updating Status (no Url/Twiml redirects)",
            );
        }
    };
    match shared.update_status(sid, requested, form, call_json) {
        Some(body) => HttpResponse::Ok().json(body),
        None => resource_not_found(request.path()),
    }
}

async fn fetch_call(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Shared>,
) -> HttpResponse {
    let (account_sid, segment) = path.into_inner();
    if let Some(refusal) = check_access(&request, &shared, &account_sid) {
        return refusal;
    }
    match call_sid_of(&segment).and_then(|sid| shared.read_call(sid, call_json)) {
        Some(body) => HttpResponse::Ok().json(body),
        None => resource_not_found(request.path()),
    }
}

async fn not_found(request: HttpRequest) -> HttpResponse {
    resource_not_found(request.path())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_and_client_addresses_are_valid_to_numbers_and_others_are_not() {
        for good in [
            "+15551234567",
            "+442071838750",
            "+12",
            "client:alice",
            "sip:a@b.c",
        ] {
            assert!(valid_to(good), "{good}");
        }
        for bad in [
            "5551234567",
            "+",
            "+0123456",
            "+1555123456789012",
            "+1 555 123 4567",
            "+1555abc",
            "client:",
            "",
        ] {
            assert!(!valid_to(bad), "{bad}");
        }
    }

    #[test]
    fn nanp_numbers_are_formatted_like_twilio_and_others_are_left_alone() {
        assert_eq!(formatted("+14155551212"), "(415) 555-1212");
        assert_eq!(formatted("+442071838750"), "+442071838750");
        assert_eq!(formatted("client:bob"), "client:bob");
    }
}
