//! Values at rest in Redis are personal data: with an encryption key they are
//! sealed with AES-256-GCM, the Redis key name as associated data, so a value
//! cannot be replayed under another key (another token, another front).

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use secrecy::ExposeSecret;

use crate::config::{ConfigError, RedisSettings, read_secret};

/// Seals and opens values; without a key both are the identity.
pub(super) struct Sealer {
    cipher: Option<Aes256Gcm>,
}

fn bad_key() -> ConfigError {
    ConfigError::invalid(
        "redis.encryption_key_env",
        "must be 64 hex digits (32 bytes)",
    )
}

impl Sealer {
    /// The key of `redis.encryption_key_env`/`_file`, if any.
    pub(super) fn from_settings(s: &RedisSettings) -> Result<Self, ConfigError> {
        let key = read_secret(
            ("redis.encryption_key_env", s.encryption_key_env.as_deref()),
            (
                "redis.encryption_key_file",
                s.encryption_key_file.as_deref(),
            ),
        )?;
        let Some(key) = key else {
            return Ok(Self { cipher: None });
        };
        let bytes = hex::decode(key.expose_secret().trim()).map_err(|_| bad_key())?;
        if bytes.len() != 32 {
            return Err(bad_key());
        }
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| bad_key())?;
        Ok(Self {
            cipher: Some(cipher),
        })
    }

    /// `plain` as stored under `name`: a random nonce, then the ciphertext.
    pub(super) fn seal(&self, name: &str, plain: Vec<u8>) -> Option<Vec<u8>> {
        let Some(cipher) = &self.cipher else {
            return Some(plain);
        };
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).ok()?;
        let sealed = cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: &plain,
                    aad: name.as_bytes(),
                },
            )
            .ok()?;
        Some([nonce.as_slice(), &sealed].concat())
    }

    /// The plain value stored under `name`; `None` if it does not open
    /// (another key, another name, tampered).
    pub(super) fn open(&self, name: &str, stored: &[u8]) -> Option<Vec<u8>> {
        let Some(cipher) = &self.cipher else {
            return Some(stored.to_vec());
        };
        let (nonce, sealed) = stored.split_at_checked(12)?;
        cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: name.as_bytes(),
                },
            )
            .ok()
    }
}
