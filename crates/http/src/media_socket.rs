//! Twilio's media-stream WebSocket as the bridge's transport, driven straight from the
//! bridge's task.
//!
//! tungstenite's [`WebSocketContext`] does the protocol (frame parsing, unmasking, limits,
//! UTF-8, ping and close replies); this module lends it the socket for one call at a time
//! together with the polling task's [`Context`], so a socket that is not ready wakes that
//! task and surfaces in tungstenite as `WouldBlock`. tokio-tungstenite's `WebSocketStream`
//! does the same through two shared waker proxies, re-registered on every poll: with one
//! task per call there is nothing to share. That registration was about 3% of the bridge's
//! `perf` samples, half of it on this socket (`docs/benchmarks.md`).

use std::io::{self, Read, Write};
use std::pin::Pin;
use std::task::{Context, Poll, Waker, ready};

use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{
    CloseFrame, Role, WebSocketConfig, WebSocketContext,
};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// The socket, lent with the polling task's context for one tungstenite call.
struct Polled<'a, 'b, T> {
    io: &'a mut T,
    cx: &'a mut Context<'b>,
}

fn would_block<R>(polled: Poll<io::Result<R>>) -> io::Result<R> {
    match polled {
        Poll::Ready(result) => result,
        Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
    }
}

impl<T: AsyncRead + Unpin> Read for Polled<'_, '_, T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut buf = ReadBuf::new(buf);
        would_block(Pin::new(&mut *self.io).poll_read(self.cx, &mut buf))?;
        Ok(buf.filled().len())
    }
}

impl<T: AsyncWrite + Unpin> Write for Polled<'_, '_, T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        would_block(Pin::new(&mut *self.io).poll_write(self.cx, buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        would_block(Pin::new(&mut *self.io).poll_flush(self.cx))
    }
}

/// A server-side WebSocket: its text frames as a stream, a sink of text frames, closing with
/// 1000. Pings are answered by tungstenite; binary frames and pongs are skipped; a close
/// frame or an error ends the stream.
///
/// Frames fed to the sink are written at the next flush (one `send` for all of them), or at
/// once when they pass `write_buffer_size`.
pub(crate) struct MediaSocket<T> {
    io: T,
    ws: WebSocketContext,
    /// A frame is queued because the socket would block: flush before accepting more.
    blocked: bool,
    ended: bool,
    close_sent: bool,
}

impl<T: AsyncRead + AsyncWrite + Unpin> MediaSocket<T> {
    /// A socket whose handshake is done; `already_read` is what the HTTP codec read past the
    /// request head.
    pub(crate) fn new(io: T, already_read: Vec<u8>, config: WebSocketConfig) -> Self {
        Self {
            io,
            ws: WebSocketContext::from_partially_read(already_read, Role::Server, Some(config)),
            blocked: false,
            ended: false,
            close_sent: false,
        }
    }

