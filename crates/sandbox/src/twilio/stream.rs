//! Twilio's side of a bidirectional Media Stream (protocols 3.4, 5): a signed WebSocket
//! upgrade, `connected`, `start`, real-time `media`, mark/clear handling, `stop`.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use base64::Engine as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message};

use super::audio::{FRAME_MS, FrameSource};
use super::sid::new_sid;
use super::signature::twilio_signature;
use super::state::{Shared, after, error_chain};
use super::twiml::StreamSpec;
use super::{
    EmulatedCallStatus, EmulatedStreamRecord, ReceivedStreamMessage, StreamEnd, StreamMessage,
};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A server that stops reading must not stall the call's clock forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Bounds for what a misbehaving server can make the emulator hold.
const MAX_MESSAGE_BYTES: usize = 1 << 20;
const MAX_RECORDED_MESSAGES: usize = 512;
const MAX_RECORDED_BYTES: usize = 512 * 1024;
const MAX_RECORDED_MARKS: usize = 512;
const MAX_PENDING_MARKS: usize = 4096;
/// μ-law at 8 kHz: one byte is 125 µs of audio.
const MICROS_PER_BYTE: u64 = 125;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Sink = futures_util::stream::SplitSink<Socket, Message>;

#[derive(Serialize)]
struct Connected {
    event: &'static str,
    protocol: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Start<'a> {
    event: &'static str,
    sequence_number: String,
    start: StartBody<'a>,
    stream_sid: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StartBody<'a> {
    account_sid: &'a str,
    stream_sid: &'a str,
    call_sid: &'a str,
    tracks: [&'static str; 1],
    media_format: MediaFormat,
    custom_parameters: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaFormat {
    encoding: &'static str,
    sample_rate: u32,
    channels: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Media<'a> {
    event: &'static str,
    sequence_number: String,
    media: MediaBody<'a>,
    stream_sid: &'a str,
}

#[derive(Serialize)]
struct MediaBody<'a> {
    track: &'static str,
    chunk: String,
    timestamp: String,
    payload: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MarkOut<'a> {
    event: &'static str,
    sequence_number: String,
    stream_sid: &'a str,
    mark: MarkName<'a>,
}

#[derive(Serialize)]
struct MarkName<'a> {
    name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Stop<'a> {
    event: &'static str,
    sequence_number: String,
    stop: StopBody<'a>,
    stream_sid: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StopBody<'a> {
    account_sid: &'a str,
    call_sid: &'a str,
}

#[derive(Deserialize)]
struct Incoming {
    event: String,
    #[serde(rename = "streamSid")]
    stream_sid: Option<String>,
    media: Option<IncomingMedia>,
    mark: Option<IncomingMark>,
}

#[derive(Deserialize)]
struct IncomingMedia {
    payload: String,
}

#[derive(Deserialize)]
struct IncomingMark {
    name: String,
}

/// How the stream loop ended.
enum Ending {
    /// REST hang-up: the call is already terminal.
    HungUp,
    /// Talk time or `TimeLimit` reached.
    TimeUp,
    ServerClosed,
    Failed(String),
}

/// Runs the stream until the call ends or the server closes it; leaves the call terminal.
pub(crate) async fn run(
    shared: &Shared,
    call_sid: &str,
    spec: StreamSpec,
    hangup: &Notify,
    deadline: Instant,
) {
    let stream_sid = new_sid("MZ");
    let signature = twilio_signature(&shared.config.auth_token, &spec.url, &[]);
    let mut record = EmulatedStreamRecord {
        url: spec.url.clone(),
        stream_sid,
        signature,
        custom_parameters: spec.parameters.into_iter().collect(),
        connect_error: None,
        media_frames_sent: 0,
        received: Vec::new(),
        received_dropped: 0,
        media_messages_received: 0,
        media_bytes_received: 0,
        marks_echoed: Vec::new(),
        end: None,
    };
    save(shared, call_sid, &record);

    let connected = tokio::select! {
        () = hangup.notified() => None,
        () = tokio::time::sleep_until(deadline) => None,
        result = connect(&record.url, &record.signature) => Some(result),
    };
    let socket = match connected {
        None => {
            save(shared, call_sid, &record);
            return;
        }
        Some(Err(error)) => {
            // outcall's media endpoint may not exist yet: the call still plays out normally.
            tracing::debug!(call_sid, %error, "media stream connection failed");
            record.connect_error = Some(error);
            save(shared, call_sid, &record);
            tokio::select! {
                () = hangup.notified() => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            return;
        }
        Some(Ok(socket)) => socket,
    };

    let mut session = Session {
        shared,
        call_sid,
        record,
        opened: Instant::now(),
        sequence: 0,
        playback_end: Instant::now(),
        pending_marks: VecDeque::new(),
        recorded_bytes: 0,
    };
    let (mut sink, mut incoming) = socket.split();
    let ending = match session
        .stream(&mut sink, &mut incoming, hangup, deadline)
        .await
    {
        Ok(ending) => ending,
        Err(error) => Ending::Failed(error),
    };
    match ending {
        Ending::HungUp | Ending::TimeUp => {
            // The call ends first (its duration stops now), then Twilio stops the stream.
            shared.transition(call_sid, EmulatedCallStatus::Completed);
            let result = session.stop(&mut sink).await;
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Normal,
                        reason: "".into(),
                    })))
                    .await;
                // Wait for the server's close reply so the handshake completes cleanly.
                while let Some(Ok(message)) = incoming.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            session.record.end = Some(match result {
                Ok(()) => StreamEnd::CallEnded,
                Err(error) => StreamEnd::Failed { error },
            });
        }
        Ending::ServerClosed => {
            // <Connect> has no further verbs: the call ends when the server closes the stream.
            shared.transition(call_sid, EmulatedCallStatus::Completed);
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.close()).await;
            session.record.end = Some(StreamEnd::ServerClosed);
        }
        Ending::Failed(error) => {
            shared.transition(call_sid, EmulatedCallStatus::Completed);
            session.record.end = Some(StreamEnd::Failed { error });
        }
    }
    save(shared, call_sid, &session.record);
}

