//! Bodies of the client-account endpoints (`/admin/clients*`, `/secure/client`).

use std::fmt;

use outcall_domain::{
    AgentId, BoundedText, Client, ClientId, ClientMeta, ClientPatch, ClientSecret, ClientStatus,
    MetaPatch, NewClient, PhoneNumber, ProfilePatch,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::field::{Field, FieldError, Obj, Unknown, parse_with, unknown_paths};
use crate::error::{ApiError, Problem};
use crate::time::Millis;

/// `clientMeta` in a create or an admin update.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MetaRequest {
    /// Required on create.
    #[serde(default)]
    #[schema(value_type = String, example = "Jane Doe")]
    full_name: Field,
    /// Required on create; unique among clients.
    #[serde(default)]
    #[schema(value_type = String, format = Email)]
    email: Field,
    /// Required on create (E.164).
    #[serde(default)]
    #[schema(value_type = String, example = "+14155550100")]
    phone: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    business_name: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    city: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    job_title: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    notes: Field,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

/// `POST /admin/clients`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateClientRequest {
    /// Generated when absent.
    #[serde(default)]
    #[schema(value_type = String)]
    client_id: Field,
    /// Generated when absent; shown once in the response.
    #[serde(default)]
    #[schema(value_type = String, format = Password)]
    client_secret: Field,
    #[serde(default)]
    #[schema(schema_with = super::schema::client_status)]
    status: Field,
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    agent_id: Field,
    #[serde(default)]
    #[schema(value_type = String, required = true, example = "+14155550100")]
    twilio_phone_number: Field,
    #[serde(default)]
    #[schema(value_type = MetaRequest, required = true)]
    client_meta: Obj<MetaRequest>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

impl TryFrom<CreateClientRequest> for NewClient {
    type Error = ApiError;

    fn try_from(req: CreateClientRequest) -> Result<Self, ApiError> {
        let fail = |err: FieldError| err.into_api(Problem::CreateClient);
        let meta = req
            .client_meta
            .object("clientMeta")
            .map_err(fail)?
            .unwrap_or_default();
        reject_unknown(&req.unknown, &meta.unknown, &[]).map_err(fail)?;

        // Types first, then presence, then values: each failure names the field.
        let mut missing = Vec::new();
        let mut required = |member: Field, path: &'static str| -> Result<String, ApiError> {
            let text = member.non_empty_text(path).map_err(fail)?;
            if text.is_none() {
                missing.push(path.to_owned());
            }
            Ok(text.unwrap_or_default())
        };
        let full_name = required(meta.full_name, "clientMeta.fullName")?;
        let email = required(meta.email, "clientMeta.email")?;
        let phone = required(meta.phone, "clientMeta.phone")?;
        let agent_id = required(req.agent_id, "agentId")?;
        let twilio = required(req.twilio_phone_number, "twilioPhoneNumber")?;
        let client_id = req.client_id.non_empty_text("clientId").map_err(fail)?;
        let secret = req
            .client_secret
            .non_empty_text("clientSecret")
            .map_err(fail)?;
        let status = req.status.non_empty_text("status").map_err(fail)?;
        let business_name = meta
            .business_name
            .text("clientMeta.businessName")
            .map_err(fail)?;
        let city = meta.city.text("clientMeta.city").map_err(fail)?;
        let job_title = meta.job_title.text("clientMeta.jobTitle").map_err(fail)?;
        let notes = meta.notes.text("clientMeta.notes").map_err(fail)?;
        if !missing.is_empty() {
            return Err(ApiError::MissingFields(missing));
        }

        let parsed = || -> Result<NewClient, FieldError> {
            Ok(NewClient {
                id: client_id
                    .map(|raw| parse_with("clientId", &raw, ClientId::parse))
                    .transpose()?,
                secret: secret
                    .map(|raw| parse_with("clientSecret", &raw, ClientSecret::parse))
                    .transpose()?,
                status: status
                    .map(|raw| parse_with("status", &raw, ClientStatus::parse))
                    .transpose()?
                    .unwrap_or(ClientStatus::Active),
                agent_id: parse_with("agentId", &agent_id, AgentId::parse)?,
                twilio_phone_number: parse_with("twilioPhoneNumber", &twilio, PhoneNumber::parse)?,
                meta: ClientMeta {
                    full_name: parse_with(
                        "clientMeta.fullName",
                        &full_name,
                        ClientMeta::parse_full_name,
                    )?,
                    email: parse_with("clientMeta.email", &email, ClientMeta::parse_email)?,
                    phone: parse_with("clientMeta.phone", &phone, ClientMeta::parse_phone)?,
                    business_name: optional(
                        "clientMeta.businessName",
                        business_name,
                        ClientMeta::parse_business_name,
                    )?,
                    city: optional("clientMeta.city", city, ClientMeta::parse_city)?,
                    job_title: optional(
                        "clientMeta.jobTitle",
                        job_title,
                        ClientMeta::parse_job_title,
                    )?,
                    notes: optional("clientMeta.notes", notes, ClientMeta::parse_notes)?,
                },
            })
        };
        parsed().map_err(fail)
    }
}

