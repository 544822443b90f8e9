//! My Number at rest: AES-256-GCM (RustCrypto `aes-gcm`).
//!
//! Each value gets a fresh 96-bit nonce from the OS generator (random
//! nonces are safe far beyond the number of card reads a city hall will
//! ever store: the birthday bound for 2^-32 collision probability is
//! about 2^32 values per key). The associated data binds the ciphertext
//! to its record (the card read's resource name and its visit), so a
//! ciphertext copied into another row fails to decrypt instead of
//! revealing the number there. Stored form: nonce ‖ ciphertext ‖ tag.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use secrecy::ExposeSecret;

use crate::config::MyNumberKey;
use crate::domain::my_number::MyNumber;

const NONCE_BYTES: usize = 12;

/// Encrypts and decrypts My Numbers with the service's key.
#[derive(Clone)]
pub struct MyNumberCipher {
    cipher: Aes256Gcm,
}

impl fmt::Debug for MyNumberCipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MyNumberCipher(..)")
    }
}

/// Why a value could not be sealed or opened. Carries no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// Encryption failed (never expected with a valid key).
    #[error("my number encryption failed")]
    Seal,
    /// Wrong key, tampered value, or a value moved from another record.
    #[error("my number ciphertext does not authenticate")]
    Open,
}

/// The associated data of a card read's number.
pub fn associated_data(card_read: &str, visit: &str) -> String {
    format!("madoguchi.identity.v1/my-number|{card_read}|{visit}")
}

impl MyNumberCipher {
    /// A cipher with `key`.
    pub fn new(key: &MyNumberKey) -> Self {
        let cipher = Aes256Gcm::new(&(*key.expose_secret()).into());
        Self { cipher }
    }

    /// Encrypts `number` bound to `aad`.
    pub fn seal(&self, number: &MyNumber, aad: &str) -> Result<Vec<u8>, CryptoError> {
        let nonce = aes_gcm::aead::Nonce::<Aes256Gcm>::generate();
        let ciphertext = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: number.expose().as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Seal)?;
        let mut stored = Vec::with_capacity(NONCE_BYTES + ciphertext.len());
        stored.extend_from_slice(&nonce);
        stored.extend_from_slice(&ciphertext);
        Ok(stored)
    }

    /// Decrypts a stored value bound to `aad`.
    pub fn open(&self, stored: &[u8], aad: &str) -> Result<MyNumber, CryptoError> {
        if stored.len() <= NONCE_BYTES {
            return Err(CryptoError::Open);
        }
        let (nonce, ciphertext) = stored.split_at(NONCE_BYTES);
        let nonce =
            aes_gcm::aead::Nonce::<Aes256Gcm>::try_from(nonce).map_err(|_| CryptoError::Open)?;
        let plain = self
            .cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Open)?;
        let text = String::from_utf8(plain).map_err(|_| CryptoError::Open)?;
        MyNumber::parse(&text).map_err(|_| CryptoError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretBox;

    fn cipher(byte: u8) -> MyNumberCipher {
        MyNumberCipher::new(&SecretBox::new(Box::new([byte; 32])))
    }

    #[test]
    fn round_trip_and_binding() {
        let Ok(number) = MyNumber::complete("12345678901") else {
            panic!("valid");
        };
        let aad = associated_data("municipalities/032034/cardReads/a", "v1");
        let sealed = cipher(1)
            .seal(&number, &aad)
            .unwrap_or_else(|e| panic!("{e}"));
        // The digits are not in the stored bytes.
        assert!(!sealed.windows(12).any(|w| w == number.expose().as_bytes()));
        assert_eq!(cipher(1).open(&sealed, &aad), Ok(number.clone()));
        // Another record, another key, or one flipped bit: refused.
        let other = associated_data("municipalities/032034/cardReads/b", "v1");
        assert_eq!(cipher(1).open(&sealed, &other), Err(CryptoError::Open));
        assert_eq!(cipher(2).open(&sealed, &aad), Err(CryptoError::Open));
        let mut tampered = sealed.clone();
        if let Some(last) = tampered.last_mut() {
            *last ^= 1;
        }
        assert_eq!(cipher(1).open(&tampered, &aad), Err(CryptoError::Open));
        assert_eq!(cipher(1).open(&sealed[..5], &aad), Err(CryptoError::Open));
        // A fresh nonce every time: the same number never encrypts the same.
        let again = cipher(1)
            .seal(&number, &aad)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_ne!(sealed, again);
    }
}
