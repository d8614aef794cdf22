//! HS256 JWTs for admins and clients.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use chrono::DateTime;
use jsonwebtoken::errors::{Error as JwtError, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use outcall_domain::ports::{IssuedToken, Principal, TokenClaims, TokenError, TokenService};
use outcall_domain::{AdminUsername, ClientId, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::ids::try_token_id;

/// The issuer (`iss`) unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "outcall";
/// Shortest accepted signing secret: HS256's key size.
pub const MIN_SECRET_BYTES: usize = 32;
/// Longest accepted lifetime; beyond this, configure tokens never to expire.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);
/// Clock skew tolerated when checking `exp`.
const LEEWAY_SECS: u64 = 5;
/// Our tokens are a few hundred bytes; anything far larger is refused before parsing.
const MAX_TOKEN_LEN: usize = 4096;

const TYPE_ADMIN: &str = "admin";
const TYPE_CLIENT: &str = "client";

/// How tokens are signed and how long they live.
#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// HS256 key, at least [`MIN_SECRET_BYTES`] bytes.
    pub secret: SecretString,
    /// `iss` written into and required of every token.
    pub issuer: String,
    /// Lifetime (whole seconds); `None`: tokens carry no `exp` and never expire.
    pub ttl: Option<Duration>,
}

impl JwtSettings {
    /// Settings with the [`DEFAULT_ISSUER`].
    pub fn new(secret: SecretString, ttl: Option<Duration>) -> Self {
        Self {
            secret,
            issuer: DEFAULT_ISSUER.to_owned(),
            ttl,
        }
    }
}

/// Why [`JwtTokens`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum JwtConfigError {
    #[error("the JWT secret must be at least {MIN_SECRET_BYTES} bytes long")]
    SecretTooShort,
    #[error("the JWT issuer must not be empty")]
    EmptyIssuer,
    #[error("the token lifetime must be between 1 second and 100 years (or unset: never expire)")]
    TtlOutOfRange,
    #[error("jsonwebtoken cannot sign: {0}")]
    CryptoBackend(String),
}

/// What we sign.
#[derive(Serialize)]
struct OutgoingClaims<'a> {
    sub: &'a str,
    typ: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    ver: Option<i64>,
    jti: &'a str,
    iat: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exp: Option<i64>,
    iss: &'a str,
}

/// What we accept, deliberately loose so that each missing piece gets its own reason.
#[derive(Deserialize)]
struct IncomingClaims {
    sub: String,
    typ: Option<String>,
    ver: Option<i64>,
    jti: String,
    iat: i64,
    exp: Option<i64>,
}

/// [`TokenService`] signing HS256 JWTs with claims `sub`, `typ` (`admin`/`client`), `ver`
/// (client token version), `jti`, `iat`, `exp` (when a lifetime is set) and `iss`.
///
/// Verification accepts HS256 only, requires `iss` (checked), `sub` and — when a lifetime is
/// configured — `exp`; an `exp` is honoured whenever present. Nothing here logs.
pub struct JwtTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    ttl_secs: Option<i64>,
}

impl JwtTokens {
    /// Checks the settings and that jsonwebtoken has a working crypto backend (without one
    /// it panics at first use; here that becomes a start-up error).
    ///
    /// # Errors
    /// [`JwtConfigError`] naming what is wrong.
    pub fn new(settings: JwtSettings) -> Result<Self, JwtConfigError> {
        let secret = settings.secret.expose_secret().as_bytes();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(JwtConfigError::SecretTooShort);
        }
        if settings.issuer.trim().is_empty() {
            return Err(JwtConfigError::EmptyIssuer);
        }
        let ttl_secs = match settings.ttl {
            None => None,
            Some(ttl) if ttl.as_secs() >= 1 && ttl <= MAX_TTL => {
                Some(i64::try_from(ttl.as_secs()).map_err(|_| JwtConfigError::TtlOutOfRange)?)
            }
            Some(_) => return Err(JwtConfigError::TtlOutOfRange),
        };

        let encoding = EncodingKey::from_secret(secret);
        let decoding = DecodingKey::from_secret(secret);
        check_crypto_backend(&encoding, &decoding)?;

        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        // We never issue `aud`; leaving audience validation on refuses tokens that carry one.
        validation.validate_aud = true;
        validation.set_issuer(&[settings.issuer.as_str()]);
        let mut required = vec!["iss", "sub"];
        if ttl_secs.is_some() {
            required.push("exp");
        }
        validation.set_required_spec_claims(&required);

