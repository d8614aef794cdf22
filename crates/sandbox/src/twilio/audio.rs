//! 20 ms G.711 μ-law frames, the inbound audio Twilio streams (protocols 5.1).

use base64::Engine as _;

use super::MediaScript;

/// 20 ms at 8 kHz, one byte per sample.
pub(crate) const FRAME_BYTES: usize = 160;
pub(crate) const FRAME_MS: u64 = 20;
const SAMPLE_RATE: f64 = 8000.0;
/// A quarter of full scale: clearly audible, far from clipping.
const TONE_AMPLITUDE: f64 = 8192.0;

/// G.711 μ-law encoding of one 16-bit linear sample (the classic Sun/ITU reference algorithm).
pub(crate) fn linear_to_ulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let mut magnitude = i32::from(sample);
    let sign: u8 = if magnitude < 0 {
        magnitude = -magnitude;
        0x80
    } else {
        0
    };
    magnitude = magnitude.min(CLIP) + BIAS;
    // magnitude >> 7 is within 1..=255 here, so its highest set bit is the segment number.
    let segment = (magnitude >> 7).clamp(1, 255);
    let exponent = 7 - (segment as u8).leading_zeros() as u8;
    let mantissa = ((magnitude >> (i32::from(exponent) + 3)) & 0x0F) as u8;
    !(sign | (exponent << 4) | mantissa)
}

/// Produces base64 payloads for consecutive frames of one stream.
pub(crate) struct FrameSource {
    script: MediaScript,
    /// Silence is the same for every frame: encode it once.
    silence: String,
    next_sample: u64,
}

impl FrameSource {
    pub(crate) fn new(script: MediaScript) -> Self {
        Self {
            script,
            silence: base64::engine::general_purpose::STANDARD.encode([0xFF_u8; FRAME_BYTES]),
            next_sample: 0,
        }
    }

    pub(crate) fn next_payload(&mut self) -> String {
        let start = self.next_sample;
        self.next_sample += FRAME_BYTES as u64;
        match self.script {
            MediaScript::Silence => self.silence.clone(),
            MediaScript::Tone { frequency_hz } => {
                let step = std::f64::consts::TAU * f64::from(frequency_hz) / SAMPLE_RATE;
                let mut frame = [0_u8; FRAME_BYTES];
                for (i, byte) in frame.iter_mut().enumerate() {
                    // Phase from the absolute sample index keeps the tone continuous across
                    // frames; the modulo keeps the f64 exact on long calls.
                    let n = (start + i as u64) % 8000;
                    let value = (step * n as f64).sin() * TONE_AMPLITUDE;
                    *byte = linear_to_ulaw(value as i16);
                }
                base64::engine::general_purpose::STANDARD.encode(frame)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mu_law_encodes_the_reference_points() {
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(i16::MAX), 0x80);
        assert_eq!(linear_to_ulaw(i16::MIN), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
    }

    #[test]
    fn silence_frames_are_160_bytes_of_0xff() {
        let mut source = FrameSource::new(MediaScript::Silence);
        let payload = source.next_payload();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .unwrap();
        assert_eq!(bytes, vec![0xFF; FRAME_BYTES]);
        assert_eq!(payload.len(), 216);
    }

    #[test]
    fn tone_frames_are_160_bytes_that_are_not_silence_and_continue_across_frames() {
        let mut source = FrameSource::new(MediaScript::Tone { frequency_hz: 1000 });
        let first = base64::engine::general_purpose::STANDARD
            .decode(source.next_payload())
            .unwrap();
        let second = base64::engine::general_purpose::STANDARD
            .decode(source.next_payload())
            .unwrap();
        assert_eq!(first.len(), FRAME_BYTES);
        assert!(first.iter().any(|b| *b != 0xFF && *b != 0x7F));
        // 1 kHz has a period of exactly 8 samples, and 160 is a multiple of 8.
        assert_eq!(first, second);
        assert_eq!(first[0], linear_to_ulaw(0));
        assert_eq!(first[2], linear_to_ulaw(8192));
    }
}
