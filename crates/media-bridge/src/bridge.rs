//! The tokio shell around [`Session`]: it moves text frames between the Twilio socket and the
//! agent connection, arms one timer, and records what the session reports. One future per
//! call drives both directions; nothing on the audio path logs or waits for storage.

use std::collections::HashMap;
use std::fmt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{BoxFuture, join_all};
use futures_util::{Sink, SinkExt, Stream, StreamExt};
use outcall_domain::ports::{AgentConnection, VoiceAgent, VoiceAgentError};
use outcall_domain::services::{LiveCalls, StreamContext, StreamRefusal};
use outcall_domain::values::{CallId, ConversationId};
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::{Instant, sleep_until, timeout, timeout_at};
use tracing::{debug, info, warn};

use self::latency::{RelayTimer, Source};
use crate::protocol;
use crate::session::{Counters, Disposition, EndReason, Output, Session, SessionConfig};

/// How the bridge times, buffers and waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeConfig {
    pub session: SessionConfig,
    /// Longest wait for the agent connection (signed URL, socket, client data).
    pub connect_timeout: Duration,
    /// How long a [`MediaBridge::prepare`]d connection waits for its stream before closing.
    /// Keep it below the provider's wait for `conversation_initiation_client_data` (the
    /// emulator closes after 10 s), or a late stream may get a socket the provider dropped.
    pub prepare_timeout: Duration,
    /// The live transcript is stored at most this often (and always at the end).
    pub transcript_interval: Duration,
    /// Longest wait for the final writes (transcript, end reason, hang-up) of one call.
    pub persist_timeout: Duration,
    /// Longest wait for either socket to close.
    pub close_timeout: Duration,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self {
            session: SessionConfig::default(),
            connect_timeout: Duration::from_secs(10),
            prepare_timeout: Duration::from_secs(8),
            transcript_interval: Duration::from_secs(2),
            persist_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(2),
        }
    }
}

/// How often a session adds what it counted to the shared [`BridgeStats`] (and always at its
/// end): metrics are scraped every few seconds, frames arrive every 20 ms per call.
const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// Counters for metrics, updated without locks.
#[derive(Debug, Default)]
pub struct BridgeStats {
    live_sessions: AtomicU64,
    prepared_sessions: AtomicU64,
    sessions_total: AtomicU64,
    streams_refused: AtomicU64,
    frames_to_agent: AtomicU64,
    frames_to_twilio: AtomicU64,
    frames_dropped: AtomicU64,
    malformed_messages: AtomicU64,
    unknown_messages: AtomicU64,
}

/// A point-in-time copy of [`BridgeStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Media streams being bridged now.
    pub live_sessions: u64,
    /// Prepared agent connections not yet claimed or closed.
    pub prepared_sessions: u64,
    pub sessions_total: u64,
    pub streams_refused: u64,
    pub frames_to_agent: u64,
    pub frames_to_twilio: u64,
    pub frames_dropped: u64,
    pub malformed_messages: u64,
    pub unknown_messages: u64,
}

impl BridgeStats {
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            live_sessions: get(&self.live_sessions),
            prepared_sessions: get(&self.prepared_sessions),
            sessions_total: get(&self.sessions_total),
            streams_refused: get(&self.streams_refused),
            frames_to_agent: get(&self.frames_to_agent),
            frames_to_twilio: get(&self.frames_to_twilio),
            frames_dropped: get(&self.frames_dropped),
            malformed_messages: get(&self.malformed_messages),
            unknown_messages: get(&self.unknown_messages),
        }
    }

    /// Adds what a session counted since `synced`.
    fn add(&self, now: Counters, synced: &mut Counters) {
        if now == *synced {
            return;
        }
        let add = |counter: &AtomicU64, new: u64, old: u64| {
            if new > old {
                counter.fetch_add(new - old, Ordering::Relaxed);
            }
        };
        add(
            &self.frames_to_agent,
            now.frames_to_agent,
            synced.frames_to_agent,
        );
        add(
            &self.frames_to_twilio,
            now.frames_to_twilio,
            synced.frames_to_twilio,
        );
        add(
            &self.frames_dropped,
            now.frames_dropped,
            synced.frames_dropped,
        );
        add(
            &self.malformed_messages,
            now.malformed_messages,
            synced.malformed_messages,
        );
        add(
            &self.unknown_messages,
            now.unknown_messages,
            synced.unknown_messages,
        );
        *synced = now;
    }
}

