//! The one public port: reads each connection's request head, hands conversation upgrades to
//! the WebSocket side and proxies everything else to the internal actix-web server.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use super::conversation;
use super::state::Shared;

/// The conversation WebSocket's path (protocols 6.1).
pub(crate) const CONVERSATION_PATH: &str = "/v1/convai/conversation";
const MAX_HEAD_BYTES: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, backend: SocketAddr) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait a moment instead of spinning.
                tracing::debug!(%error, "ElevenLabs emulator accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        // Audio is many small messages: Nagle and delayed ACKs would add latency spikes.
        let _ = stream.set_nodelay(true);
        let task = handle(shared.clone(), stream, backend);
        if !shared.tasks.spawn(task) {
            return;
        }
    }
}

async fn handle(shared: Arc<Shared>, mut stream: TcpStream, backend: SocketAddr) {
    let Ok(Ok(head)) = tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await else {
        return;
    };
    if is_conversation_upgrade(&head) {
        conversation::serve(shared, Prefixed::new(head, stream)).await;
    } else {
        proxy(stream, head, backend).await;
    }
}

/// Reads until the end of the request head (or `MAX_HEAD_BYTES`, or EOF); returns what was read.
async fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.len() >= MAX_HEAD_BYTES {
            return Ok(head);
        }
        let mut chunk = [0_u8; 2048];
        let limit = chunk.len().min(MAX_HEAD_BYTES - head.len());
        let read = stream.read(&mut chunk[..limit]).await?;
        if read == 0 {
            return Ok(head);
        }
        head.extend_from_slice(&chunk[..read]);
    }
}

/// A `GET` of the conversation path with `Upgrade: websocket`.
fn is_conversation_upgrade(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let Some(request_line) = lines.next() else {
        return false;
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return false;
    };
    let path = target.split('?').next().unwrap_or(target);
    if method != "GET" || path != CONVERSATION_PATH {
        return false;
    }
    lines
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.split_once(':'))
        .any(|(name, value)| {
            name.trim().eq_ignore_ascii_case("upgrade")
                && value
                    .split(',')
                    .any(|v| v.trim().eq_ignore_ascii_case("websocket"))
        })
}

async fn proxy(mut client: TcpStream, head: Vec<u8>, backend: SocketAddr) {
    let Ok(mut server) = TcpStream::connect(backend).await else {
        return;
    };
    let _ = server.set_nodelay(true);
    if server.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

/// A stream whose first bytes were already read: they are read again first.
pub(crate) struct Prefixed {
    prefix: Vec<u8>,
    position: usize,
    inner: TcpStream,
}

impl Prefixed {
    fn new(prefix: Vec<u8>, inner: TcpStream) -> Self {
        Self {
            prefix,
            position: 0,
            inner,
        }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let rest = this.prefix.get(this.position..).unwrap_or_default();
        if !rest.is_empty() {
            let count = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..count]);
            this.position += count;
            if this.position >= this.prefix.len() {
                this.prefix = Vec::new();
                this.position = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_websocket_get_of_the_conversation_path_is_an_upgrade() {
        let upgrade = b"GET /v1/convai/conversation?agent_id=a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nupgrade: WebSocket\r\n\r\n";
        assert!(is_conversation_upgrade(upgrade));
        let plain = b"GET /v1/convai/conversation?agent_id=a HTTP/1.1\r\nHost: x\r\n\r\n";
        assert!(!is_conversation_upgrade(plain));
        let other_path = b"GET /v1/convai/conversations/x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        assert!(!is_conversation_upgrade(other_path));
        let post = b"POST /v1/convai/conversation HTTP/1.1\r\nUpgrade: websocket\r\n\r\n";
        assert!(!is_conversation_upgrade(post));
        // The header must be in the head, not in a body.
        let in_body = b"GET /v1/convai/conversation HTTP/1.1\r\n\r\nUpgrade: websocket\r\n";
        assert!(!is_conversation_upgrade(in_body));
        assert!(!is_conversation_upgrade(b""));
        assert!(!is_conversation_upgrade(&[0xff, 0xfe, b' ', b'\r']));
    }

    #[tokio::test]
    async fn a_prefixed_stream_reads_its_prefix_then_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let writer = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            socket.write_all(b" world").await.unwrap();
        });
        let stream = TcpStream::connect(address).await.unwrap();
        let mut prefixed = Prefixed::new(b"hello".to_vec(), stream);
        let mut small = [0_u8; 3];
        prefixed.read_exact(&mut small).await.unwrap();
        assert_eq!(&small, b"hel");
        let mut rest = Vec::new();
        prefixed.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"lo world");
        writer.await.unwrap();
    }
}
