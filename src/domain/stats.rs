//! The statistics of a report, from counts per score.
//!
//! - NPS = 100·(P − D)/n with an adjusted-Wald 95 % interval: one pseudo-answer is added to
//!   each of promoters, passives and detractors (p̃ = (P+1)/(n+3), d̃ = (D+1)/(n+3)), and the
//!   interval is `100·(p̃ − d̃) ± 1.96·100·sqrt((p̃ + d̃ − (p̃ − d̃)²)/(n+3))`, widened to contain
//!   the NPS itself and clamped to [−100, 100]. At large n it equals the plain (Wald)
//!   interval; at small n it stays honestly wide (one answer never gives a zero-width
//!   interval such as [−100, −100]).
//! - CSAT = percentage of 4–5 answers, with a Wilson 95 % interval (good for small n).
//! - With no answers every ratio is `null` (there is nothing to divide), never 0.

pub const Z95: f64 = 1.959963984540054;

/// Counts per score, index = score (0–10; CSAT uses 1–5).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts(pub [i64; 11]);

impl Counts {
    pub fn add(&mut self, score: i32, n: i64) {
        if (0..=10).contains(&score) {
            self.0[score as usize] += n;
        }
    }

    pub fn merge(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a += b;
        }
    }

    pub fn total(&self) -> i64 {
        self.0.iter().sum()
    }

    fn range(&self, lo: usize, hi: usize) -> i64 {
        self.0[lo..=hi].iter().sum()
    }

    pub fn promoters(&self) -> i64 {
        self.range(9, 10)
    }
    pub fn passives(&self) -> i64 {
        self.range(7, 8)
    }
    pub fn detractors(&self) -> i64 {
        self.range(0, 6)
    }
    pub fn satisfied(&self) -> i64 {
        self.range(4, 5)
    }
    pub fn neutral(&self) -> i64 {
        self.0[3]
    }
    pub fn unsatisfied(&self) -> i64 {
        self.range(1, 2)
    }

    pub fn average(&self) -> Option<f64> {
        let n = self.total();
        (n > 0).then(|| {
            self.0
                .iter()
                .enumerate()
                .map(|(s, c)| s as f64 * *c as f64)
                .sum::<f64>()
                / n as f64
        })
    }

    /// NPS and its 95 % interval.
    pub fn nps(&self) -> Option<(f64, [f64; 2])> {
        let n = self.total();
        if n == 0 {
            return None;
        }
        let nps = 100.0 * (self.promoters() - self.detractors()) as f64 / n as f64;
        let m = (n + 3) as f64;
        let p = (self.promoters() + 1) as f64 / m;
        let d = (self.detractors() + 1) as f64 / m;
        let center = 100.0 * (p - d);
        let variance = (p + d - (p - d).powi(2)).max(0.0);
        let moe = 100.0 * Z95 * (variance / m).sqrt();
        let lo = (center - moe).min(nps).max(-100.0);
        let hi = (center + moe).max(nps).min(100.0);
        Some((nps, [lo, hi]))
    }

    /// CSAT (% of 4–5) and its Wilson 95 % interval.
    pub fn csat(&self) -> Option<(f64, [f64; 2])> {
        let n = self.total();
        if n == 0 {
            return None;
        }
        let (lo, hi) = wilson(self.satisfied(), n);
        Some((
            100.0 * self.satisfied() as f64 / n as f64,
            [100.0 * lo, 100.0 * hi],
        ))
    }
}

/// The Wilson score interval of `k` successes in `n` trials at 95 %.
pub fn wilson(k: i64, n: i64) -> (f64, f64) {
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = Z95 * Z95;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    ((center - half).max(0.0), (center + half).min(1.0))
}

/// Rounds to two decimals for display.
pub fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(i32, i64)]) -> Counts {
        let mut c = Counts::default();
        for (s, n) in pairs {
            c.add(*s, *n);
        }
        c
    }

    #[test]
    fn the_worked_example_from_the_research() {
        // n = 200, 50 % promoters, 20 % detractors: NPS +30; the plain interval is ±10.8,
        // the adjusted one (n + 3 = 203, p̃ = 101/203, d̃ = 41/203) [18.79, 40.32].
        let c = counts(&[(10, 100), (8, 60), (3, 40)]);
        let (nps, [lo, hi]) = c.nps().unwrap();
        assert!((nps - 30.0).abs() < 1e-9);
        assert!((lo - 18.79).abs() < 0.01, "{lo}");
        assert!((hi - 40.32).abs() < 0.01, "{hi}");
    }

    #[test]
    fn small_samples_get_wide_intervals_that_contain_the_nps() {
        // One detractor: NPS −100, never the zero-width [−100, −100].
        let (nps, [lo, hi]) = counts(&[(0, 1)]).nps().unwrap();
        assert_eq!((nps, lo), (-100.0, -100.0));
        assert!(hi > 50.0, "{hi}");
        let (nps, [lo, hi]) = counts(&[(10, 3)]).nps().unwrap();
        assert_eq!((nps, hi), (100.0, 100.0));
        assert!(lo < 0.0, "{lo}");
        let (_, [lo, hi]) = counts(&[(10, 1), (0, 1)]).nps().unwrap();
        assert!(
            (lo + 78.40).abs() < 0.01 && (hi - 78.40).abs() < 0.01,
            "{lo} {hi}"
        );
    }

    #[test]
    fn csat_uses_wilson() {
        // 8 of 10 satisfied: 80 %, Wilson [49.02, 94.33].
        let (csat, [lo, hi]) = counts(&[(5, 5), (4, 3), (2, 2)]).csat().unwrap();
        assert!((csat - 80.0).abs() < 1e-9);
        assert!((lo - 49.02).abs() < 0.01, "{lo}");
        assert!((hi - 94.33).abs() < 0.01, "{hi}");
    }

    #[test]
    fn nothing_to_divide_is_null() {
        let c = Counts::default();
        assert!(c.nps().is_none() && c.csat().is_none() && c.average().is_none());
    }
}
