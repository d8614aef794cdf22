//! Telling an ElevenLabs audio webhook from the others while its bytes stream in.
//!
//! `post_call_audio` bodies carry the whole call as base64 MP3 and can be far larger than any
//! other event, so the webhook route must know early whether to buffer a body (to parse it)
//! or only to feed it to the signature check. [`TypeSniffer`] reads the top level of the JSON
//! envelope (`{"type": ..., "event_timestamp": ..., "data": {...}}`) byte by byte, across
//! chunk boundaries and with constant memory, until it has seen the top-level `type` member.
//! Members before `type` are skipped whatever they hold (nested objects, strings with
//! escapes), so a `type` inside `data` is never mistaken for the envelope's.

/// The envelope type whose bodies are never buffered.
pub const AUDIO_EVENT: &str = "post_call_audio";

/// Longest raw (still escaped) key or `type` value worth decoding: longer ones are neither
/// `"type"` nor [`AUDIO_EVENT`], however they are escaped.
const MAX_RAW_STRING: usize = 96;

/// What the bytes seen so far say about the envelope type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The top-level `type` member has not been seen yet.
    Undecided,
    /// `"type": "post_call_audio"`.
    Audio,
    /// Another type, no `type` at all, or not a JSON object: buffer and parse it.
    NotAudio,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the opening `{`.
    Start,
    /// After `{` or `,`: a member name or the closing `}`.
    Key,
    /// Inside a member name.
    InKey,
    /// After a member name.
    Colon,
    /// After `:`.
    Value,
    /// Inside the string value of `type`.
    InType,
    /// Inside another member's string value.
    SkipString,
    /// Inside another member's object or array value, at `depth` (strings tracked).
    SkipNested {
        depth: usize,
        in_string: bool,
    },
    /// Inside another member's number or literal.
    SkipScalar,
    /// After a member's value: `,` or `}`.
    AfterValue,
    Done(Verdict),
}

/// Incremental reader of the envelope's top-level `type` member. Feed it every chunk in order
/// until [`TypeSniffer::verdict`] is decided.
#[derive(Debug)]
pub struct TypeSniffer {
    state: State,
    /// The raw bytes of the name or `type` value being read, escapes kept.
    raw: Vec<u8>,
    /// The last byte inside a string was an unescaped backslash.
    escaped: bool,
    /// The member whose value comes next is `type`.
    is_type: bool,
}

impl Default for TypeSniffer {
    fn default() -> Self {
        Self::new()
    }
}

impl TypeSniffer {
    pub fn new() -> Self {
        Self {
            state: State::Start,
            raw: Vec::new(),
            escaped: false,
            is_type: false,
        }
    }

    pub fn verdict(&self) -> Verdict {
        match self.state {
            State::Done(verdict) => verdict,
            _ => Verdict::Undecided,
        }
    }

    /// Reads the next bytes of the body and returns the verdict so far.
    pub fn feed(&mut self, chunk: &[u8]) -> Verdict {
        for &byte in chunk {
            if let State::Done(verdict) = self.state {
                return verdict;
            }
            self.state = self.step(byte);
        }
        self.verdict()
    }

    fn step(&mut self, byte: u8) -> State {
        let not_audio = State::Done(Verdict::NotAudio);
        match self.state {
            State::Start => match byte {
                _ if byte.is_ascii_whitespace() => State::Start,
                b'{' => State::Key,
                _ => not_audio,
            },
            State::Key => match byte {
                _ if byte.is_ascii_whitespace() => State::Key,
                b'"' => {
                    self.raw.clear();
                    self.escaped = false;
                    State::InKey
                }
                _ => not_audio,
            },
            State::InKey => {
                if self.string_byte(byte) {
                    State::InKey
                } else {
                    self.is_type = decode(&self.raw).as_deref() == Some("type");
                    State::Colon
                }
            }
            State::Colon => match byte {
                _ if byte.is_ascii_whitespace() => State::Colon,
                b':' => State::Value,
                _ => not_audio,
            },
            State::Value => match byte {
                _ if byte.is_ascii_whitespace() => State::Value,
                b'"' if self.is_type => {
                    self.raw.clear();
                    self.escaped = false;
                    State::InType
                }
                // `type` must be a string.
                _ if self.is_type => not_audio,
                b'"' => {
                    self.escaped = false;
                    State::SkipString
                }
                b'{' | b'[' => State::SkipNested {
                    depth: 1,
                    in_string: false,
                },
                _ => State::SkipScalar,
            },
            State::InType => {
                if self.string_byte(byte) {
                    State::InType
                } else if decode(&self.raw).as_deref() == Some(AUDIO_EVENT) {
                    State::Done(Verdict::Audio)
                } else {
                    not_audio
                }
            }
            State::SkipString => {
                if self.skip_string_byte(byte) {
                    State::SkipString
                } else {
                    State::AfterValue
                }
            }
            State::SkipNested { depth, in_string } => {
                if in_string {
                    let in_string = self.skip_string_byte(byte);
                    return State::SkipNested { depth, in_string };
                }
                match byte {
                    b'"' => {
                        self.escaped = false;
                        State::SkipNested {
                            depth,
                            in_string: true,
                        }
                    }
                    b'{' | b'[' => State::SkipNested {
                        depth: depth + 1,
                        in_string: false,
                    },
                    b'}' | b']' if depth == 1 => State::AfterValue,
                    b'}' | b']' => State::SkipNested {
                        depth: depth - 1,
                        in_string: false,
                    },
                    _ => State::SkipNested { depth, in_string },
                }
            }
            State::SkipScalar => match byte {
                b',' => State::Key,
                // The object ended without a `type`.
                b'}' => not_audio,
                _ if byte.is_ascii_whitespace() => State::AfterValue,
                _ => State::SkipScalar,
            },
            State::AfterValue => match byte {
                _ if byte.is_ascii_whitespace() => State::AfterValue,
                b',' => State::Key,
                _ => not_audio,
            },
            State::Done(verdict) => State::Done(verdict),
        }
    }

