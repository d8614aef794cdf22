use std::sync::Arc;

use crate::call::{Call, CallData, CallDetails, StatusEvent, TRANSPORT_FAILURE_CODE, limits};
use crate::call_status::{CallStatus, StatusChange};
use crate::ports::{
    CallRepository, CasOutcome, ClientRepository, Clock, IdGenerator, OutboundCall,
    RepositoryError, StreamInstructions, Telephony, TelephonyError,
};
use crate::values::{BoundedText, CallId, CallSid, ClientId, DynamicVariables, PhoneNumber};
use crate::webhooks::PublicUrls;

/// What a client asks for when it wants a call placed.
#[derive(Debug, Clone)]
pub struct CallRequest {
    pub phone: PhoneNumber,
    pub first_message: Option<BoundedText>,
    pub dynamic_variables: DynamicVariables,
}

/// The ids of a call that Twilio accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacedCallIds {
    pub call_id: CallId,
    pub call_sid: CallSid,
    pub request_id: String,
}

/// Errors of placing and following calls.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    #[error("client not found")]
    ClientNotFound,
    /// Inactive or Suspended clients may not place calls.
    #[error("client is not active")]
    ClientInactive,
    #[error("call not found")]
    CallNotFound,
    #[error("call has already ended")]
    CallAlreadyEnded,
    /// The provider refused or failed; the call (if one was recorded) is marked failed.
    #[error("telephony provider error: {source}")]
    Telephony {
        call_id: Option<CallId>,
        #[source]
        source: TelephonyError,
    },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<RepositoryError> for PlacementError {
    fn from(err: RepositoryError) -> Self {
        Self::Unexpected(anyhow::Error::new(err).context("storing call progress"))
    }
}

const MAX_CAS_ATTEMPTS: usize = 64;

/// Placing calls through the telephony provider and following them to their end.
#[derive(Clone)]
pub struct CallPlacement {
    clients: Arc<dyn ClientRepository>,
    calls: Arc<dyn CallRepository>,
    telephony: Arc<dyn Telephony>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    urls: PublicUrls,
}

impl CallPlacement {
    pub fn new(
        clients: Arc<dyn ClientRepository>,
        calls: Arc<dyn CallRepository>,
        telephony: Arc<dyn Telephony>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        urls: PublicUrls,
    ) -> Self {
        Self {
            clients,
            calls,
            telephony,
            clock,
            ids,
            urls,
        }
    }

    pub fn public_urls(&self) -> &PublicUrls {
        &self.urls
    }

    /// Records the call (status `queued`) and only then asks the provider to dial it, from the
    /// client's own number with the client's agent. A provider error marks the call failed
    /// with the provider's code and message. A transport error is never retried: the call may
    /// have been placed, and dialling twice is worse than reporting a failure.
    ///
    /// # Errors
    /// `ClientNotFound`, `ClientInactive`, `Telephony` (call marked failed), `Unexpected`.
    pub async fn place(
        &self,
        client_id: &ClientId,
        request: CallRequest,
    ) -> Result<PlacedCallIds, PlacementError> {
        let client = self
            .clients
            .find(client_id)
            .await?
            .ok_or(PlacementError::ClientNotFound)?;
        if !client.status.can_authenticate() {
            return Err(PlacementError::ClientInactive);
        }
        let now = self.clock.now();
        let call_id = self.ids.call_id();
        let request_id = self.ids.request_id();
        let mut data = CallData::new(request.phone.clone(), now, CallStatus::Queued);
        data.request_id = BoundedText::parse(&request_id, limits::REQUEST_ID).ok();
        data.from = Some(client.twilio_phone_number.clone());
        data.agent_id = Some(client.agent_id.clone());
        data.first_message = request.first_message;
        data.dynamic_variables = request.dynamic_variables;
        let call = Call {
            id: call_id.clone(),
            client_id: client.id.clone(),
            data,
            details: CallDetails::default(),
            created_at: now,
            updated_at: now,
            version: 0,
        };
        self.calls.insert(&call).await?;

        let outbound = OutboundCall {
            call_id: call_id.clone(),
            to: request.phone,
            from: client.twilio_phone_number,
            twiml_url: self.urls.twiml(&call_id),
            status_callback_url: self.urls.status_callback(&call_id),
        };
        match self.telephony.place_call(&outbound).await {
            Ok(placed) => {
                let sid = placed.sid.clone();
                self.modify(&call_id, |call| {
                    if call.data.call_sid.is_none() {
                        call.data.call_sid = Some(sid.clone());
                    }
                    true
                })
                .await?;
                Ok(PlacedCallIds {
                    call_id,
                    call_sid: placed.sid,
                    request_id,
                })
            }
            Err(error) => {
                let (code, message) = failure_record(&error);
                let at = self.clock.now();
                self.modify(&call_id, |call| {
                    if call.apply_status(CallStatus::Failed, at) != StatusChange::Advance {
                        return false;
                    }
                    call.data.error_code = BoundedText::parse(&code, limits::ERROR_CODE).ok();
                    call.data.error_message =
                        BoundedText::parse(&message, limits::ERROR_MESSAGE).ok();
                    true
                })
                .await?;
                Err(PlacementError::Telephony {
                    call_id: Some(call_id),
                    source: error,
                })
            }
        }
    }

