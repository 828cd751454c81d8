//! Console access tokens (`BILLHOOK_CONSOLE_TOKENS`): `label=role:token`, comma-separated,
//! where role is `read` (see everything) or `operate` (also act: requeue). The label is who
//! acted in the audit log; the token itself is compared in constant time and never shown,
//! logged or printed by `Debug`.

use std::fmt;

use subtle::ConstantTimeEq as _;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Read,
    Operate,
}

/// Tokens shorter than this are refused: a console token is a password that cannot be
/// rate-limited per user.
pub const MIN_TOKEN_LEN: usize = 24;

#[derive(Clone)]
struct Token {
    label: String,
    role: Role,
    secret: Vec<u8>,
}

/// The configured tokens; empty when none are set.
#[derive(Clone, Default)]
pub struct Tokens(Vec<Token>);

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(
                self.0
                    .iter()
                    .map(|t| format!("{}={:?}:[redacted]", t.label, t.role)),
            )
            .finish()
    }
}

/// Who is calling: a token's label and role.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Caller {
    pub label: String,
    pub role: Role,
}

impl Tokens {
    /// Parses `label=role:token,…`. Errors name the entry by its position and label, never
    /// its token.
    pub fn parse(value: &str) -> Result<Self, String> {
        let mut tokens: Vec<Token> = Vec::new();
        for (n, entry) in value.split(',').map(str::trim).enumerate() {
            let n = n + 1;
            if entry.is_empty() {
                return Err(format!("entry {n} is empty"));
            }
            let (label, rest) = entry
                .split_once('=')
                .ok_or_else(|| format!("entry {n} is not label=role:token"))?;
            let label = label.trim();
            if label.is_empty()
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!(
                    "entry {n}: a label is letters, digits, `.`, `_` or `-`"
                ));
            }
            let (role, secret) = rest
                .split_once(':')
                .ok_or_else(|| format!("entry {n} ({label}) is not label=role:token"))?;
            let role = match role {
                "read" => Role::Read,
                "operate" => Role::Operate,
                _ => {
                    return Err(format!(
                        "entry {n} ({label}): the role is `read` or `operate`"
                    ));
                }
            };
            if secret.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "entry {n} ({label}): the token is shorter than {MIN_TOKEN_LEN} characters"
                ));
            }
            if tokens.iter().any(|t| t.label == label) {
                return Err(format!("entry {n}: the label {label} is used twice"));
            }
            tokens.push(Token {
                label: label.to_owned(),
                role,
                secret: secret.as_bytes().to_vec(),
            });
        }
        Ok(Self(tokens))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The caller `presented` identifies, comparing with every token in constant time.
    pub fn verify(&self, presented: &str) -> Option<Caller> {
        let mut found = None;
        for token in &self.0 {
            if bool::from(token.secret.as_slice().ct_eq(presented.as_bytes())) {
                found = Some(Caller {
                    label: token.label.clone(),
                    role: token.role,
                });
            }
        }
        found
    }
}

impl Tokens {
    /// An HMAC-SHA256 of `message` keyed by the token labelled `label`, with that token's
    /// current role: what a page session is signed with, so that changing or removing a token
    /// ends the sessions it opened. `None` when no token has that label.
    pub fn sign(&self, label: &str, message: &[u8]) -> Option<([u8; 32], Role)> {
        use hmac::Mac as _;
        let token = self.0.iter().find(|t| t.label == label)?;
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&token.secret).ok()?;
        mac.update(message);
        Some((mac.finalize().into_bytes().into(), token.role))
    }
}

/// clap's parser for the setting.
pub fn parse_setting(value: &str) -> Result<Tokens, String> {
    Tokens::parse(value)
}

#[cfg(test)]
mod tests {
    use super::{Role, Tokens};

    const A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    #[test]
    fn tokens_are_labelled_with_a_role_and_verified() {
        let tokens = Tokens::parse(&format!("ops=operate:{A}, dash=read:{B}")).expect("tokens");
        let ops = tokens.verify(A).expect("ops");
        assert_eq!((ops.label.as_str(), ops.role), ("ops", Role::Operate));
        assert_eq!(tokens.verify(B).map(|c| c.role), Some(Role::Read));
        assert_eq!(tokens.verify("nope"), None);
        assert_eq!(tokens.verify(&A[..20]), None);
        let debug = format!("{tokens:?}");
        assert!(!debug.contains(A) && !debug.contains(B), "{debug}");
    }

    #[test]
    fn bad_entries_are_refused_without_showing_the_token() {
        for (value, says) in [
            ("ops=operate:short", "shorter"),
            (&format!("ops=admin:{A}") as &str, "`read` or `operate`"),
            (&format!("ops:{A}"), "label=role:token"),
            (&format!("o p=read:{A}"), "a label is"),
            (&format!("ops=read:{A},ops=read:{B}"), "used twice"),
            ("", "empty"),
        ] {
            let error = Tokens::parse(value).expect_err(value);
            assert!(error.contains(says), "{value}: {error}");
            assert!(!error.contains(A) && !error.contains(B), "{error}");
        }
    }
}
