//! The soundboard's clips: short sounds a moderator uploads (WAV, or Ogg/Opus) and plays into
//! a stage. An upload is checked (size, length, format), decoded to 48 kHz mono (resampled
//! when the WAV has another rate), and encoded once into 20 ms Opus frames — what the stage
//! carries, so playing a clip costs the server no more than forwarding a speaker. The upload
//! itself is kept in the clips directory with an index of names, and decoded again at start.
//!
//! Names are what a moderator typed: untrusted text, shown as text only; files are named by
//! the server (`<id>.wav`, `<id>.opus`).

use std::collections::BTreeMap;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The largest upload taken.
pub const MAX_CLIP_BYTES: usize = 4 << 20;
/// The longest clip.
pub const MAX_CLIP_SECONDS: usize = 30;
/// Clips kept at most.
pub const MAX_CLIPS: usize = 32;
/// The longest clip name, in characters.
pub const MAX_CLIP_NAME: usize = 64;

const RATE: usize = 48_000;
/// One 20 ms frame at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;
/// Clips are music as often as voice: Opus's general audio mode, at a rate that keeps music
/// clean in mono.
const CLIP_BITRATE: i32 = 48_000;

#[derive(Debug, Error)]
pub enum ClipError {
    #[error("a clip is at most {} MiB", MAX_CLIP_BYTES >> 20)]
    TooBig,
    #[error("a clip is at most {MAX_CLIP_SECONDS} s long")]
    TooLong,
    #[error("not a WAV or Ogg/Opus file: {0}")]
    Format(String),
    #[error("the file holds no sound")]
    Empty,
    #[error("a clip's name is 1 to {MAX_CLIP_NAME} characters, without control characters")]
    BadName,
    #[error("the soundboard holds at most {MAX_CLIPS} clips: remove one first")]
    Full,
    #[error("no such clip")]
    NoSuchClip,
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("opus: {0}")]
    Opus(String),
}

fn opus(e: audiopus::Error) -> ClipError {
    ClipError::Opus(e.to_string())
}

/// A clip ready to play: its Opus frames, 20 ms each.
#[derive(Debug, Clone)]
pub struct Clip {
    pub name: String,
    pub frames: Arc<[Arc<[u8]>]>,
}

impl Clip {
    pub fn seconds(&self) -> f64 {
        self.frames.len() as f64 * FRAME_SAMPLES as f64 / RATE as f64
    }
}

/// What the console lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClipInfo {
    pub id: String,
    pub name: String,
    pub seconds: f64,
}

/// The two formats taken, told by their first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Wav,
    OggOpus,
}

impl Format {
    fn of(bytes: &[u8]) -> Result<Format, ClipError> {
        match bytes.get(..4) {
            Some(b"RIFF") => Ok(Format::Wav),
            Some(b"OggS") => Ok(Format::OggOpus),
            _ => Err(ClipError::Format(
                "it starts with neither RIFF nor OggS".into(),
            )),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Wav => "wav",
            Format::OggOpus => "opus",
        }
    }
}

/// Checks a name a moderator gave.
pub fn valid_name(name: &str) -> bool {
    let n = name.trim().chars().count();
    (1..=MAX_CLIP_NAME).contains(&n) && !name.chars().any(char::is_control)
}

/// Decodes and encodes an upload: the clip's frames.
pub fn prepare(name: &str, bytes: &[u8]) -> Result<Clip, ClipError> {
    if bytes.len() > MAX_CLIP_BYTES {
        return Err(ClipError::TooBig);
    }
    if !valid_name(name) {
        return Err(ClipError::BadName);
    }
    let pcm = match Format::of(bytes)? {
        Format::Wav => decode_wav(bytes)?,
        Format::OggOpus => decode_ogg_opus(bytes)?,
    };
    if pcm.iter().all(|s| s.abs() < 1e-4) {
        return Err(ClipError::Empty);
    }
    Ok(Clip {
        name: name.trim().to_string(),
        frames: encode(&pcm)?.into(),
    })
}

fn decode_wav(bytes: &[u8]) -> Result<Vec<f32>, ClipError> {
    let format = |e: hound::Error| ClipError::Format(e.to_string());
    let mut reader = hound::WavReader::new(Cursor::new(bytes)).map_err(format)?;
    let spec = reader.spec();
    let rate = spec.sample_rate as usize;
    let channels = usize::from(spec.channels);
    if !(8_000..=192_000).contains(&rate) || channels == 0 || channels > 8 {
        return Err(ClipError::Format(format!(
            "{rate} Hz, {channels} channels: take 8–192 kHz, 1–8 channels"
        )));
    }
    if reader.duration() as usize > MAX_CLIP_SECONDS * rate {
        return Err(ClipError::TooLong);
    }
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => reader
            .samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(format)?,
        (hound::SampleFormat::Int, bits @ 8..=32) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            reader
                .samples::<i32>()
                .map(|s| s.map(|v| v as f32 * scale))
                .collect::<Result<_, _>>()
                .map_err(format)?
        }
        (f, bits) => {
            return Err(ClipError::Format(format!("{bits}-bit {f:?} samples")));
        }
    };
    let mono: Vec<f32> = interleaved
        .chunks(channels)
        .map(|c| c.iter().sum::<f32>() / channels as f32)
        .collect();
    if rate == RATE {
        Ok(mono)
    } else {
        resample(&mono, rate)
    }
}