    /// Applies a provider status callback through the status rules: late, repeated and
    /// out-of-order events change nothing they should not.
    ///
    /// # Errors
    /// `CallNotFound` for an unknown call id.
    pub async fn record_status(
        &self,
        call_id: &CallId,
        event: &StatusEvent,
    ) -> Result<(), PlacementError> {
        let at = self.clock.now();
        self.modify(call_id, |call| call.apply_status_event(event, at))
            .await
    }

    /// The TwiML that connects the answered call to the media stream. The stream parameters
    /// carry only the call id: the bridge reads everything else from storage.
    ///
    /// # Errors
    /// `CallNotFound` for an unknown call id.
    pub async fn stream_twiml(&self, call_id: &CallId) -> Result<String, PlacementError> {
        let call = self
            .calls
            .find_by_id(call_id)
            .await?
            .ok_or(PlacementError::CallNotFound)?;
        let instructions = StreamInstructions {
            url: self.urls.media_stream(),
            parameters: vec![("callId".to_owned(), call.id.as_str().to_owned())],
        };
        Ok(self.telephony.stream_twiml(&instructions))
    }

    /// Whether a media-stream WebSocket upgrade really comes from the provider: the signature
    /// covers the stream URL as written in the TwiML (`wss://`/`ws://`) and no parameters.
    pub fn verify_stream(&self, signature: &str) -> bool {
        self.telephony
            .verify_webhook(&self.urls.media_stream(), &[], signature)
    }

    /// Whether a provider webhook really comes from the provider.
    pub fn verify_webhook(
        &self,
        path_and_query: &str,
        params: &[(String, String)],
        signature: &str,
    ) -> bool {
        self.telephony
            .verify_webhook(&self.urls.absolute(path_and_query), params, signature)
    }

    /// Ends a live call of the client's through the provider.
    ///
    /// # Errors
    /// `CallNotFound` (also for another client's call), `CallAlreadyEnded`, `Telephony`.
    pub async fn hang_up(
        &self,
        client_id: &ClientId,
        call_id: &CallId,
    ) -> Result<(), PlacementError> {
        let call = self
            .calls
            .find(client_id, call_id)
            .await?
            .ok_or(PlacementError::CallNotFound)?;
        if call.data.status().is_terminal() {
            return Err(PlacementError::CallAlreadyEnded);
        }
        let Some(sid) = call.data.call_sid.clone() else {
            // Not yet handed to the provider (or its answer was lost): nothing to hang up.
            return Err(PlacementError::CallAlreadyEnded);
        };
        self.telephony
            .end_call(&sid)
            .await
            .map_err(|source| PlacementError::Telephony {
                call_id: Some(call.id.clone()),
                source,
            })
    }

    /// Reads a call, changes it in memory, and writes it back if nobody changed it meanwhile;
    /// `change` returns false when there is nothing to write.
    async fn modify(
        &self,
        call_id: &CallId,
        mut change: impl FnMut(&mut Call) -> bool,
    ) -> Result<(), PlacementError> {
        for _ in 0..MAX_CAS_ATTEMPTS {
            let mut call = self
                .calls
                .find_by_id(call_id)
                .await?
                .ok_or(PlacementError::CallNotFound)?;
            if !change(&mut call) {
                return Ok(());
            }
            match self.calls.update(&call).await? {
                CasOutcome::Updated => return Ok(()),
                CasOutcome::Conflict => continue,
                CasOutcome::Missing => return Err(PlacementError::CallNotFound),
            }
        }
        Err(PlacementError::Unexpected(anyhow::anyhow!(
            "call {call_id} kept changing under {MAX_CAS_ATTEMPTS} update attempts"
        )))
    }
}

