//! Shared emulator state: signed-URL grants, conversation records, waiting, and task
//! bookkeeping.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, anyhow};
use tokio::runtime::Handle;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use crate::tasks::{Tasks, lock};

use super::audio::{AgentVoice, AudioFormat};
use super::ids::random_id;
use super::{ConversationRecord, ElevenLabsEmulatorConfig};

/// Oldest finished conversations are forgotten beyond this, so a long benchmark cannot grow
/// memory without bound. Live conversations are always kept.
const MAX_CONVERSATIONS: usize = 2000;
/// Unused signed URLs kept at most; the oldest are forgotten first.
const MAX_GRANTS: usize = 10_000;
/// How long a signed URL can be used.
const GRANT_LIFETIME: Duration = Duration::from_secs(15 * 60);
const CHUNK_MS_RANGE: (u32, u32) = (20, 200);

struct Grant {
    agent_id: String,
    expires: Instant,
}

struct Entry {
    record: ConversationRecord,
    kill: Arc<Notify>,
}

#[derive(Default)]
struct State {
    conversations: HashMap<String, Entry>,
    order: VecDeque<String>,
    grants: HashMap<String, Grant>,
    grant_order: VecDeque<String>,
}

pub(crate) struct Shared {
    pub config: ElevenLabsEmulatorConfig,
    pub input_format: AudioFormat,
    pub voice: AgentVoice,
    pub http: reqwest::Client,
    /// `ws://127.0.0.1:PORT`.
    pub ws_base: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    /// The emulator's tasks; `spawn` refuses new ones once shut down.
    pub(crate) tasks: Tasks,
}

/// `from + duration`, saturating at about 30 years, since configured durations may be huge
/// and `Instant` addition panics on overflow.
pub(crate) fn after(from: Instant, duration: Duration) -> Instant {
    from.checked_add(duration)
        .or_else(|| from.checked_add(Duration::from_secs(30 * 365 * 86_400)))
        .unwrap_or(from)
}

impl Shared {
    pub(crate) fn new(
        mut config: ElevenLabsEmulatorConfig,
        runtime: Handle,
        address: SocketAddr,
    ) -> anyhow::Result<Self> {
        let output_format = AudioFormat::parse(&config.agent_output_format).ok_or_else(|| {
            anyhow!(
                "agent_output_format {:?} is not an ElevenLabs conversation format",
                config.agent_output_format
            )
        })?;
        let input_format = AudioFormat::parse(&config.user_input_format).ok_or_else(|| {
            anyhow!(
                "user_input_format {:?} is not an ElevenLabs conversation format",
                config.user_input_format
            )
        })?;
        config.audio_chunk_ms = config
            .audio_chunk_ms
            .clamp(CHUNK_MS_RANGE.0, CHUNK_MS_RANGE.1);
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the emulator's HTTP client")?;
        Ok(Self {
            voice: AgentVoice::new(output_format, config.audio_chunk_ms),
            input_format,
            http,
            ws_base: format!("ws://{address}"),
            config,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            tasks: Tasks::new(runtime),
        })
    }

