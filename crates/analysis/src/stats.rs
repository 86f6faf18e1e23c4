//! Mann-Whitney U on two samples, as Kayenta's judge uses it: the U statistic, a two-sided
//! p-value from the normal approximation (with the tie correction), and the Hodges-Lehmann
//! estimate of the shift between them with its confidence interval.

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample (the canary).
    pub u: f64,
    pub p_value: f64,
    /// Median of all pairwise differences canary − baseline.
    pub shift: f64,
    pub lower: f64,
    pub upper: f64,
}

/// Ranks with ties sharing their average rank; returns the rank sum of the first `n1` values
/// and Σ(t³ − t) over tie groups.
fn rank_sum(x: &[f64], y: &[f64]) -> (f64, f64) {
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|v| (*v, true))
        .chain(y.iter().map(|v| (*v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mut sum, mut ties, mut i) = (0.0, 0.0, 0);
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        let t = (j - i + 1) as f64;
        ties += t * t * t - t;
        sum += all[i..=j].iter().filter(|(_, first)| *first).count() as f64 * rank;
        i = j + 1;
    }
    (sum, ties)
}

/// Standard normal CDF via erfc (W. J. Cody's rational approximation is overkill here;
/// Abramowitz-Stegun 7.1.26 is within 1.5e-7).
pub fn normal_cdf(z: f64) -> f64 {
    let x = z.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * x);
    let poly = t
        * (0.254_829_592
            + t * (-0.284_496_736
                + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erfc = poly * (-x * x).exp();
    if z >= 0.0 {
        1.0 - erfc / 2.0
    } else {
        erfc / 2.0
    }
}

/// Inverse of the standard normal CDF (Acklam's algorithm, relative error < 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

/// The test of `x` (canary) against `y` (baseline) at `confidence` (e.g. 0.95). `None` when
/// either sample is empty. NaN samples are dropped first.
pub fn mann_whitney(x: &[f64], y: &[f64], confidence: f64) -> Option<MannWhitney> {
    let x: Vec<f64> = x.iter().copied().filter(|v| !v.is_nan()).collect();
    let y: Vec<f64> = y.iter().copied().filter(|v| !v.is_nan()).collect();
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    let n = n1 + n2;
    let (r1, ties) = rank_sum(&x, &y);
    let u = r1 - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let var = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)).max(1.0));
    let p_value = if var <= 0.0 {
        1.0
    } else {
        let z = (u - mean).abs() / var.sqrt();
        (2.0 * (1.0 - normal_cdf(z))).min(1.0)
    };
    let mut diffs: Vec<f64> = x
        .iter()
        .flat_map(|a| y.iter().map(move |b| a - b))
        .collect();
    diffs.sort_by(|a, b| a.total_cmp(b));
    let m = diffs.len();
    let shift = if m % 2 == 1 {
        diffs[m / 2]
    } else {
        (diffs[m / 2 - 1] + diffs[m / 2]) / 2.0
    };
    // The interval's ends are order statistics of the differences: k = ⌊n1·n2/2 − z·σ⌋.
    let z = normal_quantile(1.0 - (1.0 - confidence) / 2.0);
    let sigma = (n1 * n2 * (n + 1.0) / 12.0).sqrt();
    let k = ((mean - z * sigma).floor() as i64).clamp(1, m as i64) as usize;
    let lower = diffs[k - 1];
    let upper = diffs[m - k];
    Some(MannWhitney {
        u,
        p_value,
        shift,
        lower,
        upper,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_helpers_match_tables() {
        assert!((normal_cdf(1.959964) - 0.975).abs() < 1e-6);
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-9);
    }

    #[test]
    fn u_statistic_and_p_value_for_separated_samples() {
        let canary = [10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0];
        let baseline = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let r = mann_whitney(&canary, &baseline, 0.95).expect("samples");
        assert_eq!(r.u, 64.0);
        // z = (64 − 32) / √(8·8·17/12) = 3.3606, p = 2·(1 − Φ(z)) = 0.000778
        assert!((r.p_value - 0.000_778).abs() < 2e-6, "{}", r.p_value);
        assert_eq!(r.shift, 9.0);
        assert!(r.lower > 0.0 && r.upper >= r.lower);
    }

    #[test]
    fn identical_samples_have_an_interval_around_zero() {
        let a = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let r = mann_whitney(&a, &a, 0.95).expect("samples");
        assert!(r.p_value > 0.9);
        assert!(r.lower <= 0.0 && r.upper >= 0.0);
        assert!(mann_whitney(&[], &a, 0.95).is_none());
    }
}
