//! Cookie encryption at rest: ChaCha20-Poly1305 (authenticated) with a
//! 32-byte key from the config, a fresh random nonce per value, stored as
//! `nonce || ciphertext`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};

use crate::error::{Error, Result};

const NONCE_LEN: usize = 12;

/// Encrypts and decrypts users' session cookies.
#[derive(Clone)]
pub struct CookieCipher {
    cipher: ChaCha20Poly1305,
}

impl std::fmt::Debug for CookieCipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CookieCipher(..)")
    }
}

impl CookieCipher {
    /// A cipher from a base64-encoded 32-byte key.
    pub fn from_base64(key: &str) -> Result<Self> {
        let bytes = BASE64
            .decode(key.trim())
            .map_err(|_| Error::Invalid("cookie key: not base64".into()))?;
        if bytes.len() != 32 {
            return Err(Error::Invalid(format!(
                "cookie key: {} bytes, need 32 (make one with `openssl rand -base64 32`)",
                bytes.len()
            )));
        }
        Ok(Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
        })
    }

    /// A new random key, base64-encoded.
    pub fn generate_key() -> String {
        BASE64.encode(ChaCha20Poly1305::generate_key(&mut OsRng))
    }

    /// `nonce || ciphertext` of `plain`.
    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>> {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain)
            .map_err(|_| Error::Decrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// The plain text of what [`encrypt`](Self::encrypt) made; an error when
    /// the key is wrong or the data was changed.
    pub fn decrypt(&self, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::Decrypt);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), body)
            .map_err(|_| Error::Decrypt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tamper_detection() {
        let c = CookieCipher::from_base64(&CookieCipher::generate_key()).expect("key");
        let sealed = c.encrypt(b"sessionid=abc").expect("encrypt");
        assert_ne!(&sealed[NONCE_LEN..], b"sessionid=abc");
        assert_eq!(c.decrypt(&sealed).expect("decrypt"), b"sessionid=abc");
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(c.decrypt(&bad).is_err());
        let other = CookieCipher::from_base64(&CookieCipher::generate_key()).expect("key");
        assert!(other.decrypt(&sealed).is_err());
        assert!(CookieCipher::from_base64("c2hvcnQ=").is_err());
    }
}