/// The error code and message to keep on a call that failed to be placed.
fn failure_record(error: &TelephonyError) -> (String, String) {
    match error {
        TelephonyError::Rejected { code, message, .. } => (
            code.map_or_else(|| "rejected".to_owned(), |c| c.to_string()),
            message.clone(),
        ),
        TelephonyError::RateLimited { .. } => ("20429".to_owned(), "Too Many Requests".to_owned()),
        TelephonyError::Unauthorized => (
            "20003".to_owned(),
            "Twilio refused the account credentials".to_owned(),
        ),
        TelephonyError::Unavailable(cause) => {
            (TRANSPORT_FAILURE_CODE.to_owned(), format!("{cause:#}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::ports::{
        MockCallRepository, MockClientRepository, MockClock, MockIdGenerator, MockTelephony,
        PlacedCall,
    };
    use crate::test_support::{call_fixture, client_fixture, fixed_now, stored_calls};
    use crate::values::ClientStatus;

    fn service(
        status: ClientStatus,
        calls: MockCallRepository,
        telephony: MockTelephony,
    ) -> CallPlacement {
        let mut clients = MockClientRepository::new();
        clients.expect_find().returning(move |id| {
            let mut client = client_fixture(id.as_str());
            client.status = status;
            Ok(Some(client))
        });
        let mut clock = MockClock::new();
        clock.expect_now().return_const(fixed_now());
        let mut ids = MockIdGenerator::new();
        ids.expect_call_id()
            .returning(|| CallId::parse("call_1").expect("valid"));
        ids.expect_request_id().returning(|| "req_1".to_owned());
        CallPlacement::new(
            Arc::new(clients),
            Arc::new(calls),
            Arc::new(telephony),
            Arc::new(clock),
            Arc::new(ids),
            PublicUrls::new("https://calls.example.com").expect("valid"),
        )
    }

    fn request() -> CallRequest {
        CallRequest {
            phone: PhoneNumber::parse("+12125550123").expect("valid"),
            first_message: None,
            dynamic_variables: DynamicVariables::default(),
        }
    }

    fn client() -> ClientId {
        ClientId::parse("c1").expect("valid")
    }

    const SID: &str = "CA0123456789abcdef0123456789abcdef";

    #[tokio::test]
    async fn a_call_is_recorded_queued_before_the_provider_is_asked_and_gets_its_sid_after() {
        let store: Arc<Mutex<Option<Call>>> = Arc::new(Mutex::new(None));
        let mut telephony = MockTelephony::new();
        let seen = store.clone();
        telephony
            .expect_place_call()
            .times(1)
            .returning(move |outbound| {
                let recorded = seen.lock().expect("lock").clone().expect("recorded first");
                assert_eq!(recorded.data.status(), CallStatus::Queued);
                assert_eq!(
                    outbound.from.as_str(),
                    "+18001234567",
                    "the client's own number"
                );
                assert_eq!(
                    outbound.status_callback_url,
                    "https://calls.example.com/twilio/status?callId=call_1"
                );
                assert_eq!(
                    outbound.twiml_url,
                    "https://calls.example.com/twilio/twiml?callId=call_1"
                );
                Ok(PlacedCall {
                    sid: CallSid::parse(SID).expect("valid"),
                })
            });
        let ids = service(ClientStatus::Active, stored_calls(store.clone()), telephony)
            .place(&client(), request())
            .await
            .expect("placed");
        assert_eq!(
            (
                ids.call_id.as_str(),
                ids.call_sid.as_str(),
                ids.request_id.as_str()
            ),
            ("call_1", SID, "req_1")
        );
        let call = store.lock().expect("lock").clone().expect("stored");
        assert_eq!(call.data.call_sid.as_ref().map(CallSid::as_str), Some(SID));
        assert_eq!(
            call.data.agent_id.as_ref().map(|a| a.as_str()),
            Some("agent_fixture")
        );
        assert_eq!(
            call.data.request_id.as_ref().map(BoundedText::as_str),
            Some("req_1")
        );
    }

    #[tokio::test]
    async fn an_inactive_client_cannot_place_calls() {
        let mut telephony = MockTelephony::new();
        telephony.expect_place_call().never();
        let mut calls = MockCallRepository::new();
        calls.expect_insert().never();
        let result = service(ClientStatus::Suspended, calls, telephony)
            .place(&client(), request())
            .await;
        assert!(matches!(result, Err(PlacementError::ClientInactive)));
    }

    #[tokio::test]
    async fn a_provider_rejection_marks_the_call_failed_with_its_code_and_message() {
        let store: Arc<Mutex<Option<Call>>> = Arc::new(Mutex::new(None));
        let mut telephony = MockTelephony::new();
        telephony.expect_place_call().returning(|_| {
            Err(TelephonyError::Rejected {
                code: Some(21211),
                message: "The 'To' number is not valid.".into(),
                http_status: 400,
            })
        });
        let result = service(ClientStatus::Active, stored_calls(store.clone()), telephony)
            .place(&client(), request())
            .await;
        assert!(matches!(
            result,
            Err(PlacementError::Telephony {
                source: TelephonyError::Rejected {
                    code: Some(21211),
                    ..
                },
                ..
            })
        ));
        let call = store.lock().expect("lock").clone().expect("stored");
        assert_eq!(call.data.status(), CallStatus::Failed);
        assert_eq!(
            call.data.error_code.as_ref().map(BoundedText::as_str),
            Some("21211")
        );
        assert_eq!(
            call.data.error_message.as_ref().map(BoundedText::as_str),
            Some("The 'To' number is not valid.")
        );
    }

    #[tokio::test]
    async fn a_timeout_is_a_provisional_failure_that_a_late_callback_overrides() {
        let store: Arc<Mutex<Option<Call>>> = Arc::new(Mutex::new(None));
        let mut telephony = MockTelephony::new();
        telephony
            .expect_place_call()
            .times(1)
            .returning(|_| Err(TelephonyError::Unavailable(anyhow::anyhow!("timed out"))));
        let placement = service(ClientStatus::Active, stored_calls(store.clone()), telephony);
        assert!(placement.place(&client(), request()).await.is_err());
        let call_id = CallId::parse("call_1").expect("valid");
        let ringing = StatusEvent {
            status: Some(CallStatus::Ringing),
            call_sid: Some(CallSid::parse(SID).expect("valid")),
            ..StatusEvent::default()
        };
        placement
            .record_status(&call_id, &ringing)
            .await
            .expect("applied");
        let call = store.lock().expect("lock").clone().expect("stored");
        assert_eq!(call.data.status(), CallStatus::Ringing);
        assert_eq!(call.data.call_sid.as_ref().map(CallSid::as_str), Some(SID));
    }

    #[tokio::test]
    async fn hanging_up_a_finished_call_is_refused() {
        let store = Arc::new(Mutex::new(Some(call_fixture(
            "c1",
            "call_1",
            CallStatus::Completed,
        ))));
        let mut telephony = MockTelephony::new();
        telephony.expect_end_call().never();
        let result = service(ClientStatus::Active, stored_calls(store), telephony)
            .hang_up(&client(), &CallId::parse("call_1").expect("valid"))
            .await;
        assert!(matches!(result, Err(PlacementError::CallAlreadyEnded)));
    }

    #[tokio::test]
    async fn the_stream_twiml_carries_only_the_call_id() {
        let store = Arc::new(Mutex::new(Some(call_fixture(
            "c1",
            "call_1",
            CallStatus::Ringing,
        ))));
        let mut telephony = MockTelephony::new();
        telephony
            .expect_stream_twiml()
            .withf(|s| {
                s.url == "wss://calls.example.com/twilio/media-stream"
                    && s.parameters == vec![("callId".to_owned(), "call_1".to_owned())]
            })
            .returning(|_| "<Response/>".to_owned());
        let twiml = service(ClientStatus::Active, stored_calls(store), telephony)
            .stream_twiml(&CallId::parse("call_1").expect("valid"))
            .await
            .expect("twiml");
        assert_eq!(twiml, "<Response/>");
    }
}