/// Decrements a gauge when dropped, so a cancelled future still gives its slot back.
struct Gauge<'a> {
    counter: &'a AtomicU64,
    ended: Option<&'a Notify>,
}

impl<'a> Gauge<'a> {
    fn up(counter: &'a AtomicU64, ended: Option<&'a Notify>) -> Self {
        counter.fetch_add(1, Ordering::Relaxed);
        Self { counter, ended }
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::Relaxed);
        if let Some(ended) = self.ended {
            ended.notify_waiters();
        }
    }
}

type Prepared = Result<(StreamContext, Box<dyn AgentConnection>), String>;

/// An agent connection opened ahead of its media stream.
struct PreparedEntry {
    id: u64,
    ready: oneshot::Receiver<Prepared>,
    /// Dropped when the entry leaves the map, which tells the preparing task to stop waiting;
    /// whoever removes the entry closes the connection it holds.
    _claimed: oneshot::Sender<()>,
}

struct Shared {
    prepared: Mutex<HashMap<CallId, PreparedEntry>>,
    next_prepared_id: AtomicU64,
    draining: AtomicBool,
    abort: watch::Sender<bool>,
    session_ended: Notify,
}

impl Shared {
    fn prepared(&self) -> MutexGuard<'_, HashMap<CallId, PreparedEntry>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.prepared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The media bridge. Cheap to clone; clones share statistics, prepared connections and
/// shutdown.
///
/// How the HTTP layer uses it:
/// - after serving a call's stream TwiML (signed Twilio request): [`MediaBridge::prepare`]
///   with the call id, so the agent connects while Twilio opens the stream;
/// - on the media stream WebSocket upgrade (signature checked first): adapt the socket to a
///   `Stream<Item = Result<String, E>> + Sink<String>` of text frames (with [`Duplex`] when it
///   comes in two halves) and spawn [`MediaBridge::run`] on it;
/// - on shutdown: [`MediaBridge::drain`]; read [`MediaBridge::stats`] for metrics.
#[derive(Clone)]
pub struct MediaBridge {
    live: LiveCalls,
    agent: Arc<dyn VoiceAgent>,
    config: Arc<BridgeConfig>,
    stats: Arc<BridgeStats>,
    shared: Arc<Shared>,
}

impl fmt::Debug for MediaBridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaBridge")
            .field("config", &self.config)
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

enum OpenError {
    /// The stream may not be bridged: close it, record nothing.
    Refused(StreamRefusal),
    /// The call is ours but its agent could not be connected.
    Agent { call_id: CallId, reason: String },
}

/// What the relay loop ended with.
enum Finish {
    Ended(EndReason),
    Refused,
}

/// A safe, short description of an agent error for the call record; the full error goes to
/// the log only (it may name URLs).
fn describe(error: &VoiceAgentError) -> &'static str {
    match error {
        VoiceAgentError::Rejected(_) => "the provider refused the conversation",
        VoiceAgentError::Closed(_) => "the connection closed unexpectedly",
        VoiceAgentError::Unavailable(_) => "the provider could not be reached",
    }
}

fn std_now() -> std::time::Instant {
    // tokio's clock, so that paused test time drives the session too.
    Instant::now().into_std()
}

async fn next_agent_message(
    agent: &mut Option<Box<dyn AgentConnection>>,
) -> Option<Result<String, VoiceAgentError>> {
    match agent {
        Some(connection) => connection.recv().await,
        None => std::future::pending().await,
    }
}

async fn completion<T>(slot: &mut Option<BoxFuture<'static, T>>) -> T {
    match slot {
        Some(future) => {
            let value = future.await;
            *slot = None;
            value
        }
        None => std::future::pending().await,
    }
}

