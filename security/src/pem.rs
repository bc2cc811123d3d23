//! Certificates as text: the DER inside a PEM, and the SHA-256 digest of
//! a certificate as join tokens carry it (Docker's zero-padded base 36).

use sha2::{Digest, Sha256};

use crate::error::SecurityError;

/// SHA-256 of the first certificate in `pem`, as the 50-character base-36
/// string that join tokens carry.
pub fn digest_of_pem(pem: &str) -> Result<String, SecurityError> {
    let der = first_cert_der(pem)?;
    Ok(base36_256(&Sha256::digest(der).into()))
}

/// The DER bytes of the first certificate in `pem`.
pub(crate) fn first_cert_der(pem: &str) -> Result<Vec<u8>, SecurityError> {
    let (_, parsed) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).map_err(|e| {
        SecurityError::BadCertificate {
            what: "PEM",
            reason: e.to_string(),
        }
    })?;
    Ok(parsed.contents)
}

/// Length of a base-36 rendering of a 256-bit number, zero-padded.
pub const DIGEST_LEN: usize = 50;

/// Renders 32 bytes as a zero-padded lowercase base-36 string, as Docker's
/// join tokens do: short enough to paste, case-insensitive-safe.
fn base36_256(bytes: &[u8; 32]) -> String {
    const ALPHABET: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut number = bytes.to_vec();
    let mut digits = Vec::with_capacity(DIGEST_LEN);
    while number.iter().any(|&b| b != 0) {
        // Long division of the big-endian number by 36.
        let mut remainder = 0u32;
        for byte in number.iter_mut() {
            let acc = (remainder << 8) | u32::from(*byte);
            *byte = (acc / 36) as u8;
            remainder = acc % 36;
        }
        digits.push(ALPHABET[remainder as usize]);
    }
    while digits.len() < DIGEST_LEN {
        digits.push(b'0');
    }
    digits.reverse();
    String::from_utf8(digits).expect("alphabet is ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base36_of_zero_and_max_have_fixed_length() {
        assert_eq!(base36_256(&[0; 32]), "0".repeat(DIGEST_LEN));
        let max = base36_256(&[0xff; 32]);
        assert_eq!(max.len(), DIGEST_LEN);
        assert_eq!(max, "6dp5qcb22im238nr3wvp0ic7q99w035jmy2iw7i6n43d37jtof");
    }
}