/// Band-limited resampling to 48 kHz (rubato's FFT resampler: the ratio is fixed).
fn resample(input: &[f32], rate: usize) -> Result<Vec<f32>, ClipError> {
    use rubato::Resampler;
    let fail = |e: &dyn std::fmt::Display| ClipError::Format(format!("resampling: {e}"));
    let mut r = rubato::FftFixedInOut::<f32>::new(rate, RATE, 1024, 1).map_err(|e| fail(&e))?;
    let delay = r.output_delay();
    let expected = input.len() * RATE / rate;
    let mut out = Vec::with_capacity(expected + delay + 2048);
    let mut pos = 0;
    // Past the end, zeros push the resampler's delay out.
    while out.len() < expected + delay {
        let need = r.input_frames_next();
        let end = (pos + need).min(input.len());
        let mut chunk = input.get(pos..end).unwrap_or_default().to_vec();
        chunk.resize(need, 0.0);
        pos = end;
        let produced = r.process(&[chunk], None).map_err(|e| fail(&e))?;
        out.extend_from_slice(produced.first().map_or(&[][..], |c| c.as_slice()));
    }
    Ok(out
        .get(delay..delay + expected)
        .unwrap_or_default()
        .to_vec())
}

fn decode_ogg_opus(bytes: &[u8]) -> Result<Vec<f32>, ClipError> {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let mut next = || {
        reader
            .read_packet()
            .map_err(|e| ClipError::Format(e.to_string()))
    };
    let head = next()?.ok_or_else(|| ClipError::Format("no Opus header".into()))?;
    if head.data.get(..8) != Some(b"OpusHead") || head.data.len() < 19 {
        return Err(ClipError::Format(
            "an Ogg file, but not Opus (no OpusHead)".into(),
        ));
    }
    let pre_skip = head
        .data
        .get(10..12)
        .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    let serial = head.stream_serial();
    // The comment header, then audio.
    let _tags = next()?;
    // Stereo or more is mixed down by libopus's decoder itself.
    let mut decoder =
        audiopus::coder::Decoder::new(audiopus::SampleRate::Hz48000, audiopus::Channels::Mono)
            .map_err(opus)?;
    let mut pcm = Vec::new();
    // The longest Opus packet: 120 ms.
    let mut buf = [0f32; 5760];
    while let Some(packet) = next()? {
        if packet.stream_serial() != serial || packet.data.is_empty() {
            continue;
        }
        let n = decoder
            .decode_float(Some(&packet.data[..]), &mut buf[..], false)
            .map_err(opus)?;
        pcm.extend_from_slice(buf.get(..n).unwrap_or_default());
        if pcm.len() > (MAX_CLIP_SECONDS * RATE) + pre_skip {
            return Err(ClipError::TooLong);
        }
    }
    Ok(pcm
        .get(pre_skip.min(pcm.len())..)
        .unwrap_or_default()
        .to_vec())
}

/// 20 ms Opus frames of `pcm` (48 kHz mono), the last one padded with silence.
fn encode(pcm: &[f32]) -> Result<Vec<Arc<[u8]>>, ClipError> {
    let mut encoder = audiopus::coder::Encoder::new(
        audiopus::SampleRate::Hz48000,
        audiopus::Channels::Mono,
        audiopus::Application::Audio,
    )
    .map_err(opus)?;
    encoder
        .set_bitrate(audiopus::Bitrate::BitsPerSecond(CLIP_BITRATE))
        .map_err(opus)?;
    let mut frames = Vec::with_capacity(pcm.len() / FRAME_SAMPLES + 1);
    let mut out = [0u8; 1500];
    for chunk in pcm.chunks(FRAME_SAMPLES) {
        let mut frame = [0f32; FRAME_SAMPLES];
        for (f, s) in frame.iter_mut().zip(chunk) {
            *f = s.clamp(-1.0, 1.0);
        }
        let n = encoder.encode_float(&frame, &mut out).map_err(opus)?;
        frames.push(Arc::from(out.get(..n).unwrap_or_default()));
    }
    Ok(frames)
}

