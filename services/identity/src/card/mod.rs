//! Card readers for the staff client: the My Number card's
//! 券面事項入力補助AP spoken in its real APDU sequence over a
//! [`CardTransport`], a simulated card with PIN counter and lock; the IC
//! driver's licence read the same way (PIN1, the 記載事項 file in JIS X
//! 0208) with its own simulated card, and the structured-input path for a
//! licence read by eye. The byte-level sequences are documented in
//! `docs/devices/mynumber-card.md` and `docs/devices/drivers-licence.md`.
//!
//! The staff client reads the card locally (the PIN never leaves the
//! counter) and submits the decoded [`CardFace`] or [`LicenceRead`] face
//! with `SubmitCardRead`.

pub mod apdu;
pub mod kenhojo;
pub mod licence;
pub mod licence_ic;
pub mod simulator;
pub mod tlv;

pub use apdu::{Command, Response};
pub use kenhojo::{CardFace, CardRefusal, KenhojoReader, ReaderError};
pub use licence_ic::{LicenceRead, LicenceReader, SimulatedLicence};
pub use simulator::SimulatedCard;

/// A link to a contact or contactless card (PC/SC, NFC, a simulator):
/// sends one command APDU and returns the response APDU (data followed by
/// SW1 SW2).
pub trait CardTransport {
    /// Transmits one command.
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError>;
}

impl<T: CardTransport + ?Sized> CardTransport for &mut T {
    fn transmit(&mut self, command: &[u8]) -> Result<Vec<u8>, TransportError> {
        (**self).transmit(command)
    }
}

/// The link failed (card removed, reader unplugged). Distinct from the
/// card answering "no", which is a status word.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("card transport failed: {0}")]
pub struct TransportError(pub String);
