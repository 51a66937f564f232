//! Sound for `missive call`: a WAV file played as the microphone (made 48 kHz mono), and what
//! the participant hears, every speaker mixed at the moment it arrived, written as a WAV file.

use std::path::Path;
use std::time::Instant;

use anyhow::Context;

/// The call's sample rate (Opus at full band).
pub const RATE: u32 = 48_000;
/// Samples in one 20 ms frame.
pub const FRAME: usize = (RATE / 50) as usize;

/// A WAV file's sound as 48 kHz mono, handed out a frame at a time.
pub struct Source {
    samples: Vec<i16>,
    at: usize,
}

impl Source {
    /// Reads `path` (16-bit integer or 32-bit float PCM, any rate, any channels).
    pub fn open(path: &Path) -> anyhow::Result<Source> {
        let mut reader = hound::WavReader::open(path)
            .with_context(|| format!("cannot read {} as a WAV file", path.display()))?;
        let spec = reader.spec();
        let channels = usize::from(spec.channels.max(1));
        let interleaved: Vec<f32> = match spec.sample_format {
            hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
            hound::SampleFormat::Int => {
                let scale = (1i64 << (spec.bits_per_sample.clamp(1, 32) - 1)) as f32;
                reader
                    .samples::<i32>()
                    .map(|s| s.map(|v| v as f32 / scale))
                    .collect::<Result<_, _>>()?
            }
        };
        let mono: Vec<f32> = interleaved
            .chunks(channels)
            .map(|c| c.iter().sum::<f32>() / c.len() as f32)
            .collect();
        let samples = resample(&mono, spec.sample_rate, RATE)
            .into_iter()
            .map(|v| (v.clamp(-1.0, 1.0) * f32::from(i16::MAX)) as i16)
            .collect();
        Ok(Source { samples, at: 0 })
    }

    /// The next 20 ms, or `None` once the file is played.
    pub fn next_frame(&mut self) -> Option<[i16; FRAME]> {
        if self.at >= self.samples.len() {
            return None;
        }
        let mut frame = [0i16; FRAME];
        let end = (self.at + FRAME).min(self.samples.len());
        frame[..end - self.at].copy_from_slice(&self.samples[self.at..end]);
        self.at = end;
        Some(frame)
    }
}

/// Linear interpolation from `from` Hz to `to` Hz: enough for speech and test tones.
fn resample(input: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || input.is_empty() || from == 0 {
        return input.to_vec();
    }
    let out_len = (input.len() as u64 * u64::from(to) / u64::from(from)) as usize;
    (0..out_len)
        .map(|i| {
            let pos = i as f64 * f64::from(from) / f64::from(to);
            let j = pos as usize;
            let frac = (pos - j as f64) as f32;
            let a = input[j.min(input.len() - 1)];
            let b = input[(j + 1).min(input.len() - 1)];
            a + (b - a) * frac
        })
        .collect()
}

/// What this participant hears: each speaker's frames laid at the moment they arrived (then
/// one after the other while they keep coming in time), all speakers added together.
pub struct Recorder {
    start: Instant,
    mix: Vec<i32>,
    /// Where each speaker's next frame goes.
    cursors: std::collections::HashMap<String, usize>,
}

/// How far a speaker's frames may drift from their arrival time before they are laid at it
/// again (a pause, a network hiccup): 100 ms.
const RESYNC: usize = (RATE / 10) as usize;

impl Recorder {
    pub fn new(start: Instant) -> Recorder {
        Recorder {
            start,
            mix: Vec::new(),
            cursors: std::collections::HashMap::new(),
        }
    }

    /// Adds `speaker`'s decoded `samples`, received at `now`.
    pub fn add(&mut self, speaker: &str, samples: &[i16], now: Instant) {
        let arrived = (now.duration_since(self.start).as_secs_f64() * f64::from(RATE)) as usize;
        let cursor = self.cursors.entry(speaker.to_owned()).or_insert(arrived);
        if cursor.abs_diff(arrived) > RESYNC {
            *cursor = arrived;
        }
        let at = *cursor;
        if self.mix.len() < at + samples.len() {
            self.mix.resize(at + samples.len(), 0);
        }
        for (slot, s) in self.mix[at..].iter_mut().zip(samples) {
            *slot += i32::from(*s);
        }
        *cursor += samples.len();
    }

    /// Writes the mix as a 48 kHz 16-bit mono WAV file.
    pub fn write(&self, path: &Path, until: Instant) -> anyhow::Result<()> {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let length = (until.duration_since(self.start).as_secs_f64() * f64::from(RATE)) as usize;
        for i in 0..length.max(self.mix.len()) {
            let v = self.mix.get(i).copied().unwrap_or(0);
            writer.write_sample(v.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16)?;
        }
        writer.finalize()?;
        Ok(())
    }
}