        Ok(Self {
            encoding,
            decoding,
            header: Header::new(Algorithm::HS256),
            validation,
            issuer: settings.issuer,
            ttl_secs,
        })
    }
}

impl fmt::Debug for JwtTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The keys hold the secret: never print them.
        f.debug_struct("JwtTokens")
            .field("issuer", &self.issuer)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

fn check_crypto_backend(
    encoding: &EncodingKey,
    decoding: &DecodingKey,
) -> Result<(), JwtConfigError> {
    const PROBE: &[u8] = b"outcall signing self-test";
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let signature = jsonwebtoken::crypto::sign(PROBE, encoding, Algorithm::HS256)?;
        jsonwebtoken::crypto::verify(&signature, PROBE, decoding, Algorithm::HS256)
    }));
    match outcome {
        Ok(Ok(true)) => Ok(()),
        Ok(Ok(false)) => Err(JwtConfigError::CryptoBackend(
            "an HS256 signature did not verify".to_owned(),
        )),
        Ok(Err(err)) => Err(JwtConfigError::CryptoBackend(err.to_string())),
        Err(_) => Err(JwtConfigError::CryptoBackend(
            "no crypto backend: enable exactly one of jsonwebtoken's `aws_lc_rs` or \
             `rust_crypto` features"
                .to_owned(),
        )),
    }
}

fn unexpected(context: &'static str) -> TokenError {
    TokenError::Unexpected(anyhow::anyhow!(context))
}

fn invalid_reason(err: &JwtError) -> Option<&'static str> {
    Some(match err.kind() {
        ErrorKind::ExpiredSignature => return None,
        ErrorKind::InvalidSignature => "bad signature",
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName
        | ErrorKind::UnsupportedAlgorithm => "algorithm not allowed",
        ErrorKind::InvalidIssuer => "wrong issuer",
        ErrorKind::InvalidAudience => "unexpected audience",
        ErrorKind::InvalidSubject => "wrong subject",
        ErrorKind::ImmatureSignature => "not yet valid",
        ErrorKind::MissingRequiredClaim(_) => "missing required claim",
        ErrorKind::InvalidClaimFormat(_) => "malformed claim",
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => "malformed token",
        _ => "invalid token",
    })
}

