//! A round-robin TCP proxy standing in for the load balancer in front of several replicas,
//! with no stickiness: each accepted connection goes to the next backend in turn. There is one
//! turn per kind of connection (the path of its first request), so consecutive connections of
//! one kind — the media streams, say — are spread evenly whatever else comes in between,
//! while one caller's connections of different kinds (a call's TwiML fetch and its media
//! stream) land on replicas independently. It routes connections, not requests: a client
//! that keeps connections alive (the emulators' HTTP clients do) sends the later requests of
//! a pooled connection to the backend its first request chose, so only traffic with one
//! connection per exchange (each media stream is a new WebSocket) is spread exactly evenly.
//! It records where every connection went and its first line (the HTTP request line), so a
//! test can check that the load was spread.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One proxied connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxiedConnection {
    /// Index of the backend it went to (in the order given to [`RoundRobinProxy::set_backends`]).
    pub backend: usize,
    /// The first line the client sent (an HTTP request line such as
    /// `GET /twilio/media-stream HTTP/1.1`); empty if it sent none.
    pub first_line: String,
}

#[derive(Default)]
struct State {
    backends: Vec<SocketAddr>,
    /// The next turn per kind of connection (request path).
    next: HashMap<String, usize>,
    connections: Vec<ProxiedConnection>,
}

impl State {
    /// The backend for a connection whose first line is `first_line`, recorded.
    fn pick(&mut self, first_line: &str) -> Option<(usize, SocketAddr)> {
        if self.backends.is_empty() {
            return None;
        }
        // "POST /twilio/status?callId=.. HTTP/1.1" -> "/twilio/status"
        let kind = first_line
            .split_whitespace()
            .nth(1)
            .and_then(|target| target.split('?').next())
            .unwrap_or_default()
            .to_owned();
        let turn = self.next.entry(kind).or_default();
        let index = *turn % self.backends.len();
        *turn += 1;
        self.connections.push(ProxiedConnection {
            backend: index,
            first_line: first_line.to_owned(),
        });
        Some((index, self.backends[index]))
    }
}

/// A running proxy on `127.0.0.1` (an ephemeral port). Stops when dropped.
pub struct RoundRobinProxy {
    address: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: tokio::task::JoinHandle<()>,
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RoundRobinProxy {
    /// Binds and starts accepting. Connections that arrive before [`Self::set_backends`] are
    /// closed (the public URL is needed before the replicas it leads to exist).
    ///
    /// # Errors
    /// When binding fails.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the proxy")?;
        let address = listener.local_addr().context("reading the proxy address")?;
        let state = Arc::new(Mutex::new(State::default()));
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let state = accept_state.clone();
                tokio::spawn(async move {
                    let _ = relay(client, state).await;
                });
            }
        });
        Ok(Self {
            address,
            state,
            accept,
        })
    }

    /// `http://127.0.0.1:PORT`: the replicas' shared public URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Where new connections go from now on, in turn.
    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        let mut state = lock(&self.state);
        state.backends = backends;
        state.next.clear();
    }

    /// Every connection proxied so far, in the order their first lines arrived.
    pub fn connections(&self) -> Vec<ProxiedConnection> {
        lock(&self.state).connections.clone()
    }

    /// How many connections each backend got.
    pub fn connections_per_backend(&self) -> Vec<usize> {
        let state = lock(&self.state);
        let mut counts = vec![0; state.backends.len()];
        for connection in &state.connections {
            if let Some(count) = counts.get_mut(connection.backend) {
                *count += 1;
            }
        }
        counts
    }
}

impl Drop for RoundRobinProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Reads the client's first line, picks the backend for it, then copies both ways.
async fn relay(mut client: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let _ = client.set_nodelay(true);
    // Read until the first line is complete (or 8 KiB, or the client stops).
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < 8192 {
        let read = client.read(&mut chunk).await?;
        if read == 0 {
            break;
        }
        head.extend_from_slice(&chunk[..read]);
    }
    let first_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let Some((_, backend)) = lock(&state).pick(&first_line) else {
        return Ok(()); // no backend yet: the connection is closed
    };
    let mut server = TcpStream::connect(backend).await?;
    let _ = server.set_nodelay(true);
    server.write_all(&head).await?;
    tokio::io::copy_bidirectional(&mut client, &mut server).await?;
    Ok(())
}
