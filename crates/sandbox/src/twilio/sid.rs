//! Twilio-shaped identifiers: two-letter prefix + 32 lowercase hex digits.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

static FALLBACK_COUNTER: AtomicU64 = AtomicU64::new(0);

pub(crate) fn new_sid(prefix: &str) -> String {
    let mut bytes = [0_u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No OS randomness: uniqueness within the process is all an emulator needs.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let count = FALLBACK_COUNTER.fetch_add(1, Ordering::Relaxed);
        bytes[..8].copy_from_slice(&(nanos as u64).to_be_bytes());
        bytes[8..].copy_from_slice(&count.to_be_bytes());
    }
    let mut sid = String::with_capacity(prefix.len() + 32);
    sid.push_str(prefix);
    for byte in bytes {
        sid.push_str(&format!("{byte:02x}"));
    }
    sid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_have_the_prefix_and_32_lowercase_hex_digits_and_differ() {
        let a = new_sid("CA");
        let b = new_sid("CA");
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("CA"));
        assert!(
            a[2..]
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
        );
        assert_ne!(a, b);
    }
}
