//! Verification of the `Stripe-Signature` header: a pure function over the raw body, with the
//! clock passed in so tests can pin it.
//!
//! The header is `t=<unix seconds>,v1=<hex>[,v1=<hex>…][,v0=…]`. Stripe signs
//! `"{t}.{raw body}"` with HMAC-SHA256 keyed by the endpoint secret (the whole `whsec_…`
//! string). Only `v1` counts; several `v1` values (secret rotation on Stripe's side) and several
//! configured secrets (rotation on ours, or a Connect endpoint beside the platform one) are
//! normal, and any pair that matches verifies.

use std::fmt;

use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// One endpoint signing secret with the label recorded on the events it verifies.
/// `Debug` never shows the secret.
#[derive(Clone)]
pub struct WebhookSecret {
    label: String,
    secret: SecretString,
}

impl WebhookSecret {
    pub fn new(label: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            label: label.into(),
            secret: SecretString::from(secret.into()),
        }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The secret itself, for signing (trigger tool, tests). Never log it.
    pub fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    fn mac(&self, timestamp: &str, body: &[u8]) -> HmacSha256 {
        // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
        let mut mac = HmacSha256::new_from_slice(self.secret.expose_secret().as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }

    /// The `Stripe-Signature` header Stripe would send for `body` at `timestamp`.
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        let digest = self
            .mac(&timestamp.to_string(), body)
            .finalize()
            .into_bytes();
        format!("t={timestamp},v1={}", hex::encode(digest))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("label", &self.label)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// The configured secrets, in the order they are tried. Never empty.
#[derive(Clone, Debug)]
pub struct WebhookSecrets(Vec<WebhookSecret>);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SecretsError {
    #[error("no webhook secret given")]
    Empty,
    #[error("webhook secret #{0} is empty")]
    EmptySecret(usize),
    #[error("webhook secret label `{0}` is used twice")]
    DuplicateLabel(String),
}

impl WebhookSecrets {
    pub fn new(secrets: Vec<WebhookSecret>) -> Result<Self, SecretsError> {
        if secrets.is_empty() {
            return Err(SecretsError::Empty);
        }
        for (i, s) in secrets.iter().enumerate() {
            if s.expose().is_empty() {
                return Err(SecretsError::EmptySecret(i + 1));
            }
            if secrets[..i].iter().any(|o| o.label == s.label) {
                return Err(SecretsError::DuplicateLabel(s.label.clone()));
            }
        }
        Ok(Self(secrets))
    }

    /// Parses `whsec_a` or `primary=whsec_a,connect=whsec_b` (commas or whitespace between
    /// entries). An entry without a label is labelled by its position: `secret-1`, `secret-2`…
    pub fn parse(value: &str) -> Result<Self, SecretsError> {
        let entries = value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|e| !e.is_empty());
        let secrets = entries
            .enumerate()
            .map(|(i, entry)| match entry.split_once('=') {
                Some((label, secret)) if is_label(label) => WebhookSecret::new(label, secret),
                _ => WebhookSecret::new(format!("secret-{}", i + 1), entry),
            })
            .collect();
        Self::new(secrets)
    }

    pub fn iter(&self) -> impl Iterator<Item = &WebhookSecret> {
        self.0.iter()
    }

    pub fn first(&self) -> &WebhookSecret {
        &self.0[0]
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with("whsec_")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// Why a delivery was refused. Each reason is counted separately in the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no Stripe-Signature header")]
    MissingHeader,
    #[error("malformed Stripe-Signature header")]
    Malformed,
    #[error("no v1 signature in the header")]
    NoV1Signature,
    #[error("no v1 signature matches any configured secret")]
    Mismatch,
    #[error("signature timestamp outside the tolerance")]
    OutsideTolerance,
}

impl SignatureError {
    /// A stable name for metrics labels and logs.
    pub fn reason(self) -> &'static str {
        match self {
            Self::MissingHeader => "missing_header",
            Self::Malformed => "malformed",
            Self::NoV1Signature => "no_v1_signature",
            Self::Mismatch => "mismatch",
            Self::OutsideTolerance => "outside_tolerance",
        }
    }
}

/// A delivery whose signature matched: when Stripe signed it and with which secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub timestamp: i64,
    pub secret_label: String,
}

/// Checks `header` (the `Stripe-Signature` value, `None` when absent) against `body`.
///
/// The signature is checked before the age, so a forged request learns nothing about the
/// tolerance. `now` and `tolerance` are Unix seconds; a timestamp further than `tolerance`
/// from `now` in either direction is refused.
pub fn verify(
    header: Option<&str>,
    body: &[u8],
    secrets: &WebhookSecrets,
    now: i64,
    tolerance: i64,
) -> Result<Verified, SignatureError> {
    let header = header.ok_or(SignatureError::MissingHeader)?;
    let parsed = parse_header(header)?;
    let timestamp_text = parsed.timestamp_text;
    for secret in secrets.iter() {
        let expected = secret.mac(timestamp_text, body).finalize().into_bytes();
        // Every candidate is compared, matched or not, so timing does not reveal which one
        // came closest.
        let matched = parsed
            .v1
            .iter()
            .fold(subtle::Choice::from(0), |acc, candidate| {
                acc | candidate.as_slice().ct_eq(expected.as_slice())
            });
        if bool::from(matched) {
            if (now - parsed.timestamp).abs() > tolerance {
                return Err(SignatureError::OutsideTolerance);
            }
            return Ok(Verified {
                timestamp: parsed.timestamp,
                secret_label: secret.label.clone(),
            });
        }
    }
    Err(SignatureError::Mismatch)
}

struct ParsedHeader<'a> {
    timestamp_text: &'a str,
    timestamp: i64,
    v1: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<ParsedHeader<'_>, SignatureError> {
    let mut timestamp_text = None;
    let mut v1 = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match key {
            // Two timestamps make the signed string ambiguous: refuse rather than guess.
            "t" if timestamp_text.is_some() => return Err(SignatureError::Malformed),
            "t" => timestamp_text = Some(value),
            // A v1 value that is not 64 hex digits can never match; skipping it (rather than
            // failing the header) keeps a later well-formed v1 usable.
            "v1" => {
                if let Some(sig) = hex::decode(value).ok().filter(|s| s.len() == 32) {
                    v1.push(sig);
                }
            }
            // v0 and schemes Stripe may add later are ignored.
            _ => {}
        }
    }
    let timestamp_text = timestamp_text.ok_or(SignatureError::Malformed)?;
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::Malformed);
    }
    let timestamp = timestamp_text
        .parse::<i64>()
        .map_err(|_| SignatureError::Malformed)?;
    if v1.is_empty() {
        return Err(SignatureError::NoV1Signature);
    }
    Ok(ParsedHeader {
        timestamp_text,
        timestamp,
        v1,
    })
}
