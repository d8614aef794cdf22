//! TwiML documents, written with an XML writer so that every value is escaped.

use std::borrow::Cow;
use std::io;

use outcall_domain::ports::StreamInstructions;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, Event};

/// What Twilio gets if the document could not be written: end the call rather than do
/// anything unintended. (Writing into memory does not fail; this only avoids a panic.)
const HANG_UP: &str = r#"<?xml version="1.0" encoding="UTF-8"?><Response><Hangup/></Response>"#;

/// `<Response><Connect><Stream url=".."><Parameter name=".." value=".."/>..</Stream>
/// </Connect></Response>`: connects the answered call to a bidirectional media stream.
///
/// The URL and every parameter are attribute values escaped by the writer (`"`, `<`, `&`,
/// and tab/newline/carriage return as character references), so no value can add elements.
/// Characters XML 1.0 forbids outright (other control characters) become U+FFFD so the
/// document stays well-formed.
pub fn stream_twiml(stream: &StreamInstructions) -> String {
    match write_stream_twiml(stream) {
        Ok(bytes) => String::from_utf8(bytes).unwrap_or_else(|_| HANG_UP.to_owned()),
        Err(error) => {
            tracing::error!(%error, "writing the stream TwiML failed; answering with Hangup");
            HANG_UP.to_owned()
        }
    }
}

fn write_stream_twiml(stream: &StreamInstructions) -> io::Result<Vec<u8>> {
    let mut writer = Writer::new(Vec::new());
    writer.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    writer.write_event(Event::Start(BytesStart::new("Response")))?;
    writer.write_event(Event::Start(BytesStart::new("Connect")))?;
    let url = xml_chars(&stream.url);
    writer.write_event(Event::Start(
        BytesStart::new("Stream").with_attributes([("url", url.as_ref())]),
    ))?;
    for (name, value) in &stream.parameters {
        let name = xml_chars(name);
        let value = xml_chars(value);
        writer
            .write_event(Event::Empty(BytesStart::new("Parameter").with_attributes(
                [("name", name.as_ref()), ("value", value.as_ref())],
            )))?;
    }
    writer.write_event(Event::End(BytesEnd::new("Stream")))?;
    writer.write_event(Event::End(BytesEnd::new("Connect")))?;
    writer.write_event(Event::End(BytesEnd::new("Response")))?;
    Ok(writer.into_inner())
}

/// `raw` with the characters XML 1.0 does not allow (even escaped) replaced by U+FFFD.
fn xml_chars(raw: &str) -> Cow<'_, str> {
    fn allowed(c: char) -> bool {
        matches!(c, '\t' | '\n' | '\r')
            || ('\u{20}'..='\u{D7FF}').contains(&c)
            || ('\u{E000}'..='\u{FFFD}').contains(&c)
            || c >= '\u{10000}'
    }
    if raw.chars().all(allowed) {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(
            raw.chars()
                .map(|c| if allowed(c) { c } else { '\u{FFFD}' })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_xml::{Reader, XmlVersion};

    /// One element as read back: its path from the root and its unescaped attributes.
    #[derive(Debug, PartialEq, Eq)]
    struct Element {
        path: String,
        attributes: Vec<(String, String)>,
    }

    /// Parses `xml` strictly and lists every element in document order.
    fn elements(xml: &str) -> Vec<Element> {
        let mut reader = Reader::from_str(xml);
        reader.config_mut().check_end_names = true;
        let mut stack: Vec<String> = Vec::new();
        let mut out = Vec::new();
        loop {
            match reader.read_event().expect("well-formed XML") {
                Event::Start(start) => {
                    stack.push(name_of(&start));
                    out.push(element(&stack, &start));
                }
                Event::Empty(start) => {
                    stack.push(name_of(&start));
                    out.push(element(&stack, &start));
                    stack.pop();
                }
                Event::End(_) => {
                    stack.pop();
                }
                Event::Text(text) => panic!("unexpected text {text:?}"),
                Event::Eof => break,
                _ => {}
            }
        }
        assert!(stack.is_empty(), "unclosed elements {stack:?}");
        out
    }

    fn name_of(start: &BytesStart<'_>) -> String {
        start.name().as_ref().to_owned()
    }

    fn element(stack: &[String], start: &BytesStart<'_>) -> Element {
        let attributes = start
            .attributes()
            .map(|a| {
                let a = a.expect("attribute");
                (
                    a.key.as_ref().to_owned(),
                    a.normalized_value(XmlVersion::Implicit1_0)
                        .expect("unescape")
                        .into_owned(),
                )
            })
            .collect();
        Element {
            path: stack.join("/"),
            attributes,
        }
    }

    fn instructions(parameters: &[(&str, &str)]) -> StreamInstructions {
        StreamInstructions {
            url: "wss://calls.example.com/twilio/media-stream".to_owned(),
            parameters: parameters
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_stream_document_has_the_exact_expected_shape() {
        let xml = stream_twiml(&instructions(&[("callId", "call_1"), ("agentId", "a")]));
        assert_eq!(
            xml,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Connect>\
             <Stream url=\"wss://calls.example.com/twilio/media-stream\">\
             <Parameter name=\"callId\" value=\"call_1\"/>\
             <Parameter name=\"agentId\" value=\"a\"/>\
             </Stream></Connect></Response>"
        );
    }

    #[test]
    fn a_stream_without_parameters_is_still_well_formed() {
        let xml = stream_twiml(&instructions(&[]));
        assert_eq!(
            elements(&xml),
            vec![
                Element {
                    path: "Response".into(),
                    attributes: vec![]
                },
                Element {
                    path: "Response/Connect".into(),
                    attributes: vec![]
                },
                Element {
                    path: "Response/Connect/Stream".into(),
                    attributes: vec![(
                        "url".into(),
                        "wss://calls.example.com/twilio/media-stream".into()
                    )]
                },
            ]
        );
    }

    #[test]
    fn an_injection_attempt_stays_an_attribute_value() {
        let hostile = r#""/><Dial>+19005550000</Dial><Stream url=""#;
        let also_hostile = "a'b&c<d>e\tf\ng\rh";
        let mut stream =
            instructions(&[("callId", hostile), (hostile, "x"), ("note", also_hostile)]);
        stream.url = format!("wss://calls.example.com/s?{hostile}");
        let xml = stream_twiml(&stream);
        assert!(!xml.contains("<Dial>"), "{xml}");
        let parameter = |name: &str, value: &str| Element {
            path: "Response/Connect/Stream/Parameter".into(),
            attributes: vec![("name".into(), name.into()), ("value".into(), value.into())],
        };
        assert_eq!(
            elements(&xml),
            vec![
                Element {
                    path: "Response".into(),
                    attributes: vec![]
                },
                Element {
                    path: "Response/Connect".into(),
                    attributes: vec![]
                },
                Element {
                    path: "Response/Connect/Stream".into(),
                    attributes: vec![("url".into(), stream.url.clone())]
                },
                parameter("callId", hostile),
                parameter(hostile, "x"),
                parameter("note", also_hostile),
            ]
        );
    }

    #[test]
    fn characters_xml_forbids_become_replacement_characters() {
        let xml = stream_twiml(&instructions(&[("callId", "a\u{0}b\u{1b}c\u{FFFF}d")]));
        let parsed = elements(&xml);
        assert_eq!(
            parsed.last().map(|e| e.attributes.clone()),
            Some(vec![
                ("name".into(), "callId".into()),
                ("value".into(), "a\u{FFFD}b\u{FFFD}c\u{FFFD}d".into())
            ])
        );
        assert!(!xml.contains('\u{0}') && !xml.contains('\u{1b}'));
    }
}