    /// Runs one tungstenite call with the socket lent under `cx`; `WouldBlock` is `Pending`
    /// (the socket has registered `cx`'s waker).
    fn with<R>(
        &mut self,
        cx: &mut Context<'_>,
        call: impl FnOnce(&mut WebSocketContext, &mut Polled<'_, '_, T>) -> Result<R, WsError>,
    ) -> Poll<Result<R, WsError>> {
        let mut io = Polled {
            io: &mut self.io,
            cx,
        };
        match call(&mut self.ws, &mut io) {
            Err(WsError::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            other => Poll::Ready(other),
        }
    }

    fn poll_flush_socket(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let flushed = ready!(self.with(cx, |ws, io| ws.flush(io)));
        self.blocked = false;
        Poll::Ready(match flushed {
            // The close handshake finished while flushing: nothing is left to write.
            Err(WsError::ConnectionClosed) => Ok(()),
            other => other,
        })
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Stream for MediaSocket<T> {
    type Item = Result<String, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            match ready!(this.with(cx, |ws, io| ws.read(io))) {
                Ok(Message::Text(text)) => return Poll::Ready(Some(Ok(text.as_str().to_owned()))),
                Ok(Message::Close(_)) | Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => {
                    this.ended = true;
                }
                Ok(_) => {}
                Err(error) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> Sink<String> for MediaSocket<T> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.blocked {
            this.poll_flush_socket(cx)
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn start_send(self: Pin<&mut Self>, text: String) -> Result<(), WsError> {
        let this = self.get_mut();
        // No task context here: a write that would block leaves the frame queued, and the
        // next poll_ready or poll_flush, which has one, writes it.
        let mut cx = Context::from_waker(Waker::noop());
        match this.with(&mut cx, |ws, io| ws.write(io, Message::text(text))) {
            Poll::Ready(result) => result,
            Poll::Pending => {
                this.blocked = true;
                Ok(())
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.get_mut().poll_flush_socket(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        let closed = if this.close_sent {
            ready!(this.with(cx, |ws, io| ws.flush(io)))
        } else {
            this.close_sent = true;
            let frame = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            // Queues the close frame (once, even if this returns Pending) and flushes.
            ready!(this.with(cx, |ws, io| ws.close(io, Some(frame))))
        };
        Poll::Ready(match closed {
            // The close handshake is complete, or was before.
            Err(WsError::ConnectionClosed | WsError::AlreadyClosed) => Ok(()),
            other => other,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    use super::*;

    /// A masked client frame (RFC 6455 5.2), payload under 126 bytes.
    fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut frame = vec![0x80 | opcode, 0x80 | u8::try_from(payload.len()).unwrap()];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        frame
    }

    fn config() -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(4096)
            .write_buffer_size(16 * 1024)
            .max_message_size(Some(1024))
            .max_frame_size(Some(1024))
    }

    fn socket(already_read: Vec<u8>) -> (MediaSocket<DuplexStream>, DuplexStream) {
        let (server, client) = duplex(64 * 1024);
        (MediaSocket::new(server, already_read, config()), client)
    }

    /// Reads one unmasked server frame with a payload under 126 bytes.
    async fn server_frame(client: &mut DuplexStream) -> (u8, Vec<u8>) {
        let mut head = [0u8; 2];
        client.read_exact(&mut head).await.unwrap();
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let mut payload = vec![0u8; usize::from(head[1] & 0x7f)];
        client.read_exact(&mut payload).await.unwrap();
        (head[0] & 0x0f, payload)
    }

    #[tokio::test]
    async fn yields_text_frames_in_order_starting_with_the_bytes_read_during_the_handshake() {
        let (mut ws, mut client) = socket(client_frame(1, b"first"));
        client.write_all(&client_frame(1, b"second")).await.unwrap();
        assert_eq!(ws.next().await.unwrap().unwrap(), "first");
        assert_eq!(ws.next().await.unwrap().unwrap(), "second");
    }

    #[tokio::test]
    async fn a_frame_split_across_reads_waits_for_its_rest() {
        let (mut ws, mut client) = socket(Vec::new());
        let frame = client_frame(1, b"{\"event\":\"media\"}");
        client.write_all(&frame[..5]).await.unwrap();
        let reader = tokio::spawn(async move { ws.next().await.unwrap().unwrap() });
        tokio::task::yield_now().await;
        assert!(!reader.is_finished());
        client.write_all(&frame[5..]).await.unwrap();
        assert_eq!(reader.await.unwrap(), "{\"event\":\"media\"}");
    }

    #[tokio::test]
    async fn pings_are_answered_and_binary_frames_and_pongs_skipped() {
        let (mut ws, mut client) = socket(Vec::new());
        for frame in [
            client_frame(9, b"are you there"),
            client_frame(2, b"\x00\x01"),
            client_frame(10, b"unsolicited"),
            client_frame(1, b"text"),
        ] {
            client.write_all(&frame).await.unwrap();
        }
        assert_eq!(ws.next().await.unwrap().unwrap(), "text");
        assert_eq!(
            server_frame(&mut client).await,
            (10, b"are you there".to_vec())
        );
    }

    #[tokio::test]
    async fn fed_frames_are_written_at_the_flush_unmasked() {
        let (mut ws, mut client) = socket(Vec::new());
        ws.feed("one".to_owned()).await.unwrap();
        ws.feed("two".to_owned()).await.unwrap();
        ws.flush().await.unwrap();
        assert_eq!(server_frame(&mut client).await, (1, b"one".to_vec()));
        assert_eq!(server_frame(&mut client).await, (1, b"two".to_vec()));
    }

    /// Feeds 20 frames into a socket whose peer reads slowly through a 64-byte pipe, then
    /// flushes: every frame arrives, whole and in order.
    async fn write_to_a_full_socket(config: WebSocketConfig) {
        let (server, mut client) = duplex(64);
        let mut ws = MediaSocket::new(server, Vec::new(), config);
        let writer = tokio::spawn(async move {
            for i in 0..20u8 {
                ws.feed(char::from(b'a' + i).to_string().repeat(100))
                    .await
                    .unwrap();
            }
            ws.flush().await.unwrap();
        });
        for i in 0..20u8 {
            let mut head = [0u8; 2];
            client.read_exact(&mut head).await.unwrap();
            assert_eq!(head, [0x81, 100]);
            let mut payload = [0u8; 100];
            client.read_exact(&mut payload).await.unwrap();
            assert!(payload.iter().all(|&b| b == b'a' + i), "frame {i}");
        }
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn frames_fed_to_a_full_socket_wait_for_the_flush_and_lose_nothing() {
        write_to_a_full_socket(config()).await;
    }

    #[tokio::test]
    async fn frames_that_block_when_fed_are_written_before_the_next_is_accepted() {
        // No write buffer: every frame is written when fed, and blocks on the small pipe.
        // Without the flush before accepting the next, the queue would pass its bound.
        write_to_a_full_socket(config().write_buffer_size(0).max_write_buffer_size(300)).await;
    }

    #[tokio::test]
    async fn the_peers_close_ends_the_stream_and_is_answered() {
        let (mut ws, mut client) = socket(Vec::new());
        client
            .write_all(&client_frame(8, &1000u16.to_be_bytes()))
            .await
            .unwrap();
        assert!(ws.next().await.is_none());
        assert!(ws.next().await.is_none(), "the stream stays ended");
        ws.close().await.unwrap();
        let (opcode, payload) = server_frame(&mut client).await;
        assert_eq!(opcode, 8);
        assert_eq!(payload[..2], 1000u16.to_be_bytes());
    }

    #[tokio::test]
    async fn closing_first_sends_a_normal_close() {
        let (mut ws, mut client) = socket(Vec::new());
        ws.close().await.unwrap();
        let (opcode, payload) = server_frame(&mut client).await;
        assert_eq!((opcode, &payload[..]), (8, &1000u16.to_be_bytes()[..]));
    }

    #[tokio::test]
    async fn protocol_violations_end_the_stream_with_an_error() {
        for (frame, what) in [
            // Client frames must be masked.
            (vec![0x81, 0x02, b'h', b'i'], "unmasked"),
            // A text frame that is not UTF-8.
            (client_frame(1, &[0xff, 0xfe]), "invalid UTF-8"),
            // Reserved bits without a negotiated extension.
            (
                {
                    let mut f = client_frame(1, b"hi");
                    f[0] |= 0x40;
                    f
                },
                "RSV1",
            ),
        ] {
            let (mut ws, mut client) = socket(Vec::new());
            client.write_all(&frame).await.unwrap();
            assert!(matches!(ws.next().await, Some(Err(_))), "{what}");
            assert!(ws.next().await.is_none(), "{what}: the stream ends");
        }
    }

    #[tokio::test]
    async fn a_frame_over_the_limit_is_refused() {
        let (mut ws, mut client) = socket(Vec::new());
        // A 2,000-byte frame header (16-bit length) against a 1,024-byte limit.
        let mut frame = vec![0x81, 0x80 | 126];
        frame.extend_from_slice(&2000u16.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 0]);
        frame.extend(std::iter::repeat_n(b'a', 2000));
        client.write_all(&frame).await.unwrap();
        assert!(matches!(ws.next().await, Some(Err(WsError::Capacity(_)))));
    }

    #[tokio::test]
    async fn a_dropped_peer_ends_the_stream() {
        let (mut ws, client) = socket(Vec::new());
        drop(client);
        match ws.next().await {
            None | Some(Err(_)) => {}
            Some(Ok(text)) => panic!("unexpected frame {text}"),
        }
        assert!(ws.next().await.is_none());
    }
}
