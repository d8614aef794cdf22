//! Just enough of RFC 6455 for the load generator: the opening handshake on both ends and
//! single-frame text and close messages, written and read without a WebSocket library so the
//! generator spends its CPU on the sockets, not on framing machinery (it terminates as many
//! frames as the bridge relays).

use std::io;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

pub const OPCODE_TEXT: u8 = 0x1;
pub const OPCODE_CLOSE: u8 = 0x8;
const OPCODE_PING: u8 = 0x9;
const OPCODE_PONG: u8 = 0xA;
const MAX_HEAD: usize = 16 * 1024;

/// Client frames must be masked (RFC 6455 5.3); a fixed key keeps the cost to one XOR pass.
const CLIENT_MASK: [u8; 4] = [0x5a, 0x1c, 0xe3, 0x97];

/// Appends one complete (FIN) frame; `masked` for frames a client sends.
pub fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8], masked: bool) {
    out.push(0x80 | opcode);
    let mask_bit = if masked { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&CLIENT_MASK);
        let start = out.len();
        out.extend_from_slice(payload);
        apply_mask(&mut out[start..], CLIENT_MASK);
    } else {
        out.extend_from_slice(payload);
    }
}

/// XORs `bytes` with the repeated `key`, four bytes at a time (the generator masks or unmasks
/// every frame it handles).
fn apply_mask(bytes: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = bytes.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let masked = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) ^ word;
        chunk.copy_from_slice(&masked.to_ne_bytes());
    }
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key) {
        *byte ^= k;
    }
}

/// One frame parsed from the front of a buffer.
pub struct Frame {
    pub opcode: u8,
    /// Where the (unmasked) payload is in the buffer.
    pub payload: std::ops::Range<usize>,
    /// Bytes the frame took, header included.
    pub consumed: usize,
}

/// Parses the frame at the front of `buf`, unmasking its payload in place; `None` until the
/// whole frame is there.
pub fn decode(buf: &mut [u8]) -> Option<Frame> {
    let (&first, &second) = (buf.first()?, buf.get(1)?);
    let mut at = 2;
    let len = match second & 0x7f {
        126 => {
            let bytes = buf.get(2..4)?;
            at = 4;
            usize::from(u16::from_be_bytes([bytes[0], bytes[1]]))
        }
        127 => {
            let bytes: [u8; 8] = buf.get(2..10)?.try_into().ok()?;
            at = 10;
            usize::try_from(u64::from_be_bytes(bytes)).ok()?
        }
        n => usize::from(n),
    };
    let mask = if second & 0x80 != 0 {
        let key: [u8; 4] = buf.get(at..at + 4)?.try_into().ok()?;
        at += 4;
        Some(key)
    } else {
        None
    };
    let payload = at..at + len;
    let bytes = buf.get_mut(payload.clone())?;
    if let Some(key) = mask {
        apply_mask(bytes, key);
    }
    Some(Frame {
        opcode: first & 0x0f,
        consumed: payload.end,
        payload,
    })
}

/// Whether a frame needs an answer the generator does not give (pings are answered by the
/// caller with [`pong`]); text and close are the ones the generator acts on.
pub fn is_ping(opcode: u8) -> bool {
    opcode == OPCODE_PING
}

pub fn pong(out: &mut Vec<u8>, payload: &[u8], masked: bool) {
    encode(out, OPCODE_PONG, payload, masked);
}

async fn read_head(stream: &mut TcpStream) -> io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "closed in the handshake",
            ));
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Ok((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "handshake too long",
            ));
        }
    }
}

/// The client's opening handshake; returns bytes that arrived after the 101 response.
pub async fn connect(
    stream: &mut TcpStream,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> io::Result<Vec<u8>> {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let (head, rest) = read_head(stream).await?;
    if !head.starts_with("HTTP/1.1 101") {
        let status = head.lines().next().unwrap_or_default().to_owned();
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    Ok(rest)
}

/// The server's side of the opening handshake; returns bytes that arrived after the request.
pub async fn accept(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let (head, rest) = read_head(stream).await?;
    let key = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim().to_owned())
        })
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Sec-WebSocket-Key"))?;
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_masked_and_not_at_every_length_class() {
        for len in [0, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            for masked in [false, true] {
                let mut out = Vec::new();
                encode(&mut out, OPCODE_TEXT, &payload, masked);
                let frame = decode(&mut out).expect("a whole frame");
                assert_eq!(frame.opcode, OPCODE_TEXT);
                assert_eq!(frame.consumed, out.len());
                assert_eq!(&out[frame.payload], &payload[..]);
            }
        }
    }
}
