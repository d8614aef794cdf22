//! `outcall demo`: walks through the product against a running server (normally the sandbox):
//! admin login, a new client, client login, a call followed live through its statuses, then
//! its transcript, summary and outcome, and the client's statistics. Exits non-zero when a step
//! fails, so it doubles as a smoke test.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};

/// Where and as whom the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub url: String,
    pub username: String,
    pub password: String,
    /// The number to call; the sandbox answers any number except its scripted test numbers.
    pub phone: String,
    /// How long to wait for the call to end and for its analysis.
    pub timeout: Duration,
}

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}: is outcall running at {}?", self.base))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!("{method} {path} answered {status}: {body}");
        }
        Ok(body)
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Runs the walk, printing each step.
///
/// # Errors
/// The first step that fails, with what the server answered.
pub async fn run(options: &DemoOptions) -> anyhow::Result<()> {
    let api = Api {
        http: reqwest::Client::new(),
        base: options.url.trim_end_matches('/').to_owned(),
    };
    let started = Instant::now();
    let step = |n: u32, what: &str| println!("\n[{n}] {what}");

    step(1, "health");
    let health = api
        .call(reqwest::Method::GET, "/healthz", None, None)
        .await?;
    println!("    {}", text(&health["status"]));

    step(2, "admin login");
    let login = api
        .call(
            reqwest::Method::POST,
            "/auth/admin/login",
            None,
            Some(json!({"username": options.username, "password": options.password})),
        )
        .await?;
    let admin = login["token"]
        .as_str()
        .context("admin login returned no token")?
        .to_owned();
    println!("    logged in as {}", options.username);

    step(3, "create a client");
    let suffix = chrono::Utc::now().format("%H%M%S%3f");
    let client_id = format!("demo_{suffix}");
    let created = api
        .call(
            reqwest::Method::POST,
            "/admin/clients",
            Some(&admin),
            Some(json!({
                "clientId": client_id,
                "clientMeta": {"fullName": "Dana Demo", "email": format!("dana.{suffix}@example.com"),
                               "phone": "+12125550100", "businessName": "Demo Dental"},
                "agentId": "agent_demo",
                "twilioPhoneNumber": "+15005550006"
            })),
        )
        .await?;
    let secret = created["client"]["clientSecret"]
        .as_str()
        .context("no client secret in the create response")?
        .to_owned();
    println!("    clientId {client_id} (secret shown once, kept for the next step)");

    step(4, "client login");
    let login = api
        .call(
            reqwest::Method::POST,
            "/auth/login",
            None,
            Some(json!({"clientId": client_id, "clientSecret": secret})),
        )
        .await?;
    let token = login["token"]
        .as_str()
        .context("client login returned no token")?
        .to_owned();
    println!("    token issued, expires {}", text(&login["expiresAt"]));

    step(5, &format!("place a call to {}", options.phone));
    let placed = api
        .call(
            reqwest::Method::POST,
            "/secure/make-call",
            Some(&token),
            Some(json!({"phone": options.phone, "dynamicVariables": {"first_name": "Jane"}})),
        )
        .await?;
    let call_id = placed["callId"]
        .as_str()
        .context("make-call returned no callId")?
        .to_owned();
    println!(
        "    callId {call_id}, Twilio sid {}",
        text(&placed["callSid"])
    );

    step(6, "follow the call");
    let deadline = Instant::now() + options.timeout;
    let mut last_status = String::new();
    let call = loop {
        let call = api
            .call(
                reqwest::Method::GET,
                &format!("/secure/calls/{call_id}"),
                Some(&token),
                None,
            )
            .await?;
        let status = text(&call["callData"]["status"]);
        if status != last_status {
            println!("    {:>6.1}s  {status}", started.elapsed().as_secs_f64());
            last_status = status.clone();
        }
        let ended =
            ["completed", "busy", "failed", "no-answer", "canceled"].contains(&status.as_str());
        let analysed = call["callDetails"]["callSummary"].is_string();
        if ended && analysed {
            break call;
        }
        if Instant::now() > deadline {
            bail!(
                "the call did not end with a post-call summary within {:?} (last status {status})",
                options.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    step(7, "what happened on the call");
    let data = &call["callData"];
    let details = &call["callDetails"];
    println!("    duration   {} s", text(&data["duration"]));
    println!("    outcome    {}", text(&details["callOutcome"]));
    println!("    sentiment  {}", text(&details["callSentiment"]));
    println!("    summary    {}", text(&details["callSummary"]));
    println!("    transcript");
    for line in text(&details["callTranscript"]).lines() {
        println!("      {line}");
    }

    step(8, "the client's statistics");
    let stats = api
        .call(
            reqwest::Method::GET,
            "/secure/call-stats",
            Some(&token),
            None,
        )
        .await?;
    let stats = &stats["stats"];
    println!(
        "    calls {}  total duration {} s  average {} s",
        text(&stats["totalCalls"]),
        text(&stats["totalDuration"]),
        text(&stats["averageDuration"])
    );
    println!("    by outcome {}", stats["callsByOutcome"]);
    println!("\ndemo finished in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}