/// An optional text member of a create: absent, `null` and blank all mean "not set".
fn optional<E: fmt::Display>(
    path: &str,
    raw: Option<String>,
    parse: impl FnOnce(&str) -> Result<Option<BoundedText>, E>,
) -> Result<Option<BoundedText>, FieldError> {
    match raw {
        Some(raw) => parse_with(path, &raw, parse),
        None => Ok(None),
    }
}

/// Members the contract says an update body may carry but that are ignored.
const IGNORED_ON_UPDATE: [&str; 3] = ["clientId", "createdAt", "updatedAt"];

const SECRET_NOT_HERE: &str =
    "clientSecret cannot be changed here; use POST /admin/clients/{clientId}/reset-secret";

fn reject_unknown(top: &Unknown, meta: &Unknown, ignored: &[&str]) -> Result<(), FieldError> {
    let mut paths: Vec<String> = unknown_paths(None, top)
        .into_iter()
        .filter(|path| !ignored.contains(&path.as_str()))
        .collect();
    paths.extend(unknown_paths(Some("clientMeta"), meta));
    if paths.is_empty() {
        Ok(())
    } else {
        Err(FieldError::unknown(&paths))
    }
}

/// `PUT /admin/clients/{clientId}`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateClientRequest {
    #[serde(default)]
    #[schema(schema_with = super::schema::client_status)]
    status: Field,
    #[serde(default)]
    #[schema(value_type = String)]
    agent_id: Field,
    #[serde(default)]
    #[schema(value_type = String, example = "+14155550100")]
    twilio_phone_number: Field,
    #[serde(default)]
    #[schema(value_type = MetaRequest)]
    client_meta: Obj<MetaRequest>,
    #[serde(default)]
    #[schema(ignore)]
    client_secret: Field,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

impl TryFrom<UpdateClientRequest> for ClientPatch {
    type Error = ApiError;

    fn try_from(req: UpdateClientRequest) -> Result<Self, ApiError> {
        let fail = |err: FieldError| err.into_api(Problem::UpdateData);
        if !req.client_secret.is_absent() {
            return Err(ApiError::invalid(Problem::UpdateData, SECRET_NOT_HERE));
        }
        let meta = req
            .client_meta
            .object("clientMeta")
            .map_err(fail)?
            .unwrap_or_default();
        reject_unknown(&req.unknown, &meta.unknown, &IGNORED_ON_UPDATE).map_err(fail)?;
        let patch = || -> Result<ClientPatch, FieldError> {
            Ok(ClientPatch {
                status: set_required(req.status, "status", ClientStatus::parse)?,
                agent_id: set_required(req.agent_id, "agentId", AgentId::parse)?,
                twilio_phone_number: set_required(
                    req.twilio_phone_number,
                    "twilioPhoneNumber",
                    PhoneNumber::parse,
                )?,
                meta: MetaPatch {
                    full_name: set_required(
                        meta.full_name,
                        "clientMeta.fullName",
                        ClientMeta::parse_full_name,
                    )?,
                    email: set_required(meta.email, "clientMeta.email", ClientMeta::parse_email)?,
                    phone: set_required(meta.phone, "clientMeta.phone", ClientMeta::parse_phone)?,
                    business_name: set_optional(
                        meta.business_name,
                        "clientMeta.businessName",
                        ClientMeta::parse_business_name,
                    )?,
                    city: set_optional(meta.city, "clientMeta.city", ClientMeta::parse_city)?,
                    job_title: set_optional(
                        meta.job_title,
                        "clientMeta.jobTitle",
                        ClientMeta::parse_job_title,
                    )?,
                    notes: set_optional(meta.notes, "clientMeta.notes", ClientMeta::parse_notes)?,
                },
            })
        };
        patch().map_err(fail)
    }
}

