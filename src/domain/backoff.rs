//! Retry delays for the work queues (email, webhooks).

use chrono::TimeDelta;

/// Exponential backoff: base × 2^(attempt−1), capped at one hour, with ±20 % jitter.
pub fn backoff(base_seconds: u64, attempt: i32) -> TimeDelta {
    if base_seconds == 0 {
        return TimeDelta::zero();
    }
    let exp = (attempt.max(1) - 1).min(16) as u32;
    let secs = (base_seconds.saturating_mul(1u64 << exp)).min(3600) as f64;
    let jitter = 0.8 + rand::random::<f64>() * 0.4;
    TimeDelta::milliseconds((secs * jitter * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::backoff;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let s = |a| backoff(30, a).num_seconds();
        assert!((24..=36).contains(&s(1)));
        assert!((48..=72).contains(&s(2)));
        assert!((96..=144).contains(&s(3)));
        assert!(s(20) <= 3600 * 6 / 5);
        assert_eq!(backoff(0, 5).num_seconds(), 0);
    }
}
