//! argon2id hashing of client secrets and admin passwords.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;

use argon2::password_hash::Error as PhcError;
use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, PasswordVerifier, Version};
use async_trait::async_trait;
use outcall_domain::SecretHash;
use outcall_domain::ports::{HashError, SecretHasher};
use tokio::sync::Semaphore;

/// argon2id cost parameters and how many hashes may run at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HasherParams {
    /// Memory cost in KiB (`m`).
    pub memory_kib: u32,
    /// Number of passes (`t`).
    pub iterations: u32,
    /// Lanes (`p`).
    pub parallelism: u32,
    /// Upper bound on concurrent hash computations; `None` means one per available CPU.
    /// Each one holds `memory_kib` of RAM, so this bounds memory under a login flood.
    pub max_concurrent: Option<NonZeroUsize>,
}

impl HasherParams {
    /// OWASP's recommended argon2id minimum: m = 19 MiB, t = 2, p = 1.
    pub const OWASP: Self = Self {
        memory_kib: 19_456,
        iterations: 2,
        parallelism: 1,
        max_concurrent: None,
    };
}

impl Default for HasherParams {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Why an [`Argon2Hasher`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HasherConfigError {
    #[error("invalid argon2 parameters: {0}")]
    InvalidParams(argon2::Error),
    #[error("cannot compute the decoy hash: {0}")]
    Decoy(PhcError),
}

/// The decoy's input and salt are fixed: its verification result is thrown away, so only
/// its cost matters, and a fixed input lets [`Argon2Hasher::default`] use a precomputed value.
const DECOY_PLAIN: &[u8] = b"outcall decoy: never a real secret";
const DECOY_SALT: &[u8] = b"outcall-decoy-16";

/// The decoy for [`HasherParams::OWASP`]; a test recomputes it.
const OWASP_DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$b3V0Y2FsbC1kZWNveS0xNg$JF+rI3AGY8xpC+SuSPVKOwxTBz/1wx3Bg5bcgEyg9Lo";

/// [`SecretHasher`] with argon2id v0x13, PHC strings and a fresh random salt per hash.
///
/// Work runs on tokio's blocking pool inside the caller's tracing span, at most
/// [`HasherParams::max_concurrent`] at a time. Cloning is cheap and shares the limit.
#[derive(Clone)]
pub struct Argon2Hasher {
    inner: Arc<Inner>,
}

struct Inner {
    argon2: Argon2<'static>,
    decoy: String,
    permits: Arc<Semaphore>,
}

impl Argon2Hasher {
    /// Validates `params` and computes the decoy hash once (one hash's worth of CPU, on the
    /// calling thread: construct it at start-up).
    ///
    /// # Errors
    /// [`HasherConfigError`] when argon2 refuses the parameters.
    pub fn new(params: HasherParams) -> Result<Self, HasherConfigError> {
        let cost = Params::new(
            params.memory_kib,
            params.iterations,
            params.parallelism,
            None,
        )
        .map_err(HasherConfigError::InvalidParams)?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, cost);
        let decoy = argon2
            .hash_password_with_salt(DECOY_PLAIN, DECOY_SALT)
            .map_err(HasherConfigError::Decoy)?
            .to_string();
        Ok(Self::from_parts(argon2, decoy, params.max_concurrent))
    }

    fn from_parts(
        argon2: Argon2<'static>,
        decoy: String,
        max_concurrent: Option<NonZeroUsize>,
    ) -> Self {
        let permits = max_concurrent
            .or_else(|| std::thread::available_parallelism().ok())
            .map_or(1, NonZeroUsize::get);
        Self {
            inner: Arc::new(Inner {
                argon2,
                decoy,
                permits: Arc::new(Semaphore::new(permits)),
            }),
        }
    }

    /// Runs `work` on the blocking pool, inside the current span, holding a permit until it
    /// finishes (even if the caller stops waiting).
    async fn run_blocking<T, F>(&self, work: F) -> Result<T, HashError>
    where
        F: FnOnce(&Inner) -> T + Send + 'static,
        T: Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|e| unexpected(e, "waiting for an argon2 slot"))?;
        let inner = Arc::clone(&self.inner);
        let span = tracing::Span::current();
        let job = move || {
            let _permit = permit;
            span.in_scope(|| work(&inner))
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => handle
                .spawn_blocking(job)
                .await
                .map_err(|e| unexpected(e, "argon2 task failed")),
            // No tokio runtime, no blocking pool: run in place rather than panic.
            Err(_) => Ok(job()),
        }
    }
}

