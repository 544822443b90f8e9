//! BER-TLV as the 券面事項入力補助AP stores its files (ISO/IEC 7816-4
//! §5.2, X.690 §8.1): tags of one or more bytes (long form when the low
//! five bits are all set, e.g. `FF 20`, `DF 22`), definite lengths in
//! short form or `81 xx` / `82 xx xx`.

/// One decoded element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv<'a> {
    /// The tag bytes as one number, e.g. 0xFF20.
    pub tag: u32,
    /// The value bytes.
    pub value: &'a [u8],
}

/// Why bytes are not TLV.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlvError {
    /// The input ends inside an element.
    #[error("truncated tlv")]
    Truncated,
    /// A form this parser does not accept (indefinite length, a tag or
    /// length longer than 3 bytes).
    #[error("unsupported tlv form")]
    Unsupported,
}

/// The tag and header length of the element at the start of `bytes`, and
/// the length of its value: enough to know how much more to read.
pub fn header(bytes: &[u8]) -> Result<(u32, usize, usize), TlvError> {
    let first = *bytes.first().ok_or(TlvError::Truncated)?;
    let mut tag = u32::from(first);
    let mut at = 1;
    if first & 0x1F == 0x1F {
        loop {
            let byte = *bytes.get(at).ok_or(TlvError::Truncated)?;
            tag = (tag << 8) | u32::from(byte);
            at += 1;
            if byte & 0x80 == 0 {
                break;
            }
            if at >= 3 {
                return Err(TlvError::Unsupported);
            }
        }
    }
    let length_byte = *bytes.get(at).ok_or(TlvError::Truncated)?;
    at += 1;
    let length = match length_byte {
        0x00..=0x7F => usize::from(length_byte),
        0x81 => {
            let l = *bytes.get(at).ok_or(TlvError::Truncated)?;
            at += 1;
            usize::from(l)
        }
        0x82 => {
            let (Some(hi), Some(lo)) = (bytes.get(at), bytes.get(at + 1)) else {
                return Err(TlvError::Truncated);
            };
            at += 2;
            usize::from(u16::from_be_bytes([*hi, *lo]))
        }
        _ => return Err(TlvError::Unsupported),
    };
    Ok((tag, at, length))
}

/// Parses the element at the start of `bytes`; returns it and the rest.
pub fn parse(bytes: &[u8]) -> Result<(Tlv<'_>, &[u8]), TlvError> {
    let (tag, header_len, length) = header(bytes)?;
    let end = header_len.checked_add(length).ok_or(TlvError::Truncated)?;
    if bytes.len() < end {
        return Err(TlvError::Truncated);
    }
    Ok((
        Tlv {
            tag,
            value: &bytes[header_len..end],
        },
        &bytes[end..],
    ))
}

/// Parses a sequence of elements (a constructed value). Trailing `FF` or
/// `00` padding, as card files are allocated larger than their content,
/// ends the sequence.
pub fn parse_all(mut bytes: &[u8]) -> Result<Vec<Tlv<'_>>, TlvError> {
    let mut elements = Vec::new();
    while !bytes.is_empty() && !bytes.iter().all(|b| *b == 0xFF || *b == 0x00) {
        let (element, rest) = parse(bytes)?;
        elements.push(element);
        bytes = rest;
    }
    Ok(elements)
}

/// Encodes one element (for the simulator): tag bytes, then the shortest
/// length form.
pub fn encode(tag: u32, value: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = tag
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if out.is_empty() {
        out.push(0);
    }
    match value.len() {
        n @ 0..=0x7F => out.push(n as u8),
        n @ 0x80..=0xFF => out.extend([0x81, n as u8]),
        n => out.extend([0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_tags_and_lengths() {
        let inner = [
            encode(0xDF22, "大船渡 太郎".as_bytes()),
            encode(0xDF25, b"1"),
        ]
        .concat();
        let outer = encode(0xFF20, &inner);
        let Ok((element, rest)) = parse(&outer) else {
            panic!("parses");
        };
        assert_eq!(element.tag, 0xFF20);
        assert!(rest.is_empty());
        let children = parse_all(element.value).unwrap_or_default();
        assert_eq!(children.len(), 2);
        assert_eq!(children[0].tag, 0xDF22);
        assert_eq!(std::str::from_utf8(children[0].value), Ok("大船渡 太郎"));
        let long = encode(0xDF23, &[b'a'; 300]);
        assert_eq!(&long[..5], &[0xDF, 0x23, 0x82, 0x01, 0x2C]);
        assert_eq!(parse(&long).map(|(t, _)| t.value.len()), Ok(300));
        assert_eq!(parse(&long[..100]).err(), Some(TlvError::Truncated));
        assert_eq!(parse(&[0xDF]).err(), Some(TlvError::Truncated));
        assert_eq!(parse(&[0x10, 0x80]).err(), Some(TlvError::Unsupported));
        assert_eq!(
            parse_all(&[0x10, 0x01, 0x41, 0xFF, 0xFF]).map(|v| v.len()),
            Ok(1)
        );
    }

    proptest::proptest! {
        /// Arbitrary card bytes never panic the parser, and what parses
        /// re-encodes to the bytes it came from when they were minimal.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..600)) {
            let _ = parse_all(&bytes);
            let _ = header(&bytes);
            if let Ok((element, rest)) = parse(&bytes) {
                proptest::prop_assert!(element.value.len() + rest.len() < bytes.len());
            }
        }

        #[test]
        fn encode_then_parse(tag in proptest::sample::select(vec![0x10u32, 0xDF22, 0xFF20, 0xC1]),
                             value in proptest::collection::vec(proptest::num::u8::ANY, 0..400)) {
            let encoded = encode(tag, &value);
            let (element, rest) = parse(&encoded).map_err(|e| proptest::test_runner::TestCaseError::fail(e.to_string()))?;
            proptest::prop_assert_eq!(element.tag, tag);
            proptest::prop_assert_eq!(element.value, value.as_slice());
            proptest::prop_assert!(rest.is_empty());
        }
    }
}
