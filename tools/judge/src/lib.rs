//! # stagebox-judge — how well an output follows an input, and how late it is
//!
//! No dependencies, so `cargo xtask` can use it before any system library is installed.
//!
//! Speech comes in talk spurts, and a receiver may set up each spurt with a slightly different
//! playout delay (its jitter buffer restarts between spurts). So the output is aligned piece
//! by piece: a global lag is found first, then each half-second window of the input's active
//! region is matched at its own best lag near the global one, and the window correlations are
//! averaged, weighted by the input's energy.

/// Window of the piecewise alignment (0.5 s at 48 kHz).
const WINDOW: usize = 24_000;
/// How far a window's lag may stray from the global one (60 ms).
const LOCAL_SEARCH: i64 = 2_880;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Alignment {
    /// Energy-weighted mean of the windows' normalized cross-correlations.
    pub correlation: f64,
    /// Median of the windows' lags, in samples (output index − input index).
    pub lag_samples: i64,
    /// Windows judged.
    pub windows: usize,
}

/// Normalized cross-correlation of `x[range]` against `y` shifted by `lag`.
fn ncc(x: &[f64], y: &[f64], range: std::ops::Range<usize>, lag: i64) -> f64 {
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for i in range {
        let a = x[i];
        let j = i as i64 + lag;
        let b = if j >= 0 {
            y.get(j as usize).copied().unwrap_or(0.0)
        } else {
            0.0
        };
        xy += a * b;
        xx += a * a;
        yy += b * b;
    }
    if xx == 0.0 || yy == 0.0 {
        0.0
    } else {
        xy / (xx * yy).sqrt()
    }
}

fn decimate(x: &[f64], factor: usize) -> Vec<f64> {
    x.chunks(factor)
        .map(|c| c.iter().sum::<f64>() / c.len() as f64)
        .collect()
}

fn best_lag(
    x: &[f64],
    y: &[f64],
    range: std::ops::Range<usize>,
    lags: std::ops::RangeInclusive<i64>,
) -> (f64, i64) {
    lags.map(|l| (ncc(x, y, range.clone(), l), l))
        .fold((f64::MIN, 0), |a, b| if b.0 > a.0 { b } else { a })
}

/// Aligns `output` to `input`, searching output-minus-input lags in `lags` (samples).
/// `None` if the input is silent.
pub fn align(
    input: &[f64],
    output: &[f64],
    lags: std::ops::RangeInclusive<i64>,
) -> Option<Alignment> {
    let threshold = 32768.0 * 0.03;
    let first = input.iter().position(|s| s.abs() > threshold)?;
    let last = input.iter().rposition(|s| s.abs() > threshold)? + 1;
    // Global lag: coarse on 6 kHz envelopes of the whole active region, then sample-exact.
    const F: usize = 8;
    let (xd, yd) = (decimate(input, F), decimate(output, F));
    let coarse = best_lag(
        &xd,
        &yd,
        first / F..last / F,
        lags.start().div_euclid(F as i64)..=lags.end().div_euclid(F as i64) + 1,
    )
    .1 * F as i64;
    let global = best_lag(
        input,
        output,
        first..last,
        coarse - 2 * F as i64..=coarse + 2 * F as i64,
    )
    .1;

    let mut weighted = 0.0;
    let mut energy_sum = 0.0;
    let mut window_lags = Vec::new();
    let mut start = first;
    while start + WINDOW / 4 <= last {
        let end = (start + WINDOW).min(last);
        let energy: f64 = input[start..end].iter().map(|s| s * s).sum();
        if energy > (threshold * threshold) * (end - start) as f64 * 0.01 {
            let coarse_local = best_lag(
                &xd,
                &yd,
                start / F..end / F,
                (global - LOCAL_SEARCH) / F as i64..=(global + LOCAL_SEARCH) / F as i64,
            )
            .1 * F as i64;
            let (c, lag) = best_lag(
                input,
                output,
                start..end,
                coarse_local - 2 * F as i64..=coarse_local + 2 * F as i64,
            );
            weighted += c * energy;
            energy_sum += energy;
            window_lags.push(lag);
        }
        start = end;
    }
    if window_lags.is_empty() {
        return None;
    }
    window_lags.sort_unstable();
    Some(Alignment {
        correlation: weighted / energy_sum,
        lag_samples: window_lags[window_lags.len() / 2],
        windows: window_lags.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chirp(n: usize) -> Vec<f64> {
        (0..n)
            .map(|i| 8000.0 * ((i * i) as f64 * 2e-7).sin())
            .collect()
    }

    #[test]
    fn finds_a_constant_delay() {
        let x = chirp(96_000);
        let mut y = vec![0.0; 1234];
        y.extend(x.iter().map(|v| v * 0.5));
        let a = align(&x, &y, 0..=48_000).unwrap();
        assert_eq!(a.lag_samples, 1234);
        assert!(a.correlation > 0.999);
    }

    #[test]
    fn follows_a_delay_that_changes_between_spurts() {
        // Two spurts with a pause; the second plays one 20 ms frame later.
        let spurt = chirp(48_000);
        let mut x = spurt.clone();
        x.extend(vec![0.0; 24_000]);
        x.extend(spurt.iter());
        let mut y = vec![0.0; 1742];
        y.extend(spurt.iter());
        y.extend(vec![0.0; 24_000 + 960]);
        y.extend(spurt.iter());
        let a = align(&x, &y, 0..=24_000).unwrap();
        assert!(a.correlation > 0.99, "{a:?}");
        assert!([1742, 2702].contains(&a.lag_samples), "{a:?}");
    }

    #[test]
    fn unrelated_output_does_not_match() {
        let x = chirp(96_000);
        let y: Vec<f64> = (0..96_000)
            .map(|i| 8000.0 * ((i * 7919 % 104_729) as f64).sin())
            .collect();
        assert!(align(&x, &y, 0..=4800).unwrap().correlation < 0.3);
        assert!(align(&[0.0; 100], &y, 0..=10).is_none());
    }
}