    /// Keeps one byte of a name or `type` value (up to [`MAX_RAW_STRING`]); false at the
    /// closing quote.
    fn string_byte(&mut self, byte: u8) -> bool {
        if !self.skip_string_byte(byte) {
            return false;
        }
        if self.raw.len() <= MAX_RAW_STRING {
            self.raw.push(byte);
        }
        true
    }

    /// Whether `byte` is still inside the string (false at the closing quote).
    fn skip_string_byte(&mut self, byte: u8) -> bool {
        if self.escaped {
            self.escaped = false;
            return true;
        }
        match byte {
            b'\\' => {
                self.escaped = true;
                true
            }
            b'"' => false,
            _ => true,
        }
    }
}

/// The text of a raw JSON string (between its quotes), escapes resolved; `None` when it is
/// too long to matter or not a valid string.
fn decode(raw: &[u8]) -> Option<String> {
    if raw.len() > MAX_RAW_STRING {
        return None;
    }
    let mut quoted = Vec::with_capacity(raw.len() + 2);
    quoted.push(b'"');
    quoted.extend_from_slice(raw);
    quoted.push(b'"');
    serde_json::from_slice(&quoted).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_of(body: &str) -> Verdict {
        TypeSniffer::new().feed(body.as_bytes())
    }

    /// The verdict when the body arrives one byte at a time.
    fn verdict_bytewise(body: &str) -> Verdict {
        let mut sniffer = TypeSniffer::new();
        for byte in body.as_bytes() {
            sniffer.feed(std::slice::from_ref(byte));
        }
        sniffer.verdict()
    }

    #[test]
    fn an_audio_envelope_is_recognised_from_its_type_member() {
        for body in [
            r#"{"type":"post_call_audio","event_timestamp":1,"data":{"full_audio":"AAAA"#,
            "{ \"type\" :\n \"post_call_audio\" ,",
            r#"{"type":"post_call\u005faudio"}"#,
            r#"{"t\u0079pe":"post_call_audio"}"#,
        ] {
            assert_eq!(verdict_of(body), Verdict::Audio, "{body}");
            assert_eq!(verdict_bytewise(body), Verdict::Audio, "{body}");
        }
    }

    #[test]
    fn members_before_the_type_are_skipped_whatever_they_hold() {
        let body = r#"{"event_timestamp": 17, "flag": true, "data": {"type": "post_call_transcription", "x": ["}", "\"type\":", {"a": [1, 2]}]}, "note": "a \"quoted\" } brace", "type": "post_call_audio"}"#;
        assert_eq!(verdict_of(body), Verdict::Audio);
        assert_eq!(verdict_bytewise(body), Verdict::Audio);
    }

    #[test]
    fn a_nested_audio_type_does_not_make_an_audio_envelope() {
        let body = r#"{"data": {"type": "post_call_audio"}, "type": "post_call_transcription"}"#;
        assert_eq!(verdict_of(body), Verdict::NotAudio);
        assert_eq!(verdict_bytewise(body), Verdict::NotAudio);
    }

    #[test]
    fn other_types_and_other_shapes_are_not_audio() {
        for body in [
            r#"{"type":"post_call_transcription","data":{}}"#,
            r#"{"type":"post_call_audio_v2"}"#,
            r#"{"type":"POST_CALL_AUDIO"}"#,
            r#"{"type": ["post_call_audio"]}"#,
            r#"{"data": {}}"#,
            r#"{"n": 1}"#,
            r#"["post_call_audio"]"#,
            r#""post_call_audio""#,
            "type=post_call_audio",
            "\u{feff}{\"type\":\"post_call_audio\"}",
            r#"{"type" "post_call_audio"}"#,
        ] {
            assert_eq!(verdict_of(body), Verdict::NotAudio, "{body}");
            assert_eq!(verdict_bytewise(body), Verdict::NotAudio, "{body}");
        }
    }

    #[test]
    fn the_verdict_waits_for_the_type_member() {
        let mut sniffer = TypeSniffer::new();
        assert_eq!(
            sniffer.feed(b"{\"data\": {\"full_audio\": \"AAAA"),
            Verdict::Undecided
        );
        assert_eq!(sniffer.feed(&[b'A'; 4096]), Verdict::Undecided);
        assert_eq!(
            sniffer.feed(b"\"}, \"type\": \"post_call_"),
            Verdict::Undecided
        );
        assert_eq!(sniffer.feed(b"audio\""), Verdict::Audio);
        assert_eq!(sniffer.feed(b", \"type\": \"other\"}"), Verdict::Audio);
    }

    #[test]
    fn a_very_long_type_value_is_not_audio_and_is_not_kept() {
        let mut sniffer = TypeSniffer::new();
        sniffer.feed(b"{\"type\": \"post_call_audio");
        sniffer.feed(&[b'x'; 10_000]);
        assert!(sniffer.raw.len() <= MAX_RAW_STRING + 1);
        assert_eq!(sniffer.feed(b"\"}"), Verdict::NotAudio);
    }
}
