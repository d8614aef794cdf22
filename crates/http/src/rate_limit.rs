//! Login rate limiting: one GCRA budget per account and one per source address.
//!
//! Written here rather than taken from `actix-governor` (GPL-3.0). Built once per [`crate::Api`]
//! and shared by every worker, so the budgets hold across the whole process.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use actix_web::HttpRequest;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::LoginLimits;
use crate::error::ApiError;

/// How many checks pass between sweeps of idle keys, so memory follows the number of recent
/// callers rather than of all callers ever seen.
const SWEEP_EVERY: u64 = 1024;

/// Account keys longer than this are cut: no valid client id or admin name is longer, and an
/// attacker must not be able to make each key as large as a request body.
const MAX_ACCOUNT_KEY_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum AccountKey {
    Admin(String),
    Client(String),
}

/// IPv6 callers are keyed by their /64, the block one subscriber usually controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum AddressKey {
    V4(u32),
    V6Net(u64),
    Unknown,
}

impl From<IpAddr> for AddressKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4)),
            IpAddr::V6(v6) => Self::V6Net((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Whose budget a login-like attempt spends.
#[derive(Debug, Clone, Copy)]
pub enum Account<'a> {
    Admin(&'a str),
    Client(&'a str),
}

impl Account<'_> {
    fn key(self) -> AccountKey {
        let cut = |raw: &str| raw.chars().take(MAX_ACCOUNT_KEY_CHARS).collect::<String>();
        match self {
            Self::Admin(name) => AccountKey::Admin(cut(name)),
            Self::Client(id) => AccountKey::Client(cut(id)),
        }
    }
}

pub struct LoginLimiter {
    /// `None` when the configured quota is 0 (limiting switched off).
    per_account: Option<DefaultKeyedRateLimiter<AccountKey>>,
    per_address: Option<DefaultKeyedRateLimiter<AddressKey>>,
    trust_forwarded_for: bool,
    checks: AtomicU64,
    clock: DefaultClock,
}

fn keyed<K: Clone + std::hash::Hash + Eq>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n)))
}

impl LoginLimiter {
    pub fn new(limits: &LoginLimits, trust_forwarded_for: bool) -> Self {
        Self {
            per_account: keyed(limits.per_account_per_minute),
            per_address: keyed(limits.per_address_per_minute),
            trust_forwarded_for,
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// Spends one attempt of the request's source address.
    ///
    /// # Errors
    /// `TooManyAttempts` with the seconds until the next attempt is allowed.
    pub fn check_address(&self, req: &HttpRequest) -> Result<(), ApiError> {
        let key = source_address(req, self.trust_forwarded_for)
            .map_or(AddressKey::Unknown, AddressKey::from);
        self.check(self.per_address.as_ref(), &key)
    }

    /// Spends one attempt of the account (client id or admin name as sent, valid or not).
    ///
    /// # Errors
    /// `TooManyAttempts` with the seconds until the next attempt is allowed.
    pub fn check_account(&self, account: Account<'_>) -> Result<(), ApiError> {
        self.check(self.per_account.as_ref(), &account.key())
    }

    fn check<K: Clone + std::hash::Hash + Eq>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
    ) -> Result<(), ApiError> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let Some(limiter) = limiter else {
            return Ok(());
        };
        limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            // Round up, and never tell a caller to retry after 0 seconds.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::TooManyAttempts {
                retry_after_secs: secs.max(1),
            }
        })
    }

    /// Forgets keys whose budget is full again; they behave exactly like unseen keys.
    fn sweep(&self) {
        if let Some(limiter) = &self.per_account {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_address {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.per_account.as_ref().map_or(0, |l| l.len())
            + self.per_address.as_ref().map_or(0, |l| l.len())
    }
}

/// The peer's address, or — behind a trusted proxy — the last `X-Forwarded-For` entry, the
/// one the nearest proxy appended (earlier entries are whatever the client claimed).
fn source_address(req: &HttpRequest, trust_forwarded_for: bool) -> Option<IpAddr> {
    if trust_forwarded_for {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .last()
            .and_then(|entry| parse_forwarded(entry.trim()));
        if forwarded.is_some() {
            return forwarded;
        }
    }
    req.peer_addr().map(|addr| addr.ip())
}

fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn limits(account: u32, address: u32) -> LoginLimits {
        LoginLimits {
            per_account_per_minute: account,
            per_address_per_minute: address,
        }
    }

    #[test]
    fn an_account_gets_its_quota_then_a_retry_time_in_whole_seconds() {
        let limiter = LoginLimiter::new(&limits(3, 0), false);
        for _ in 0..3 {
            assert!(limiter.check_account(Account::Client("c1")).is_ok());
        }
        match limiter.check_account(Account::Client("c1")) {
            Err(ApiError::TooManyAttempts { retry_after_secs }) => {
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("expected 429, got {other:?}"),
        }
        assert!(limiter.check_account(Account::Client("c2")).is_ok());
        assert!(limiter.check_account(Account::Admin("c1")).is_ok());
    }

    #[test]
    fn a_zero_quota_switches_limiting_off() {
        let limiter = LoginLimiter::new(&limits(0, 0), false);
        for _ in 0..100 {
            assert!(limiter.check_account(Account::Client("c1")).is_ok());
        }
    }

    #[test]
    fn forwarded_for_counts_only_when_trusted_and_then_its_last_entry() {
        let req = TestRequest::default()
            .peer_addr("10.0.0.1:4000".parse().expect("addr"))
            .insert_header(("x-forwarded-for", "1.1.1.1, 203.0.113.9"))
            .to_http_request();
        assert_eq!(source_address(&req, false), "10.0.0.1".parse().ok());
        assert_eq!(source_address(&req, true), "203.0.113.9".parse().ok());
    }

    #[test]
    fn ipv6_callers_share_a_budget_per_64_block() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(AddressKey::from(a), AddressKey::from(b));
        assert_ne!(AddressKey::from(a), AddressKey::from(c));
    }

    #[test]
    fn idle_keys_are_swept_so_memory_does_not_grow_without_bound() {
        // 600 per minute: one attempt is forgotten 100 ms after it was made.
        let limiter = LoginLimiter::new(&limits(600, 0), false);
        for i in 0..(SWEEP_EVERY - 1) {
            let id = format!("probe-{i}");
            assert!(limiter.check_account(Account::Client(&id)).is_ok());
        }
        assert_eq!(limiter.tracked_keys(), (SWEEP_EVERY - 1) as usize);
        std::thread::sleep(std::time::Duration::from_millis(300));
        // The next check triggers the sweep before adding its own key.
        assert!(limiter.check_account(Account::Client("last")).is_ok());
        assert_eq!(limiter.tracked_keys(), 1);
    }

    #[test]
    fn oversized_account_names_are_cut_before_they_become_keys() {
        let long = "x".repeat(10_000);
        match Account::Client(&long).key() {
            AccountKey::Client(key) => assert_eq!(key.len(), MAX_ACCOUNT_KEY_CHARS),
            AccountKey::Admin(_) => panic!("wrong kind"),
        }
    }
}
