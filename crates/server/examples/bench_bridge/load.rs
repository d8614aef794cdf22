//! The load generator, run as its own single-threaded process so its CPU is measured apart
//! from the bridge's: a fake ElevenLabs (signed-URL endpoint and agent WebSockets) and the
//! fake Twilio media-stream clients.
//!
//! Both fakes send 160-byte µ-law frames at 50 frames/s per call and direction, stamped with
//! their send time in the first 8 payload bytes (the bridge relays payloads untouched). A
//! relayed frame is timed twice: when it arrived at the receiving fake's socket (the kernel's
//! receive timestamp, `SO_TIMESTAMPNS`), which is the latency the bridge added, and when the
//! fake read it, which adds this process's own scheduling delays. One
//! scheduler task sends every frame, spreading the calls evenly over each 20 ms period (real
//! calls start at random moments) instead of one timer per socket; each socket has one reader
//! task. Frames are written and parsed by [`super::wire`], not a WebSocket library.
//!
//! Talks to the parent over stdio: prints `ready <http port> <ws port>`, reads one call id per
//! line until EOF, prints `window-start` and `window-end` around the measured window, then the
//! report.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, BufRead, Write as _};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt};
use nix::sys::time::TimeSpec;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::LocalSet;
use tokio::time::{Instant, MissedTickBehavior, interval, sleep_until};

use super::wire::{self, OPCODE_CLOSE, OPCODE_TEXT};
use super::{GRACE, TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, cpu_ticks, percentiles};

/// The scheduler's resolution: calls are spread over this many slots per frame period.
const SLOTS: u64 = 20;
const SLOT: Duration = Duration::from_millis(1);

pub struct LoadArgs {
    pub app_port: u16,
    pub seconds: u64,
    pub warmup: u64,
}

#[derive(Default)]
struct Stats {
    twilio_sent: Cell<u64>,
    agent_received: Cell<u64>,
    agent_sent: Cell<u64>,
    twilio_received: Cell<u64>,
    agents_connected: Cell<u64>,
    calls_bridged: Cell<u64>,
    upgrades_failed: Cell<u64>,
    /// Sends that found the socket's buffer full (the rest went out later, in order).
    sends_backlogged: Cell<u64>,
    send_errors: Cell<u64>,
    /// Latency samples (µs) per direction: until the frame arrived at the receiving socket,
    /// and until the fake read it.
    to_agent: Samples,
    to_twilio: Samples,
}

#[derive(Default)]
struct Samples {
    arrived_us: RefCell<Vec<u32>>,
    read_us: RefCell<Vec<u32>>,
}

/// One socket end the scheduler sends audio on.
struct Sender {
    stream: Rc<OwnedWriteHalf>,
    /// Twilio side: the stream sid (frames are masked, client to server); agent side: `None`.
    stream_sid: Option<String>,
    /// Cleared until the side may talk (Twilio: from the first agent audio it receives).
    active: Rc<Cell<bool>>,
    seq: u64,
    /// Bytes a full socket buffer did not take yet; sent before anything new.
    backlog: Vec<u8>,
}

/// Microseconds since the generator started, on the wall clock: the kernel's receive
/// timestamps are wall-clock times (a clock step during a run would show as an outlier).
struct Clock {
    origin: SystemTime,
}

impl Clock {
    fn us(&self) -> u64 {
        self.us_at(SystemTime::now())
    }

    fn us_at(&self, at: SystemTime) -> u64 {
        at.duration_since(self.origin)
            .unwrap_or_default()
            .as_micros() as u64
    }

    /// A kernel timestamp (`SCM_TIMESTAMPNS`) on this clock.
    fn us_of(&self, stamp: TimeSpec) -> u64 {
        let since_epoch = Duration::new(
            u64::try_from(stamp.tv_sec()).unwrap_or(0),
            u32::try_from(stamp.tv_nsec()).unwrap_or(0),
        );
        self.us_at(SystemTime::UNIX_EPOCH + since_epoch)
    }
}

struct Generator {
    clock: Clock,
    stats: Stats,
    /// Samples are kept for frames stamped at or after this (µs on `clock`).
    measure_from: Cell<u64>,
    /// Senders per scheduler slot.
    slots: RefCell<Vec<Vec<Sender>>>,
    next_slot: Cell<usize>,
    /// The base64 of the 151 bytes of silence after a frame's 9-byte head.
    silence_b64: String,
}

