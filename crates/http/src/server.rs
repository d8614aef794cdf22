//! The HTTP server around [`Api::app`]: actix-web's HTTP/1.1 service, plus an upgrade handler
//! that takes Twilio's media-stream WebSocket off the HTTP dispatcher.
//!
//! Through the app (actix-ws), a WebSocket's frames passed the dispatcher task, a payload
//! channel and a session channel: two extra task hops per 20 ms audio frame and direction. The
//! upgrade handler instead answers the handshake itself and hands the bare TCP stream, as a
//! [`MediaSocket`], to the task that relays it to the agent (the bridge's CPU per frame fell
//! by about a tenth and its p99 at 800 calls several-fold; `docs/benchmarks.md`).
//!
//! Every WebSocket upgrade (`Upgrade: websocket`) arrives here, whatever its path; only a
//! signed `GET /twilio/media-stream` is upgraded, any other gets the JSON error the app would
//! give, with its request id, and the connection closes.

use std::io;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use actix_codec::Framed;
use actix_http::body::BodySize;
use actix_http::h1::{self, Message};
use actix_http::{ConnectionType, HttpMessage, HttpService, Method, Request, Response, ws};
use actix_server::Server;
use actix_service::{IntoServiceFactory, ServiceFactoryExt, fn_service, map_config};
use actix_web::ResponseError;
use actix_web::dev::AppConfig;
use actix_web::http::header::HeaderValue;
use futures_util::SinkExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use outcall_domain::webhooks::paths;

use crate::error::ApiError;
use crate::media_socket::MediaSocket;
use crate::observe::{REQUEST_ID_HEADER, RequestId, error_body_with_request_id};
use crate::{Api, ApiState};

/// Largest frame (and largest message reassembled from continuations) accepted from Twilio.
/// Its frames are ~300 bytes; anything near this is not Twilio.
const MAX_FRAME_BYTES: usize = 64 * 1024;

/// How the server listens and stops.
#[derive(Debug, Clone, Copy)]
pub struct ServerOptions {
    /// How long workers wait for open connections when the server stops.
    pub shutdown_timeout_secs: u64,
}

/// Serves `api` on `listener` until stopped. Signals are not handled: the caller stops the
/// returned server (after draining live calls).
///
/// # Errors
/// When the listener cannot be registered.
pub fn serve(api: Api, listener: TcpListener, options: ServerOptions) -> io::Result<Server> {
    let addr = listener.local_addr()?;
    let builder = Server::build();
    // Tells idle keep-alive connections to close when the server stops, as HttpServer does.
    let stopping = builder.graceful_shutdown_signal();
    Ok(builder
        .listen("outcall", listener, move || {
            let media = MediaUpgrade {
                state: api.state.clone(),
            };
            let app = api
                .app()
                .into_factory()
                .map_err(|error: actix_web::Error| error.error_response());
            let stopping = stopping.clone();
            HttpService::build()
                .graceful_shutdown_signal(move || {
                    let stopping = stopping.clone();
                    async move { stopping.notified().await }
                })
                // actix-web's HttpServer default (actix-http's own is none).
                .client_disconnect_timeout(Duration::from_secs(1))
                // 20 ms audio frames must not wait for Nagle.
                .tcp_nodelay(true)
                .local_addr(addr)
                .upgrade(fn_service(move |(request, framed)| {
                    let media = media.clone();
                    async move {
                        if let Err(error) = media.upgrade(request, framed).await {
                            // The connection failed under us; nothing is left to answer.
                            tracing::debug!(error = %error, "WebSocket upgrade connection failed");
                        }
                        Ok::<_, actix_web::Error>(())
                    }
                }))
                .finish(map_config(app, move |()| {
                    AppConfig::__priv_test_new(false, addr.to_string(), addr)
                }))
                .tcp()
        })?
        .shutdown_timeout(options.shutdown_timeout_secs)
        // outcall handles SIGTERM/SIGINT itself: live calls drain before HTTP stops.
        .disable_signals()
        .run())
}

