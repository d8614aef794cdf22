//! Security adapters behind the domain's ports: argon2id secret hashing ([`Argon2Hasher`]),
//! HS256 JWT issue and verification ([`JwtTokens`]) and identifiers and secrets from the OS
//! CSPRNG ([`RandomIds`]).

mod hasher;
mod ids;
mod tokens;

pub use hasher::{Argon2Hasher, HasherConfigError, HasherParams};
pub use ids::{RandomIds, RandomnessUnavailable};
pub use tokens::{
    DEFAULT_ISSUER, JwtConfigError, JwtSettings, JwtTokens, MAX_TTL, MIN_SECRET_BYTES,
};