impl MediaBridge {
    pub fn new(live: LiveCalls, agent: Arc<dyn VoiceAgent>, config: BridgeConfig) -> Self {
        Self {
            live,
            agent,
            config: Arc::new(config),
            stats: Arc::new(BridgeStats::default()),
            shared: Arc::new(Shared {
                prepared: Mutex::new(HashMap::new()),
                next_prepared_id: AtomicU64::new(0),
                draining: AtomicBool::new(false),
                abort: watch::Sender::new(false),
                session_ended: Notify::new(),
            }),
        }
    }

    pub fn stats(&self) -> Arc<BridgeStats> {
        self.stats.clone()
    }

    /// Starts connecting the call's agent now (call it when serving the call's TwiML), so the
    /// agent is ready when the media stream starts. A connection no stream claims within
    /// `prepare_timeout` is closed; a stream without one connects as usual. Needs a tokio
    /// runtime; does nothing while draining or when the call is already prepared.
    pub fn prepare(&self, call_id: &CallId) {
        if self.shared.draining.load(Ordering::Relaxed) {
            return;
        }
        let (ready_tx, ready_rx) = oneshot::channel();
        let (claimed_tx, claimed_rx) = oneshot::channel();
        let id = self.shared.next_prepared_id.fetch_add(1, Ordering::Relaxed);
        {
            let mut prepared = self.shared.prepared();
            if prepared.contains_key(call_id) {
                return;
            }
            prepared.insert(
                call_id.clone(),
                PreparedEntry {
                    id,
                    ready: ready_rx,
                    _claimed: claimed_tx,
                },
            );
        }
        let bridge = self.clone();
        let call_id = call_id.clone();
        tokio::spawn(async move {
            bridge.prepare_task(call_id, id, ready_tx, claimed_rx).await;
        });
    }

    async fn prepare_task(
        self,
        call_id: CallId,
        id: u64,
        ready: oneshot::Sender<Prepared>,
        claimed: oneshot::Receiver<()>,
    ) {
        let _gauge = Gauge::up(&self.stats.prepared_sessions, None);
        let deadline = Instant::now() + self.config.prepare_timeout;
        let opened = match timeout(
            self.config.connect_timeout,
            self.claim_and_connect(&call_id),
        )
        .await
        {
            Ok(opened) => opened,
            Err(_) => Err("timed out".to_owned()),
        };
        if let Err(e) = &opened {
            warn!(call_id = %call_id, error = %e, "preparing the agent connection failed");
        }
        if let Err(Ok((_, mut connection))) = ready.send(opened) {
            // Nobody waits for it any more.
            self.close_agent(&mut connection).await;
            return;
        }
        tokio::select! {
            _ = claimed => return,
            () = sleep_until(deadline) => {}
        }
        let entry = {
            let mut prepared = self.shared.prepared();
            match prepared.get(&call_id) {
                Some(entry) if entry.id == id => prepared.remove(&call_id),
                _ => None,
            }
        };
        if let Some(mut entry) = entry {
            info!(call_id = %call_id, "a prepared agent connection was never claimed");
            if let Ok(Ok((_, mut connection))) = entry.ready.try_recv() {
                self.close_agent(&mut connection).await;
            }
        }
    }

