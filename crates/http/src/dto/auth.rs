//! Bodies of `/auth/*`.

use outcall_domain::ports::{IssuedToken, Principal};
use outcall_domain::{Client, ClientSecret};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::field::{Field, FieldError};
use crate::error::{ApiError, Problem};
use crate::time::Millis;

/// Checks login-style members: every one must be a string (a number, `null`, object, array
/// or boolean is a 400 naming it, and no lookup happens), and none may be absent or empty
/// (a 400 listing all of them, as the contract does).
fn required_strings<const N: usize>(
    members: [(&'static str, Field); N],
) -> Result<[String; N], ApiError> {
    for (name, member) in &members {
        if !matches!(member, Field::Absent | Field::Text(_)) {
            return Err(FieldError::must_be(name, "a string").into_api(Problem::Request));
        }
    }
    let missing = members
        .iter()
        .any(|(_, member)| !matches!(member, Field::Text(text) if !text.is_empty()));
    if missing {
        return Err(ApiError::MissingFields(
            members.iter().map(|(name, _)| (*name).to_owned()).collect(),
        ));
    }
    Ok(members.map(|(_, member)| match member {
        Field::Text(text) => text,
        _ => String::new(),
    }))
}

#[derive(Deserialize, ToSchema)]
pub struct AdminLoginRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    username: Field,
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password)]
    password: Field,
}

/// Checked admin credentials, still plain: the service decides whether they match.
pub struct AdminCredentials {
    pub username: String,
    pub password: String,
}

impl TryFrom<AdminLoginRequest> for AdminCredentials {
    type Error = ApiError;

    fn try_from(req: AdminLoginRequest) -> Result<Self, ApiError> {
        let [username, password] =
            required_strings([("username", req.username), ("password", req.password)])?;
        Ok(Self { username, password })
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientLoginRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    client_id: Field,
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password)]
    client_secret: Field,
}

pub struct ClientCredentials {
    pub client_id: String,
    pub client_secret: String,
}

impl TryFrom<ClientLoginRequest> for ClientCredentials {
    type Error = ApiError;

    fn try_from(req: ClientLoginRequest) -> Result<Self, ApiError> {
        let [client_id, client_secret] = required_strings([
            ("clientId", req.client_id),
            ("clientSecret", req.client_secret),
        ])?;
        Ok(Self {
            client_id,
            client_secret,
        })
    }
}

#[derive(Deserialize, ToSchema)]
pub struct VerifyRequest {
    /// The token to check.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    token: Field,
}

impl VerifyRequest {
    pub fn into_token(self) -> Result<String, ApiError> {
        let [token] = required_strings([("token", self.token)])?;
        Ok(token)
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChangeSecretRequest {
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password)]
    current_secret: Field,
    /// The new secret, checked by the same rules as on create.
    #[serde(default)]
    #[schema(value_type = String, required = true, format = Password)]
    new_secret: Field,
}

/// The current secret stays plain (it is only compared); the new one is validated here.
pub struct SecretChange {
    pub current: String,
    pub new: ClientSecret,
}

impl TryFrom<ChangeSecretRequest> for SecretChange {
    type Error = ApiError;

    fn try_from(req: ChangeSecretRequest) -> Result<Self, ApiError> {
        let [current, new] = required_strings([
            ("currentSecret", req.current_secret),
            ("newSecret", req.new_secret),
        ])?;
        let new = ClientSecret::parse(&new)
            .map_err(|err| FieldError::new("newSecret", err).into_api(Problem::Request))?;
        Ok(Self { current, new })
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AdminLoginResponse<'a> {
    success: bool,
    token: &'a str,
    admin: AdminView<'a>,
    /// `null` when tokens are configured never to expire.
    expires_at: Option<Millis>,
}

#[derive(Serialize, ToSchema)]
struct AdminView<'a> {
    username: &'a str,
}

