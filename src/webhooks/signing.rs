//! Standard Webhooks v1 signatures (<https://www.standardwebhooks.com>).
//!
//! Every delivery carries three headers:
//! - `webhook-id`: the delivery id (`dlv_…`), the same on every retry: receivers deduplicate by it;
//! - `webhook-timestamp`: Unix seconds of this attempt;
//! - `webhook-signature`: `v1,<standard base64 of HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`,
//!   one entry per live secret, space-separated (two during a secret rotation's overlap).
//!
//! A secret is `whsec_` followed by the standard (padded) base64 of 32 random bytes; the HMAC
//! key is those bytes. The timestamp is signed, so a captured request cannot be replayed later
//! with a new one; receivers reject timestamps further than [`TOLERANCE_SECS`] from their clock.

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::TryRngCore;
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// How far a receiver should accept a timestamp from its own clock: five minutes.
pub const TOLERANCE_SECS: i64 = 300;

/// The prefix of every webhook secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Standard base64 that accepts the padding or its absence (as the reference libraries do).
const LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A new secret: `whsec_` + standard padded base64 of 32 random bytes.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes))
}

/// The HMAC key of a secret: the bytes after `whsec_`, standard-base64 decoded. `None` for a
/// secret that is not in that form (or empty).
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    LENIENT.decode(encoded).ok().filter(|k| !k.is_empty())
}

fn mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// One signature entry, `v1,<base64>`, of message `msg_id` with `body` sent at `timestamp`.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(key, msg_id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", STANDARD.encode(digest))
}

/// The `webhook-signature` header value: one entry per secret, space-separated. `None` when a
/// secret cannot be decoded (see [`secret_key`]).
pub fn signature_header(
    secrets: &[&str],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Option<String> {
    let entries = secrets
        .iter()
        .map(|s| secret_key(s).map(|key| sign(&key, msg_id, timestamp, body)))
        .collect::<Option<Vec<_>>>()?;
    Some(entries.join(" "))
}

/// Whether a request is a valid Standard Webhooks delivery signed with `secret`: `msg_id`,
/// `timestamp` and `signature` are the values of the `webhook-id`, `webhook-timestamp` and
/// `webhook-signature` headers, `body` the raw body. The timestamp must be within
/// `tolerance_secs` of `now_unix` (either side); any one matching `v1` entry is enough (the
/// header lists two during a rotation). The comparison is constant-time.
pub fn verify(
    secret: &str,
    msg_id: &str,
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> bool {
    let Some(key) = secret_key(secret) else {
        return false;
    };
    let Ok(t) = timestamp.trim().parse::<i64>() else {
        return false;
    };
    if (now_unix - t).abs() > tolerance_secs {
        return false;
    }
    signature
        .split(' ')
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .any(|sig| mac(&key, msg_id, t, body).verify_slice(&sig).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published test vector of the Standard Webhooks specification
    // (github.com/standard-webhooks/standard-webhooks; the `standardwebhooks` PyPI library
    // computes the same value).
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TS: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn matches_the_specs_published_test_vector() {
        let key = secret_key(SPEC_SECRET).unwrap();
        assert_eq!(sign(&key, SPEC_ID, SPEC_TS, SPEC_BODY), SPEC_SIGNATURE);
        assert_eq!(
            signature_header(&[SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY).unwrap(),
            SPEC_SIGNATURE
        );
        assert!(verify(
            SPEC_SECRET,
            SPEC_ID,
            "1614265330",
            SPEC_SIGNATURE,
            SPEC_BODY,
            SPEC_TS,
            TOLERANCE_SECS
        ));
    }

    #[test]
    fn new_secrets_are_whsec_and_32_bytes_of_padded_standard_base64() {
        let s = new_secret();
        assert!(s.starts_with("whsec_"), "{s}");
        assert_eq!(s.len(), 6 + 44);
        assert!(s.ends_with('='), "padded: {s}");
        assert_eq!(secret_key(&s).unwrap().len(), 32);
        assert_ne!(s, new_secret());
    }

    #[test]
    fn a_tampered_body_id_or_timestamp_or_a_wrong_secret_fails() {
        let ok = |secret: &str, id: &str, ts: &str, body: &[u8]| {
            verify(
                secret,
                id,
                ts,
                SPEC_SIGNATURE,
                body,
                SPEC_TS,
                TOLERANCE_SECS,
            )
        };
        assert!(ok(SPEC_SECRET, SPEC_ID, "1614265330", SPEC_BODY));
        assert!(!ok(SPEC_SECRET, SPEC_ID, "1614265330", br#"{"test": 1}"#));
        assert!(!ok(SPEC_SECRET, "msg_other", "1614265330", SPEC_BODY));
        assert!(!ok(SPEC_SECRET, SPEC_ID, "1614265331", SPEC_BODY));
        assert!(!ok(&new_secret(), SPEC_ID, "1614265330", SPEC_BODY));
    }

    #[test]
    fn old_and_far_future_timestamps_fail() {
        let at = |now: i64| {
            verify(
                SPEC_SECRET,
                SPEC_ID,
                "1614265330",
                SPEC_SIGNATURE,
                SPEC_BODY,
                now,
                TOLERANCE_SECS,
            )
        };
        assert!(at(SPEC_TS + 300));
        assert!(!at(SPEC_TS + 301));
        assert!(!at(SPEC_TS - 301));
    }

    #[test]
    fn malformed_headers_and_secrets_fail() {
        for header in ["", "v1", "v1,", "v1,!!!", "v2,g0hM9SsE", "garbage"] {
            assert!(
                !verify(
                    SPEC_SECRET,
                    SPEC_ID,
                    "1614265330",
                    header,
                    SPEC_BODY,
                    SPEC_TS,
                    TOLERANCE_SECS
                ),
                "{header:?}"
            );
        }
        assert!(!verify(
            SPEC_SECRET,
            SPEC_ID,
            "abc",
            SPEC_SIGNATURE,
            SPEC_BODY,
            SPEC_TS,
            TOLERANCE_SECS
        ));
        assert!(secret_key("whsec_").is_none());
        assert!(secret_key("whsec_not base64!").is_none());
        assert!(signature_header(&["whsec_%%"], SPEC_ID, SPEC_TS, SPEC_BODY).is_none());
    }

    #[test]
    fn two_secrets_give_two_entries_and_either_verifies() {
        let other = new_secret();
        let header = signature_header(&[&other, SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY).unwrap();
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1], SPEC_SIGNATURE);
        for secret in [other.as_str(), SPEC_SECRET] {
            assert!(verify(
                secret,
                SPEC_ID,
                "1614265330",
                &header,
                SPEC_BODY,
                SPEC_TS,
                TOLERANCE_SECS
            ));
        }
    }
}