/// Answers WebSocket upgrades (see the module docs).
#[derive(Clone)]
struct MediaUpgrade {
    state: actix_web::web::Data<ApiState>,
}

impl MediaUpgrade {
    async fn upgrade<T>(self, request: Request, mut framed: Framed<T, h1::Codec>) -> io::Result<()>
    where
        T: AsyncRead + AsyncWrite + Unpin,
    {
        let started = Instant::now();
        let matched = request.path() == paths::MEDIA_STREAM;
        let refusal = if !matched {
            Some(ApiError::RouteNotFound)
        } else if request.method() != Method::GET {
            Some(ApiError::Http(
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
            ))
        } else if !crate::routes::media::is_signed(request.headers(), &self.state) {
            Some(ApiError::InvalidSignature)
        } else {
            None
        };
        let handshake = match refusal {
            Some(error) => Err(error),
            // A failed handshake's status is in its response only.
            None => ws::handshake(request.head())
                .map_err(|error| ApiError::Http(Response::from(error).status())),
        };
        let route = if matched {
            paths::MEDIA_STREAM
        } else {
            "unmatched"
        };
        let id = RequestId::from_header(request.headers().get(&REQUEST_ID_HEADER));
        let response = match handshake {
            Ok(mut builder) => {
                if let Ok(value) = HeaderValue::from_str(id.as_str()) {
                    builder.insert_header((REQUEST_ID_HEADER, value));
                }
                builder
                    .message_body(())
                    .map_err(|e| io::Error::other(e.to_string()))?
            }
            Err(error) => {
                let response = refuse(&mut framed, &error, &id).await;
                count(
                    request.method(),
                    route,
                    error.status_code().as_u16(),
                    started,
                );
                tracing::warn!(
                    request_id = %id,
                    method = %request.method(),
                    route,
                    status = error.status_code().as_u16(),
                    "WebSocket upgrade refused"
                );
                return response;
            }
        };
        framed.send((response, BodySize::None).into()).await?;
        count(request.method(), route, 101, started);
        let parts = framed.into_parts();
        let socket = MediaSocket::new(parts.io, parts.read_buf.to_vec(), twilio_ws_config());
        self.state.bridge.run(socket).await;
        Ok(())
    }
}

fn count(method: &Method, route: &'static str, status: u16, started: Instant) {
    let labels = [
        ("method", method.as_str().to_owned()),
        ("route", route.to_owned()),
        ("status", status.to_string()),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.as_str().to_owned(),
        "route" => route,
    )
    .record(started.elapsed().as_secs_f64());
}

/// Writes `error`'s JSON response (with the request id, as the app's middleware adds it) and
/// closes the connection.
async fn refuse<T>(
    framed: &mut Framed<T, h1::Codec>,
    error: &ApiError,
    id: &RequestId,
) -> io::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin,
{
    let (mut head, body) = Response::from(error.error_response()).into_parts();
    let body = actix_http::body::to_bytes(body)
        .await
        .map_err(|e| io::Error::other(e.to_string()))?;
    let body = error_body_with_request_id(&body, id).unwrap_or(body);
    let headers = head.headers_mut();
    headers.remove(actix_web::http::header::CONTENT_LENGTH);
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    head.head_mut().set_connection_type(ConnectionType::Close);
    let size = BodySize::Sized(body.len() as u64);
    framed.send(Message::Item((head, size))).await?;
    framed.send(Message::Chunk(Some(body))).await?;
    framed.send(Message::Chunk(None)).await?;
    framed.close().await
}

/// Twilio frames are ~300 bytes: a small read buffer, as for the agent sockets (tungstenite
/// zeroes the free read buffer before every read). Frames fed to the socket wait for the
/// bridge's flush unless they pile up past the write buffer size.
fn twilio_ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * MAX_FRAME_BYTES)
        .max_message_size(Some(MAX_FRAME_BYTES))
        .max_frame_size(Some(MAX_FRAME_BYTES))
}
