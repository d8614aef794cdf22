//! Identifiers and secrets drawn from the operating system's CSPRNG.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outcall_domain::ports::IdGenerator;
use outcall_domain::{CallId, ClientId, ClientSecret};

/// The operating system's random number generator could not be used.
#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator is unavailable: {0}")]
pub struct RandomnessUnavailable(getrandom::Error);

/// `N` bytes from the OS CSPRNG.
pub(crate) fn try_random<const N: usize>() -> Result<[u8; N], RandomnessUnavailable> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(RandomnessUnavailable)?;
    Ok(bytes)
}

/// 128 random bits as 32 lowercase hex characters (token ids, `jti`).
pub(crate) fn try_token_id() -> Result<String, RandomnessUnavailable> {
    Ok(hex(&try_random::<16>()?))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Lowercase RFC 4648 base32 alphabet: 32 symbols, so `byte & 31` picks one without bias.
const BASE32: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Random bytes for the infallible [`IdGenerator`] port.
///
/// # Panics
/// When the OS CSPRNG fails. The port cannot report an error, and a predictable client
/// secret or id would be far worse than a failed request. [`RandomIds::check`] at start-up
/// makes a host without a usable random source fail before serving anything.
fn random<const N: usize>() -> [u8; N] {
    match try_random() {
        Ok(bytes) => bytes,
        Err(err) => panic!("cannot generate an identifier: {err}"),
    }
}

/// Parses `primary`; if the domain refuses it (a bug: the formats below are built to satisfy
/// its rules, and tests check thousands of them), logs the refusal without the value and
/// tries the plainest format there is, lowercase hex.
///
/// # Panics
/// Only when the domain refuses the hex fallback as well, i.e. generator and domain rules
/// disagree so fundamentally that no valid value can be produced.
fn parse_or_fallback<T, E: fmt::Display>(
    kind: &'static str,
    primary: String,
    fallback: impl FnOnce() -> String,
    parse: impl Fn(&str) -> Result<T, E>,
) -> T {
    match parse(&primary) {
        Ok(value) => return value,
        Err(err) => {
            tracing::error!(kind, %err, "generated value refused by the domain; using hex fallback");
        }
    }
    match parse(&fallback()) {
        Ok(value) => value,
        Err(err) => panic!("generated {kind} refused by the domain even in hex: {err}"),
    }
}

/// [`IdGenerator`] over the OS CSPRNG (`getrandom`).
///
/// - client ids: `client_` + 20 lowercase base32 characters (100 bits);
/// - client secrets: 32 random bytes (256 bits) as URL-safe base64 without padding, 43 chars;
/// - call ids: `call_` + a UUID v4 in simple (32 hex digits) form;
/// - token ids: 128 random bits as 32 hex digits.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

impl RandomIds {
    /// Checks that the OS random source works, so that a host where it does not (e.g. a
    /// seccomp profile refusing `getrandom`) fails at start-up rather than on a request.
    ///
    /// # Errors
    /// [`RandomnessUnavailable`] when no random bytes can be read.
    pub fn check() -> Result<(), RandomnessUnavailable> {
        try_random::<16>().map(|_| ())
    }
}

impl IdGenerator for RandomIds {
    fn client_id(&self) -> ClientId {
        let symbols: String = random::<20>()
            .iter()
            .map(|b| char::from(BASE32[usize::from(b & 31)]))
            .collect();
        parse_or_fallback(
            "clientId",
            format!("client_{symbols}"),
            || hex(&random::<16>()),
            ClientId::parse,
        )
    }

    fn client_secret(&self) -> ClientSecret {
        parse_or_fallback(
            "clientSecret",
            URL_SAFE_NO_PAD.encode(random::<32>()),
            || hex(&random::<32>()),
            ClientSecret::parse,
        )
    }

    fn call_id(&self) -> CallId {
        // Built from our own bytes: `Uuid::new_v4` would panic on RNG failure by itself.
        let uuid = uuid::Builder::from_random_bytes(random::<16>()).into_uuid();
        parse_or_fallback(
            "callId",
            format!("call_{}", uuid.simple()),
            || hex(&random::<16>()),
            CallId::parse,
        )
    }

    fn token_id(&self) -> String {
        hex(&random::<16>())
    }

    /// `req_` and 96 random bits in hex: unique enough to correlate one request in logs.
    fn request_id(&self) -> String {
        format!("req_{}", hex(&random::<12>()))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    const SAMPLES: usize = 5_000;

    #[test]
    fn thousands_of_client_ids_parse_in_the_documented_format_and_never_repeat() {
        let ids = RandomIds;
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let id = ids.client_id();
            let raw = id.as_str();
            let symbols = raw.strip_prefix("client_").expect("client_ prefix");
            assert_eq!(symbols.len(), 20, "{raw}");
            assert!(symbols.bytes().all(|b| BASE32.contains(&b)), "{raw}");
            assert!(ClientId::parse(raw).is_ok());
            assert!(seen.insert(raw.to_owned()), "repeated {raw}");
        }
    }

    #[test]
    fn thousands_of_client_secrets_parse_and_carry_256_bits() {
        let ids = RandomIds;
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let secret = ids.client_secret();
            let raw = secret.expose();
            assert_eq!(raw.len(), 43, "{raw}");
            assert!(!raw.contains('='), "{raw}");
            assert_eq!(URL_SAFE_NO_PAD.decode(raw).expect("base64url").len(), 32);
            assert!(ClientSecret::parse(raw).is_ok());
            assert!(seen.insert(raw.to_owned()));
        }
    }

    #[test]
    fn thousands_of_call_ids_parse_as_prefixed_uuid_v4s() {
        let ids = RandomIds;
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let id = ids.call_id();
            let raw = id.as_str();
            let simple = raw.strip_prefix("call_").expect("call_ prefix");
            let uuid = uuid::Uuid::try_parse(simple).expect("uuid");
            assert_eq!(uuid.get_version_num(), 4, "{raw}");
            assert_eq!(simple, uuid.simple().to_string());
            assert!(CallId::parse(raw).is_ok());
            assert!(seen.insert(raw.to_owned()));
        }
    }

    #[test]
    fn request_ids_are_prefixed_hex_and_unique() {
        let ids = RandomIds;
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let id = ids.request_id();
            assert!(id.starts_with("req_") && id.len() == 28, "{id}");
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn token_ids_are_128_bit_lowercase_hex_and_unique() {
        let ids = RandomIds;
        let mut seen = HashSet::new();
        for _ in 0..SAMPLES {
            let id = ids.token_id();
            assert_eq!(id.len(), 32, "{id}");
            assert!(
                id.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                "{id}"
            );
            assert!(seen.insert(id));
        }
    }

    #[test]
    fn a_value_the_domain_refuses_is_replaced_by_the_hex_fallback() {
        let no_underscores = |s: &str| {
            if s.contains('_') {
                Err("underscore")
            } else {
                Ok(s.to_owned())
            }
        };
        let value = parse_or_fallback(
            "test",
            "client_abc".to_owned(),
            || "abc123".to_owned(),
            no_underscores,
        );
        assert_eq!(value, "abc123");
        let value = parse_or_fallback(
            "test",
            "plain".to_owned(),
            || unreachable!("fallback used although the primary value parsed"),
            no_underscores,
        );
        assert_eq!(value, "plain");
    }

    #[test]
    fn hex_encodes_every_byte_as_two_lowercase_digits() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
    }

    #[test]
    fn the_os_random_source_is_usable() {
        assert!(RandomIds::check().is_ok());
        assert_ne!(try_random::<16>().unwrap(), try_random::<16>().unwrap());
    }
}
