//! Where the providers reach outcall: the public paths of the webhook and stream endpoints and
//! the absolute URLs built from the externally visible base URL.

use crate::values::CallId;

/// Paths of the provider-facing endpoints. The HTTP layer mounts them; the placement service
/// hands the absolute URLs to Twilio. One definition keeps the two in step.
pub mod paths {
    /// Twilio fetches the call's TwiML here when the callee answers (`?callId=`).
    pub const TWILIO_TWIML: &str = "/twilio/twiml";
    /// Twilio posts call-progress events here (`?callId=`).
    pub const TWILIO_STATUS: &str = "/twilio/status";
    /// Twilio opens the bidirectional media stream here (WebSocket).
    pub const MEDIA_STREAM: &str = "/twilio/media-stream";
    /// ElevenLabs posts its post-call analysis here.
    pub const ELEVENLABS_POST_CALL: &str = "/webhooks/elevenlabs/post-call";
}

/// The externally visible base URL (`https://calls.example.com`) and the URLs derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    base: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("public URL must be an absolute http:// or https:// URL without query or fragment")]
pub struct PublicUrlError;

impl PublicUrls {
    /// # Errors
    /// [`PublicUrlError`] unless `base` is `http(s)://host[:port][/prefix]`.
    pub fn new(base: &str) -> Result<Self, PublicUrlError> {
        let base = base.trim_end_matches('/');
        let rest = base
            .strip_prefix("https://")
            .or_else(|| base.strip_prefix("http://"))
            .ok_or(PublicUrlError)?;
        let valid = !rest.is_empty()
            && !rest.starts_with('/')
            && !rest.contains(['?', '#', ' '])
            && rest.is_ascii();
        if !valid {
            return Err(PublicUrlError);
        }
        Ok(Self {
            base: base.to_owned(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// What Twilio requests when the callee answers.
    pub fn twiml(&self, call: &CallId) -> String {
        format!("{}{}?callId={call}", self.base, paths::TWILIO_TWIML)
    }

    /// Where Twilio posts call-progress events for this call.
    pub fn status_callback(&self, call: &CallId) -> String {
        format!("{}{}?callId={call}", self.base, paths::TWILIO_STATUS)
    }

    /// The media-stream WebSocket URL: `https` becomes `wss`, `http` becomes `ws`.
    pub fn media_stream(&self) -> String {
        let ws_base = match self.base.strip_prefix("https://") {
            Some(rest) => format!("wss://{rest}"),
            None => format!("ws://{}", self.base.trim_start_matches("http://")),
        };
        format!("{ws_base}{}", paths::MEDIA_STREAM)
    }

    /// The absolute URL of a request whose path and query are `path_and_query`, as the
    /// provider addressed it (signatures are computed over it).
    pub fn absolute(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_derive_from_the_public_base() {
        let urls = PublicUrls::new("https://calls.example.com/").expect("valid");
        let call = CallId::parse("call_abc").expect("valid");
        assert_eq!(
            urls.twiml(&call),
            "https://calls.example.com/twilio/twiml?callId=call_abc"
        );
        assert_eq!(
            urls.status_callback(&call),
            "https://calls.example.com/twilio/status?callId=call_abc"
        );
        assert_eq!(
            urls.media_stream(),
            "wss://calls.example.com/twilio/media-stream"
        );
        let local = PublicUrls::new("http://127.0.0.1:3000").expect("valid");
        assert_eq!(
            local.media_stream(),
            "ws://127.0.0.1:3000/twilio/media-stream"
        );
        let prefixed = PublicUrls::new("https://example.com/outcall").expect("valid");
        assert_eq!(
            prefixed.media_stream(),
            "wss://example.com/outcall/twilio/media-stream"
        );
    }

    #[test]
    fn only_plain_http_urls_are_public_bases() {
        for bad in [
            "ftp://x",
            "example.com",
            "https://",
            "https://x?y=1",
            "https:///path",
            "http://a b",
        ] {
            assert_eq!(PublicUrls::new(bad), Err(PublicUrlError), "{bad}");
        }
    }
}
