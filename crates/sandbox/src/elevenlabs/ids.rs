//! Random identifiers: conversation ids and signed-URL tokens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use super::signature::lower_hex;

static FALLBACK_COUNTER: AtomicU64 = AtomicU64::new(0);

/// `prefix` + `2 * bytes` lowercase hex digits of OS randomness (`bytes` at most 64).
pub(crate) fn random_id(prefix: &str, bytes: usize) -> String {
    let mut buffer = [0_u8; 64];
    let buffer = &mut buffer[..bytes.min(64)];
    if getrandom::fill(buffer).is_err() {
        // No OS randomness: uniqueness within the process is all an emulator needs.
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let count = FALLBACK_COUNTER.fetch_add(1, Ordering::Relaxed);
        let seed = [nanos.to_be_bytes(), count.to_be_bytes()].concat();
        for (i, byte) in buffer.iter_mut().enumerate() {
            *byte = seed[i % seed.len()];
        }
    }
    format!("{prefix}{}", lower_hex(buffer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_prefix_and_lowercase_hex_and_differ() {
        let a = random_id("conv_", 16);
        let b = random_id("conv_", 16);
        assert_eq!(a.len(), 5 + 32);
        assert!(a.starts_with("conv_"));
        assert!(
            a[5..]
                .bytes()
                .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(&c))
        );
        assert_ne!(a, b);
        assert_eq!(random_id("", 100).len(), 128);
    }
}
