//! Join tokens: `SHTKN-1-<CA digest>-<secret>`, as Docker's `SWMTKN-1-…`.
//!
//! The digest lets a joining node check that the manager it reached holds the
//! cluster's CA before sending anything secret; the secret says which role
//! the node joins as. Secrets are compared in constant time.

use std::fmt;

use rand::Rng;
use subtle::ConstantTimeEq;

use crate::error::SecurityError;
use crate::pem::DIGEST_LEN;

pub const TOKEN_PREFIX: &str = "SHTKN";
pub const TOKEN_VERSION: &str = "1";
pub const SECRET_LEN: usize = 25;

/// A parsed join token.
#[derive(Clone, PartialEq, Eq)]
pub struct JoinToken {
    pub ca_digest: String,
    pub secret: String,
}

impl fmt::Debug for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret is a credential: keep it out of logs.
        f.debug_struct("JoinToken")
            .field("ca_digest", &self.ca_digest)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for JoinToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}-{TOKEN_VERSION}-{}-{}",
            self.ca_digest, self.secret
        )
    }
}

impl JoinToken {
    /// A new token for the CA with `ca_digest`, with a fresh random secret.
    pub fn generate(ca_digest: &str) -> Self {
        JoinToken {
            ca_digest: ca_digest.to_string(),
            secret: random_base36(SECRET_LEN),
        }
    }

    /// Whether this token was made for the root CA `ca_pem` (its digest
    /// part; says nothing about the secret).
    pub fn is_for_ca(&self, ca_pem: &str) -> bool {
        crate::pem::digest_of_pem(ca_pem).is_ok_and(|digest| digest == self.ca_digest)
    }

    /// Parses a token, saying precisely what is wrong with a malformed one.
    pub fn parse(text: &str) -> Result<Self, SecurityError> {
        let invalid = |why: String| {
            SecurityError::InvalidToken(format!(
                "invalid join token: {why}; a token looks like \
                 {TOKEN_PREFIX}-{TOKEN_VERSION}-<50 characters>-<25 characters>: \
                 copy it again from `shoal swarm join-token worker` on a manager"
            ))
        };
        let text = text.trim();
        let parts: Vec<&str> = text.split('-').collect();
        if parts.len() != 4 {
            return Err(invalid(format!(
                "expected 4 parts separated by '-', found {}",
                parts.len()
            )));
        }
        if parts[0] != TOKEN_PREFIX {
            return Err(invalid(format!(
                "it must start with {TOKEN_PREFIX}, not {:?}",
                truncate(parts[0])
            )));
        }
        if parts[1] != TOKEN_VERSION {
            return Err(invalid(format!(
                "unsupported token version {:?}",
                truncate(parts[1])
            )));
        }
        check_base36(parts[2], DIGEST_LEN, "CA digest").map_err(invalid)?;
        check_base36(parts[3], SECRET_LEN, "secret").map_err(invalid)?;
        Ok(JoinToken {
            ca_digest: parts[2].to_string(),
            secret: parts[3].to_string(),
        })
    }

    /// Whether `other` carries the same secret and digest, in constant time
    /// for equal-length inputs so that a caller cannot guess it byte by byte.
    pub fn matches(&self, other: &JoinToken) -> bool {
        let secret_eq = self.secret.as_bytes().ct_eq(other.secret.as_bytes());
        let digest_eq = self.ca_digest.as_bytes().ct_eq(other.ca_digest.as_bytes());
        bool::from(secret_eq & digest_eq)
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(20).collect()
}

fn check_base36(part: &str, len: usize, what: &str) -> Result<(), String> {
    if part.len() != len {
        return Err(format!(
            "the {what} must be {len} characters, found {}",
            part.chars().count()
        ));
    }
    if !part
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
    {
        return Err(format!(
            "the {what} may only hold lowercase letters and digits"
        ));
    }
    Ok(())
}

/// A random lowercase base-36 string of `len` characters.
pub fn random_base36(len: usize) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> JoinToken {
        JoinToken::generate(&"a".repeat(DIGEST_LEN))
    }

    #[test]
    fn round_trips_through_text() {
        let token = sample();
        assert_eq!(JoinToken::parse(&token.to_string()).unwrap(), token);
    }

    #[test]
    fn malformed_tokens_say_what_is_wrong() {
        let good = sample().to_string();
        let cases = [
            ("", "expected 4 parts"),
            ("SWMTKN-1-abc-def", "must start with SHTKN"),
            (&good.replacen("-1-", "-2-", 1), "unsupported token version"),
            (&good[..good.len() - 1], "secret must be 25 characters"),
            (&good.to_uppercase(), "lowercase"),
        ];
        for (text, expected) in cases {
            let err = JoinToken::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(err.contains("shoal swarm join-token"), "{err}");
        }
    }

    #[test]
    fn matching_needs_both_parts() {
        let a = sample();
        let mut b = a.clone();
        assert!(a.matches(&b));
        b.secret = random_base36(SECRET_LEN);
        assert!(!a.matches(&b));
        let mut c = a.clone();
        c.ca_digest = "b".repeat(DIGEST_LEN);
        assert!(!a.matches(&c));
    }

    proptest! {
        #[test]
        fn parse_never_panics(text in ".{0,120}") {
            let _ = JoinToken::parse(&text);
        }

        #[test]
        fn parse_accepts_exactly_well_formed_tokens(
            digest in "[0-9a-z]{50}",
            secret in "[0-9a-z]{25}",
        ) {
            let text = format!("SHTKN-1-{digest}-{secret}");
            let token = JoinToken::parse(&text).unwrap();
            prop_assert_eq!(token.to_string(), text);
        }

        #[test]
        fn parse_rejects_wrong_lengths(digest in "[0-9a-z]{1,49}", secret in "[0-9a-z]{26,40}") {
            let short_digest = format!("SHTKN-1-{digest}-{}", "a".repeat(25));
            let long_secret = format!("SHTKN-1-{}-{secret}", "a".repeat(50));
            prop_assert!(JoinToken::parse(&short_digest).is_err());
            prop_assert!(JoinToken::parse(&long_secret).is_err());
        }
    }
}
