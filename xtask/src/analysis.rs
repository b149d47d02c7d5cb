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

pub struct Alignment {
    /// Normalized cross-correlation of the speech region at the best lag.
    pub correlation: f64,
    pub latency_ms: f64,
}

/// The region of `x` between its first and last sample louder than -30 dBFS.
fn active_region(x: &[f64]) -> Option<(usize, usize)> {
    let threshold = 32768.0 * 0.03;
    let first = x.iter().position(|s| s.abs() > threshold)?;
    let last = x.iter().rposition(|s| s.abs() > threshold)?;
    Some((first, last + 1))
}

/// NCC of `a[start..end]` against `b` shifted by `lag` (b index = a index + lag).
fn ncc(a: &[f64], b: &[f64], start: usize, end: usize, lag: i64) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (i, &x) in a.iter().enumerate().take(end).skip(start) {
        let j = i as i64 + lag;
        let y = if j >= 0 {
            b.get(j as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    if aa == 0.0 || bb == 0.0 {
        0.0
    } else {
        ab / (aa * bb).sqrt()
    }
}

fn decimate(x: &[f64], factor: usize) -> Vec<f64> {
    x.chunks(factor)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect()
}

/// Finds where the speaker's input reappears in the listener's output. `clock_offset_s` is
/// when the listener's audio clock started relative to the speaker's; latencies from 0 to
/// 1 s are searched.
pub fn align(speaker: &[f64], listener: &[f64], clock_offset_s: f64) -> Result<Alignment> {
    let Some((start, end)) = active_region(speaker) else {
        bail!("the speaker input is silent");
    };
    let lag_of = |latency_s: f64| ((latency_s - clock_offset_s) * RATE).round() as i64;
    let (lo, hi) = (lag_of(0.0), lag_of(1.0));
    const F: usize = 8;
    let (sd, ld) = (decimate(speaker, F), decimate(listener, F));
    let mut best = (f64::MIN, lo);
    let mut lag = lo.div_euclid(F as i64);
    while lag <= hi.div_euclid(F as i64) + 1 {
        let c = ncc(&sd, &ld, start / F, end / F, lag);
        if c > best.0 {
            best = (c, lag * F as i64);
        }
        lag += 1;
    }
    let mut fine = (f64::MIN, best.1);
    for l in best.1 - 2 * F as i64..=best.1 + 2 * F as i64 {
        let c = ncc(speaker, listener, start, end, l);
        if c > fine.0 {
            fine = (c, l);
        }
    }
    Ok(Alignment {
        correlation: fine.0,
        latency_ms: (fine.1 as f64 / RATE + clock_offset_s) * 1000.0,
    })
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

    #[test]
    fn finds_a_known_delay_and_correlation() {
        // A chirp-like signal, delayed by 1234 samples and scaled.
        let a: Vec<f64> = (0..48_000)
            .map(|i| {
                if (10_000..30_000).contains(&i) {
                    8000.0 * ((i * i) as f64 * 1e-6).sin()
                } else {
                    0.0
                }
            })
            .collect();
        let mut b = vec![0.0; 1234];
        b.extend(a.iter().map(|x| 0.5 * x));
        let r = align(&a, &b, 0.0).unwrap();
        assert!(
            (r.latency_ms - 1234.0 / 48.0).abs() < 0.05,
            "{}",
            r.latency_ms
        );
        assert!(r.correlation > 0.999);
        // The same with the listener's clock starting 10 ms later.
        let r = align(&a, &b[480..], 0.010).unwrap();
        assert!(
            (r.latency_ms - 1234.0 / 48.0).abs() < 0.05,
            "{}",
            r.latency_ms
        );
        // Unrelated output does not match.
        let noise: Vec<f64> = (0..48_000)
            .map(|i| 8000.0 * ((i * 7919 % 104_729) as f64).sin())
            .collect();
        assert!(align(&a, &noise, 0.0).unwrap().correlation < 0.3);
        assert!(align(&[0.0; 100], &b, 0.0).is_err());
    }
}