impl Generator {
    fn add_sender(&self, sender: Sender) {
        let slot = self.next_slot.get();
        self.next_slot.set((slot + 7) % SLOTS as usize);
        self.slots.borrow_mut()[slot].push(sender);
    }

    /// Appends the base64 of a 160-byte frame: the stamp, then 0xFF (µ-law silence). The
    /// first 9 bytes are whole base64 groups, so only they are encoded per frame.
    fn stamped_payload(&self, out: &mut String) {
        let mut head = [0xFFu8; 9];
        head[..8].copy_from_slice(&self.clock.us().to_le_bytes());
        B64.encode_string(head, out);
        out.push_str(&self.silence_b64);
    }

    /// Sends one frame on each active sender of `slot`.
    fn send_slot(&self, slot: usize, text: &mut String, frame: &mut Vec<u8>) {
        let mut slots = self.slots.borrow_mut();
        for sender in &mut slots[slot] {
            if !sender.active.get() {
                continue;
            }
            sender.seq += 1;
            text.clear();
            // Writing into a String cannot fail.
            match &sender.stream_sid {
                Some(sid) => {
                    let seq = sender.seq;
                    let _ = write!(
                        text,
                        r#"{{"event":"media","sequenceNumber":"{seq}","media":{{"track":"inbound","chunk":"{seq}","timestamp":"{}","payload":""#,
                        seq * 20
                    );
                    self.stamped_payload(text);
                    let _ = write!(text, r#""}},"streamSid":"{sid}"}}"#);
                }
                None => {
                    text.push_str(r#"{"type":"audio","audio_event":{"audio_base_64":""#);
                    self.stamped_payload(text);
                    let _ = write!(text, r#"","event_id":{}}}}}"#, sender.seq);
                }
            }
            frame.clear();
            wire::encode(
                frame,
                OPCODE_TEXT,
                text.as_bytes(),
                sender.stream_sid.is_some(),
            );
            if write_now(sender, frame) {
                if !sender.backlog.is_empty() {
                    let backlogged = &self.stats.sends_backlogged;
                    backlogged.set(backlogged.get() + 1);
                }
                let counter = if sender.stream_sid.is_some() {
                    &self.stats.twilio_sent
                } else {
                    &self.stats.agent_sent
                };
                counter.set(counter.get() + 1);
            } else {
                self.stats.send_errors.set(self.stats.send_errors.get() + 1);
            }
        }
    }

    fn record(&self, samples: &Samples, stamp: u64, times: Received) {
        if stamp >= self.measure_from.get() {
            let since = |at: u64| u32::try_from(at.saturating_sub(stamp)).unwrap_or(u32::MAX);
            samples.arrived_us.borrow_mut().push(since(times.arrived));
            samples.read_us.borrow_mut().push(since(times.read));
        }
    }
}

/// Writes the backlog and then `frame` without waiting; what the socket does not take joins
/// the backlog (sent first next time). False when the frame could not be queued at all.
fn write_now(sender: &mut Sender, frame: &[u8]) -> bool {
    if !sender.backlog.is_empty() {
        match sender.stream.try_write(&sender.backlog) {
            Ok(n) => {
                sender.backlog.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return false,
        }
        if !sender.backlog.is_empty() {
            sender.backlog.extend_from_slice(frame);
            return true;
        }
    }
    match sender.stream.try_write(frame) {
        Ok(n) => {
            sender.backlog.extend_from_slice(&frame[n..]);
            true
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            sender.backlog.extend_from_slice(frame);
            true
        }
        Err(_) => false,
    }
}

/// The stamp of a relayed payload found after `key` in `text` (no JSON parse on the hot path).
fn stamp_after(text: &[u8], key: &str) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?;
    let start = text.find(key)? + key.len();
    let head = text.get(start..start + 12)?;
    let bytes = B64.decode(head).ok()?;
    Some(u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?))
}

/// When a received frame arrived at its socket and when it was read (µs on [`Clock`]).
#[derive(Debug, Clone, Copy)]
struct Received {
    arrived: u64,
    read: u64,
}

/// Asks the kernel to timestamp what arrives at `socket` (read back by [`recv_stamped`]).
fn timestamp_arrivals(socket: &TcpStream) -> io::Result<()> {
    setsockopt(socket, sockopt::ReceiveTimestampns, &true).map_err(io::Error::from)
}

/// One `recvmsg` into `buffer`: the bytes read and the kernel's receive timestamp of the last
/// segment read (so frames read together are all given the latest arrival: never earlier
/// than the truth).
///
/// A short read counts as draining the socket (tokio's own `AsyncRead` does the same), so a
/// frame costs one system call, not a second one that would only say `WouldBlock`.
async fn recv_stamped(
    socket: &TcpStream,
    buffer: &mut [u8],
    control: &mut [u8],
) -> io::Result<(usize, Option<TimeSpec>)> {
    loop {
        socket.readable().await?;
        let mut drained = None;
        let result = socket.try_io(Interest::READABLE, || {
            let mut iov = [io::IoSliceMut::new(buffer)];
            let message = recvmsg::<()>(
                socket.as_raw_fd(),
                &mut iov,
                Some(&mut *control),
                MsgFlags::empty(),
            )
            .map_err(io::Error::from)?;
            let stamp = message.cmsgs().ok().and_then(|mut cmsgs| {
                cmsgs.find_map(|cmsg| match cmsg {
                    ControlMessageOwned::ScmTimestampns(stamp) => Some(stamp),
                    _ => None,
                })
            });
            let read = (message.bytes, stamp);
            if message.bytes > 0 && message.bytes < iov[0].len() {
                // Tell tokio the socket is drained; the bytes are handed over below.
                drained = Some(read);
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(read)
        });
        match result {
            Ok(read) => return Ok(read),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if let Some(read) = drained {
                    return Ok(read);
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads frames from one socket until it closes, handing each text payload to `on_text` with
/// the times it arrived and was read. Answers pings and close frames on `stream`.
async fn read_frames(
    reader: &mut OwnedReadHalf,
    stream: &OwnedWriteHalf,
    mut buffer: Vec<u8>,
    masked_replies: bool,
    generator: &Generator,
    mut on_text: impl FnMut(&[u8], Received),
) {
    let mut filled = buffer.len();
    buffer.resize(filled.max(8192), 0);
    let mut control = nix::cmsg_space!(TimeSpec);
    // Bytes read during the handshake have no timestamp: frames in them are timed as read.
    let mut arrived = None;
    loop {
        let mut start = 0;
        while let Some(frame) = wire::decode(&mut buffer[start..filled]) {
            let payload = start + frame.payload.start..start + frame.payload.end;
            start += frame.consumed;
            match frame.opcode {
                OPCODE_TEXT => {
                    let read = generator.clock.us();
                    let arrived = arrived.map_or(read, |stamp| generator.clock.us_of(stamp));
                    on_text(&buffer[payload], Received { arrived, read });
                }
                OPCODE_CLOSE => {
                    let mut reply = Vec::new();
                    wire::encode(&mut reply, OPCODE_CLOSE, &[0x03, 0xE8], masked_replies);
                    let _ = stream.try_write(&reply);
                    return;
                }
                opcode if wire::is_ping(opcode) => {
                    let mut reply = Vec::new();
                    wire::pong(&mut reply, &buffer[payload], masked_replies);
                    let _ = stream.try_write(&reply);
                }
                _ => {}
            }
        }
        buffer.copy_within(start..filled, 0);
        filled -= start;
        if filled == buffer.len() {
            buffer.resize(buffer.len() * 2, 0);
        }
        match recv_stamped(reader.as_ref(), &mut buffer[filled..], &mut control).await {
            Ok((0, _)) | Err(_) => return,
            Ok((n, stamp)) => {
                filled += n;
                // Frames this read completes arrived by its last segment; without a
                // timestamp they are timed as read (never an older read's time).
                arrived = stamp;
            }
        }
    }
}

/// Answers `GET /v1/convai/conversation/get-signed-url` (keep-alive HTTP/1.1) with a ws:// URL
/// to the fake agent.
async fn signed_url_server(listener: TcpListener, ws_port: u16) {
    let issued = Rc::new(Cell::new(0u64));
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        let issued = issued.clone();
        tokio::task::spawn_local(async move {
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 4096];
            loop {
                let Ok(n) = socket.read(&mut chunk).await else {
                    return;
                };
                if n == 0 {
                    return;
                }
                buffer.extend_from_slice(&chunk[..n]);
                while let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    buffer.drain(..end + 4);
                    let id = issued.get();
                    issued.set(id + 1);
                    let body = format!(r#"{{"signed_url":"ws://127.0.0.1:{ws_port}/c/{id}"}}"#);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        });
    }
}

/// The fake agent: confirms µ-law both ways, then talks (through the scheduler) until the stop
/// while timing the caller audio it receives.
async fn agent_server(listener: TcpListener, generator: Rc<Generator>) {
    let mut n = 0u64;
    loop {
        let Ok((mut socket, _)) = listener.accept().await else {
            continue;
        };
        n += 1;
        let generator = generator.clone();
        tokio::task::spawn_local(async move {
            let _ = socket.set_nodelay(true);
            if timestamp_arrivals(&socket).is_err() {
                return;
            }
            let Ok(rest) = wire::accept(&mut socket).await else {
                return;
            };
            let stats = &generator.stats;
            stats.agents_connected.set(stats.agents_connected.get() + 1);
            let meta = json!({"type":"conversation_initiation_metadata","conversation_initiation_metadata_event":{"conversation_id":format!("conv_{n}"),"agent_output_audio_format":"ulaw_8000","user_input_audio_format":"ulaw_8000"}});
            let mut frame = Vec::new();
            wire::encode(&mut frame, OPCODE_TEXT, meta.to_string().as_bytes(), false);
            if socket.write_all(&frame).await.is_err() {
                return;
            }
            let (mut reader, writer) = socket.into_split();
            let stream = Rc::new(writer);
            generator.add_sender(Sender {
                stream: stream.clone(),
                stream_sid: None,
                active: Rc::new(Cell::new(true)),
                seq: 0,
                backlog: Vec::new(),
            });
            read_frames(
                &mut reader,
                &stream,
                rest,
                false,
                &generator,
                |text, times| {
                    if let Some(stamp) = stamp_after(text, r#""user_audio_chunk":""#) {
                        stats.agent_received.set(stats.agent_received.get() + 1);
                        generator.record(&stats.to_agent, stamp, times);
                    }
                },
            )
            .await;
        });
    }
}

/// The fake Twilio side of one call: signed upgrade, `connected`, `start` naming the call, then
/// caller audio (through the scheduler) from the first agent frame on; `stop` after the run.
async fn twilio_call(
    generator: Rc<Generator>,
    port: u16,
    call_id: String,
    index: usize,
    close_at: Instant,
) {
    let url = format!("ws://127.0.0.1:{port}/twilio/media-stream");
    let signature = outcall_twilio::signature(TWILIO_AUTH_TOKEN, &url, &[]);
    let stats = &generator.stats;
    let host = format!("127.0.0.1:{port}");
    let connected = async {
        let mut socket = TcpStream::connect(&host).await?;
        socket.set_nodelay(true)?;
        timestamp_arrivals(&socket)?;
        let rest = wire::connect(
            &mut socket,
            &host,
            "/twilio/media-stream",
            &[("X-Twilio-Signature", &signature)],
        )
        .await?;
        io::Result::Ok((socket, rest))
    };
    let (mut socket, rest) = match connected.await {
        Ok(connected) => connected,
        Err(e) => {
            eprintln!("call {index}: {e}");
            stats.upgrades_failed.set(stats.upgrades_failed.get() + 1);
            return;
        }
    };
    let stream_sid = format!("MZ{index:032x}");
    let call_sid = format!("CA{index:032x}");
    let mut opening = Vec::new();
    let connected = json!({"event":"connected","protocol":"Call","version":"1.0.0"});
    let start = json!({"event":"start","sequenceNumber":"1","start":{"accountSid":TWILIO_ACCOUNT_SID,"streamSid":stream_sid,"callSid":call_sid,"tracks":["inbound"],"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1},"customParameters":{"callId":call_id}},"streamSid":stream_sid});
    wire::encode(
        &mut opening,
        OPCODE_TEXT,
        connected.to_string().as_bytes(),
        true,
    );
    wire::encode(
        &mut opening,
        OPCODE_TEXT,
        start.to_string().as_bytes(),
        true,
    );
    if socket.write_all(&opening).await.is_err() {
        return;
    }
    let (mut reader, writer) = socket.into_split();
    let stream = Rc::new(writer);
    let active = Rc::new(Cell::new(false));
    generator.add_sender(Sender {
        stream: stream.clone(),
        stream_sid: Some(stream_sid.clone()),
        active: active.clone(),
        seq: 1,
        backlog: Vec::new(),
    });
    let reading = read_frames(
        &mut reader,
        &stream,
        rest,
        true,
        &generator,
        |text, times| {
            if let Some(stamp) = stamp_after(text, r#""payload":""#) {
                stats.twilio_received.set(stats.twilio_received.get() + 1);
                if !active.get() {
                    active.set(true);
                    stats.calls_bridged.set(stats.calls_bridged.get() + 1);
                }
                generator.record(&stats.to_twilio, stamp, times);
            }
        },
    );
    tokio::pin!(reading);
    tokio::select! {
        () = &mut reading => {}
        () = sleep_until(close_at) => {
            let stop = json!({"event":"stop","sequenceNumber":"0","stop":{"accountSid":TWILIO_ACCOUNT_SID,"callSid":call_sid},"streamSid":stream_sid});
            let mut closing = Vec::new();
            wire::encode(&mut closing, OPCODE_TEXT, stop.to_string().as_bytes(), true);
            wire::encode(&mut closing, OPCODE_CLOSE, &[0x03, 0xE8], true);
            let _ = stream.try_write(&closing);
            // Until the bridge's close frame, so the socket is not reset under it.
            let _ = tokio::time::timeout(GRACE, reading).await;
        }
    }
}

/// Sends every due frame, slot by slot, until `stop_at`; catches up on slots a late wake-up
/// skipped so the rate stays 50 frames/s per sender.
async fn schedule(generator: Rc<Generator>, stop_at: Instant) {
    let mut tick = interval(SLOT);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let origin = Instant::now();
    let mut next = 0u64;
    let mut text = String::with_capacity(512);
    let mut frame = Vec::with_capacity(512);
    loop {
        let now = tick.tick().await;
        if now >= stop_at {
            // Stop the senders and drop their sockets' send halves.
            generator.slots.borrow_mut().iter_mut().for_each(Vec::clear);
            return;
        }
        let due = (now - origin).as_millis() as u64;
        while next <= due {
            generator.send_slot((next % SLOTS) as usize, &mut text, &mut frame);
            next += 1;
        }
    }
}

/// Runs the generator process (see the module docs).
pub fn run(args: LoadArgs) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    LocalSet::new().block_on(&runtime, generate(args));
}

async fn generate(args: LoadArgs) {
    let http_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ws_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let ws_port = ws_listener.local_addr().expect("address").port();
    let http_port = http_listener.local_addr().expect("address").port();
    tokio::task::spawn_local(signed_url_server(http_listener, ws_port));
    let generator = Rc::new(Generator {
        clock: Clock {
            origin: SystemTime::now(),
        },
        stats: Stats::default(),
        measure_from: Cell::new(u64::MAX),
        slots: RefCell::new((0..SLOTS).map(|_| Vec::new()).collect()),
        next_slot: Cell::new(0),
        silence_b64: B64.encode([0xFFu8; 151]),
    });
    tokio::task::spawn_local(agent_server(ws_listener, generator.clone()));
    say(&format!("ready {http_port} {ws_port}"));

    let call_ids: Vec<String> = tokio::task::spawn_blocking(|| {
        io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .filter(|line| !line.is_empty())
            .collect()
    })
    .await
    .expect("reading call ids");
    let calls = call_ids.len();

    let start = Instant::now();
    let stop_at = start + Duration::from_secs(args.warmup + args.seconds);
    generator
        .measure_from
        .set(generator.clock.us() + args.warmup * 1_000_000);
    tokio::task::spawn_local(schedule(generator.clone(), stop_at));
    let mut pending: VecDeque<_> = call_ids.into_iter().enumerate().collect();
    let mut calls_running = Vec::new();
    // Connect in waves so the app's accept queue is not overrun.
    while !pending.is_empty() {
        for (index, call_id) in pending.drain(..pending.len().min(50)) {
            calls_running.push(tokio::task::spawn_local(twilio_call(
                generator.clone(),
                args.app_port,
                call_id,
                index,
                stop_at + GRACE,
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    sleep_until(start + Duration::from_secs(args.warmup)).await;
    let stats = &generator.stats;
    let bridged_at_warmup = stats.calls_bridged.get();
    say("window-start");
    let cpu_before = cpu_ticks("/proc/self/stat");
    let wall = std::time::Instant::now();
    sleep_until(stop_at).await;
    say("window-end");
    let measured_s = wall.elapsed().as_secs_f64();
    let cpu_s = (cpu_ticks("/proc/self/stat") - cpu_before) as f64 / 100.0;
    for call in calls_running {
        let _ = call.await;
    }
    tokio::time::sleep(GRACE).await;

    let (ts, ar) = (stats.twilio_sent.get(), stats.agent_received.get());
    let (asent, tr) = (stats.agent_sent.get(), stats.twilio_received.get());
    say(&format!(
        "calls: {calls} requested, {} agent sockets opened, {} bridged (agent audio reached Twilio), {} bridged by end of warm-up, {} upgrades failed",
        stats.agents_connected.get(),
        stats.calls_bridged.get(),
        bridged_at_warmup,
        stats.upgrades_failed.get(),
    ));
    say(&format!(
        "twilio->agent: sent {ts}, received {ar}, lost {}",
        ts.saturating_sub(ar)
    ));
    say(&format!(
        "agent->twilio: sent {asent}, received {tr}, lost {}",
        asent.saturating_sub(tr)
    ));
    for (direction, samples) in [
        ("twilio->agent", &stats.to_agent),
        ("agent->twilio", &stats.to_twilio),
    ] {
        say(&format!(
            "latency {direction} (arrival at the fake's socket): {}",
            percentiles(std::mem::take(&mut *samples.arrived_us.borrow_mut()))
        ));
        say(&format!(
            "read latency {direction} (read by the fake): {}",
            percentiles(std::mem::take(&mut *samples.read_us.borrow_mut()))
        ));
    }
    say(&format!(
        "generator process: {cpu_s:.2} s CPU over {measured_s:.1} s ({:.0}% of one core), {:.3} ms per call-second; {} sends found a full socket buffer, {} sends failed",
        100.0 * cpu_s / measured_s,
        1000.0 * cpu_s / measured_s / calls.max(1) as f64,
        stats.sends_backlogged.get(),
        stats.send_errors.get(),
    ));
    say("done");
}

fn say(line: &str) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_its_encoded_head_followed_by_the_encoded_silence() {
        let mut frame = [0xFFu8; 160];
        frame[..8].copy_from_slice(&123_456_789u64.to_le_bytes());
        let mut pieced = B64.encode(&frame[..9]);
        pieced.push_str(&B64.encode([0xFFu8; 151]));
        assert_eq!(pieced, B64.encode(frame));
        let text = format!(r#"{{"media":{{"payload":"{pieced}"}}}}"#);
        assert_eq!(
            stamp_after(text.as_bytes(), r#""payload":""#),
            Some(123_456_789)
        );
    }

    #[tokio::test]
    async fn a_read_reports_when_its_bytes_arrived_at_the_socket() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut sender = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (receiver, _) = listener.accept().await.unwrap();
        timestamp_arrivals(&receiver).unwrap();
        let clock = Clock {
            origin: SystemTime::now(),
        };

        // The kernel turns receive timestamps on for the whole system in deferred work the
        // first time a socket asks: the first segments may come without one. Try again.
        let mut buffer = [0u8; 64];
        let mut control = nix::cmsg_space!(TimeSpec);
        let mut attempts = 0;
        let (before_send, arrived, read) = loop {
            attempts += 1;
            let before_send = clock.us();
            sender.write_all(b"frame").await.unwrap();
            // Read well after the arrival: the timestamp must be the arrival, not the read.
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (n, stamp) = recv_stamped(&receiver, &mut buffer, &mut control)
                .await
                .unwrap();
            let read = clock.us();
            assert_eq!(&buffer[..n], b"frame");
            match stamp {
                Some(stamp) => break (before_send, clock.us_of(stamp), read),
                None => assert!(attempts < 20, "no receive timestamp in {attempts} reads"),
            }
        };

        assert!(arrived >= before_send, "{arrived} < {before_send}");
        assert!(read - arrived >= 40_000, "arrived {arrived}, read {read}");
    }
}
