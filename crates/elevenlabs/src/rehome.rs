//! A TCP stream that can move to the thread that drives it.
//!
//! A tokio socket is registered with the reactor of the runtime that opened it, and that
//! reactor wakes whichever task polls it. outcall's HTTP workers are one runtime per thread,
//! and an agent connection prepared while serving a call's TwiML is opened on that worker,
//! while Twilio's media stream may land on another: without moving, every agent frame of
//! that call would wake the first worker to wake the second (measured: more CPU per call and
//! a higher agent-to-caller p99, `docs/benchmarks.md`). Moving is deregistering the socket
//! and registering it again with the current runtime; bytes waiting in the kernel stay where
//! they are. It sits under TLS and WebSocket framing, whose state does not change.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A [`TcpStream`] that [`RehomableStream::rehome`] re-registers with the current runtime.
#[derive(Debug)]
pub(crate) struct RehomableStream {
    /// `None` only when re-registering failed, which closes the stream.
    stream: Option<TcpStream>,
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the socket was lost while moving it to another thread",
    )
}

impl RehomableStream {
    pub(crate) fn new(stream: TcpStream) -> Self {
        Self {
            stream: Some(stream),
        }
    }

    /// Re-registers the socket with the runtime of the calling task. Must be called from
    /// within a tokio runtime. On failure the stream is closed.
    pub(crate) fn rehome(&mut self) -> io::Result<()> {
        let stream = self.stream.take().ok_or_else(gone)?;
        let moved = TcpStream::from_std(stream.into_std()?)?;
        self.stream = Some(moved);
        Ok(())
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        self.stream.as_mut().map(Pin::new).ok_or_else(gone)
    }
}

impl AsyncRead for RehomableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for RehomableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(stream) => stream.poll_write_vectored(cx, bufs),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream
            .as_ref()
            .is_some_and(TcpStream::is_write_vectored)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// A connected pair opened on a runtime of its own, which is then shut down: the
    /// client end's registration dies with it, as a prepared agent socket's would be
    /// useless to a worker other than the one that opened it.
    fn pair_from_a_finished_runtime() -> (RehomableStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime
                .block_on(async { RehomableStream::new(TcpStream::connect(addr).await.unwrap()) })
        })
        .join()
        .unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_rehomed_stream_reads_and_writes_on_its_new_runtime() {
        let (mut client, mut server) = pair_from_a_finished_runtime();
        client.rehome().unwrap();

        std::io::Write::write_all(&mut server, b"waiting in the kernel").unwrap();
        let mut buffer = [0u8; 21];
        client.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"waiting in the kernel");

        client.write_all(b"reply").await.unwrap();
        let mut reply = [0u8; 5];
        std::io::Read::read_exact(&mut server, &mut reply).unwrap();
        assert_eq!(&reply, b"reply");
    }

    #[tokio::test]
    async fn a_stream_left_on_its_old_runtime_cannot_be_driven() {
        // The control for the test above: without rehome, its reactor is gone.
        let (mut client, mut server) = pair_from_a_finished_runtime();
        std::io::Write::write_all(&mut server, b"x").unwrap();
        let mut buffer = [0u8; 1];
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            client.read_exact(&mut buffer),
        )
        .await;
        assert!(
            !matches!(read, Ok(Ok(_))),
            "a socket of a shut-down runtime read data"
        );
    }
}
