//! The Twilio media stream socket as the media bridge's transport: actix-ws's
//! [`MessageStream`] and [`Session`] adapted to a stream and a sink of text frames.
//!
//! The adapter answers pings itself, skips binary frames and pongs, and ends the stream on a
//! close frame, a protocol error (reported once) or the end of the connection. It neither logs
//! nor allocates per frame beyond turning a received text frame into the bridge's `String`
//! (a copy only when the frame shares its buffer).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use actix_web::web::Bytes;
use actix_ws::{
    AggregatedMessage, AggregatedMessageStream, CloseCode, Closed, Message, MessageStream,
    ProtocolError, Session,
};
use futures_util::{Sink, Stream};
use outcall_media_bridge::Duplex;

/// Largest frame (and largest message reassembled from continuations) accepted from Twilio.
/// Its frames are ~300 bytes; anything near this is not Twilio.
pub(crate) const MAX_FRAME_BYTES: usize = 64 * 1024;

/// The transport [`outcall_media_bridge::MediaBridge::run`] is given.
pub(crate) type TwilioSocket = Duplex<TwilioFrames, TwilioSink>;

/// Joins the two halves actix-ws hands out after the upgrade.
pub(crate) fn twilio_socket(session: Session, messages: MessageStream) -> TwilioSocket {
    let messages = messages
        .max_frame_size(MAX_FRAME_BYTES)
        .aggregate_continuations()
        .max_continuation_size(MAX_FRAME_BYTES);
    Duplex::new(
        TwilioFrames {
            messages,
            control: session.clone(),
            pong: None,
            ended: false,
        },
        TwilioSink {
            session,
            close_sent: false,
        },
    )
}

/// The text frames Twilio sends.
pub(crate) struct TwilioFrames {
    messages: AggregatedMessageStream,
    /// Answers pings; a clone of the sink's session with its own place in the send queue.
    control: Session,
    /// The payload of a ping not answered yet (the send queue was full). A newer ping
    /// replaces it: one pong answers all pings sent before it.
    pong: Option<Bytes>,
    ended: bool,
}

impl TwilioFrames {
    fn answer_ping(&mut self, cx: &mut Context<'_>) {
        let Some(payload) = self.pong.take() else {
            return;
        };
        match Pin::new(&mut self.control).poll_ready(cx) {
            Poll::Ready(Ok(())) => {
                // A failure means the socket is closing: nobody is left to answer.
                let _ = Pin::new(&mut self.control).start_send(Message::Pong(payload));
            }
            Poll::Ready(Err(Closed)) => {}
            // Woken when the queue has room; answered on the next poll.
            Poll::Pending => self.pong = Some(payload),
        }
    }
}

impl Stream for TwilioFrames {
    type Item = Result<String, ProtocolError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.ended {
                return Poll::Ready(None);
            }
            this.answer_ping(cx);
            match ready!(Pin::new(&mut this.messages).poll_next(cx)) {
                Some(Ok(AggregatedMessage::Text(text))) => {
                    return Poll::Ready(Some(Ok(String::from(text))));
                }
                Some(Ok(AggregatedMessage::Ping(payload))) => this.pong = Some(payload),
                Some(Ok(AggregatedMessage::Binary(_) | AggregatedMessage::Pong(_))) => {}
                Some(Ok(AggregatedMessage::Close(_))) | None => this.ended = true,
                Some(Err(error)) => {
                    this.ended = true;
                    return Poll::Ready(Some(Err(error)));
                }
            }
        }
    }
}

/// Sends text frames to Twilio; closing sends a normal (1000) close frame.
pub(crate) struct TwilioSink {
    session: Session,
    close_sent: bool,
}

impl Sink<String> for TwilioSink {
    type Error = Closed;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        Pin::new(&mut self.get_mut().session).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, text: String) -> Result<(), Closed> {
        Pin::new(&mut self.get_mut().session).start_send(Message::Text(text.into()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        Pin::new(&mut self.get_mut().session).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Closed>> {
        let this = self.get_mut();
        if !this.close_sent {
            let ready = ready!(Pin::new(&mut this.session).poll_ready(cx));
            this.close_sent = true;
            if ready.is_err() {
                // The connection is gone already.
                return Poll::Ready(Ok(()));
            }
            Pin::new(&mut this.session)
                .start_send(Message::Close(Some(CloseCode::Normal.into())))?;
        }
        Pin::new(&mut this.session).poll_close(cx)
    }
}