impl Default for Argon2Hasher {
    /// OWASP parameters, with the decoy precomputed so that this cannot fail.
    fn default() -> Self {
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT);
        Self::from_parts(argon2, OWASP_DECOY.to_owned(), None)
    }
}

impl fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Argon2Hasher")
            .field("argon2", &self.inner.argon2)
            .finish_non_exhaustive()
    }
}

fn unexpected<E>(err: E, context: &'static str) -> HashError
where
    E: std::error::Error + Send + Sync + 'static,
{
    HashError::Unexpected(anyhow::Error::new(err).context(context))
}

/// Verifies with the algorithm, version and costs recorded in `phc`, comparing outputs in
/// constant time (argon2's `Output` equality).
fn verify_phc(argon2: &Argon2<'_>, plain: &str, phc: &str) -> Result<bool, HashError> {
    let parsed = PasswordHash::new(phc).map_err(|_| HashError::MalformedHash)?;
    // A PHC string without salt or output parses but can never verify anything.
    if parsed.salt.is_none() || parsed.hash.is_none() {
        return Err(HashError::MalformedHash);
    }
    match argon2.verify_password(plain.as_bytes(), &parsed) {
        Ok(()) => Ok(true),
        Err(PhcError::PasswordInvalid) => Ok(false),
        Err(
            PhcError::Algorithm
            | PhcError::EncodingInvalid
            | PhcError::OutputSize
            | PhcError::ParamInvalid { .. }
            | PhcError::ParamsInvalid
            | PhcError::SaltInvalid
            | PhcError::Version,
        ) => Err(HashError::MalformedHash),
        Err(other) => Err(unexpected(other, "verifying a secret with argon2")),
    }
}

#[async_trait]
impl SecretHasher for Argon2Hasher {
    async fn hash(&self, plain: &str) -> Result<SecretHash, HashError> {
        let plain = plain.to_owned();
        let phc = self
            .run_blocking(move |inner| inner.argon2.hash_password(plain.as_bytes()))
            .await?
            .map_err(|e| unexpected(e, "hashing a secret with argon2"))?;
        Ok(SecretHash::from_phc(phc.to_string()))
    }

    async fn verify(&self, plain: &str, hash: &SecretHash) -> Result<bool, HashError> {
        let plain = plain.to_owned();
        let phc = hash.as_phc().to_owned();
        self.run_blocking(move |inner| verify_phc(&inner.argon2, &plain, &phc))
            .await?
    }

    async fn verify_against_decoy(&self, plain: &str) {
        let plain = plain.to_owned();
        let outcome = self
            .run_blocking(move |inner| verify_phc(&inner.argon2, &plain, &inner.decoy))
            .await;
        // The answer is discarded; only the time spent matters.
        if let Ok(Err(err)) | Err(err) = outcome {
            tracing::warn!(error = %err, "decoy verification failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::Duration;

    use super::*;

    /// Cheap enough for tests; the algorithm and code paths are the production ones.
    const CHEAP: HasherParams = HasherParams {
        memory_kib: 256,
        iterations: 1,
        parallelism: 1,
        max_concurrent: None,
    };

    fn cheap() -> Argon2Hasher {
        Argon2Hasher::new(CHEAP).unwrap()
    }

    #[tokio::test]
    async fn a_hashed_secret_verifies() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        assert!(hasher.verify("correct horse battery", &hash).await.unwrap());
    }

    #[tokio::test]
    async fn a_wrong_secret_does_not_verify() {
        let hasher = cheap();
        let hash = hasher.hash("correct horse battery").await.unwrap();
        for wrong in ["correct horse batter", "Correct horse battery", ""] {
            assert!(!hasher.verify(wrong, &hash).await.unwrap(), "{wrong:?}");
        }
    }

    #[tokio::test]
    async fn two_hashes_of_the_same_secret_differ_by_their_salt() {
        let hasher = cheap();
        let a = hasher.hash("same secret value").await.unwrap();
        let b = hasher.hash("same secret value").await.unwrap();
        assert_ne!(a.as_phc(), b.as_phc());
        let salt = |h: &SecretHash| PasswordHash::new(h.as_phc()).unwrap().salt;
        assert_ne!(salt(&a), salt(&b));
        assert!(hasher.verify("same secret value", &a).await.unwrap());
        assert!(hasher.verify("same secret value", &b).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_are_argon2id_v19_phc_strings_with_the_configured_costs() {
        let hash = cheap().hash("some secret").await.unwrap();
        let phc = hash.as_phc();
        assert!(phc.starts_with("$argon2id$v=19$m=256,t=1,p=1$"), "{phc}");
        let parsed = PasswordHash::new(phc).unwrap();
        assert_eq!(parsed.salt.map(|s| s.len()), Some(16));
        assert_eq!(parsed.hash.map(|h| h.len()), Some(32));
    }

    #[tokio::test]
    async fn a_malformed_stored_hash_is_reported_as_such() {
        let hasher = cheap();
        let good = hasher.hash("some secret").await.unwrap();
        let good = good.as_phc();
        let without_output = good.rsplit_once('$').unwrap().0.to_owned();
        let cases = [
            String::new(),
            "not a hash".to_owned(),
            "$argon2id$".to_owned(),
            without_output,
            good.replace("m=256", "m=1"),
            good.replace("t=1", "t=0"),
            good.replace("$argon2id$", "$bcrypt$"),
            good.replace("v=19", "v=99"),
            format!("{good}!!"),
        ];
        for phc in cases {
            let result = hasher
                .verify("some secret", &SecretHash::from_phc(phc.clone()))
                .await;
            assert!(
                matches!(result, Err(HashError::MalformedHash)),
                "{phc:?}: {result:?}"
            );
        }
    }

    #[tokio::test]
    async fn the_decoy_never_matches_and_costs_the_same_as_a_real_hash() {
        let hasher = cheap();
        let decoy = &hasher.inner.decoy;
        let real = hasher.hash("x").await.unwrap();
        let params = |phc: &str| PasswordHash::new(phc).unwrap().params.to_string();
        assert_eq!(params(decoy), params(real.as_phc()));
        assert!(decoy.starts_with("$argon2id$v=19$"));
        for guess in ["", "x", "decoy", "outcall decoy", "outcall-decoy-16"] {
            let matched = verify_phc(&hasher.inner.argon2, guess, decoy).unwrap();
            assert!(!matched, "{guess:?}");
        }
        hasher.verify_against_decoy("anything at all").await;
    }

    #[test]
    fn the_default_uses_owasp_costs_and_a_decoy_computed_with_them() {
        assert_eq!(HasherParams::default(), HasherParams::OWASP);
        assert_eq!(Params::DEFAULT.m_cost(), HasherParams::OWASP.memory_kib);
        assert_eq!(Params::DEFAULT.t_cost(), HasherParams::OWASP.iterations);
        assert_eq!(Params::DEFAULT.p_cost(), HasherParams::OWASP.parallelism);
        let computed = Argon2Hasher::new(HasherParams::OWASP).unwrap();
        assert_eq!(Argon2Hasher::default().inner.decoy, computed.inner.decoy);
    }

    #[test]
    fn parameters_argon2_refuses_are_a_construction_error() {
        for params in [
            HasherParams {
                memory_kib: 4,
                ..CHEAP
            },
            HasherParams {
                iterations: 0,
                ..CHEAP
            },
            HasherParams {
                parallelism: 0,
                ..CHEAP
            },
        ] {
            assert!(
                matches!(
                    Argon2Hasher::new(params),
                    Err(HasherConfigError::InvalidParams(_))
                ),
                "{params:?}"
            );
        }
    }

    #[test]
    fn params_deserialize_with_owasp_defaults_for_missing_fields() {
        let params: HasherParams =
            serde_json::from_str(r#"{"memory_kib": 65536, "max_concurrent": 4}"#).unwrap();
        assert_eq!(params.memory_kib, 65_536);
        assert_eq!(params.iterations, 2);
        assert_eq!(params.max_concurrent, NonZeroUsize::new(4));
        assert!(serde_json::from_str::<HasherParams>(r#"{"memory": 1}"#).is_err());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn no_more_hashes_run_at_once_than_max_concurrent_allows() {
        let hasher = Argon2Hasher::new(HasherParams {
            max_concurrent: NonZeroUsize::new(2),
            ..CHEAP
        })
        .unwrap();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let job = || {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            hasher.run_blocking(move |_| {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(30));
                running.fetch_sub(1, Ordering::SeqCst);
            })
        };
        let results = tokio::join!(job(), job(), job(), job(), job(), job());
        assert!(results.0.is_ok() && results.5.is_ok());
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    struct ThreadWaker(std::thread::Thread);

    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    /// A minimal executor that is not tokio.
    fn block_on<F: Future>(future: F) -> F::Output {
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::park();
        }
    }

    #[test]
    fn hashing_works_without_a_tokio_runtime() {
        let hasher = cheap();
        let hash = block_on(hasher.hash("outside tokio")).unwrap();
        assert!(block_on(hasher.verify("outside tokio", &hash)).unwrap());
        block_on(hasher.verify_against_decoy("outside tokio"));
    }
}