fn save(shared: &Shared, call_sid: &str, record: &EmulatedStreamRecord) {
    shared.with_call(call_sid, |entry| entry.record.stream = Some(record.clone()));
}

async fn connect(url: &str, signature: &str) -> Result<Socket, String> {
    let mut request = url
        .into_client_request()
        .map_err(|e| format!("invalid stream URL: {}", error_chain(&e)))?;
    let header = HeaderValue::from_str(signature).map_err(|e| e.to_string())?;
    request.headers_mut().insert("X-Twilio-Signature", header);
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_MESSAGE_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES));
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, None);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok((socket, _response))) => Ok(socket),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(_) => Err(format!("no WebSocket handshake within {CONNECT_TIMEOUT:?}")),
    }
}

struct Session<'a> {
    shared: &'a Shared,
    call_sid: &'a str,
    record: EmulatedStreamRecord,
    opened: Instant,
    /// Last `sequenceNumber` used; `start` is 1.
    sequence: u64,
    /// When the audio the server has sent so far will have finished playing.
    playback_end: Instant,
    /// Marks waiting for the audio queued before them to finish playing.
    pending_marks: VecDeque<(String, Instant)>,
    /// Text kept in `record.received` so far.
    recorded_bytes: usize,
}

impl Session<'_> {
    fn next_sequence(&mut self) -> String {
        self.sequence += 1;
        self.sequence.to_string()
    }

    async fn stream(
        &mut self,
        sink: &mut Sink,
        incoming: &mut futures_util::stream::SplitStream<Socket>,
        hangup: &Notify,
        deadline: Instant,
    ) -> Result<Ending, String> {
        let account_sid = self.shared.config.account_sid.clone();
        let stream_sid = self.record.stream_sid.clone();
        send(
            sink,
            &Connected {
                event: "connected",
                protocol: "Call",
                version: "1.0.0",
            },
        )
        .await?;
        let start = Start {
            event: "start",
            sequence_number: self.next_sequence(),
            start: StartBody {
                account_sid: &account_sid,
                stream_sid: &stream_sid,
                call_sid: self.call_sid,
                tracks: ["inbound"],
                media_format: MediaFormat {
                    encoding: "audio/x-mulaw",
                    sample_rate: 8000,
                    channels: 1,
                },
                custom_parameters: &self.record.custom_parameters,
            },
            stream_sid: &stream_sid,
        };
        send(sink, &start).await?;

        let mut frames = FrameSource::new(self.shared.config.media);
        let mut ticker = tokio::time::interval(Duration::from_millis(FRAME_MS));
        // Burst: the callee's audio is produced in real time, so frames missed while this task
        // was delayed are sent at once and `timestamp` stays equal to wall-clock time since
        // the stream started, as from a real phone leg. (Delay would drift behind real time.)
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut chunk: u64 = 0;
        loop {
            let next_mark = self.pending_marks.front().map(|(_, due)| *due);
            tokio::select! {
                biased;
                () = hangup.notified() => return Ok(Ending::HungUp),
                () = tokio::time::sleep_until(deadline) => return Ok(Ending::TimeUp),
                _ = ticker.tick() => {
                    chunk += 1;
                    let payload = frames.next_payload();
                    let media = Media {
                        event: "media",
                        sequence_number: self.next_sequence(),
                        media: MediaBody {
                            track: "inbound",
                            chunk: chunk.to_string(),
                            timestamp: ((chunk - 1) * FRAME_MS).to_string(),
                            payload: &payload,
                        },
                        stream_sid: &stream_sid,
                    };
                    send(sink, &media).await?;
                    self.record.media_frames_sent += 1;
                }
                () = tokio::time::sleep_until(next_mark.unwrap_or(deadline)), if next_mark.is_some() => {
                    self.echo_due_marks(sink, Instant::now()).await?;
                }
                message = incoming.next() => match message {
                    None | Some(Ok(Message::Close(_))) => return Ok(Ending::ServerClosed),
                    Some(Ok(Message::Text(text))) => self.on_text(sink, text.as_str()).await?,
                    Some(Ok(Message::Binary(bytes))) => self.remember(StreamMessage::Other {
                        text: format!("<binary message of {} bytes>", bytes.len()),
                    }),
                    // Pings are answered by tungstenite itself.
                    Some(Ok(_)) => {}
                    Some(Err(tungstenite::Error::ConnectionClosed)) => return Ok(Ending::ServerClosed),
                    Some(Err(error)) => return Ok(Ending::Failed(error_chain(&error))),
                },
            }
        }
    }

    fn remember(&mut self, message: StreamMessage) {
        let size = match &message {
            StreamMessage::Media { payload } => payload.len(),
            StreamMessage::Mark { name } => name.len(),
            StreamMessage::Clear => 0,
            StreamMessage::Other { text } => text.len(),
        };
        if self.record.received.len() < MAX_RECORDED_MESSAGES
            && self.recorded_bytes + size <= MAX_RECORDED_BYTES
        {
            self.recorded_bytes += size;
            self.record.received.push(ReceivedStreamMessage {
                at: self.opened.elapsed(),
                message,
            });
        } else {
            self.record.received_dropped += 1;
        }
    }

    async fn on_text(&mut self, sink: &mut Sink, text: &str) -> Result<(), String> {
        let parsed = serde_json::from_str::<Incoming>(text).ok().filter(|m| {
            // Messages for another stream (or none) are not played, as Twilio would not.
            m.stream_sid.as_deref() == Some(self.record.stream_sid.as_str())
        });
        let now = Instant::now();
        match parsed {
            Some(Incoming {
                event,
                media: Some(media),
                ..
            }) if event == "media" => {
                let Ok(audio) = base64::engine::general_purpose::STANDARD.decode(&media.payload)
                else {
                    self.remember(StreamMessage::Other {
                        text: text.to_owned(),
                    });
                    return Ok(());
                };
                self.record.media_messages_received += 1;
                self.record.media_bytes_received += audio.len() as u64;
                let length = Duration::from_micros(audio.len() as u64 * MICROS_PER_BYTE);
                self.playback_end = after(self.playback_end.max(now), length);
                self.remember(StreamMessage::Media {
                    payload: media.payload,
                });
            }
            Some(Incoming {
                event,
                mark: Some(mark),
                ..
            }) if event == "mark" => {
                self.remember(StreamMessage::Mark {
                    name: mark.name.clone(),
                });
                // Twilio echoes a mark once the audio sent before it has played; at once if
                // nothing is buffered.
                if self.playback_end <= now || self.pending_marks.len() >= MAX_PENDING_MARKS {
                    self.echo(sink, &mark.name).await?;
                } else {
                    self.pending_marks.push_back((mark.name, self.playback_end));
                }
            }
            Some(Incoming { event, .. }) if event == "clear" => {
                self.remember(StreamMessage::Clear);
                // Buffered audio is dropped and every pending mark is returned.
                self.playback_end = now;
                while let Some((name, _)) = self.pending_marks.pop_front() {
                    self.echo(sink, &name).await?;
                }
            }
            _ => self.remember(StreamMessage::Other {
                text: text.to_owned(),
            }),
        }
        Ok(())
    }

    async fn echo_due_marks(&mut self, sink: &mut Sink, now: Instant) -> Result<(), String> {
        while self
            .pending_marks
            .front()
            .is_some_and(|(_, due)| *due <= now)
        {
            if let Some((name, _)) = self.pending_marks.pop_front() {
                self.echo(sink, &name).await?;
            }
        }
        Ok(())
    }

    async fn echo(&mut self, sink: &mut Sink, name: &str) -> Result<(), String> {
        let stream_sid = self.record.stream_sid.clone();
        let mark = MarkOut {
            event: "mark",
            sequence_number: self.next_sequence(),
            stream_sid: &stream_sid,
            mark: MarkName { name },
        };
        send(sink, &mark).await?;
        if self.record.marks_echoed.len() < MAX_RECORDED_MARKS {
            self.record.marks_echoed.push(name.to_owned());
        }
        Ok(())
    }

    async fn stop(&mut self, sink: &mut Sink) -> Result<(), String> {
        let account_sid = self.shared.config.account_sid.clone();
        let stream_sid = self.record.stream_sid.clone();
        let stop = Stop {
            event: "stop",
            sequence_number: self.next_sequence(),
            stop: StopBody {
                account_sid: &account_sid,
                call_sid: self.call_sid,
            },
            stream_sid: &stream_sid,
        };
        send(sink, &stop).await
    }
}

async fn send(sink: &mut Sink, message: &impl Serialize) -> Result<(), String> {
    let text = serde_json::to_string(message).map_err(|e| e.to_string())?;
    match tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::text(text))).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(error_chain(&error)),
        Err(_) => Err(format!(
            "the server did not take a message within {SEND_TIMEOUT:?}"
        )),
    }
}
