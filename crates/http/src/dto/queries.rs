//! Query strings. Every parameter arrives as an optional string and is checked here, so a
//! bad value is a 400 that names the parameter and its allowed range.

use outcall_domain::queries::{CallListQuery, ClientListQuery, SearchTerm};
use outcall_domain::{CallStatus, ClientStatus};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::error::ApiError;

/// An integer in `1..=max`, `default` when absent.
fn bounded(name: &str, raw: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    match raw {
        None => Ok(default),
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidQuery(format!("{name} must be an integer from 1 to {max}"))
            }),
    }
}

fn offset(raw: Option<&str>) -> Result<u64, ApiError> {
    match raw {
        None => Ok(0),
        Some(raw) => raw.parse::<u64>().map_err(|_| {
            ApiError::InvalidQuery("offset must be a non-negative integer".to_owned())
        }),
    }
}

/// Filters treat an empty value (`?status=`) as "no filter", as forms send it.
fn filter(raw: Option<String>) -> Option<String> {
    raw.filter(|value| !value.is_empty())
}

/// `GET /admin/clients`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ClientListParams {
    /// Clients per page.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 10)]
    limit: Option<String>,
    /// Clients to skip.
    #[param(value_type = Option<u64>, minimum = 0, default = 0)]
    offset: Option<String>,
    /// Only clients with this status (empty: all).
    #[param(schema_with = super::schema::client_status)]
    status: Option<String>,
    /// Case-insensitive text matched against the client's full name, email and business
    /// name (blank: no search).
    #[param(value_type = Option<String>)]
    search: Option<String>,
}

impl TryFrom<ClientListParams> for ClientListQuery {
    type Error = ApiError;

    fn try_from(params: ClientListParams) -> Result<Self, ApiError> {
        let invalid = |err: &dyn std::fmt::Display| ApiError::InvalidQuery(err.to_string());
        Ok(Self {
            limit: bounded(
                "limit",
                params.limit.as_deref(),
                Self::DEFAULT_LIMIT,
                Self::MAX_LIMIT,
            )?,
            offset: offset(params.offset.as_deref())?,
            status: filter(params.status)
                .map(|raw| ClientStatus::parse(&raw).map_err(|e| invalid(&e)))
                .transpose()?,
            search: match params.search {
                Some(raw) => SearchTerm::parse(&raw).map_err(|e| invalid(&e))?,
                None => None,
            },
        })
    }
}

/// `GET /admin/clients/{clientId}/calls` and `GET /secure/calls`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallListParams {
    /// Calls per page, newest first.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 200, default = 20)]
    limit: Option<String>,
    /// Calls to skip.
    #[param(value_type = Option<u64>, minimum = 0, default = 0)]
    offset: Option<String>,
    /// Only calls with this status (empty: all).
    #[param(schema_with = super::schema::call_status)]
    status: Option<String>,
}

impl TryFrom<CallListParams> for CallListQuery {
    type Error = ApiError;

    fn try_from(params: CallListParams) -> Result<Self, ApiError> {
        Ok(Self {
            limit: bounded(
                "limit",
                params.limit.as_deref(),
                Self::DEFAULT_LIMIT,
                Self::MAX_LIMIT,
            )?,
            offset: offset(params.offset.as_deref())?,
            status: filter(params.status)
                .map(|raw| {
                    CallStatus::parse(&raw).map_err(|e| ApiError::InvalidQuery(e.to_string()))
                })
                .transpose()?,
        })
    }
}

/// `GET /admin/activity`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ActivityParams {
    /// How many days back the feed reaches.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 365, default = 7)]
    days: Option<String>,
    /// Most activities shown.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 100, default = 10)]
    limit: Option<String>,
}

/// The window and size of the recent-activity feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActivityWindow {
    pub days: u32,
    pub limit: u32,
}

impl ActivityWindow {
    pub const DEFAULT_DAYS: u32 = 7;
    pub const MAX_DAYS: u32 = 365;
    pub const DEFAULT_LIMIT: u32 = 10;
    pub const MAX_LIMIT: u32 = 100;
}

impl TryFrom<ActivityParams> for ActivityWindow {
    type Error = ApiError;

    fn try_from(params: ActivityParams) -> Result<Self, ApiError> {
        Ok(Self {
            days: bounded(
                "days",
                params.days.as_deref(),
                Self::DEFAULT_DAYS,
                Self::MAX_DAYS,
            )?,
            limit: bounded(
                "limit",
                params.limit.as_deref(),
                Self::DEFAULT_LIMIT,
                Self::MAX_LIMIT,
            )?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calls(query: &str) -> Result<CallListQuery, String> {
        let params: CallListParams = serde_urlencoded_like(query);
        CallListQuery::try_from(params).map_err(|e| match e {
            ApiError::InvalidQuery(details) => details,
            other => panic!("unexpected {other:?}"),
        })
    }

    /// Parses a query string the way actix's `Query` extractor does.
    fn serde_urlencoded_like<T: serde::de::DeserializeOwned>(query: &str) -> T {
        actix_web::web::Query::<T>::from_query(query)
            .map(actix_web::web::Query::into_inner)
            .expect("parses")
    }

    #[test]
    fn call_list_defaults_and_bounds() {
        assert_eq!(
            calls(""),
            Ok(CallListQuery {
                status: None,
                limit: 20,
                offset: 0
            })
        );
        assert_eq!(
            calls("limit=200&offset=5").map(|q| (q.limit, q.offset)),
            Ok((200, 5))
        );
        for bad in ["limit=abc", "limit=0", "limit=201", "limit=-1", "limit="] {
            assert_eq!(
                calls(bad),
                Err("limit must be an integer from 1 to 200".to_owned()),
                "{bad}"
            );
        }
        assert_eq!(
            calls("offset=-1"),
            Err("offset must be a non-negative integer".to_owned())
        );
        assert!(calls("status=bogus").is_err_and(|d| d.starts_with("status must be one of")));
        assert_eq!(
            calls("status=no-answer").map(|q| q.status),
            Ok(Some(CallStatus::NoAnswer))
        );
    }

    #[test]
    fn client_list_filters_are_parsed_once() {
        let params: ClientListParams =
            serde_urlencoded_like("status=Suspended&search=%20Ac%25me%20");
        let query = ClientListQuery::try_from(params).expect("valid");
        assert_eq!(query.status, Some(ClientStatus::Suspended));
        assert_eq!(
            query.search.map(|s| s.as_str().to_owned()),
            Some("ac%me".to_owned())
        );
        assert_eq!(query.limit, 10);
        let params: ClientListParams = serde_urlencoded_like("limit=101");
        assert!(ClientListQuery::try_from(params).is_err());
        let params: ClientListParams = serde_urlencoded_like("status=active");
        assert!(ClientListQuery::try_from(params).is_err());
    }

    #[test]
    fn activity_days_and_limit_are_bounded() {
        let window = |q: &str| ActivityWindow::try_from(serde_urlencoded_like::<ActivityParams>(q));
        assert_eq!(window("").ok(), Some(ActivityWindow { days: 7, limit: 10 }));
        for bad in ["days=0", "days=366", "limit=0", "limit=101", "days=x"] {
            assert!(window(bad).is_err(), "{bad}");
        }
    }
}
