//! `X-Twilio-Signature` as Twilio computes it (protocols 3.1, 3.4).
//!
//! Written independently of the adapter's validator on purpose: both are checked against the
//! same official vectors, so a shared misreading of the algorithm cannot hide.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Base64 HMAC-SHA1 over `url` followed by every POST parameter, sorted by name (byte order),
/// each written as `name` + `value` with no separators; repeated names contribute each distinct
/// value once, in sorted order (as twilio-node and twilio-php do). For GET requests and
/// WebSocket upgrades pass no params: the query string is part of `url`.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    let mut message = String::with_capacity(url.len() + 64 * params.len());
    message.push_str(url);
    for (name, values) in sorted {
        for value in values {
            message.push_str(name);
            message.push_str(value);
        }
    }
    // HMAC takes keys of any length, so construction cannot fail in practice; an empty key is
    // still a valid (if useless) key.
    let digest = match <Hmac<Sha1> as KeyInit>::new_from_slice(auth_token.as_bytes()) {
        Ok(mut mac) => {
            mac.update(message.as_bytes());
            mac.finalize().into_bytes().to_vec()
        }
        Err(_) => Vec::new(),
    };
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// The URL Twilio signs for a request it sends to `configured`: without a `#fragment` (where
/// connection overrides live; never sent on the wire) and without `user:pass@` credentials
/// (Twilio sends those as Basic auth instead). Everything else, port and query included, stays
/// exactly as written.
pub(crate) fn signing_url(configured: &str) -> String {
    let without_fragment = configured.split('#').next().unwrap_or(configured);
    let Some(scheme_end) = without_fragment.find("://") else {
        return without_fragment.to_owned();
    };
    let authority_start = scheme_end + 3;
    let rest = &without_fragment[authority_start..];
    let authority_len = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_len];
    match authority.rfind('@') {
        Some(at) => format!(
            "{}{}",
            &without_fragment[..authority_start],
            &without_fragment[authority_start + at + 1..]
        ),
        None => without_fragment.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn sdk_params() -> Vec<(String, String)> {
        p(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    #[test]
    fn the_official_webhook_security_page_vector_matches() {
        let params = p(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        assert_eq!(
            twilio_signature(
                "12345",
                "https://example.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "L/OH5YylLD5NRKLltdqwSvS0BnU="
        );
    }

    #[test]
    fn the_official_sdk_vectors_match_for_every_url_form() {
        let cases = [
            (
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
            ),
            (
                "https://mycompany.com:443/myapp.php?foo=1&bar=2",
                "kvajT1Ptam85bY51eRf/AJRuM3w=",
            ),
            (
                "http://mycompany.com:1234/myapp.php?foo=1&bar=2",
                "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=",
            ),
            (
                "http://mycompany.com:80/myapp.php?foo=1&bar=2",
                "0ZXoZLH/DfblKGATFgpif+LLRf4=",
            ),
            (
                "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2",
                "CukzLTc1tT5dXEDIHm/tKBanW10=",
            ),
            (
                "https://MyCompany.com/myapp.php?foo=1&bar=2",
                "g9IN/x4Cft2g517EjYvEvM/W7LU=",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(
                twilio_signature("12345", url, &sdk_params()),
                expected,
                "{url}"
            );
        }
    }

    #[test]
    fn repeated_parameters_are_deduplicated_and_sorted_like_the_official_sdks() {
        let params = p(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        assert_eq!(
            twilio_signature(
                "12345",
                "https://mycompany.com/myapp.php?foo=1&bar=2",
                &params
            ),
            "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        );
    }

    #[test]
    fn a_bodysha256_url_with_no_params_matches_the_official_vector() {
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(
            twilio_signature("12345", url, &[]),
            "a9nBmqA0ju/hNViExpshrM61xv4="
        );
    }

    #[test]
    fn the_self_computed_stream_and_status_callback_vectors_match() {
        assert_eq!(
            twilio_signature("12345", "wss://example.com/outbound-media-stream", &[]),
            "4nJ2WuczDFFNvFXzC18+snM0VRQ="
        );
        let params = p(&[
            ("AccountSid", "AC00000000000000000000000000000000"),
            ("ApiVersion", "2010-04-01"),
            ("CallSid", "CA00000000000000000000000000000001"),
            ("CallStatus", "completed"),
            ("CallDuration", "42"),
            ("CallbackSource", "call-progress-events"),
            ("Called", "+15005550006"),
            ("Caller", "+15005550001"),
            ("Direction", "outbound-api"),
            ("Duration", "1"),
            ("From", "+15005550001"),
            ("SequenceNumber", "3"),
            ("Timestamp", "Tue, 01 Jul 2025 12:00:42 +0000"),
            ("To", "+15005550006"),
        ]);
        assert_eq!(
            twilio_signature(
                "12345",
                "https://example.com/twilio/status?call_id=abc",
                &params
            ),
            "9YHMLggE6fC/vZKfpbOtXGV9hIk="
        );
    }

    #[test]
    fn the_signing_url_drops_credentials_and_fragment_but_keeps_port_and_query() {
        assert_eq!(
            signing_url("http://u:p@127.0.0.1:8080/s?call_id=1#rc=2"),
            "http://127.0.0.1:8080/s?call_id=1"
        );
        assert_eq!(
            signing_url("https://example.com:8443/a?b=c"),
            "https://example.com:8443/a?b=c"
        );
        assert_eq!(
            signing_url("https://example.com/a?email=x@y"),
            "https://example.com/a?email=x@y"
        );
        assert_eq!(signing_url("not a url"), "not a url");
    }
}