    fn bump(&self) {
        self.changed
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// A new single-use signed-URL token for `agent_id`.
    pub(crate) fn grant(&self, agent_id: &str) -> String {
        let token = random_id("", 32);
        let mut state = lock(&self.state);
        state.grants.insert(
            token.clone(),
            Grant {
                agent_id: agent_id.to_owned(),
                expires: after(Instant::now(), GRANT_LIFETIME),
            },
        );
        state.grant_order.push_back(token.clone());
        while state.grant_order.len() > MAX_GRANTS {
            if let Some(oldest) = state.grant_order.pop_front() {
                state.grants.remove(&oldest);
            }
        }
        // Used grants leave the map but not the queue; keep the queue from filling with them.
        if state.grant_order.len() > 2 * state.grants.len() + 64 {
            let State {
                grants,
                grant_order,
                ..
            } = &mut *state;
            grant_order.retain(|t| grants.contains_key(t));
        }
        token
    }

    /// Uses up `token`: the agent it was issued for, if it was valid and unused.
    pub(crate) fn take_grant(&self, token: &str) -> Option<String> {
        let grant = lock(&self.state).grants.remove(token)?;
        (grant.expires > Instant::now()).then_some(grant.agent_id)
    }

    pub(crate) fn insert_conversation(&self, record: ConversationRecord) -> Arc<Notify> {
        let kill = Arc::new(Notify::new());
        let id = record.conversation_id.clone();
        {
            let mut state = lock(&self.state);
            state.conversations.insert(
                id.clone(),
                Entry {
                    record,
                    kill: kill.clone(),
                },
            );
            state.order.push_back(id);
            evict(&mut state);
        }
        self.bump();
        kill
    }

    /// Runs `f` on a conversation's record (if it is known) and wakes waiters.
    pub(crate) fn update<R>(
        &self,
        id: &str,
        f: impl FnOnce(&mut ConversationRecord) -> R,
    ) -> Option<R> {
        let result = self.update_quietly(id, f);
        if result.is_some() {
            self.bump();
        }
        result
    }

    /// Like `update`, without waking waiters: for counters on the hot path.
    pub(crate) fn update_quietly<R>(
        &self,
        id: &str,
        f: impl FnOnce(&mut ConversationRecord) -> R,
    ) -> Option<R> {
        lock(&self.state)
            .conversations
            .get_mut(id)
            .map(|entry| f(&mut entry.record))
    }

    pub(crate) fn read<R>(&self, id: &str, f: impl FnOnce(&ConversationRecord) -> R) -> Option<R> {
        lock(&self.state)
            .conversations
            .get(id)
            .map(|entry| f(&entry.record))
    }

    pub(crate) fn records(&self) -> Vec<ConversationRecord> {
        let state = lock(&self.state);
        state
            .order
            .iter()
            .filter_map(|id| state.conversations.get(id))
            .map(|entry| entry.record.clone())
            .collect()
    }

    pub(crate) fn record(&self, id: &str) -> Option<ConversationRecord> {
        self.read(id, Clone::clone)
    }

    pub(crate) fn kill(&self, id: &str) -> bool {
        let state = lock(&self.state);
        match state.conversations.get(id) {
            Some(entry) if entry.record.end.is_none() => {
                entry.kill.notify_one();
                true
            }
            _ => false,
        }
    }

    pub(crate) async fn wait_for(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        ready: impl Fn(&ConversationRecord) -> bool,
    ) -> anyhow::Result<ConversationRecord> {
        let deadline = after(Instant::now(), timeout);
        // Subscribe before checking, so a change between check and wait is not missed.
        let mut changes = self.changed.subscribe();
        loop {
            let record = self
                .record(id)
                .ok_or_else(|| anyhow!("the emulator knows no conversation {id}"))?;
            if ready(&record) {
                return Ok(record);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(anyhow!("the emulator stopped")),
                Err(_) => {
                    return Err(anyhow!(
                        "timed out after {timeout:?} waiting for conversation {id} to {what}; \
                         it is {}",
                        record.status
                    ));
                }
            }
        }
    }
}

fn evict(state: &mut State) {
    let mut scanned = 0;
    while state.conversations.len() > MAX_CONVERSATIONS && scanned < state.order.len() {
        let Some(id) = state.order.pop_front() else {
            break;
        };
        if state
            .conversations
            .get(&id)
            .is_none_or(|e| e.record.finished)
        {
            state.conversations.remove(&id);
        } else {
            // Live conversations are kept; look further.
            state.order.push_back(id);
            scanned += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let address = SocketAddr::from(([127, 0, 0, 1], 9));
        Shared::new(
            ElevenLabsEmulatorConfig::default(),
            runtime.handle().clone(),
            address,
        )
        .unwrap()
    }

    #[test]
    fn a_grant_can_be_taken_once_and_unknown_tokens_give_nothing() {
        let shared = shared();
        let token = shared.grant("agent_1");
        assert_eq!(token.len(), 64);
        assert_eq!(shared.take_grant(&token).as_deref(), Some("agent_1"));
        assert_eq!(shared.take_grant(&token), None);
        assert_eq!(shared.take_grant("nope"), None);
        assert_eq!(shared.ws_base, "ws://127.0.0.1:9");
    }

    #[test]
    fn grants_beyond_the_cap_forget_the_oldest_and_used_ones_do_not_pile_up() {
        let shared = shared();
        let first = shared.grant("a");
        for _ in 0..MAX_GRANTS {
            let token = shared.grant("a");
            assert!(shared.take_grant(&token).is_some());
        }
        // Used grants were pruned from the queue, so the first one is still there.
        assert!(lock(&shared.state).grant_order.len() < 200);
        assert!(shared.take_grant(&first).is_some());
        let tokens: Vec<String> = (0..=MAX_GRANTS).map(|_| shared.grant("a")).collect();
        assert_eq!(shared.take_grant(&tokens[0]), None);
        assert!(shared.take_grant(&tokens[MAX_GRANTS]).is_some());
    }

    #[test]
    fn an_unsupported_format_is_refused_at_start() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let config = ElevenLabsEmulatorConfig {
            agent_output_format: "mp3_44100".to_owned(),
            ..ElevenLabsEmulatorConfig::default()
        };
        let address = SocketAddr::from(([127, 0, 0, 1], 9));
        let error = Shared::new(config, runtime.handle().clone(), address)
            .err()
            .unwrap();
        assert!(error.to_string().contains("mp3_44100"));
    }
}
