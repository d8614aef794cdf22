//! One live conversation socket. This is the media relay's hot path: nothing here logs or
//! allocates beyond the message itself.

use std::time::Duration;

use async_trait::async_trait;
use futures_util::{SinkExt as _, StreamExt as _};
use outcall_domain::ports::{AgentConnection, VoiceAgentError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::rehome::RehomableStream;

/// Read buffer per socket. Agent messages are JSON with a few KiB of base64 audio at most
/// (longer ones take more reads). tungstenite zeroes the free part of this buffer before
/// every read, so its size is CPU per frame as well as memory per call: 16 KiB showed as 2%
/// of the bridge's CPU at 600 calls (`perf`), and the 128 KiB default would cost far more.
const READ_BUFFER: usize = 4 * 1024;
/// Write buffer per socket; each message is flushed as it is sent anyway.
const WRITE_BUFFER: usize = 16 * 1024;
/// Largest message or frame accepted from the agent, far above any real one.
const MAX_MESSAGE: usize = 1024 * 1024;
/// How long `close` waits for the agent's closing frame. Completing the handshake lets the
/// TCP connection end with FIN: dropping a socket with unread data makes the kernel send a
/// reset, which can discard our close frame before the agent reads it.
const CLOSE_GRACE: Duration = Duration::from_secs(1);
/// Longest close reason kept from the agent.
const MAX_REASON_CHARS: usize = 120;

/// The WebSocket settings of a conversation socket, sized for 20 ms audio frames.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Only exceeded while the socket refuses writes; then `send` fails instead of
        // buffering without bound.
        .max_write_buffer_size(WRITE_BUFFER + 2 * MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

pub(crate) type Socket = WebSocketStream<MaybeTlsStream<RehomableStream>>;

/// [`AgentConnection`] over a tokio-tungstenite client socket.
pub(crate) struct WsConnection {
    socket: Socket,
    /// `close` ran (it runs once).
    close_started: bool,
    /// The stream has ended: later `recv`s return `None` without touching the socket.
    ended: bool,
}

impl WsConnection {
    pub(crate) fn new(socket: Socket) -> Self {
        Self {
            socket,
            close_started: false,
            ended: false,
        }
    }
}

#[async_trait]
impl AgentConnection for WsConnection {
    async fn send(&mut self, text: String) -> Result<(), VoiceAgentError> {
        if self.close_started || self.ended {
            return Err(VoiceAgentError::Closed(
                "the conversation is already closed".to_owned(),
            ));
        }
        self.socket
            .send(Message::text(text))
            .await
            .map_err(|error| VoiceAgentError::Closed(describe(&error)))
    }

    async fn recv(&mut self) -> Option<Result<String, VoiceAgentError>> {
        if self.ended {
            return None;
        }
        // Pings are answered by tungstenite itself: the pong is queued on read and flushed by
        // the next read, which this loop performs at once.
        loop {
            let Some(next) = self.socket.next().await else {
                self.ended = true;
                return None;
            };
            match next {
                Ok(Message::Text(text)) => return Some(Ok(text.as_str().to_owned())),
                Ok(
                    Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_),
                ) => {}
                Ok(Message::Close(frame)) => {
                    self.ended = true;
                    // tungstenite queued our closing answer; only a flush sends it, and no
                    // read follows once the stream has ended.
                    let _ = self.socket.flush().await;
                    return closed_by_agent(frame);
                }
                Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    self.ended = true;
                    return None;
                }
                Err(error) => {
                    self.ended = true;
                    return Some(Err(VoiceAgentError::Closed(describe(&error))));
                }
            }
        }
    }

    fn rehome(&mut self) {
        let stream = match self.socket.get_mut() {
            MaybeTlsStream::Plain(stream) => stream,
            MaybeTlsStream::Rustls(tls) => tls.get_mut().0,
            // tokio-tungstenite adds variants only with features outcall does not enable.
            _ => return,
        };
        if let Err(error) = stream.rehome() {
            // The socket is closed: the next send or receive reports it.
            tracing::warn!(error = %error, "moving the agent socket to this worker failed");
        }
    }

    async fn close(&mut self) {
        if self.close_started {
            return;
        }
        self.close_started = true;
        if self.ended {
            return;
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if self.socket.close(Some(frame)).await.is_err() {
            self.ended = true;
            return;
        }
        // Whatever the agent still sends is of no use now; wait for its close frame only.
        let drain = async { while let Some(Ok(_)) = self.socket.next().await {} };
        let _ = tokio::time::timeout(CLOSE_GRACE, drain).await;
        self.ended = true;
    }
}

/// A close frame from the agent: normal (1000, or no code) ends the stream; any other code
/// is a failure whose code and reason the caller records.
fn closed_by_agent(frame: Option<CloseFrame>) -> Option<Result<String, VoiceAgentError>> {
    let frame = frame?;
    if frame.code == CloseCode::Normal {
        return None;
    }
    let reason: String = frame
        .reason
        .as_str()
        .chars()
        .take(MAX_REASON_CHARS)
        .collect();
    let code = u16::from(frame.code);
    Some(Err(VoiceAgentError::Closed(if reason.is_empty() {
        format!("the agent closed the conversation with code {code}")
    } else {
        format!("the agent closed the conversation with code {code}: {reason}")
    })))
}

/// A description of a WebSocket error that can never contain the (credential-bearing) URL.
pub(crate) fn describe(error: &WsError) -> String {
    use tokio_tungstenite::tungstenite::error::UrlError;
    match error {
        WsError::Io(io) => format!("I/O error: {}", io.kind()),
        WsError::Http(response) => format!("HTTP {} in answer to the upgrade", response.status()),
        WsError::Url(UrlError::UnableToConnect(_)) => "unable to connect".to_owned(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_sized_for_small_audio_frames() {
        let config = ws_config();
        assert!(config.read_buffer_size <= 32 * 1024);
        assert!(config.write_buffer_size <= 32 * 1024);
        assert_eq!(config.max_message_size, Some(1024 * 1024));
        assert_eq!(config.max_frame_size, Some(1024 * 1024));
        assert!(config.max_write_buffer_size > config.write_buffer_size + MAX_MESSAGE);
    }

    #[test]
    fn only_a_normal_close_ends_the_stream_quietly() {
        assert!(closed_by_agent(None).is_none());
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "done".into(),
        };
        assert!(closed_by_agent(Some(normal)).is_none());
        let away = CloseFrame {
            code: CloseCode::Away,
            reason: "".into(),
        };
        match closed_by_agent(Some(away)) {
            Some(Err(VoiceAgentError::Closed(reason))) => {
                assert_eq!(reason, "the agent closed the conversation with code 1001");
            }
            other => panic!("expected Closed, got {other:?}"),
        }
    }
}