/// Token ids we issue are 32 hex digits; accept any short plain token, since it is only a
/// key for revocation.
fn is_valid_token_id(jti: &str) -> bool {
    (1..=64).contains(&jti.len())
        && jti
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl IncomingClaims {
    fn into_domain(self) -> Result<TokenClaims, TokenError> {
        let principal = match self.typ.as_deref() {
            Some(TYPE_ADMIN) => {
                if self.ver.is_some() {
                    return Err(TokenError::Invalid("admin token carries a version"));
                }
                let username = AdminUsername::parse(&self.sub)
                    .map_err(|_| TokenError::Invalid("invalid subject"))?;
                Principal::Admin { username }
            }
            Some(TYPE_CLIENT) => {
                let token_version = self
                    .ver
                    .ok_or(TokenError::Invalid("client token without version"))?;
                let client_id = ClientId::parse(&self.sub)
                    .map_err(|_| TokenError::Invalid("invalid subject"))?;
                Principal::Client {
                    client_id,
                    token_version,
                }
            }
            Some(_) => return Err(TokenError::Invalid("unknown token type")),
            None => return Err(TokenError::Invalid("missing token type")),
        };
        if !is_valid_token_id(&self.jti) {
            return Err(TokenError::Invalid("invalid token id"));
        }
        let issued_at = DateTime::from_timestamp(self.iat, 0)
            .ok_or(TokenError::Invalid("invalid issue time"))?;
        let expires_at = self
            .exp
            .map(|exp| {
                DateTime::from_timestamp(exp, 0).ok_or(TokenError::Invalid("invalid expiry"))
            })
            .transpose()?;
        Ok(TokenClaims {
            principal,
            token_id: self.jti,
            issued_at,
            expires_at,
        })
    }
}

impl TokenService for JwtTokens {
    fn issue(&self, principal: &Principal, now: Timestamp) -> Result<IssuedToken, TokenError> {
        // JWT times are whole seconds; the returned claims say exactly what the token says.
        let iat = now.timestamp();
        let issued_at = DateTime::from_timestamp(iat, 0)
            .ok_or_else(|| unexpected("issue time out of range"))?;
        let (exp, expires_at) = match self.ttl_secs {
            None => (None, None),
            Some(ttl) => {
                let exp = iat
                    .checked_add(ttl)
                    .filter(|exp| *exp >= 0)
                    .ok_or_else(|| unexpected("token expiry out of range"))?;
                let at = DateTime::from_timestamp(exp, 0)
                    .ok_or_else(|| unexpected("token expiry out of range"))?;
                (Some(exp), Some(at))
            }
        };
        let token_id = try_token_id().map_err(|e| {
            TokenError::Unexpected(anyhow::Error::new(e).context("generating a token id"))
        })?;
        let (sub, typ, ver) = match principal {
            Principal::Admin { username } => (username.as_str(), TYPE_ADMIN, None),
            Principal::Client {
                client_id,
                token_version,
            } => (client_id.as_str(), TYPE_CLIENT, Some(*token_version)),
        };
        let claims = OutgoingClaims {
            sub,
            typ,
            ver,
            jti: &token_id,
            iat,
            exp,
            iss: &self.issuer,
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding).map_err(|e| {
            TokenError::Unexpected(anyhow::Error::new(e).context("signing a token"))
        })?;
        Ok(IssuedToken {
            token,
            claims: TokenClaims {
                principal: principal.clone(),
                token_id,
                issued_at,
                expires_at,
            },
        })
    }

    fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Invalid("token too long"));
        }
        let data = jsonwebtoken::decode::<IncomingClaims>(token, &self.decoding, &self.validation)
            .map_err(|err| invalid_reason(&err).map_or(TokenError::Expired, TokenError::Invalid))?;
        data.claims.into_domain()
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chrono::Utc;
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &str = "0123456789abcdef0123456789abcdef-test";
    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    fn tokens_with(secret: &str, issuer: &str, ttl: Option<Duration>) -> JwtTokens {
        JwtTokens::new(JwtSettings {
            secret: SecretString::from(secret),
            issuer: issuer.to_owned(),
            ttl,
        })
        .unwrap()
    }

    fn tokens() -> JwtTokens {
        tokens_with(SECRET, DEFAULT_ISSUER, Some(DAY))
    }

    fn admin() -> Principal {
        Principal::Admin {
            username: AdminUsername::parse("ops@agency.example").unwrap(),
        }
    }

    fn client(version: i64) -> Principal {
        Principal::Client {
            client_id: ClientId::parse("client_12345abcde").unwrap(),
            token_version: version,
        }
    }

    fn payload_of(token: &str) -> Value {
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    fn header_of(token: &str) -> Value {
        let header = token.split('.').next().unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap()
    }

    /// Signs arbitrary claims with `SECRET`, as an attacker holding the key could not
    /// but a buggy issuer might.
    fn sign(alg: Algorithm, claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(alg),
            claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn valid_client_claims() -> Value {
        let now = Utc::now().timestamp();
        json!({
            "sub": "client_12345abcde", "typ": "client", "ver": 3, "jti": "abc123",
            "iat": now, "exp": now + 600, "iss": "outcall",
        })
    }

    fn with(mut claims: Value, key: &str, value: Value) -> Value {
        claims[key] = value;
        claims
    }

    fn without(mut claims: Value, key: &str) -> Value {
        claims.as_object_mut().unwrap().remove(key);
        claims
    }

    fn assert_invalid(result: Result<TokenClaims, TokenError>, what: &str) {
        assert!(
            matches!(result, Err(TokenError::Invalid(_))),
            "{what}: {result:?}"
        );
    }

    #[test]
    fn the_crypto_backend_signs_and_verifies_so_jsonwebtoken_never_panics_at_first_use() {
        let key = SECRET.as_bytes();
        let enc = EncodingKey::from_secret(key);
        let dec = DecodingKey::from_secret(key);
        assert!(check_crypto_backend(&enc, &dec).is_ok());
        let token = sign(Algorithm::HS256, &valid_client_claims());
        assert!(tokens().verify(&token).is_ok());
    }

    #[test]
    fn an_admin_token_round_trips_with_all_its_claims() {
        let tokens = tokens();
        let now = Utc::now();
        let issued = tokens.issue(&admin(), now).unwrap();
        let verified = tokens.verify(&issued.token).unwrap();
        assert_eq!(verified, issued.claims);
        assert_eq!(verified.principal, admin());
        assert_eq!(verified.issued_at.timestamp(), now.timestamp());
        assert_eq!(
            verified.expires_at.map(|t| t.timestamp()),
            Some(now.timestamp() + 86_400)
        );

        let payload = payload_of(&issued.token);
        assert_eq!(payload["sub"], "ops@agency.example");
        assert_eq!(payload["typ"], "admin");
        assert_eq!(payload["iss"], "outcall");
        assert_eq!(payload["iat"], now.timestamp());
        assert_eq!(payload["exp"], now.timestamp() + 86_400);
        assert_eq!(payload["jti"], issued.claims.token_id.as_str());
        assert!(payload.get("ver").is_none(), "{payload}");
        assert_eq!(header_of(&issued.token)["alg"], "HS256");
    }

    #[test]
    fn a_client_token_round_trips_with_its_version() {
        let tokens = tokens();
        let issued = tokens.issue(&client(7), Utc::now()).unwrap();
        let verified = tokens.verify(&issued.token).unwrap();
        assert_eq!(verified, issued.claims);
        assert_eq!(verified.principal, client(7));
        let payload = payload_of(&issued.token);
        assert_eq!(payload["sub"], "client_12345abcde");
        assert_eq!(payload["typ"], "client");
        assert_eq!(payload["ver"], 7);
    }

    #[test]
    fn every_token_gets_its_own_128_bit_id() {
        let tokens = tokens();
        let now = Utc::now();
        let a = tokens.issue(&client(0), now).unwrap().claims.token_id;
        let b = tokens.issue(&client(0), now).unwrap().claims.token_id;
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn an_expired_token_is_reported_as_expired() {
        let tokens = tokens_with(SECRET, DEFAULT_ISSUER, Some(Duration::from_secs(60)));
        let an_hour_ago = Utc::now() - chrono::Duration::hours(1);
        let issued = tokens.issue(&client(0), an_hour_ago).unwrap();
        assert!(matches!(
            tokens.verify(&issued.token),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn the_leeway_for_clock_skew_is_only_a_few_seconds() {
        let tokens = tokens_with(SECRET, DEFAULT_ISSUER, Some(Duration::from_secs(60)));
        let issued = tokens
            .issue(&client(0), Utc::now() - chrono::Duration::seconds(90))
            .unwrap();
        assert!(matches!(
            tokens.verify(&issued.token),
            Err(TokenError::Expired)
        ));
    }

    #[test]
    fn a_token_just_inside_its_lifetime_verifies() {
        let tokens = tokens_with(SECRET, DEFAULT_ISSUER, Some(Duration::from_secs(60)));
        let issued = tokens
            .issue(&client(0), Utc::now() - chrono::Duration::seconds(50))
            .unwrap();
        assert!(tokens.verify(&issued.token).is_ok());
    }

    #[test]
    fn a_token_signed_with_another_key_is_invalid() {
        let other = tokens_with(
            "another-secret-of-at-least-32-bytes!",
            DEFAULT_ISSUER,
            Some(DAY),
        );
        let token = other.issue(&admin(), Utc::now()).unwrap().token;
        assert!(matches!(
            tokens().verify(&token),
            Err(TokenError::Invalid("bad signature"))
        ));
    }

    #[test]
    fn an_unsigned_alg_none_token_is_invalid() {
        let tokens = tokens();
        let real = tokens.issue(&admin(), Utc::now()).unwrap().token;
        let payload = real.split('.').nth(1).unwrap();
        for header in [
            r#"{"alg":"none","typ":"JWT"}"#,
            r#"{"alg":"None","typ":"JWT"}"#,
            r#"{"typ":"JWT"}"#,
        ] {
            let header = URL_SAFE_NO_PAD.encode(header);
            assert_invalid(
                tokens.verify(&format!("{header}.{payload}.")),
                header.as_str(),
            );
            // The real signature does not help either: the header is part of what is signed.
            let signature = real.split('.').nth(2).unwrap();
            assert_invalid(
                tokens.verify(&format!("{header}.{payload}.{signature}")),
                header.as_str(),
            );
        }
    }

    #[test]
    fn tokens_signed_with_hs384_or_hs512_and_the_same_secret_are_invalid() {
        for alg in [Algorithm::HS384, Algorithm::HS512] {
            let token = sign(alg, &valid_client_claims());
            assert!(
                matches!(
                    tokens().verify(&token),
                    Err(TokenError::Invalid("algorithm not allowed"))
                ),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn a_token_with_an_rs256_header_is_invalid() {
        let real = tokens().issue(&admin(), Utc::now()).unwrap().token;
        let mut parts = real.splitn(2, '.');
        parts.next();
        let rest = parts.next().unwrap();
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","typ":"JWT"}"#);
        assert_invalid(tokens().verify(&format!("{header}.{rest}")), "RS256");
    }

    #[test]
    fn a_token_from_another_issuer_is_invalid() {
        let foreign = tokens_with(SECRET, "someone-else", Some(DAY));
        let token = foreign.issue(&admin(), Utc::now()).unwrap().token;
        assert!(matches!(
            tokens().verify(&token),
            Err(TokenError::Invalid("wrong issuer"))
        ));
        let no_issuer = sign(Algorithm::HS256, &without(valid_client_claims(), "iss"));
        assert_invalid(tokens().verify(&no_issuer), "no iss");
    }

    #[test]
    fn a_token_with_a_missing_or_unknown_type_is_invalid() {
        let tokens = tokens();
        assert!(
            tokens
                .verify(&sign(Algorithm::HS256, &valid_client_claims()))
                .is_ok()
        );
        let cases = [
            ("missing", without(valid_client_claims(), "typ")),
            (
                "unknown",
                with(valid_client_claims(), "typ", json!("superuser")),
            ),
            (
                "wrong case",
                with(valid_client_claims(), "typ", json!("Client")),
            ),
            ("not a string", with(valid_client_claims(), "typ", json!(1))),
        ];
        for (what, claims) in cases {
            assert_invalid(tokens.verify(&sign(Algorithm::HS256, &claims)), what);
        }
    }

    #[test]
    fn type_specific_claims_must_fit_the_type() {
        let tokens = tokens();
        let admin_claims = with(without(valid_client_claims(), "ver"), "typ", json!("admin"));
        let admin_claims = with(admin_claims, "sub", json!("ops"));
        assert!(
            tokens
                .verify(&sign(Algorithm::HS256, &admin_claims))
                .is_ok()
        );
        let cases = [
            (
                "admin with a bad username",
                with(admin_claims.clone(), "sub", json!("a b")),
            ),
            (
                "admin with a version",
                with(admin_claims.clone(), "ver", json!(1)),
            ),
            (
                "client without version",
                without(valid_client_claims(), "ver"),
            ),
            (
                "client with a bad id",
                with(valid_client_claims(), "sub", json!("../x")),
            ),
            (
                "client with a string version",
                with(valid_client_claims(), "ver", json!("1")),
            ),
            ("missing jti", without(valid_client_claims(), "jti")),
            ("empty jti", with(valid_client_claims(), "jti", json!(""))),
            ("missing iat", without(valid_client_claims(), "iat")),
            ("missing sub", without(valid_client_claims(), "sub")),
            (
                "with an audience",
                with(valid_client_claims(), "aud", json!("x")),
            ),
        ];
        for (what, claims) in cases {
            assert_invalid(tokens.verify(&sign(Algorithm::HS256, &claims)), what);
        }
    }

    #[test]
    fn a_tampered_payload_is_invalid() {
        let tokens = tokens();
        let real = tokens.issue(&client(1), Utc::now()).unwrap().token;
        let parts: Vec<&str> = real.split('.').collect();
        let mut payload = payload_of(&real);
        payload["ver"] = json!(2);
        let forged = URL_SAFE_NO_PAD.encode(payload.to_string());
        let token = format!("{}.{forged}.{}", parts[0], parts[2]);
        assert!(matches!(
            tokens.verify(&token),
            Err(TokenError::Invalid("bad signature"))
        ));
        // Flip the first character: the last one of a 32-byte MAC carries padding bits.
        let mut signature = parts[2].to_owned();
        let first = if signature.starts_with('A') { "B" } else { "A" };
        signature.replace_range(..1, first);
        assert_invalid(
            tokens.verify(&format!("{}.{}.{signature}", parts[0], parts[1])),
            "flipped signature",
        );
    }

    #[test]
    fn garbage_is_invalid() {
        let tokens = tokens();
        let real = tokens.issue(&admin(), Utc::now()).unwrap().token;
        let too_long = format!("{real}{}", "A".repeat(MAX_TOKEN_LEN));
        let cases = [
            "",
            ".",
            "..",
            "abc",
            "a.b",
            "a.b.c",
            "a.b.c.d",
            "Bearer x.y.z",
            "ünï.cø.de",
            "%%%.%%%.%%%",
            &format!("{real}.extra"),
            &format!("x{real}"),
            &too_long,
        ];
        for garbage in cases {
            assert_invalid(tokens.verify(garbage), garbage);
        }
    }

    #[test]
    fn without_a_ttl_tokens_carry_no_exp_and_verify() {
        let tokens = tokens_with(SECRET, DEFAULT_ISSUER, None);
        let issued = tokens.issue(&client(0), Utc::now()).unwrap();
        assert_eq!(issued.claims.expires_at, None);
        assert!(payload_of(&issued.token).get("exp").is_none());
        let verified = tokens.verify(&issued.token).unwrap();
        assert_eq!(verified, issued.claims);
    }

    #[test]
    fn without_a_ttl_an_exp_that_is_present_is_still_honoured() {
        let tokens = tokens_with(SECRET, DEFAULT_ISSUER, None);
        let past = Utc::now().timestamp() - 3600;
        let expired = with(valid_client_claims(), "exp", json!(past));
        assert!(matches!(
            tokens.verify(&sign(Algorithm::HS256, &expired)),
            Err(TokenError::Expired)
        ));
        let live = tokens
            .verify(&sign(Algorithm::HS256, &valid_client_claims()))
            .unwrap();
        assert!(live.expires_at.is_some());
    }

    #[test]
    fn with_a_ttl_a_token_without_exp_is_invalid() {
        let never_expiring = tokens_with(SECRET, DEFAULT_ISSUER, None)
            .issue(&client(0), Utc::now())
            .unwrap()
            .token;
        assert!(matches!(
            tokens().verify(&never_expiring),
            Err(TokenError::Invalid("missing required claim"))
        ));
    }

    #[test]
    fn a_short_secret_is_refused_at_construction() {
        let settings = |secret: &str| JwtSettings::new(SecretString::from(secret), Some(DAY));
        assert!(matches!(
            JwtTokens::new(settings(&"x".repeat(31))),
            Err(JwtConfigError::SecretTooShort)
        ));
        assert!(matches!(
            JwtTokens::new(settings("")),
            Err(JwtConfigError::SecretTooShort)
        ));
        assert!(JwtTokens::new(settings(&"x".repeat(32))).is_ok());
    }

    #[test]
    fn an_empty_issuer_or_an_unusable_ttl_is_refused_at_construction() {
        let build = |issuer: &str, ttl| {
            JwtTokens::new(JwtSettings {
                secret: SecretString::from(SECRET),
                issuer: issuer.to_owned(),
                ttl,
            })
        };
        assert!(matches!(
            build(" ", Some(DAY)),
            Err(JwtConfigError::EmptyIssuer)
        ));
        for ttl in [
            Duration::ZERO,
            Duration::from_millis(999),
            MAX_TTL + Duration::from_secs(1),
        ] {
            assert!(
                matches!(
                    build("outcall", Some(ttl)),
                    Err(JwtConfigError::TtlOutOfRange)
                ),
                "{ttl:?}"
            );
        }
        assert!(build("outcall", Some(MAX_TTL)).is_ok());
        assert_eq!(
            JwtSettings::new(SecretString::from(SECRET), None).issuer,
            "outcall"
        );
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let settings = JwtSettings::new(SecretString::from(SECRET), Some(DAY));
        assert!(!format!("{settings:?}").contains("0123456789abcdef"));
        let tokens = JwtTokens::new(settings).unwrap();
        let shown = format!("{tokens:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
        assert!(!shown.contains("48, 49, 50"), "{shown}");
    }
}
