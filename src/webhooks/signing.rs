//! The `Closeloop-Signature` header: `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
//!
//! The timestamp is part of the signed text, so a captured request cannot be replayed later
//! with a new timestamp; receivers reject timestamps older than [`TOLERANCE_SECS`].

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a receiver should accept a timestamp from its own clock: five minutes.
pub const TOLERANCE_SECS: i64 = 300;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The value of the `Closeloop-Signature` header for `body` sent at `timestamp`.
pub fn sign(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(digest))
}

/// Whether `header_value` is a valid signature of `body` with `secret`, made within
/// `tolerance_secs` of `now_unix` (either side). Unknown `key=value` parts are ignored and any
/// one matching `v1` is enough, so a future second scheme or secret can be added alongside.
/// The comparison is constant-time.
pub fn verify(
    secret: &str,
    header_value: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for part in header_value.split(',') {
        match part.trim().split_once('=') {
            Some(("t", v)) => timestamp = v.parse::<i64>().ok(),
            Some(("v1", v)) => {
                if let Ok(bytes) = hex::decode(v) {
                    candidates.push(bytes);
                }
            }
            _ => {}
        }
    }
    let Some(t) = timestamp else {
        return false;
    };
    if (now_unix - t).abs() > tolerance_secs {
        return false;
    }
    candidates
        .iter()
        .any(|c| mac(secret, t, body).verify_slice(c).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test";
    const BODY: &[u8] = br#"{"id":"dlv_1","event":"response.created"}"#;

    /// Computed independently with Python:
    /// `hmac.new(b"whsec_test", b'1700000000.{"id":"dlv_1","event":"response.created"}',
    /// hashlib.sha256).hexdigest()`
    const KNOWN: &str =
        "t=1700000000,v1=435544910b6ee1e1bb60944b9ca13118ad50741101dd14839bc1a42c369726fa";

    #[test]
    fn matches_a_known_vector() {
        assert_eq!(sign(SECRET, 1_700_000_000, BODY), KNOWN);
        assert!(verify(SECRET, KNOWN, BODY, 1_700_000_000, TOLERANCE_SECS));
    }

    #[test]
    fn a_tampered_body_or_wrong_secret_fails() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(!verify(
            SECRET,
            &header,
            br#"{"id":"dlv_1","event":"response.updated"}"#,
            1_700_000_000,
            TOLERANCE_SECS
        ));
        assert!(!verify(
            "whsec_other",
            &header,
            BODY,
            1_700_000_000,
            TOLERANCE_SECS
        ));
        // Re-labelling the signature with a fresh timestamp breaks it too.
        let moved = header.replace("t=1700000000", "t=1700000500");
        assert!(!verify(SECRET, &moved, BODY, 1_700_000_500, TOLERANCE_SECS));
    }

    #[test]
    fn old_and_far_future_timestamps_fail() {
        let header = sign(SECRET, 1_700_000_000, BODY);
        assert!(verify(SECRET, &header, BODY, 1_700_000_300, TOLERANCE_SECS));
        assert!(!verify(
            SECRET,
            &header,
            BODY,
            1_700_000_301,
            TOLERANCE_SECS
        ));
        assert!(!verify(
            SECRET,
            &header,
            BODY,
            1_699_999_699,
            TOLERANCE_SECS
        ));
    }

    #[test]
    fn malformed_headers_fail() {
        for header in [
            "",
            "v1=00",
            "t=1700000000",
            "t=abc,v1=00",
            "t=1700000000,v1=zz",
            "garbage",
        ] {
            assert!(
                !verify(SECRET, header, BODY, 1_700_000_000, TOLERANCE_SECS),
                "{header:?}"
            );
        }
    }

    #[test]
    fn any_matching_v1_is_enough() {
        let good = sign(SECRET, 1_700_000_000, BODY);
        let v1 = good.split_once(",v1=").map(|(_, v)| v).unwrap_or_default();
        let header = format!("t=1700000000,v1={},v0=legacy,v1={v1}", "ab".repeat(32));
        assert!(verify(SECRET, &header, BODY, 1_700_000_000, TOLERANCE_SECS));
    }
}