impl<'a> AdminLoginResponse<'a> {
    pub fn new(issued: &'a IssuedToken) -> Self {
        let username = match &issued.claims.principal {
            Principal::Admin { username } => username.as_str(),
            Principal::Client { .. } => "",
        };
        Self {
            success: true,
            token: &issued.token,
            admin: AdminView { username },
            expires_at: issued.claims.expires_at.map(Millis),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientLoginResponse<'a> {
    success: bool,
    token: &'a str,
    expires_at: Option<Millis>,
    client: LoginClientView<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginClientView<'a> {
    client_id: &'a str,
    #[schema(schema_with = super::schema::client_status)]
    status: &'static str,
    twilio_phone_number: &'a str,
    agent_id: &'a str,
    client_meta: LoginMetaView<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct LoginMetaView<'a> {
    full_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    business_name: Option<&'a str>,
    email: &'a str,
}

impl<'a> ClientLoginResponse<'a> {
    pub fn new(issued: &'a IssuedToken, client: &'a Client) -> Self {
        Self {
            success: true,
            token: &issued.token,
            expires_at: issued.claims.expires_at.map(Millis),
            client: LoginClientView {
                client_id: client.id.as_str(),
                status: client.status.as_str(),
                twilio_phone_number: client.twilio_phone_number.as_str(),
                agent_id: client.agent_id.as_str(),
                client_meta: LoginMetaView {
                    full_name: client.meta.full_name.as_str(),
                    business_name: client.meta.business_name.as_ref().map(|b| b.as_str()),
                    email: client.meta.email.as_str(),
                },
            },
        }
    }
}

/// `POST /auth/refresh` and the token part of `POST /auth/change-secret`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenResponse<'a> {
    success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'static str>,
    token: &'a str,
    expires_at: Option<Millis>,
}

impl<'a> TokenResponse<'a> {
    pub fn new(issued: &'a IssuedToken) -> Self {
        Self {
            success: true,
            message: None,
            token: &issued.token,
            expires_at: issued.claims.expires_at.map(Millis),
        }
    }

    pub fn with_message(mut self, message: &'static str) -> Self {
        self.message = Some(message);
        self
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse<'a> {
    valid: bool,
    /// The token's client, when valid.
    #[serde(skip_serializing_if = "Option::is_none")]
    client_id: Option<&'a str>,
    /// Present (possibly `null`) only for a valid token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Millis>)]
    expires_at: Option<Option<Millis>>,
    /// Why the token is not valid, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'static str>,
}

impl<'a> VerifyResponse<'a> {
    pub fn valid(client: &'a Client, expires_at: Option<outcall_domain::Timestamp>) -> Self {
        Self {
            valid: true,
            client_id: Some(client.id.as_str()),
            expires_at: Some(expires_at.map(Millis)),
            error: None,
        }
    }

    pub fn invalid(reason: &'static str) -> Self {
        Self {
            valid: false,
            client_id: None,
            expires_at: None,
            error: Some(reason),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct SuccessMessage {
    success: bool,
    message: &'static str,
}

impl SuccessMessage {
    pub fn new(message: &'static str) -> Self {
        Self {
            success: true,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client_login(json: &str) -> Result<ClientCredentials, ApiError> {
        let req: ClientLoginRequest = serde_json::from_str(json).expect("object");
        ClientCredentials::try_from(req)
    }

    #[test]
    fn login_members_of_any_other_type_are_named_and_never_looked_up() {
        for value in ["5", "null", "{}", "[]", "true"] {
            let json = format!(r#"{{"clientId": {value}, "clientSecret": "s"}}"#);
            match client_login(&json) {
                Err(ApiError::Invalid { problem, details }) => {
                    assert_eq!(problem, Problem::Request);
                    assert_eq!(details, "clientId must be a string", "{value}");
                }
                _ => panic!("{value} should be refused as a type error"),
            }
        }
    }

    #[test]
    fn absent_or_empty_login_members_list_every_required_field() {
        for json in [
            r#"{}"#,
            r#"{"clientId": "c1"}"#,
            r#"{"clientId": "", "clientSecret": "s"}"#,
        ] {
            match client_login(json) {
                Err(ApiError::MissingFields(fields)) => {
                    assert_eq!(fields, vec!["clientId", "clientSecret"], "{json}");
                }
                _ => panic!("{json} should be missing fields"),
            }
        }
    }

    #[test]
    fn a_new_secret_is_validated_and_named() {
        let req: ChangeSecretRequest =
            serde_json::from_str(r#"{"currentSecret": "old", "newSecret": "short"}"#)
                .expect("object");
        match SecretChange::try_from(req) {
            Err(ApiError::Invalid { details, .. }) => {
                assert!(details.starts_with("newSecret: "), "{details}");
            }
            _ => panic!("a short secret must be refused"),
        }
    }
}
