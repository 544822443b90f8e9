//! Ticket status URLs:
//! `/signage/municipalities/{code}/t/{office}/{ticket}/{token}`, where the
//! token is HMAC-SHA256 of the ticket's resource name (municipality
//! included) under a server secret, truncated to 128 bits and
//! base64url-encoded. One secret serves every municipality: a token
//! verifies only against the full name it was made from, so one
//! municipality's URL opened under another's path is an unknown ticket.
//!
//! Why an HMAC rather than a stored random token: any replica (and the
//! gateway, through `GetTicketStatusUrl`) derives the same URL from the
//! ticket name alone, with no table to write, replicate or clean up, and a
//! reprinted ticket gets the same URL. 128 bits are unguessable; the ticket
//! id in the path is a UUIDv7 and is not a secret on its own. The page
//! shows only the queue position of an anonymous number, never personal
//! data, so a leaked URL reveals no more than the paper ticket does.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;

/// Bytes of the MAC kept in the URL (128 bits).
const TOKEN_BYTES: usize = 16;
/// Characters of a token in a URL (base64url of 16 bytes, no padding).
pub const TOKEN_CHARS: usize = 22;

/// Derives and checks status-page tokens.
#[derive(Clone)]
pub struct StatusUrlKey {
    secret: SecretString,
}

impl std::fmt::Debug for StatusUrlKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusUrlKey(..)")
    }
}

impl StatusUrlKey {
    /// A key from a secret of at least 32 characters.
    pub fn new(secret: SecretString) -> Result<Self, String> {
        if secret.expose_secret().len() < 32 {
            return Err("the status url secret must have at least 32 characters".into());
        }
        Ok(Self { secret })
    }

    /// Loads `data_dir/signage-secret`, or creates it (mode 0600) with 244
    /// random bits. Used when no secret is configured: right for one
    /// process; replicas must share a configured secret instead.
    pub fn load_or_create(data_dir: &Path) -> std::io::Result<Self> {
        let path = data_dir.join("signage-secret");
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(data_dir)?;
                let secret = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                write_private(&path, &secret)?;
                secret
            }
            Err(error) => return Err(error),
        };
        Self::new(SecretString::from(text.trim().to_owned()))
            .map_err(|message| std::io::Error::new(std::io::ErrorKind::InvalidData, message))
    }

    fn mac(&self, ticket_name: &str) -> Vec<u8> {
        // A key of any length is valid for HMAC, so this cannot fail; the
        // fallback keeps the code panic-free all the same.
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose_secret().as_bytes()) {
            Ok(mut mac) => {
                mac.update(ticket_name.as_bytes());
                mac.finalize().into_bytes()[..TOKEN_BYTES].to_vec()
            }
            Err(_) => Vec::new(),
        }
    }

    /// The token of a ticket (its full resource name).
    pub fn token(&self, ticket_name: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(ticket_name))
    }

    /// True when `token` is the token of `ticket_name`; constant time.
    pub fn verify(&self, ticket_name: &str, token: &str) -> bool {
        let Ok(given) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        match <Hmac<Sha256> as KeyInit>::new_from_slice(self.secret.expose_secret().as_bytes()) {
            Ok(mut mac) => {
                mac.update(ticket_name.as_bytes());
                given.len() == TOKEN_BYTES && mac.verify_truncated_left(&given).is_ok()
            }
            Err(_) => false,
        }
    }
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const TICKET: &str =
        "municipalities/032034/offices/main/tickets/0190f0a0-0000-7000-8000-000000000001";

    #[test]
    fn tokens_verify_only_for_their_ticket_and_key() {
        let key = StatusUrlKey::new(SecretString::from("k".repeat(40))).unwrap();
        let other = StatusUrlKey::new(SecretString::from("j".repeat(40))).unwrap();
        let token = key.token(TICKET);
        assert_eq!(token.len(), TOKEN_CHARS);
        assert!(key.verify(TICKET, &token));
        assert!(!other.verify(TICKET, &token));
        assert!(!key.verify(&format!("{TICKET}2"), &token));
        assert!(!key.verify(TICKET, &token[..TOKEN_CHARS - 1]));
        assert!(!key.verify(TICKET, "not base64!"));
        assert!(!key.verify(TICKET, ""));
        // Flipping one character breaks it.
        let mut flipped = token.clone().into_bytes();
        flipped[0] = if flipped[0] == b'A' { b'B' } else { b'A' };
        assert!(!key.verify(TICKET, &String::from_utf8(flipped).unwrap()));
    }

    #[test]
    fn short_secrets_are_refused_and_generated_ones_persist() {
        assert!(StatusUrlKey::new(SecretString::from("short")).is_err());
        let dir = tempfile::tempdir().unwrap();
        let a = StatusUrlKey::load_or_create(dir.path()).unwrap();
        let b = StatusUrlKey::load_or_create(dir.path()).unwrap();
        assert_eq!(a.token(TICKET), b.token(TICKET));
        assert!(!format!("{a:?}").contains(&a.token(TICKET)));
    }
}