/// A required member in a partial update: absent keeps it, `null` is refused.
fn set_required<T, E: fmt::Display>(
    member: Field,
    path: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<Option<T>, FieldError> {
    match member.nullable_text(path)? {
        None => Ok(None),
        Some(None) => Err(FieldError::new(path, format!("{path} must not be null"))),
        Some(Some(raw)) => parse_with(path, &raw, parse).map(Some),
    }
}

/// An optional member in a partial update: absent keeps it, `null` or blank clears it.
fn set_optional<E: fmt::Display>(
    member: Field,
    path: &str,
    parse: impl FnOnce(&str) -> Result<Option<BoundedText>, E>,
) -> Result<Option<Option<BoundedText>>, FieldError> {
    match member.nullable_text(path)? {
        None => Ok(None),
        Some(None) => Ok(Some(None)),
        Some(Some(raw)) => parse_with(path, &raw, parse).map(Some),
    }
}

/// `clientMeta` in a client's own update: only these six members are declared, so anything
/// else (email included) lands in `unknown` and is listed as not updatable.
#[derive(Deserialize, Default, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileMetaRequest {
    #[serde(default)]
    #[schema(value_type = String)]
    full_name: Field,
    #[serde(default)]
    #[schema(value_type = String, example = "+14155550100")]
    phone: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    business_name: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    city: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    job_title: Field,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    notes: Field,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

/// `PUT /secure/client`.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProfileUpdateRequest {
    #[serde(default)]
    #[schema(value_type = ProfileMetaRequest)]
    client_meta: Obj<ProfileMetaRequest>,
    #[serde(flatten)]
    #[schema(ignore)]
    unknown: Unknown,
}

impl TryFrom<ProfileUpdateRequest> for ProfilePatch {
    type Error = ApiError;

    fn try_from(req: ProfileUpdateRequest) -> Result<Self, ApiError> {
        let fail = |err: FieldError| err.into_api(Problem::UpdateData);
        let meta = req
            .client_meta
            .object("clientMeta")
            .map_err(fail)?
            .unwrap_or_default();
        let mut forbidden = unknown_paths(None, &req.unknown);
        forbidden.extend(unknown_paths(Some("clientMeta"), &meta.unknown));
        if !forbidden.is_empty() {
            return Err(fail(FieldError::not_updatable(&forbidden)));
        }
        let patch = || -> Result<ProfilePatch, FieldError> {
            Ok(ProfilePatch {
                full_name: set_required(
                    meta.full_name,
                    "clientMeta.fullName",
                    ClientMeta::parse_full_name,
                )?,
                phone: set_required(meta.phone, "clientMeta.phone", ClientMeta::parse_phone)?,
                business_name: set_optional(
                    meta.business_name,
                    "clientMeta.businessName",
                    ClientMeta::parse_business_name,
                )?,
                city: set_optional(meta.city, "clientMeta.city", ClientMeta::parse_city)?,
                job_title: set_optional(
                    meta.job_title,
                    "clientMeta.jobTitle",
                    ClientMeta::parse_job_title,
                )?,
                notes: set_optional(meta.notes, "clientMeta.notes", ClientMeta::parse_notes)?,
            })
        };
        patch().map_err(fail)
    }
}

/// A client as every read shows it: never a secret hash; the plain secret only in the
/// create response.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientView<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'a str>,
    #[schema(schema_with = super::schema::client_status)]
    status: &'static str,
    agent_id: &'a str,
    twilio_phone_number: &'a str,
    client_meta: MetaView<'a>,
    created_at: Millis,
    updated_at: Millis,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct MetaView<'a> {
    full_name: &'a str,
    email: &'a str,
    phone: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    business_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    city: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    notes: Option<&'a str>,
}

