//! Standard Webhooks signatures (symmetric, `v1`): the secret is `whsec_` + base64 of the key;
//! the signature is HMAC-SHA256 with that key over `{webhook-id}.{webhook-timestamp}.{body}`,
//! sent as `webhook-signature: v1,<base64>`. Pure functions; the clock is the caller's.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac as _};
use secrecy::{ExposeSecret as _, SecretSlice};
use sha2::Sha256;

/// Header carrying the notice id, the same on every attempt so the application can drop
/// repeated deliveries.
pub const ID_HEADER: &str = "webhook-id";
/// Header carrying the Unix time (seconds) of this attempt; the application bounds replays
/// with it.
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

const PREFIX: &str = "whsec_";

/// Key lengths the Standard Webhooks specification allows (192 to 512 bits).
const KEY_BYTES: std::ops::RangeInclusive<usize> = 24..=64;

/// Why a configured secret is unusable. The message never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("must start with `whsec_`")]
    MissingPrefix,
    #[error("the part after `whsec_` is not standard base64")]
    NotBase64,
    #[error("the key is {0} bytes; Standard Webhooks keys are 24 to 64 bytes")]
    Length(usize),
}

/// The decoded HMAC key. `Debug` never shows it.
#[derive(Clone)]
pub struct SigningKey(SecretSlice<u8>);

impl SigningKey {
    /// Parses `whsec_<base64>`.
    pub fn parse(secret: &str) -> Result<Self, KeyError> {
        let encoded = secret
            .trim()
            .strip_prefix(PREFIX)
            .ok_or(KeyError::MissingPrefix)?;
        let key = BASE64.decode(encoded).map_err(|_| KeyError::NotBase64)?;
        if !KEY_BYTES.contains(&key.len()) {
            return Err(KeyError::Length(key.len()));
        }
        Ok(Self(key.into()))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey([REDACTED])")
    }
}

/// The `webhook-signature` header value for one delivery.
pub fn sign(key: &SigningKey, webhook_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.0.expose_secret())
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(webhook_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str) -> SigningKey {
        SigningKey::parse(secret).expect("a valid secret")
    }

    /// The example of the Standard Webhooks specification, which its reference libraries and
    /// Svix's documentation test against.
    #[test]
    fn signs_the_specification_example() {
        let signature = sign(
            &key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    /// The vector of the reference Rust library's `test_sign`
    /// (standard-webhooks/standard-webhooks, libraries/rust).
    #[test]
    fn signs_the_reference_library_vector() {
        let signature = sign(
            &key("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"),
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn the_id_the_timestamp_and_the_body_are_all_signed() {
        let key = key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let base = sign(&key, "ntf_1", 1_700_000_000, b"{}");
        assert_ne!(sign(&key, "ntf_2", 1_700_000_000, b"{}"), base);
        assert_ne!(sign(&key, "ntf_1", 1_700_000_001, b"{}"), base);
        assert_ne!(sign(&key, "ntf_1", 1_700_000_000, b"{ }"), base);
    }

    #[test]
    fn secrets_that_are_not_whsec_base64_of_24_to_64_bytes_are_refused() {
        assert_eq!(
            SigningKey::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").err(),
            Some(KeyError::MissingPrefix)
        );
        assert_eq!(
            SigningKey::parse("whsec_not base64!").err(),
            Some(KeyError::NotBase64)
        );
        // base64 of "short" (5 bytes) and of 65 bytes.
        assert_eq!(
            SigningKey::parse("whsec_c2hvcnQ=").err(),
            Some(KeyError::Length(5))
        );
        let long = format!("whsec_{}", BASE64.encode([7u8; 65]));
        assert_eq!(SigningKey::parse(&long).err(), Some(KeyError::Length(65)));
        assert!(SigningKey::parse(&format!("whsec_{}", BASE64.encode([7u8; 64]))).is_ok());
    }

    #[test]
    fn debug_output_hides_the_key() {
        let printed = format!("{:?}", key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert_eq!(printed, "SigningKey([REDACTED])");
    }
}
