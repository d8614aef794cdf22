//! The client account aggregate.

use crate::Timestamp;
use crate::values::{
    AgentId, BoundedText, ClientId, ClientSecret, ClientStatus, Email, EmailError, PhoneNumber,
    PhoneNumberError, TextError,
};

/// Contact and business details of a client. `fullName`, `email` and `phone` are required.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMeta {
    pub full_name: BoundedText,
    pub email: Email,
    pub phone: PhoneNumber,
    pub business_name: Option<BoundedText>,
    pub city: Option<BoundedText>,
    pub job_title: Option<BoundedText>,
    pub notes: Option<BoundedText>,
}

/// Which `clientMeta` field is invalid, and why. `Display` names the field as the API spells it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientMetaError {
    #[error("clientMeta.fullName {0}")]
    FullName(TextError),
    #[error("clientMeta.email: {0}")]
    Email(EmailError),
    #[error("clientMeta.phone: {0}")]
    Phone(PhoneNumberError),
    #[error("clientMeta.businessName {0}")]
    BusinessName(TextError),
    #[error("clientMeta.city {0}")]
    City(TextError),
    #[error("clientMeta.jobTitle {0}")]
    JobTitle(TextError),
    #[error("clientMeta.notes {0}")]
    Notes(TextError),
}

impl ClientMetaError {
    /// The JSON path of the offending field.
    pub fn field(&self) -> &'static str {
        match self {
            Self::FullName(_) => "clientMeta.fullName",
            Self::Email(_) => "clientMeta.email",
            Self::Phone(_) => "clientMeta.phone",
            Self::BusinessName(_) => "clientMeta.businessName",
            Self::City(_) => "clientMeta.city",
            Self::JobTitle(_) => "clientMeta.jobTitle",
            Self::Notes(_) => "clientMeta.notes",
        }
    }
}

impl ClientMeta {
    pub const FULL_NAME_MAX: usize = 200;
    pub const BUSINESS_NAME_MAX: usize = 200;
    pub const CITY_MAX: usize = 100;
    pub const JOB_TITLE_MAX: usize = 100;
    pub const NOTES_MAX: usize = 2000;

    pub fn parse_full_name(raw: &str) -> Result<BoundedText, ClientMetaError> {
        BoundedText::parse(raw, Self::FULL_NAME_MAX).map_err(ClientMetaError::FullName)
    }
    pub fn parse_email(raw: &str) -> Result<Email, ClientMetaError> {
        Email::parse(raw).map_err(ClientMetaError::Email)
    }
    pub fn parse_phone(raw: &str) -> Result<PhoneNumber, ClientMetaError> {
        PhoneNumber::parse(raw).map_err(ClientMetaError::Phone)
    }
    /// Optional fields: blank means "not set".
    pub fn parse_business_name(raw: &str) -> Result<Option<BoundedText>, ClientMetaError> {
        optional(raw, Self::BUSINESS_NAME_MAX).map_err(ClientMetaError::BusinessName)
    }
    pub fn parse_city(raw: &str) -> Result<Option<BoundedText>, ClientMetaError> {
        optional(raw, Self::CITY_MAX).map_err(ClientMetaError::City)
    }
    pub fn parse_job_title(raw: &str) -> Result<Option<BoundedText>, ClientMetaError> {
        optional(raw, Self::JOB_TITLE_MAX).map_err(ClientMetaError::JobTitle)
    }
    pub fn parse_notes(raw: &str) -> Result<Option<BoundedText>, ClientMetaError> {
        optional(raw, Self::NOTES_MAX).map_err(ClientMetaError::Notes)
    }

    /// The lower-cased text that `search` matches: name, email and business name.
    pub fn search_text(&self) -> String {
        let mut text = format!("{}\u{1f}{}", self.full_name, self.email.normalized());
        if let Some(business) = &self.business_name {
            text.push('\u{1f}');
            text.push_str(business.as_str());
        }
        text.to_lowercase()
    }
}

fn optional(raw: &str, max: usize) -> Result<Option<BoundedText>, TextError> {
    match BoundedText::parse(raw, max) {
        Ok(text) => Ok(Some(text)),
        Err(TextError::Empty) => Ok(None),
        Err(other) => Err(other),
    }
}

/// A client account. The secret hash is not part of it: it is read only by authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub id: ClientId,
    pub status: ClientStatus,
    pub agent_id: AgentId,
    pub twilio_phone_number: PhoneNumber,
    pub meta: ClientMeta,
    /// Bumped whenever every token issued so far must stop working (secret reset or change).
    pub token_version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What an admin supplies to create a client; id and secret are generated when absent.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub id: Option<ClientId>,
    pub secret: Option<ClientSecret>,
    pub status: ClientStatus,
    pub agent_id: AgentId,
    pub twilio_phone_number: PhoneNumber,
    pub meta: ClientMeta,
}

/// A partial change to `clientMeta`. For optional fields `Some(None)` clears the value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetaPatch {
    pub full_name: Option<BoundedText>,
    pub email: Option<Email>,
    pub phone: Option<PhoneNumber>,
    pub business_name: Option<Option<BoundedText>>,
    pub city: Option<Option<BoundedText>>,
    pub job_title: Option<Option<BoundedText>>,
    pub notes: Option<Option<BoundedText>>,
}