impl<'a> From<&'a Client> for ClientView<'a> {
    fn from(client: &'a Client) -> Self {
        let meta = &client.meta;
        let text = |t: &'a Option<BoundedText>| t.as_ref().map(BoundedText::as_str);
        Self {
            client_id: client.id.as_str(),
            client_secret: None,
            status: client.status.as_str(),
            agent_id: client.agent_id.as_str(),
            twilio_phone_number: client.twilio_phone_number.as_str(),
            client_meta: MetaView {
                full_name: meta.full_name.as_str(),
                email: meta.email.as_str(),
                phone: meta.phone.as_str(),
                business_name: text(&meta.business_name),
                city: text(&meta.city),
                job_title: text(&meta.job_title),
                notes: text(&meta.notes),
            },
            created_at: Millis(client.created_at),
            updated_at: Millis(client.updated_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedClientResponse<'a> {
    message: &'static str,
    client: ClientView<'a>,
}

impl<'a> CreatedClientResponse<'a> {
    pub fn new(client: &'a Client, secret: &'a ClientSecret) -> Self {
        let mut view = ClientView::from(client);
        view.client_secret = Some(secret.expose());
        Self {
            message: "Client created successfully",
            client: view,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct UpdatedClientResponse<'a> {
    message: &'static str,
    client: UpdatedClientView<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct UpdatedClientView<'a> {
    client_id: &'a str,
    #[schema(schema_with = super::schema::client_status)]
    status: &'static str,
    updated_at: Millis,
}

impl<'a> UpdatedClientResponse<'a> {
    pub fn new(client: &'a Client) -> Self {
        Self {
            message: "Client updated successfully",
            client: UpdatedClientView {
                client_id: client.id.as_str(),
                status: client.status.as_str(),
                updated_at: Millis(client.updated_at),
            },
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ClientListResponse<'a> {
    total: u64,
    count: usize,
    clients: Vec<ClientView<'a>>,
}

impl<'a> ClientListResponse<'a> {
    pub fn new(total: u64, clients: &'a [Client]) -> Self {
        Self {
            total,
            count: clients.len(),
            clients: clients.iter().map(ClientView::from).collect(),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct ResetSecretResponse<'a> {
    message: &'static str,
    client: SecretView<'a>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct SecretView<'a> {
    client_id: &'a str,
    client_secret: &'a str,
}

impl<'a> ResetSecretResponse<'a> {
    pub fn new(id: &'a ClientId, secret: &'a ClientSecret) -> Self {
        Self {
            message: "Client secret reset successfully",
            client: SecretView {
                client_id: id.as_str(),
                client_secret: secret.expose(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn create(body: serde_json::Value) -> Result<NewClient, ApiError> {
        NewClient::try_from(serde_json::from_value::<CreateClientRequest>(body).expect("object"))
    }

    fn update(body: serde_json::Value) -> Result<ClientPatch, ApiError> {
        ClientPatch::try_from(serde_json::from_value::<UpdateClientRequest>(body).expect("object"))
    }

    fn refusal(result: Result<impl Sized, ApiError>) -> (Problem, String) {
        match result {
            Err(ApiError::Invalid { problem, details }) => (problem, details),
            Err(other) => panic!("expected a validation error, got {other:?}"),
            Ok(_) => panic!("expected a validation error"),
        }
    }

    fn valid_create() -> serde_json::Value {
        json!({
            "clientMeta": {"fullName": "John Doe", "email": "john@example.com", "phone": "+12125551234"},
            "agentId": "agent_1",
            "twilioPhoneNumber": "+18001234567"
        })
    }

    #[test]
    fn a_create_without_id_secret_or_status_is_active_and_leaves_generation_to_the_service() {
        let new = create(valid_create()).expect("valid");
        assert!(new.id.is_none() && new.secret.is_none());
        assert_eq!(new.status, ClientStatus::Active);
        assert_eq!(new.meta.business_name, None);
    }

    #[test]
    fn a_create_lists_only_the_missing_required_fields_as_json_paths() {
        let result = create(json!({"clientMeta": {"fullName": "J", "email": ""}, "agentId": null}));
        match result {
            Err(ApiError::MissingFields(fields)) => assert_eq!(
                fields,
                vec![
                    "clientMeta.email",
                    "clientMeta.phone",
                    "agentId",
                    "twilioPhoneNumber"
                ]
            ),
            _ => panic!("expected missing fields"),
        }
    }

    #[test]
    fn a_create_with_an_invalid_value_names_the_field() {
        let mut body = valid_create();
        body["twilioPhoneNumber"] = json!("555-1234");
        let (problem, details) = refusal(create(body));
        assert_eq!(problem, Problem::CreateClient);
        assert!(details.starts_with("twilioPhoneNumber: "), "{details}");

        let mut body = valid_create();
        body["clientMeta"]["email"] = json!("nope");
        assert_eq!(
            refusal(create(body)).1,
            "clientMeta.email: email format is invalid"
        );

        let mut body = valid_create();
        body["status"] = json!("active");
        assert!(refusal(create(body)).1.starts_with("status must be one of"));
    }

    #[test]
    fn an_update_clears_optional_fields_with_null_or_blank_and_refuses_null_required_ones() {
        let patch = update(json!({"clientMeta": {"city": null, "notes": "", "jobTitle": "CTO"}}))
            .expect("valid");
        assert_eq!(patch.meta.city, Some(None));
        assert_eq!(patch.meta.notes, Some(None));
        assert_eq!(
            patch.meta.job_title.flatten().map(BoundedText::into_string),
            Some("CTO".to_owned())
        );
        assert_eq!(patch.meta.business_name, None);

        let (_, details) = refusal(update(json!({"agentId": null})));
        assert_eq!(details, "agentId must not be null");
    }

    #[test]
    fn an_update_ignores_id_and_timestamps_but_names_unknown_fields() {
        let patch = update(json!({"clientId": "other", "createdAt": "x", "updatedAt": 1}))
            .expect("ignored members");
        assert!(patch.is_empty());
        let (problem, details) =
            refusal(update(json!({"nickname": "x", "clientMeta": {"age": 3}})));
        assert_eq!(problem, Problem::UpdateData);
        assert_eq!(details, "unknown fields: nickname, clientMeta.age");
    }
}
