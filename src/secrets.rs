//! Comparing secrets: every presented credential (the inbound shared
//! secret, the admin token, the platform's API key) is checked against the
//! SHA-256 digest of the expected one in constant time, so neither the
//! comparison's time nor the lengths tell an attacker anything. The same
//! digest names file contents (mapping and reload versions).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A digest, so comparisons take the same time whatever the lengths.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Constant-time check of a presented credential against an expected digest.
pub fn matches(presented: &[u8], expected: &[u8; 32]) -> bool {
    digest(presented).ct_eq(expected).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_only_the_same_bytes() {
        let expected = digest(b"Bearer s3cret");
        assert!(matches(b"Bearer s3cret", &expected));
        assert!(!matches(b"Bearer s3cre", &expected));
        assert!(!matches(b"", &expected));
    }
}