    async fn claim_and_connect(&self, call_id: &CallId) -> Prepared {
        let context = self
            .live
            .claim_stream(call_id, None)
            .await
            .map_err(|e| e.to_string())?;
        let connection = self
            .agent
            .connect(&context.agent_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok((context, connection))
    }

    /// Claims the call for a started stream and opens its agent conversation, using a
    /// prepared connection when there is one.
    async fn open_agent(
        self,
        call_id: CallId,
        claimed_agent: Option<String>,
    ) -> Result<(StreamContext, Box<dyn AgentConnection>), OpenError> {
        let prepared = self.shared.prepared().remove(&call_id);
        if let Some(entry) = prepared {
            let PreparedEntry { ready, .. } = entry;
            if let Ok(Ok((context, mut connection))) = ready.await {
                // Opened by the preparing task, maybe on another worker thread: this task
                // drives it from now on.
                connection.rehome();
                if claimed_agent
                    .as_deref()
                    .is_some_and(|claimed| claimed != context.agent_id.as_str())
                {
                    self.close_agent(&mut connection).await;
                    return Err(OpenError::Refused(StreamRefusal::NoAgent));
                }
                match connection.send(protocol::client_data(&context)).await {
                    Ok(()) => return Ok((context, connection)),
                    // A prepared socket that died while waiting: connect afresh.
                    Err(_) => self.close_agent(&mut connection).await,
                }
            }
        }
        let context = self
            .live
            .claim_stream(&call_id, claimed_agent.as_deref())
            .await
            .map_err(OpenError::Refused)?;
        let connect = async {
            let mut connection = self.agent.connect(&context.agent_id).await?;
            if let Err(e) = connection.send(protocol::client_data(&context)).await {
                self.close_agent(&mut connection).await;
                return Err(e);
            }
            Ok(connection)
        };
        let failure = match timeout(self.config.connect_timeout, connect).await {
            Ok(Ok(connection)) => return Ok((context, connection)),
            Ok(Err(e)) => {
                warn!(call_id = %call_id, error = %e, "connecting the agent failed");
                describe(&e)
            }
            Err(_) => "timed out",
        };
        Err(OpenError::Agent {
            call_id: context.call_id,
            reason: failure.to_owned(),
        })
    }

    async fn close_agent(&self, connection: &mut Box<dyn AgentConnection>) {
        let _ = timeout(self.config.close_timeout, connection.close()).await;
    }

    /// Bridges one Twilio media stream until the call's bridge ends, then closes both sides
    /// and records the outcome (conversation id, transcript, end reason; hang-up or failure as
    /// the reason requires). Returns when all of that is done; nothing of the call outlives it.
    ///
    /// `twilio` yields the socket's text frames (`None` or an error once it closed; binary,
    /// ping and pong frames are the adapter's business) and accepts text frames to send;
    /// [`Duplex`] joins two halves. Run it to completion (spawn it): dropping it mid-call
    /// skips the final writes. Use [`MediaBridge::drain`] to stop.
    ///
    /// The agent connection's `recv` must be cancel-safe (as a WebSocket stream's `next` is):
    /// it is raced against the Twilio socket and timers, and dropped when another side wins.
    pub async fn run<S, E>(&self, mut twilio: S)
    where
        S: Stream<Item = Result<String, E>> + Sink<String> + Unpin,
        E: fmt::Display,
    {
        if self.shared.draining.load(Ordering::Relaxed) {
            self.stats.streams_refused.fetch_add(1, Ordering::Relaxed);
            let _ = timeout(self.config.close_timeout, twilio.close()).await;
            return;
        }
        let _live = Gauge::up(&self.stats.live_sessions, Some(&self.shared.session_ended));
        self.stats.sessions_total.fetch_add(1, Ordering::Relaxed);
        let mut session = Session::new(self.config.session.clone(), std_now());
        let mut agent: Option<Box<dyn AgentConnection>> = None;
        let mut persister: Option<Persister> = None;
        let mut synced = Counters::default();
        let finish = self
            .relay(
                &mut twilio,
                &mut session,
                &mut agent,
                &mut persister,
                &mut synced,
            )
            .await;
        self.stats.add(session.counters(), &mut synced);

        if let Some(connection) = agent.as_mut() {
            self.close_agent(connection).await;
        }
        drop(agent);
        let _ = timeout(self.config.close_timeout, twilio.close()).await;

        let reason = match finish {
            Finish::Refused => {
                self.stats.streams_refused.fetch_add(1, Ordering::Relaxed);
                return;
            }
            Finish::Ended(reason) => reason,
        };
        let counters = session.counters();
        let Some(persister) = persister else {
            info!(reason = %reason, "media stream ended before its call was claimed");
            return;
        };
        let call_id = persister.call_id.clone();
        if timeout(
            self.config.persist_timeout,
            persister.finish(&session, &reason),
        )
        .await
        .is_err()
        {
            warn!(call_id = %call_id, "recording the end of the call timed out");
        }
        info!(
            call_id = %call_id,
            reason = %reason,
            frames_to_agent = counters.frames_to_agent,
            frames_to_twilio = counters.frames_to_twilio,
            frames_dropped = counters.frames_dropped,
            malformed = counters.malformed_messages,
            "media stream ended"
        );
    }

    async fn relay<S, E>(
        &self,
        twilio: &mut S,
        session: &mut Session,
        agent: &mut Option<Box<dyn AgentConnection>>,
        persister: &mut Option<Persister>,
        synced: &mut Counters,
    ) -> Finish
    where
        S: Stream<Item = Result<String, E>> + Sink<String> + Unpin,
        E: fmt::Display,
    {
        let mut opening: Option<BoxFuture<'static, Result<_, OpenError>>> = None;
        // For the refusal log line: the only detail of a refused stream that is logged.
        let mut claimed: Option<CallId> = None;
        // Made once, not per iteration (re-registering a waiter on every frame showed in
        // profiles); it completes at most once.
        let mut abort = self.shared.abort.subscribe();
        let aborted = async move {
            // The sender lives as long as the bridge: an error only means no abort can come.
            if abort.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(aborted);
        let mut abort_seen = false;
        // The shared counters are bumped at most every STATS_INTERVAL (and at the end), not
        // per frame: at 1,000 calls, both workers would bump the same cache line 100,000 times
        // a second.
        let mut next_sync = Instant::now();
        let mut latency = RelayTimer::new();
        // One timer per call, re-armed only when a deadline comes earlier than the armed one
        // or after it fired: idle deadlines move on every frame.
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let mut armed = far;
        let sleep = sleep_until(far);
        tokio::pin!(sleep);

        loop {
            let mut unflushed = false;
            while let Some(output) = session.poll_output() {
                match output {
                    Output::ToTwilio(text) => {
                        if twilio.feed(text).await.is_ok() {
                            unflushed = true;
                            latency.fed_to_twilio();
                        } else {
                            session.twilio_closed();
                        }
                    }
                    Output::ToAgent(text) => {
                        if let Some(connection) = agent.as_mut() {
                            match connection.send(text).await {
                                Ok(()) => latency.sent_to_agent(std_now()),
                                Err(e) => session.agent_closed(Some(describe(&e).to_owned())),
                            }
                        }
                    }
                    Output::Started(start) => {
                        let Some(call_id) = start
                            .call_id
                            .as_deref()
                            .and_then(|id| CallId::parse(id).ok())
                        else {
                            warn!("media stream started without a valid callId");
                            return Finish::Refused;
                        };
                        claimed = Some(call_id.clone());
                        opening = Some(Box::pin(self.clone().open_agent(call_id, start.agent_id)));
                    }
                    Output::ConversationId(id) => {
                        if let Some(persister) = persister.as_mut() {
                            persister.conversation(&id);
                        }
                    }
                    // The persister compares transcript revisions itself.
                    Output::TranscriptChanged => {}
                    Output::End(reason) => {
                        if unflushed {
                            let _ = twilio.flush().await;
                        }
                        return Finish::Ended(reason);
                    }
                }
            }
            if unflushed {
                if twilio.flush().await.is_err() {
                    latency.done();
                    session.twilio_closed();
                    continue;
                }
                latency.flushed_to_twilio(std_now());
            }
            latency.done();

            let now = Instant::now();
            if now >= next_sync {
                self.stats.add(session.counters(), synced);
                next_sync = now + STATS_INTERVAL;
            }
            let mut wake = session.poll_timeout().map(Instant::from_std);
            if let Some(persister) = persister.as_mut() {
                persister.start_due(now, session);
                wake = match (wake, persister.wake(session)) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
            if let Some(wake) = wake
                && wake < armed
            {
                armed = wake;
                sleep.as_mut().reset(wake);
            }

            tokio::select! {
                message = twilio.next() => match message {
                    Some(Ok(text)) => {
                        let now = std_now();
                        latency.received(Source::Twilio, now);
                        session.handle_twilio_text(&text, now);
                    }
                    Some(Err(e)) => {
                        debug!(call_id = ?claimed, error = %e, "the Twilio socket failed");
                        session.twilio_closed();
                    }
                    None => session.twilio_closed(),
                },
                message = next_agent_message(agent) => match message {
                    Some(Ok(text)) => {
                        let now = std_now();
                        latency.received(Source::Agent, now);
                        session.handle_agent_text(&text, now);
                    }
                    Some(Err(e)) => {
                        warn!(call_id = ?claimed, error = %e, "the agent connection failed");
                        session.agent_closed(Some(describe(&e).to_owned()));
                    }
                    None => session.agent_closed(None),
                },
                opened = completion(&mut opening) => match opened {
                    Ok((context, connection)) => {
                        *persister = Some(Persister::new(
                            self.live.clone(),
                            context.call_id,
                            self.config.transcript_interval,
                        ));
                        *agent = Some(connection);
                        session.agent_opened(std_now());
                    }
                    Err(OpenError::Refused(refusal)) => {
                        warn!(call_id = ?claimed, reason = %refusal, "media stream refused");
                        return Finish::Refused;
                    }
                    Err(OpenError::Agent { call_id, reason }) => {
                        *persister = Some(Persister::new(
                            self.live.clone(),
                            call_id,
                            self.config.transcript_interval,
                        ));
                        session.end(EndReason::AgentUnavailable(reason));
                    }
                },
                () = &mut sleep => {
                    armed = far;
                    session.handle_timeout(std_now());
                }
                () = Persister::in_flight(persister) => {}
                () = &mut aborted, if !abort_seen => {
                    abort_seen = true;
                    session.end(EndReason::ShuttingDown);
                }
            }
        }
    }

    /// Graceful shutdown: refuses new streams, closes prepared connections, lets live calls
    /// finish for up to `timeout`, then ends the rest (recorded as a shutdown, hung up) and
    /// waits for their final writes. Returns how many calls had to be cut.
    pub async fn drain(&self, timeout: Duration) -> u64 {
        self.shared.draining.store(true, Ordering::Relaxed);
        let entries: Vec<PreparedEntry> = self.shared.prepared().drain().map(|(_, e)| e).collect();
        join_all(entries.into_iter().map(|entry| async move {
            let PreparedEntry { ready, .. } = entry;
            if let Ok(Ok(Ok((_, mut connection)))) =
                tokio::time::timeout(self.config.connect_timeout, ready).await
            {
                self.close_agent(&mut connection).await;
            }
        }))
        .await;
        if self.wait_for_sessions(Instant::now() + timeout).await {
            return 0;
        }
        let cut = self.stats.live_sessions.load(Ordering::Relaxed);
        self.shared.abort.send_replace(true);
        let grace = self.config.persist_timeout + self.config.close_timeout * 2;
        self.wait_for_sessions(Instant::now() + grace).await;
        cut
    }

    async fn wait_for_sessions(&self, deadline: Instant) -> bool {
        loop {
            let ended = self.shared.session_ended.notified();
            tokio::pin!(ended);
            // Registered before the check, so an end between the two is not missed.
            ended.as_mut().enable();
            if self.stats.live_sessions.load(Ordering::Relaxed) == 0 {
                return true;
            }
            if timeout_at(deadline, ended).await.is_err() {
                return self.stats.live_sessions.load(Ordering::Relaxed) == 0;
            }
        }
    }
}

/// Writes what a call's session learns, one write at a time and off the audio path: the
/// conversation id at once, the transcript at most every `interval`, everything at the end.
struct Persister {
    live: LiveCalls,
    call_id: CallId,
    interval: Duration,
    writing: Option<BoxFuture<'static, ()>>,
    conversation: Option<ConversationId>,
    written_revision: u64,
    next_transcript_at: Instant,
}

impl Persister {
    fn new(live: LiveCalls, call_id: CallId, interval: Duration) -> Self {
        Self {
            live,
            call_id,
            interval,
            writing: None,
            conversation: None,
            written_revision: 0,
            next_transcript_at: Instant::now(),
        }
    }

    fn conversation(&mut self, raw: &str) {
        match ConversationId::parse(raw) {
            Ok(id) => self.conversation = Some(id),
            Err(e) => {
                warn!(call_id = %self.call_id, error = %e, "the agent sent an unusable conversation id")
            }
        }
    }

    /// Starts the next write if one is due and none is running.
    fn start_due(&mut self, now: Instant, session: &Session) {
        if self.writing.is_some() {
            return;
        }
        if let Some(conversation) = self.conversation.take() {
            let (live, call_id) = (self.live.clone(), self.call_id.clone());
            self.writing = Some(Box::pin(async move {
                if let Err(e) = live.record_conversation(&call_id, &conversation).await {
                    warn!(call_id = %call_id, error = %e, "recording the conversation id failed");
                }
            }));
        } else if session.transcript_revision() > self.written_revision
            && now >= self.next_transcript_at
        {
            self.written_revision = session.transcript_revision();
            self.next_transcript_at = now + self.interval;
            let transcript = session.transcript();
            let (live, call_id) = (self.live.clone(), self.call_id.clone());
            self.writing = Some(Box::pin(async move {
                if let Err(e) = live.record_transcript(&call_id, &transcript).await {
                    warn!(call_id = %call_id, error = %e, "recording the transcript failed");
                }
            }));
        }
    }

    /// When a held-back transcript becomes due.
    fn wake(&self, session: &Session) -> Option<Instant> {
        (self.writing.is_none() && session.transcript_revision() > self.written_revision)
            .then_some(self.next_transcript_at)
    }

    async fn in_flight(persister: &mut Option<Self>) {
        match persister {
            Some(persister) => completion(&mut persister.writing).await,
            None => std::future::pending().await,
        }
    }

    /// The final writes: end the call as the reason requires, then the conversation id and
    /// the latest transcript, whichever side dropped first.
    async fn finish(mut self, session: &Session, reason: &EndReason) {
        if let Some(writing) = self.writing.take() {
            writing.await;
        }
        let call_id = &self.call_id;
        let text = reason.to_string();
        let ended = match reason.disposition() {
            Disposition::Record => self.live.record_end(call_id, &text).await,
            Disposition::HangUp => match self.live.record_end(call_id, &text).await {
                Ok(()) => self.live.hang_up(call_id).await,
                Err(e) => Err(e),
            },
            Disposition::Fail => self.live.fail(call_id, &text).await,
        };
        if let Err(e) = ended {
            warn!(call_id = %call_id, error = %e, "ending the call failed");
        }
        if let Some(conversation) = self.conversation.take()
            && let Err(e) = self.live.record_conversation(call_id, &conversation).await
        {
            warn!(call_id = %call_id, error = %e, "recording the conversation id failed");
        }
        if session.transcript_revision() > self.written_revision
            && let Err(e) = self
                .live
                .record_transcript(call_id, &session.transcript())
                .await
        {
            warn!(call_id = %call_id, error = %e, "recording the transcript failed");
        }
    }
}

/// Joins a text stream and a text sink into the one value [`MediaBridge::run`] takes, for
/// transports that come in two halves (an actix-ws `MessageStream` and `Session`, say).
#[derive(Debug)]
pub struct Duplex<St, Si> {
    incoming: St,
    outgoing: Si,
}

impl<St, Si> Duplex<St, Si> {
    pub fn new(incoming: St, outgoing: Si) -> Self {
        Self { incoming, outgoing }
    }
}

impl<St: Stream + Unpin, Si: Unpin> Stream for Duplex<St, Si> {
    type Item = St::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.get_mut().incoming).poll_next(cx)
    }
}

impl<St: Unpin, Si: Sink<String> + Unpin> Sink<String> for Duplex<St, Si> {
    type Error = Si::Error;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().outgoing).poll_ready(cx)
    }

    fn start_send(self: Pin<&mut Self>, item: String) -> Result<(), Self::Error> {
        Pin::new(&mut self.get_mut().outgoing).start_send(item)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().outgoing).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.get_mut().outgoing).poll_close(cx)
    }
}

mod latency;
#[cfg(test)]
mod tests;
