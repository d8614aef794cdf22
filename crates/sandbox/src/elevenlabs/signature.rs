//! `ElevenLabs-Signature` as ElevenLabs computes it (protocols 7.4).
//!
//! Written independently of the adapter's verifier on purpose: both are checked against the
//! same vector, so a shared misreading of the scheme cannot hide.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// `t=<timestamp>,v0=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, over the exact
/// body bytes that are sent.
pub fn elevenlabs_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = match <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(timestamp.to_string().as_bytes());
            mac.update(b".");
            mac.update(body);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes keys of any length; this cannot happen.
        Err(_) => Vec::new(),
    };
    format!("t={timestamp},v0={}", lower_hex(&digest))
}

pub(crate) fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0F)]));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_protocols_test_vector_matches() {
        let body = br#"{"type":"post_call_transcription","event_timestamp":1700000000,"data":{"conversation_id":"conv_1"}}"#;
        assert_eq!(
            elevenlabs_signature("test_secret", 1_700_000_000, body),
            "t=1700000000,v0=0803716dec0e1871da35ce9ab5287d32febe1873f62d09a277d13a1b9ecdfb2f"
        );
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(lower_hex(&[0x00, 0x0f, 0xa0, 0xff]), "000fa0ff");
        assert_eq!(lower_hex(&[]), "");
    }
}
