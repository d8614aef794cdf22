//! Twilio's request signature (`X-Twilio-Signature`): computing it and checking it.
//!
//! Twilio signs every webhook it sends (status callbacks, TwiML fetches, the media-stream
//! WebSocket upgrade) with HMAC-SHA1 keyed by the account's auth token, over the URL it
//! requested followed by the form parameters it posted. See [`signature`] for the exact
//! string and [`verify_signature`] for which spellings of the URL are accepted.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::{Choice, ConstantTimeEq};

/// The `X-Twilio-Signature` Twilio would send for a request to `url` with form `params`.
///
/// The signed string is `url` exactly as given, followed by every parameter as `name` then
/// `value` with no delimiters and no URL-encoding, ordered by name in case-sensitive byte
/// order (`CallSid` < `CallStatus` < `CallbackSource` < `Called`). A name that occurs more than
/// once contributes each of its distinct values once, in byte order (as Twilio's SDKs do).
/// The result is the standard base64 (with padding) of HMAC-SHA1 keyed by `auth_token`.
///
/// For GET requests and WebSocket upgrades pass no params: everything is in `url`.
pub fn signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    // BTreeMap/BTreeSet over `&str` order by bytes, which is exactly Twilio's ordering, and
    // the set de-duplicates repeated values.
    let mut sorted: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (name, value) in params {
        sorted.entry(name).or_default().insert(value);
    }
    let mut mac = new_mac(auth_token);
    mac.update(url.as_bytes());
    for (name, values) in &sorted {
        for value in values {
            mac.update(name.as_bytes());
            mac.update(value.as_bytes());
        }
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

fn new_mac(auth_token: &str) -> Hmac<Sha1> {
    match Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()) {
        Ok(mac) => mac,
        // HMAC accepts keys of every length (long keys are hashed first).
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Whether `provided` is Twilio's signature of a request to `url` with form `params`.
///
/// Twilio is not consistent about the URL it signs, so every spelling it is known to use is
/// tried (each comparison in constant time, and all of them always run):
/// - `url` exactly as given (including any `user:pass@`, which is how Twilio's SDKs sign);
/// - with the scheme's default port (`:443` for `https`/`wss`, `:80` for `http`/`ws`) added
///   when the URL has none, or removed when the URL names it;
/// - each of those without `user:pass@` (Twilio drops credentials before signing voice
///   callbacks);
/// - for `wss://` and `ws://` URLs, each of those with a trailing `/` on the path, which
///   Twilio's documentation says to try for WebSocket handshakes.
///
/// The host's letter case and the query string are never changed. An empty `provided`
/// never matches.
pub fn verify_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    provided: &str,
) -> bool {
    if provided.is_empty() {
        return false;
    }
    let mut matched = Choice::from(0);
    for candidate in candidate_urls(url) {
        let expected = signature(auth_token, &candidate, params);
        matched |= expected.as_bytes().ct_eq(provided.as_bytes());
    }
    matched.into()
}

/// The spellings of `url` Twilio may have signed, `url` itself first, without duplicates.
fn candidate_urls(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some(parts) = UrlParts::split(url) else {
        // Not an absolute URL we understand: only the exact string can match.
        return out;
    };
    let userinfo_options: &[Option<&str>] = match parts.userinfo {
        Some(userinfo) => &[Some(userinfo), None],
        None => &[None],
    };
    let default_port = parts.default_port();
    let port_options: Vec<Option<&str>> = match (parts.port, default_port) {
        (Some(port), Some(default)) if port == default => vec![Some(port), None],
        (None, Some(default)) => vec![None, Some(default)],
        (port, _) => vec![port],
    };
    let is_websocket = matches!(parts.scheme_lower().as_str(), "ws" | "wss");
    let slash_options: &[bool] = if is_websocket && !parts.path.ends_with('/') {
        &[false, true]
    } else {
        &[false]
    };
    for userinfo in userinfo_options {
        for port in &port_options {
            for &slash in slash_options {
                let candidate = parts.join(*userinfo, *port, slash);
                if !out.contains(&candidate) {
                    out.push(candidate);
                }
            }
        }
    }
    out
}

/// An absolute URL cut into the pieces the candidates vary, by plain string slicing: a URL
/// parser would normalise (lower-case the host, drop default ports, re-encode the query)
/// and Twilio signs the text, not the parsed URL.
struct UrlParts<'a> {
    scheme: &'a str,
    userinfo: Option<&'a str>,
    host: &'a str,
    port: Option<&'a str>,
    path: &'a str,
    /// Query and fragment, including the leading `?` or `#`.
    rest: &'a str,
}