/// A partial change an admin makes to a client. `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientPatch {
    pub status: Option<ClientStatus>,
    pub agent_id: Option<AgentId>,
    pub twilio_phone_number: Option<PhoneNumber>,
    pub meta: MetaPatch,
}

/// The subset a client may change about itself: contact details, never email, status,
/// agent or number.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfilePatch {
    pub full_name: Option<BoundedText>,
    pub phone: Option<PhoneNumber>,
    pub business_name: Option<Option<BoundedText>>,
    pub city: Option<Option<BoundedText>>,
    pub job_title: Option<Option<BoundedText>>,
    pub notes: Option<Option<BoundedText>>,
}

impl From<ProfilePatch> for ClientPatch {
    fn from(profile: ProfilePatch) -> Self {
        ClientPatch {
            meta: MetaPatch {
                full_name: profile.full_name,
                email: None,
                phone: profile.phone,
                business_name: profile.business_name,
                city: profile.city,
                job_title: profile.job_title,
                notes: profile.notes,
            },
            ..ClientPatch::default()
        }
    }
}

impl ClientPatch {
    pub fn is_empty(&self) -> bool {
        self == &ClientPatch::default()
    }
}

impl Client {
    /// The token version a new account starts at: its creation instant in milliseconds, so
    /// that tokens of a deleted account never match a later account that reuses its id.
    pub fn initial_token_version(created_at: Timestamp) -> i64 {
        created_at.timestamp_millis()
    }

    /// Applies a patch in memory (adapters use it to compute the row they write, including
    /// `token_version`). Leaving Active revokes every token issued so far, so that
    /// re-activating an account does not revive a token that leaked before its suspension.
    pub fn apply(&mut self, patch: &ClientPatch, at: Timestamp) {
        if let Some(status) = patch.status {
            if self.status.can_authenticate() && !status.can_authenticate() {
                self.token_version += 1;
            }
            self.status = status;
        }
        if let Some(agent) = &patch.agent_id {
            self.agent_id = agent.clone();
        }
        if let Some(number) = &patch.twilio_phone_number {
            self.twilio_phone_number = number.clone();
        }
        let meta = &patch.meta;
        if let Some(v) = &meta.full_name {
            self.meta.full_name = v.clone();
        }
        if let Some(v) = &meta.email {
            self.meta.email = v.clone();
        }
        if let Some(v) = &meta.phone {
            self.meta.phone = v.clone();
        }
        if let Some(v) = &meta.business_name {
            self.meta.business_name = v.clone();
        }
        if let Some(v) = &meta.city {
            self.meta.city = v.clone();
        }
        if let Some(v) = &meta.job_title {
            self.meta.job_title = v.clone();
        }
        if let Some(v) = &meta.notes {
            self.meta.notes = v.clone();
        }
        self.updated_at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_optional_meta_fields_mean_not_set() {
        assert_eq!(ClientMeta::parse_city("   "), Ok(None));
        assert!(matches!(
            ClientMeta::parse_city(&"x".repeat(101)),
            Err(ClientMetaError::City(TextError::TooLong { max: 100 }))
        ));
        assert!(matches!(
            ClientMeta::parse_full_name(" "),
            Err(ClientMetaError::FullName(TextError::Empty))
        ));
    }

    #[test]
    fn meta_errors_name_the_field() {
        let err = ClientMeta::parse_email("nope").expect_err("invalid");
        assert_eq!(err.field(), "clientMeta.email");
        assert_eq!(err.to_string(), "clientMeta.email: email format is invalid");
    }

    #[test]
    fn leaving_active_revokes_tokens_but_other_changes_do_not() {
        let mut client = crate::test_support::client_fixture("c1");
        let at = crate::test_support::fixed_now();
        let version = client.token_version;
        client.apply(
            &ClientPatch {
                status: Some(ClientStatus::Active),
                ..ClientPatch::default()
            },
            at,
        );
        assert_eq!(client.token_version, version);
        client.apply(
            &ClientPatch {
                status: Some(ClientStatus::Suspended),
                ..ClientPatch::default()
            },
            at,
        );
        assert_eq!(client.token_version, version + 1);
        client.apply(
            &ClientPatch {
                status: Some(ClientStatus::Inactive),
                ..ClientPatch::default()
            },
            at,
        );
        client.apply(
            &ClientPatch {
                status: Some(ClientStatus::Active),
                ..ClientPatch::default()
            },
            at,
        );
        assert_eq!(
            client.token_version,
            version + 1,
            "only leaving Active counts"
        );
    }

    #[test]
    fn a_profile_patch_never_touches_email_status_agent_or_number() {
        let patch = ClientPatch::from(ProfilePatch {
            city: Some(None),
            ..ProfilePatch::default()
        });
        assert!(patch.status.is_none() && patch.agent_id.is_none());
        assert!(patch.twilio_phone_number.is_none() && patch.meta.email.is_none());
        assert_eq!(patch.meta.city, Some(None));
    }
}
