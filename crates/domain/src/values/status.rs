use std::fmt;

/// Whether a client account may authenticate. Spelled exactly as the API contract does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientStatus {
    Active,
    Inactive,
    Suspended,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status must be one of \"Active\", \"Inactive\", \"Suspended\"")]
pub struct ClientStatusError;

impl ClientStatus {
    pub const ALL: [ClientStatus; 3] = [Self::Active, Self::Inactive, Self::Suspended];

    /// Parses the exact spelling (`Active`, not `active`).
    ///
    /// # Errors
    /// [`ClientStatusError`] for any other string.
    pub fn parse(raw: &str) -> Result<Self, ClientStatusError> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or(ClientStatusError)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Inactive => "Inactive",
            Self::Suspended => "Suspended",
        }
    }

    /// Only active clients may log in, hold working tokens and place calls.
    pub fn can_authenticate(self) -> bool {
        self == Self::Active
    }
}

impl fmt::Display for ClientStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_status_spelling_is_exact() {
        for status in ClientStatus::ALL {
            assert_eq!(ClientStatus::parse(status.as_str()), Ok(status));
        }
        for wrong in ["active", "ACTIVE", "Active ", "", "Deleted"] {
            assert_eq!(
                ClientStatus::parse(wrong),
                Err(ClientStatusError),
                "{wrong:?}"
            );
        }
        assert!(ClientStatus::Active.can_authenticate());
        assert!(!ClientStatus::Inactive.can_authenticate());
        assert!(!ClientStatus::Suspended.can_authenticate());
    }
}