/// The clips directory's index: id → name and the upload's format.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Index {
    clips: BTreeMap<String, IndexEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    name: String,
    file: String,
}

/// The clips on this server: in memory, ready to play, and on disk.
#[derive(Debug, Default)]
pub struct ClipStore {
    dir: PathBuf,
    clips: BTreeMap<String, Clip>,
    index: Index,
}

impl ClipStore {
    /// No clips yet, kept in `dir` from now on.
    pub fn empty(dir: &Path) -> ClipStore {
        ClipStore {
            dir: dir.to_path_buf(),
            ..ClipStore::default()
        }
    }

    /// The clips in `dir` (none if it does not exist yet). A file that no longer decodes is
    /// left out, and said in the log.
    pub fn load(dir: &Path) -> Result<ClipStore, ClipError> {
        let mut store = ClipStore::empty(dir);
        let index = match std::fs::read_to_string(dir.join("index.json")) {
            Ok(t) => serde_json::from_str::<Index>(&t)
                .map_err(|e| ClipError::Format(format!("{}: {e}", dir.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Index::default(),
            Err(e) => return Err(e.into()),
        };
        for (id, entry) in index.clips {
            let clip = std::fs::read(dir.join(&entry.file))
                .map_err(ClipError::from)
                .and_then(|bytes| prepare(&entry.name, &bytes));
            match clip {
                Ok(clip) => {
                    store.clips.insert(id.clone(), clip);
                    store.index.clips.insert(id, entry);
                }
                Err(e) => log::warn!("soundboard clip {}: {e}", entry.file),
            }
        }
        Ok(store)
    }

    pub fn list(&self) -> Vec<ClipInfo> {
        self.clips
            .iter()
            .map(|(id, c)| ClipInfo {
                id: id.clone(),
                name: c.name.clone(),
                seconds: (c.seconds() * 10.0).round() / 10.0,
            })
            .collect()
    }

    pub fn get(&self, id: &str) -> Option<&Clip> {
        self.clips.get(id)
    }

    /// Whether another clip fits.
    pub fn has_room(&self) -> bool {
        self.clips.len() < MAX_CLIPS
    }

    /// Keeps a prepared clip and its upload under `id` (fresh random hex).
    pub fn add(&mut self, id: &str, clip: Clip, upload: &[u8]) -> Result<ClipInfo, ClipError> {
        if !self.has_room() {
            return Err(ClipError::Full);
        }
        let file = format!("{id}.{}", Format::of(upload)?.extension());
        std::fs::create_dir_all(&self.dir)?;
        std::fs::write(self.dir.join(&file), upload)?;
        self.index.clips.insert(
            id.to_string(),
            IndexEntry {
                name: clip.name.clone(),
                file,
            },
        );
        self.save_index()?;
        let info = ClipInfo {
            id: id.to_string(),
            name: clip.name.clone(),
            seconds: (clip.seconds() * 10.0).round() / 10.0,
        };
        self.clips.insert(id.to_string(), clip);
        Ok(info)
    }

    pub fn remove(&mut self, id: &str) -> Result<(), ClipError> {
        let entry = self.index.clips.remove(id).ok_or(ClipError::NoSuchClip)?;
        self.clips.remove(id);
        self.save_index()?;
        let _ = std::fs::remove_file(self.dir.join(entry.file));
        Ok(())
    }

    fn save_index(&self) -> Result<(), ClipError> {
        let text = serde_json::to_string_pretty(&self.index)
            .map_err(|e| ClipError::Format(e.to_string()))?;
        let tmp = self.dir.join("index.json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(tmp, self.dir.join("index.json"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A WAV of a tone: `seconds` long at `rate`, `channels` channels, 16-bit.
    fn tone_wav(rate: u32, channels: u16, seconds: f32) -> Vec<u8> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut out = Cursor::new(Vec::new());
        let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
        for i in 0..(rate as f32 * seconds) as u32 {
            let v =
                (f32::sin(i as f32 * 440.0 * std::f32::consts::TAU / rate as f32) * 12000.0) as i16;
            for _ in 0..channels {
                w.write_sample(v).unwrap();
            }
        }
        w.finalize().unwrap();
        out.into_inner()
    }

    #[test]
    fn wavs_at_any_rate_become_20_ms_frames_of_the_same_length() {
        for (rate, channels) in [(48_000, 1), (44_100, 2), (16_000, 1)] {
            let clip = prepare("Applause", &tone_wav(rate, channels, 2.0)).unwrap();
            assert_eq!(clip.frames.len(), 100, "{rate} Hz: 2 s of 20 ms frames");
            assert!(clip.frames.iter().all(|f| !f.is_empty() && f.len() < 400));
            // What the stage carries decodes back to the tone.
            let mut d = audiopus::coder::Decoder::new(
                audiopus::SampleRate::Hz48000,
                audiopus::Channels::Mono,
            )
            .unwrap();
            let mut pcm = [0i16; FRAME_SAMPLES];
            let mut energy = 0f64;
            for f in clip.frames.iter().skip(10).take(50) {
                assert_eq!(
                    d.decode(Some(&f[..]), &mut pcm[..], false).unwrap(),
                    FRAME_SAMPLES
                );
                energy += pcm.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>();
            }
            let rms = (energy / (50.0 * FRAME_SAMPLES as f64)).sqrt();
            assert!((6000.0..11000.0).contains(&rms), "{rate} Hz: rms {rms}");
        }
    }

    /// An Ogg/Opus file as opusenc writes one: the two headers, then 20 ms packets of `pcm`.
    fn ogg_opus(pcm: &[f32], pre_skip: u16) -> Vec<u8> {
        let mut w = ogg::PacketWriter::new(Cursor::new(Vec::new()));
        let mut head = b"OpusHead\x01\x01".to_vec();
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&[0, 0, 0]);
        let end = ogg::PacketWriteEndInfo::EndPage;
        w.write_packet(head, 7, end, 0).unwrap();
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&4u32.to_le_bytes());
        tags.extend_from_slice(b"test");
        tags.extend_from_slice(&0u32.to_le_bytes());
        w.write_packet(tags, 7, ogg::PacketWriteEndInfo::EndPage, 0)
            .unwrap();
        let frames = encode(pcm).unwrap();
        let last = frames.len() - 1;
        for (i, f) in frames.into_iter().enumerate() {
            let info = if i == last {
                ogg::PacketWriteEndInfo::EndStream
            } else {
                ogg::PacketWriteEndInfo::NormalPacket
            };
            w.write_packet(f.to_vec(), 7, info, (i as u64 + 1) * 960)
                .unwrap();
        }
        w.into_inner().into_inner()
    }

    #[test]
    fn ogg_opus_is_decoded_without_its_pre_skip() {
        let pcm: Vec<f32> = (0..48_000)
            .map(|i| f32::sin(i as f32 * 440.0 * std::f32::consts::TAU / 48_000.0) * 0.4)
            .collect();
        let clip = prepare("Tone", &ogg_opus(&pcm, 312)).unwrap();
        // 50 frames went in; 312 samples of pre-skip come off, leaving 49.675 frames.
        assert_eq!(clip.frames.len(), 50);
        assert!(matches!(
            prepare("Tone", &ogg_opus(&pcm, 312)[..200]),
            Err(ClipError::Format(_) | ClipError::Empty)
        ));
    }

    #[test]
    fn bad_uploads_are_refused_with_a_reason() {
        assert!(matches!(
            prepare("x", b"MThd not audio"),
            Err(ClipError::Format(_))
        ));
        assert!(matches!(
            prepare("x", &tone_wav(8_000, 1, 31.0)),
            Err(ClipError::TooLong)
        ));
        assert!(matches!(
            prepare("x", &vec![0u8; MAX_CLIP_BYTES + 1]),
            Err(ClipError::TooBig)
        ));
        assert!(matches!(
            prepare("", &tone_wav(48_000, 1, 0.5)),
            Err(ClipError::BadName)
        ));
        assert!(matches!(
            prepare("a\nb", &tone_wav(48_000, 1, 0.5)),
            Err(ClipError::BadName)
        ));
        assert!(matches!(
            prepare("silence", &tone_wav(48_000, 1, 0.0)),
            Err(ClipError::Empty)
        ));
        let mut truncated = tone_wav(48_000, 1, 1.0);
        truncated.truncate(30);
        assert!(prepare("x", &truncated).is_err());
        assert!(matches!(
            prepare("x", b"OggS\x00\x02garbage"),
            Err(ClipError::Format(_))
        ));
    }

    #[test]
    fn clips_are_kept_across_restarts_and_removed() {
        let dir = std::env::temp_dir().join(format!("stagebox-clips-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut store = ClipStore::load(&dir).unwrap();
        let wav = tone_wav(48_000, 1, 1.0);
        let clip = prepare("<b>Jingle</b>", &wav).unwrap();
        let info = store.add("c0ffee", clip, &wav).unwrap();
        assert_eq!((info.name.as_str(), info.seconds), ("<b>Jingle</b>", 1.0));
        let again = ClipStore::load(&dir).unwrap();
        assert_eq!(again.list(), vec![info]);
        assert_eq!(again.get("c0ffee").unwrap().frames.len(), 50);
        let mut again = again;
        again.remove("c0ffee").unwrap();
        assert!(ClipStore::load(&dir).unwrap().list().is_empty());
        assert!(matches!(again.remove("c0ffee"), Err(ClipError::NoSuchClip)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
