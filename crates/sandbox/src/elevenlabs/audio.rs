//! The agent's audio: a 1 kHz tone in the configured output format, cut into chunks whose first
//! four bytes carry the chunk's index, and the arithmetic of audio lengths.

use base64::Engine as _;

use crate::twilio::audio::linear_to_ulaw;

/// Speech is assumed to take this long per character of text.
const SPEECH_MS_PER_CHAR: u64 = 60;
/// One response never lasts longer than this.
const MAX_SPEECH_MS: u64 = 120_000;
const TONE_HZ: f64 = 1000.0;
/// A quarter of full scale: clearly audible, far from clipping.
const TONE_AMPLITUDE: f64 = 8192.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// G.711 μ-law, one byte per sample.
    Ulaw,
    /// Signed 16-bit little-endian PCM.
    Pcm16,
}

/// One of ElevenLabs' conversation audio formats (protocols 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AudioFormat {
    encoding: Encoding,
    sample_rate: u32,
}

impl AudioFormat {
    pub(crate) fn parse(name: &str) -> Option<Self> {
        let (encoding, sample_rate) = match name {
            "ulaw_8000" => (Encoding::Ulaw, 8000),
            "pcm_8000" => (Encoding::Pcm16, 8000),
            "pcm_16000" => (Encoding::Pcm16, 16_000),
            "pcm_22050" => (Encoding::Pcm16, 22_050),
            "pcm_24000" => (Encoding::Pcm16, 24_000),
            "pcm_44100" => (Encoding::Pcm16, 44_100),
            "pcm_48000" => (Encoding::Pcm16, 48_000),
            _ => return None,
        };
        Some(Self {
            encoding,
            sample_rate,
        })
    }

    fn bytes_per_sample(self) -> u64 {
        match self.encoding {
            Encoding::Ulaw => 1,
            Encoding::Pcm16 => 2,
        }
    }

    /// Bytes of `ms` milliseconds of audio (whole samples).
    pub(crate) fn bytes_for_ms(self, ms: u64) -> u64 {
        u64::from(self.sample_rate) * ms / 1000 * self.bytes_per_sample()
    }
}

/// Produces the agent's audio chunks.
pub(crate) struct AgentVoice {
    chunk_ms: u32,
    /// One chunk of tone, starting at phase 0.
    chunk: Vec<u8>,
}

impl AgentVoice {
    pub(crate) fn new(format: AudioFormat, chunk_ms: u32) -> Self {
        let samples = u64::from(format.sample_rate) * u64::from(chunk_ms) / 1000;
        let step = std::f64::consts::TAU * TONE_HZ / f64::from(format.sample_rate);
        let mut chunk = Vec::with_capacity((samples * format.bytes_per_sample()) as usize);
        for n in 0..samples {
            let value = ((step * n as f64).sin() * TONE_AMPLITUDE) as i16;
            match format.encoding {
                Encoding::Ulaw => chunk.push(linear_to_ulaw(value)),
                Encoding::Pcm16 => chunk.extend_from_slice(&value.to_le_bytes()),
            }
        }
        Self { chunk_ms, chunk }
    }

    pub(crate) fn chunk_ms(&self) -> u32 {
        self.chunk_ms
    }

    pub(crate) fn chunk_bytes(&self) -> usize {
        self.chunk.len()
    }

    /// Base64 of chunk number `index` (from 1): the tone with `index` in its first four bytes.
    pub(crate) fn chunk_payload(&self, index: u32) -> String {
        let mut chunk = self.chunk.clone();
        for (byte, stamp) in chunk.iter_mut().zip(index.to_be_bytes()) {
            *byte = stamp;
        }
        base64::engine::general_purpose::STANDARD.encode(chunk)
    }

    /// How many chunks it takes to say `text` (at least one).
    pub(crate) fn chunks_for(&self, text: &str) -> u32 {
        let chunk_ms = u64::from(self.chunk_ms.max(1));
        let speech = (text.chars().count() as u64 * SPEECH_MS_PER_CHAR).clamp(1, MAX_SPEECH_MS);
        u32::try_from(speech.div_ceil(chunk_ms)).unwrap_or(u32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_to_their_byte_rates_and_unknown_ones_are_refused() {
        let ulaw = AudioFormat::parse("ulaw_8000").unwrap();
        assert_eq!(ulaw.bytes_for_ms(1000), 8000);
        assert_eq!(ulaw.bytes_for_ms(20), 160);
        let pcm = AudioFormat::parse("pcm_16000").unwrap();
        assert_eq!(pcm.bytes_for_ms(1000), 32_000);
        assert_eq!(pcm.bytes_for_ms(100), 3200);
        assert_eq!(
            AudioFormat::parse("pcm_22050").unwrap().bytes_for_ms(20),
            882
        );
        for bad in ["", "mp3_44100_128", "ULAW_8000", "pcm_11025"] {
            assert_eq!(AudioFormat::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn chunks_are_the_configured_length_and_carry_their_index() {
        let voice = AgentVoice::new(AudioFormat::parse("ulaw_8000").unwrap(), 100);
        let decode = |s: String| base64::engine::general_purpose::STANDARD.decode(s).unwrap();
        let first = decode(voice.chunk_payload(1));
        let second = decode(voice.chunk_payload(0x0102_0304));
        assert_eq!(first.len(), 800);
        assert_eq!(voice.chunk_bytes(), 800);
        assert_eq!(&first[..4], &[0, 0, 0, 1]);
        assert_eq!(&second[..4], &[1, 2, 3, 4]);
        assert_eq!(first[4..], second[4..]);
        // A 1 kHz tone: 8 samples per period at 8 kHz; negative half-periods have the μ-law sign
        // bit clear.
        assert_eq!(first[4], linear_to_ulaw(0));
        assert!(first[6] < 0x80 && first[10] >= 0x80);
        assert_eq!(first[4..12], first[12..20]);
        let pcm = AgentVoice::new(AudioFormat::parse("pcm_16000").unwrap(), 20);
        assert_eq!(decode(pcm.chunk_payload(1)).len(), 640);
    }

    #[test]
    fn speech_takes_sixty_ms_per_character_in_whole_chunks() {
        let voice = AgentVoice::new(AudioFormat::parse("ulaw_8000").unwrap(), 100);
        assert_eq!(voice.chunks_for(""), 1);
        assert_eq!(voice.chunks_for("ab"), 2);
        assert_eq!(voice.chunks_for("0123456789"), 6);
        assert_eq!(voice.chunks_for(&"x".repeat(1_000_000)), 1200);
    }
}