impl<'a> UrlParts<'a> {
    fn split(url: &'a str) -> Option<Self> {
        let (scheme, after_scheme) = url.split_once("://")?;
        if scheme.is_empty() || !scheme.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return None;
        }
        let authority_end = after_scheme
            .find(['/', '?', '#'])
            .unwrap_or(after_scheme.len());
        let (authority, tail) = after_scheme.split_at(authority_end);
        let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
        let (path, rest) = tail.split_at(path_end);
        let (userinfo, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => (Some(userinfo), host_port),
            None => (None, authority),
        };
        // A port is all digits after the last `:`; in `[::1]` that part is `1]`, so an IPv6
        // literal without port is left alone.
        let (host, port) = match host_port.rsplit_once(':') {
            Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
                (host, Some(port))
            }
            _ => (host_port, None),
        };
        if host.is_empty() {
            return None;
        }
        Some(Self {
            scheme,
            userinfo,
            host,
            port,
            path,
            rest,
        })
    }

    fn scheme_lower(&self) -> String {
        self.scheme.to_ascii_lowercase()
    }

    fn default_port(&self) -> Option<&'static str> {
        match self.scheme_lower().as_str() {
            "https" | "wss" => Some("443"),
            "http" | "ws" => Some("80"),
            _ => None,
        }
    }

    fn join(&self, userinfo: Option<&str>, port: Option<&str>, trailing_slash: bool) -> String {
        let mut out = format!("{}://", self.scheme);
        if let Some(userinfo) = userinfo {
            out.push_str(userinfo);
            out.push('@');
        }
        out.push_str(self.host);
        if let Some(port) = port {
            out.push(':');
            out.push_str(port);
        }
        out.push_str(self.path);
        if trailing_slash {
            out.push('/');
        }
        out.push_str(self.rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "12345";
    const SDK_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// twilio-node `spec/validation.spec.js` / twilio-php `RequestValidatorTest` parameters.
    fn sdk_params() -> Vec<(String, String)> {
        params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+14158675309"),
            ("Digits", "1234"),
            ("From", "+14158675309"),
            ("To", "+18005551212"),
        ])
    }

    fn status_callback_params() -> Vec<(String, String)> {
        // Deliberately not in sorted order: sorting is the function's job.
        params(&[
            ("To", "+15005550006"),
            ("Timestamp", "Tue, 01 Jul 2025 12:00:42 +0000"),
            ("SequenceNumber", "3"),
            ("From", "+15005550001"),
            ("Duration", "1"),
            ("Direction", "outbound-api"),
            ("Caller", "+15005550001"),
            ("Called", "+15005550006"),
            ("CallbackSource", "call-progress-events"),
            ("CallDuration", "42"),
            ("CallStatus", "completed"),
            ("CallSid", "CA00000000000000000000000000000001"),
            ("ApiVersion", "2010-04-01"),
            ("AccountSid", "AC00000000000000000000000000000000"),
        ])
    }

    #[test]
    fn the_official_webhook_security_example_signs_and_verifies() {
        let url = "https://example.com/myapp.php?foo=1&bar=2";
        let params = params(&[
            ("Digits", "1234"),
            ("To", "+18005551212"),
            ("From", "+14158675310"),
            ("Caller", "+14158675310"),
            ("CallSid", "CA1234567890ABCDE"),
        ]);
        let expected = "L/OH5YylLD5NRKLltdqwSvS0BnU=";
        assert_eq!(signature(TOKEN, url, &params), expected);
        assert!(verify_signature(TOKEN, url, &params, expected));
    }

    #[test]
    fn every_sdk_table_vector_signs_its_url_and_verifies() {
        let cases = [
            (SDK_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B8="),
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
            assert_eq!(signature(TOKEN, url, &sdk_params()), expected, "{url}");
            assert!(
                verify_signature(TOKEN, url, &sdk_params(), expected),
                "{url}"
            );
        }
    }

    #[test]
    fn a_signature_over_the_url_without_port_verifies_against_the_url_with_the_default_port() {
        assert!(verify_signature(
            TOKEN,
            "https://mycompany.com:443/myapp.php?foo=1&bar=2",
            &sdk_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ));
    }

    #[test]
    fn a_signature_over_the_url_with_the_default_port_verifies_against_the_url_without_it() {
        assert!(verify_signature(
            TOKEN,
            SDK_URL,
            &sdk_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        ));
        // http: Twilio keeps the port, but a validator given the URL without `:80` must still
        // accept a signature over the URL with it.
        assert!(verify_signature(
            TOKEN,
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            &sdk_params(),
            "0ZXoZLH/DfblKGATFgpif+LLRf4=",
        ));
    }

    #[test]
    fn a_non_default_port_is_never_dropped_or_swapped() {
        // Signed over :1234; the same URL without the port (or with :80) must not match.
        for url in [
            "http://mycompany.com/myapp.php?foo=1&bar=2",
            "http://mycompany.com:80/myapp.php?foo=1&bar=2",
        ] {
            assert!(
                !verify_signature(TOKEN, url, &sdk_params(), "Zmvh+3yNM1Phv2jhDCwEM3q5ebU="),
                "{url}"
            );
        }
    }

    #[test]
    fn credentials_in_the_url_are_accepted_both_signed_and_stripped() {
        // The SDK vector (CukzLT...) is the HMAC over the URL *with* `user:pass@`, so the SDKs
        // sign the URL as configured; Twilio's docs say voice callbacks over HTTPS are signed
        // without credentials (and without port). Both must verify.
        let with_credentials = "https://user:pass@mycompany.com/myapp.php?foo=1&bar=2";
        assert!(verify_signature(
            TOKEN,
            with_credentials,
            &sdk_params(),
            "CukzLTc1tT5dXEDIHm/tKBanW10=",
        ));
        assert!(verify_signature(
            TOKEN,
            with_credentials,
            &sdk_params(),
            "RSOYDt4T1cUTdK1PDd93/VVr8B8=",
        ));
        assert!(verify_signature(
            TOKEN,
            with_credentials,
            &sdk_params(),
            "kvajT1Ptam85bY51eRf/AJRuM3w=",
        ));
        // Credentials are never invented: a signature over a URL with them does not verify
        // against the URL without them.
        assert!(!verify_signature(
            TOKEN,
            SDK_URL,
            &sdk_params(),
            "CukzLTc1tT5dXEDIHm/tKBanW10=",
        ));
    }

    #[test]
    fn the_host_case_is_part_of_the_signed_url() {
        // g9IN... signs `MyCompany.com`; the lower-case URL must not verify it.
        assert!(!verify_signature(
            TOKEN,
            SDK_URL,
            &sdk_params(),
            "g9IN/x4Cft2g517EjYvEvM/W7LU=",
        ));
    }

    #[test]
    fn repeated_params_contribute_each_distinct_value_once_in_sorted_order() {
        let params = params(&[
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]);
        let expected = "IK+Dwps556ElfBT0I3Rgjkr1wJU=";
        assert_eq!(signature(TOKEN, SDK_URL, &params), expected);
        assert!(verify_signature(TOKEN, SDK_URL, &params, expected));
    }

    #[test]
    fn the_older_documentation_vector_signs_and_verifies() {
        let params = params(&[
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", "+12349013030"),
            ("Digits", "1234"),
            ("From", "+12349013030"),
            ("To", "+18005551212"),
        ]);
        let expected = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";
        assert_eq!(signature(TOKEN, SDK_URL, &params), expected);
        assert!(verify_signature(TOKEN, SDK_URL, &params, expected));
    }

    #[test]
    fn the_json_body_vectors_sign_their_urls_with_no_params() {
        // Section 3.2: the body hash rides in the query and nothing is appended.
        let url = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=\
                   0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(signature(TOKEN, url, &[]), "a9nBmqA0ju/hNViExpshrM61xv4=");
        let only_hash = "https://mycompany.com/myapp.php?bodySHA256=\
                         0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        assert_eq!(
            signature(TOKEN, only_hash, &[]),
            "y77kIzt2vzLz71DgmJGsen2scGs="
        );
        // `{}` was signed with `:443` only; the validator finds it from the URL without port.
        let empty_body = "https://mycompany.com/myapp.php?foo=1&bar=2&bodySHA256=\
                          44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(
            signature(TOKEN, empty_body, &[]),
            "rw/jVviOgicj2+kHZULvebnA4ag="
        );
        assert!(verify_signature(
            TOKEN,
            empty_body,
            &[],
            "Ldidvp12m26NI7eqEvxnEpkd9Hc="
        ));
    }

    #[test]
    fn the_media_stream_upgrade_vector_signs_the_wss_url_with_no_params() {
        let url = "wss://example.com/outbound-media-stream";
        let expected = "4nJ2WuczDFFNvFXzC18+snM0VRQ=";
        assert_eq!(signature(TOKEN, url, &[]), expected);
        assert!(verify_signature(TOKEN, url, &[], expected));
        assert!(verify_signature(
            TOKEN,
            "wss://example.com:443/outbound-media-stream",
            &[],
            expected
        ));
    }

    #[test]
    fn a_websocket_signature_over_the_url_with_a_trailing_slash_verifies() {
        let signed_with_slash = signature(TOKEN, "wss://example.com/outbound-media-stream/", &[]);
        assert!(verify_signature(
            TOKEN,
            "wss://example.com/outbound-media-stream",
            &[],
            &signed_with_slash
        ));
        let plain_ws = signature(TOKEN, "ws://127.0.0.1:3000/twilio/media-stream/", &[]);
        assert!(verify_signature(
            TOKEN,
            "ws://127.0.0.1:3000/twilio/media-stream",
            &[],
            &plain_ws
        ));
    }

    #[test]
    fn a_trailing_slash_is_not_tried_for_http_urls() {
        let signed_with_slash = signature(TOKEN, "https://example.com/twilio/status/", &[]);
        assert!(!verify_signature(
            TOKEN,
            "https://example.com/twilio/status",
            &[],
            &signed_with_slash
        ));
    }

    #[test]
    fn the_status_callback_vector_signs_and_verifies() {
        let url = "https://example.com/twilio/status?call_id=abc";
        let expected = "9YHMLggE6fC/vZKfpbOtXGV9hIk=";
        assert_eq!(signature(TOKEN, url, &status_callback_params()), expected);
        assert!(verify_signature(
            TOKEN,
            url,
            &status_callback_params(),
            expected
        ));
    }

    #[test]
    fn a_changed_param_fails_verification() {
        let url = "https://example.com/twilio/status?call_id=abc";
        let mut changed = status_callback_params();
        for (name, value) in &mut changed {
            if name == "CallStatus" {
                *value = "busy".to_owned();
            }
        }
        assert!(!verify_signature(
            TOKEN,
            url,
            &changed,
            "9YHMLggE6fC/vZKfpbOtXGV9hIk="
        ));
    }

    #[test]
    fn an_added_param_fails_verification() {
        let url = "https://example.com/twilio/status?call_id=abc";
        let mut added = status_callback_params();
        added.push(("AnsweredBy".to_owned(), "human".to_owned()));
        assert!(!verify_signature(
            TOKEN,
            url,
            &added,
            "9YHMLggE6fC/vZKfpbOtXGV9hIk="
        ));
    }

    #[test]
    fn a_changed_query_fails_verification() {
        assert!(!verify_signature(
            TOKEN,
            "https://example.com/twilio/status?call_id=abd",
            &status_callback_params(),
            "9YHMLggE6fC/vZKfpbOtXGV9hIk="
        ));
    }

    #[test]
    fn the_wrong_token_fails_verification() {
        assert!(!verify_signature(
            "54321",
            "https://example.com/twilio/status?call_id=abc",
            &status_callback_params(),
            "9YHMLggE6fC/vZKfpbOtXGV9hIk="
        ));
    }

    #[test]
    fn an_empty_or_garbage_signature_fails_verification() {
        let url = "https://example.com/twilio/status?call_id=abc";
        for provided in [
            "",
            "not base64 at all!",
            "9YHMLggE6fC/vZKfpbOtXGV9hIk",
            "9YHMLggE6fC/vZKfpbOtXGV9hIk==",
            "9yhmlgge6fc/vzkfpbotxgv9hik=",
            "%%%%%%%%%%%%%%%%%%%%%%%%%%%=",
        ] {
            assert!(
                !verify_signature(TOKEN, url, &status_callback_params(), provided),
                "{provided:?}"
            );
        }
    }

    #[test]
    fn an_empty_signature_fails_even_for_an_empty_token() {
        assert!(!verify_signature("", "https://example.com/", &[], ""));
    }

    #[test]
    fn candidates_keep_the_query_and_ipv6_hosts_intact() {
        let candidates = candidate_urls("http://[::1]:8080/a?b=c:80");
        assert_eq!(candidates, vec!["http://[::1]:8080/a?b=c:80".to_owned()]);
        let candidates = candidate_urls("http://[::1]/a?x=1");
        assert_eq!(
            candidates,
            vec![
                "http://[::1]/a?x=1".to_owned(),
                "http://[::1]:80/a?x=1".to_owned()
            ]
        );
    }

    #[test]
    fn a_string_that_is_not_an_absolute_url_is_only_tried_as_given() {
        assert_eq!(candidate_urls("/twilio/status"), vec!["/twilio/status"]);
        let expected = signature(TOKEN, "/twilio/status", &[]);
        assert!(verify_signature(TOKEN, "/twilio/status", &[], &expected));
    }
}
