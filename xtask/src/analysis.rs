//! Judging the demo's audio and wire: how well the listener's output matches the speaker's
//! input and how late it is, and what tshark says of the RTP streams.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

pub const RATE: f64 = 48_000.0;

pub fn read_wav(path: &Path) -> Result<Vec<f64>> {
    let mut r = hound::WavReader::open(path).with_context(|| format!("{}", path.display()))?;
    let channels = usize::from(r.spec().channels.max(1));
    let samples: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>()?;
    Ok(samples
        .chunks_exact(channels)
        .map(|c| c.iter().map(|&s| f64::from(s)).sum::<f64>() / channels as f64)
        .collect())
}

/// The samples of a 16-bit PCM WAV that is still being written (its header does not give the
/// final length yet): everything after the `data` chunk's header, channels averaged.
pub fn read_growing_wav(path: &Path) -> Result<Vec<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}", path.display()))?;
    let (mut at, mut channels) = (12usize, 1usize);
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        if id == b"fmt " && at + 12 <= bytes.len() {
            channels = usize::from(u16::from_le_bytes([bytes[at + 10], bytes[at + 11]]).max(1));
        }
        if id == b"data" {
            let data = &bytes[at + 8..];
            return Ok(data
                .chunks_exact(2 * channels)
                .map(|frame| {
                    frame
                        .chunks_exact(2)
                        .map(|s| f64::from(i16::from_le_bytes([s[0], s[1]])))
                        .sum::<f64>()
                        / channels as f64
                })
                .collect());
        }
        at += 8 + size + size % 2;
    }
    bail!("{}: no data chunk yet", path.display())
}

pub struct Alignment {
    /// Piecewise-aligned normalized cross-correlation (see `stagebox-judge`).
    pub correlation: f64,
    pub latency_ms: f64,
    /// Output sample `i + lag` answers input sample `i`.
    pub lag_samples: i64,
}

/// Finds where the speaker's input reappears in the listener's output. `clock_offset_s` is
/// when the listener's first output sample left for the loudspeaker relative to when the
/// speaker's first input sample reached the microphone; latencies from 0 to 1 s are
/// searched.
pub fn align(speaker: &[f64], listener: &[f64], clock_offset_s: f64) -> Result<Alignment> {
    let lag_of = |latency_s: f64| ((latency_s - clock_offset_s) * RATE).round() as i64;
    let a = stagebox_judge::align(speaker, listener, lag_of(0.0)..=lag_of(1.0))
        .context("the speaker input is silent")?;
    Ok(Alignment {
        correlation: a.correlation,
        latency_ms: (a.lag_samples as f64 / RATE + clock_offset_s) * 1000.0,
        lag_samples: a.lag_samples,
    })
}

/// Index of the first sample louder than −40 dBFS.
pub fn first_sound(samples: &[f64]) -> Option<usize> {
    samples.iter().position(|s| s.abs() > 328.0)
}

/// `tshark -z rtp,streams` over a capture, decoding `media_port` as RTP.
pub fn rtp_streams(pcap: &Path, media_port: u16) -> Result<Value> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-q",
            "-d",
            &format!("udp.port=={media_port},rtp"),
            "-z",
            "rtp,streams",
        ])
        .output()
        .context("running tshark")?;
    if !out.status.success() {
        bail!("tshark: {}", String::from_utf8_lossy(&out.stderr));
    }
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    let streams = parse_rows(&table);
    Ok(json!({ "table": table, "streams": streams }))
}

/// The stream rows of a `-z rtp,streams` table.
fn parse_rows(table: &str) -> Vec<Value> {
    let mut streams = Vec::new();
    for line in table.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Rows: start end src_ip src_port dst_ip dst_port ssrc payload pkts lost (pct) …
        let Some(ssrc_at) = cols.iter().position(|c| c.starts_with("0x")) else {
            continue;
        };
        let get = |i: usize| cols.get(i).copied().unwrap_or("");
        // The payload column may hold several names ("RTPType-120, RTPType-121"), so anchor
        // on the loss percentage "(x%)" that follows the packet and loss counts.
        let Some(pct) = cols
            .iter()
            .position(|c| c.starts_with('(') && c.ends_with("%)"))
        else {
            continue;
        };
        if pct < ssrc_at + 3 {
            continue;
        }
        streams.push(json!({
            "src_port": get(ssrc_at.wrapping_sub(3)).parse::<u16>().ok(),
            "dst_port": get(ssrc_at.wrapping_sub(1)).parse::<u16>().ok(),
            "ssrc": get(ssrc_at),
            "payload": cols[ssrc_at + 1..pct - 2].join(" "),
            "packets": get(pct - 2).parse::<u64>().ok(),
            "lost": get(pct - 1).parse::<i64>().ok(),
            "problem": line.trim_end().ends_with('X'),
        }));
    }
    streams
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tshark_rows_with_several_payload_types() {
        let row = "  0.000000  15.250176  127.0.0.1 43500  127.0.0.1 52907 0xEC3BFA1D RTPType-120, RTPType-121   644     0 (0.0%)  8.183  22.261  1051.419 -1.000 0.000 0.000 ";
        let bad = "  0.1 15.2 127.0.0.1 60032 127.0.0.1 39589 0xD20C354A RTPType-120 644 -639 (-12780.0%) 250.0 293.6 5000.0 -1.0 0.0 0.0 X";
        let cols: Vec<Vec<&str>> = [row, bad]
            .iter()
            .map(|l| l.split_whitespace().collect())
            .collect();
        assert!(cols[0].contains(&"0xEC3BFA1D"));
        let parsed = parse_rows(&format!("{row}\n{bad}\n"));
        assert_eq!(parsed[0]["payload"], "RTPType-120, RTPType-121");
        assert_eq!(parsed[0]["packets"], 644);
        assert_eq!(parsed[0]["lost"], 0);
        assert_eq!(parsed[0]["problem"], false);
        assert_eq!(parsed[1]["lost"], -639);
        assert_eq!(parsed[1]["problem"], true);
    }
}
