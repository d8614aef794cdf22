//! The part of TwiML the emulator acts on: `<Connect><Stream url><Parameter/></Stream></Connect>`
//! and `<Hangup/>` (protocols 4). Other verbs are accepted and ignored.

use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

/// Deeper nesting than this is not TwiML; refusing it bounds the parser's stack.
const MAX_DEPTH: usize = 32;
/// Twilio documents no count limit (the REST Streams API has 99); this only bounds memory.
const MAX_PARAMETERS: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StreamSpec {
    /// Exactly as written in the TwiML (may be relative).
    pub url: String,
    pub parameters: Vec<(String, String)>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Twiml {
    /// The first `<Connect><Stream>`; Twilio allows one bidirectional stream per call.
    pub stream: Option<StreamSpec>,
    /// A top-level `<Hangup/>` or `<Reject/>`.
    pub hangup: bool,
}

pub(crate) fn parse(xml: &str) -> Result<Twiml, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut stack: Vec<String> = Vec::new();
    let mut twiml = Twiml::default();
    let mut saw_root = false;
    // True while inside the `<Stream>` element that `twiml.stream` came from.
    let mut in_chosen_stream = false;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("invalid XML at byte {}: {e}", reader.error_position()))?;
        match event {
            Event::Start(element) => {
                let name = element_name(&element);
                if visit(
                    &mut twiml,
                    &stack,
                    &name,
                    &element,
                    &mut saw_root,
                    in_chosen_stream,
                )? {
                    in_chosen_stream = true;
                }
                if stack.len() >= MAX_DEPTH {
                    return Err("TwiML nests too deeply".to_owned());
                }
                stack.push(name);
            }
            Event::Empty(element) => {
                let name = element_name(&element);
                // A self-closed <Stream/> has no children, so nothing is inside it.
                visit(
                    &mut twiml,
                    &stack,
                    &name,
                    &element,
                    &mut saw_root,
                    in_chosen_stream,
                )?;
            }
            Event::End(_) => {
                let closed = stack.pop();
                in_chosen_stream &= closed.as_deref() != Some("Stream");
            }
            Event::Eof => break,
            // Declarations, comments, whitespace and verb text (`<Say>`) do not matter here.
            _ => {}
        }
    }
    if !saw_root {
        return Err("TwiML has no <Response> element".to_owned());
    }
    if !stack.is_empty() {
        return Err("TwiML ends inside an open element".to_owned());
    }
    Ok(twiml)
}

fn element_name(element: &BytesStart<'_>) -> String {
    let name = element.name();
    let text: &str = name.as_ref();
    text.to_owned()
}

fn visit(
    twiml: &mut Twiml,
    stack: &[String],
    name: &str,
    element: &BytesStart<'_>,
    saw_root: &mut bool,
    in_chosen_stream: bool,
) -> Result<bool, String> {
    // Returns true when this element is the `<Stream>` that `twiml.stream` now describes.
    let parent = stack.last().map(String::as_str);
    let grandparent = stack.len().checked_sub(2).map(|i| stack[i].as_str());
    match (stack.is_empty(), name) {
        (true, "Response") => {
            if *saw_root {
                return Err("TwiML has more than one root element".to_owned());
            }
            *saw_root = true;
        }
        (true, other) => return Err(format!("TwiML root element is <{other}>, not <Response>")),
        (false, "Stream")
            if parent == Some("Connect")
                && grandparent == Some("Response")
                && twiml.stream.is_none() =>
        {
            let url = attribute(element, "url")?
                .ok_or_else(|| "<Stream> has no url attribute".to_owned())?;
            twiml.stream = Some(StreamSpec {
                url,
                parameters: Vec::new(),
            });
            return Ok(true);
        }
        (false, "Parameter") if parent == Some("Stream") && in_chosen_stream => {
            let name = attribute(element, "name")?
                .ok_or_else(|| "<Parameter> has no name attribute".to_owned())?;
            let value = attribute(element, "value")?.unwrap_or_default();
            if let Some(stream) = twiml.stream.as_mut()
                && stream.parameters.len() < MAX_PARAMETERS
            {
                stream.parameters.push((name, value));
            }
        }
        (false, "Hangup" | "Reject") if parent == Some("Response") => twiml.hangup = true,
        _ => {}
    }
    Ok(false)
}

fn attribute(element: &BytesStart<'_>, wanted: &str) -> Result<Option<String>, String> {
    for attribute in element.attributes() {
        let attribute = attribute.map_err(|e| format!("invalid attribute: {e}"))?;
        if attribute.key.as_ref() == wanted {
            let value = attribute
                .normalized_value(XmlVersion::Implicit1_0)
                .map_err(|e| format!("invalid value of attribute {wanted}: {e}"))?;
            return Ok(Some(value.into_owned()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connect_stream_with_escaped_parameters_is_understood() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Connect>
    <Stream url="wss://bridge.example.com/outbound-media-stream" statusCallback="https://x/y">
      <Parameter name="callId" value="abc123"/>
      <Parameter name="note" value="&quot;/&gt;&lt;Dial&gt;+1900 &amp; more"/>
    </Stream>
  </Connect>
</Response>"#;
        let twiml = parse(xml).unwrap();
        assert_eq!(
            twiml.stream,
            Some(StreamSpec {
                url: "wss://bridge.example.com/outbound-media-stream".to_owned(),
                parameters: vec![
                    ("callId".to_owned(), "abc123".to_owned()),
                    ("note".to_owned(), "\"/><Dial>+1900 & more".to_owned()),
                ],
            })
        );
        assert!(!twiml.hangup);
    }

    #[test]
    fn only_the_first_connect_stream_counts_and_start_stream_is_ignored() {
        let xml = r#"<Response><Start><Stream url="wss://fork/"><Parameter name="a" value="1"/></Stream></Start>
<Connect><Stream url="wss://one/"><Parameter name="b" value="2"/></Stream></Connect>
<Connect><Stream url="wss://two/"><Parameter name="c" value="3"/></Stream></Connect></Response>"#;
        let stream = parse(xml).unwrap().stream.unwrap();
        assert_eq!(stream.url, "wss://one/");
        assert_eq!(stream.parameters, vec![("b".to_owned(), "2".to_owned())]);
    }

    #[test]
    fn hangup_and_empty_responses_are_recognised() {
        assert!(parse("<Response><Hangup/></Response>").unwrap().hangup);
        assert_eq!(parse("<Response/>").unwrap(), Twiml::default());
        assert_eq!(
            parse("<Response><Say>hi</Say></Response>").unwrap(),
            Twiml::default()
        );
    }

    #[test]
    fn malformed_or_foreign_documents_are_errors() {
        for bad in [
            "",
            "not xml",
            "<Html/>",
            "<Response><Connect></Response>",
            "<Response><Connect><Stream/></Connect></Response>",
            "<Response/><Response/>",
            "<Response><Connect>",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
        let deep = format!("<Response>{}", "<a>".repeat(100));
        assert!(parse(&deep).is_err());
    }
}
