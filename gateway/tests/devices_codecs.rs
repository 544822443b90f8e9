//! Property tests of every device codec: encode/decode round trips, and
//! garbage or truncated input never panics, always makes progress and
//! resynchronises. Plus golden frames quoted in `docs/devices/*.md`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use madoguchi_gateway::devices::board::registers::BoardDisplay;
use madoguchi_gateway::devices::panel::codec::PanelCodec;
use madoguchi_gateway::devices::panel::protocol::{Led, PanelLine};
use madoguchi_gateway::devices::printer::codec::{DeviceCodec, HostCodec};
use madoguchi_gateway::devices::printer::escpos::{
    Command, JobId, Parsed, PrinterReply, TicketContent, XON, decode_reply, encode_ticket,
    parse_command,
};
use madoguchi_gateway::devices::terminal::codec::ZvtCodec;
use madoguchi_gateway::devices::terminal::frame::{
    Apdu, CardData, Decoded, Frame, Reply, Request, ResultCode, SaleRef, TransactionResult, Yen,
    decode_frame, encode_block,
};
use proptest::prelude::*;
use tokio_util::codec::Decoder;

/// Feeds `bytes` to `codec` in the given chunk sizes, collecting items.
fn decode_chunked<D: Decoder>(codec: &mut D, bytes: &[u8], chunks: &[usize]) -> Vec<D::Item>
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut sizes = chunks.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap_or(&1)).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(item) = codec.decode(&mut buf).unwrap() {
            out.push(item);
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------- printer

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        proptest::collection::vec(0x20u8..=0xFF, 1..20).prop_map(Command::Text),
        Just(Command::LineFeed),
        Just(Command::Initialize),
        any::<u8>().prop_map(Command::Align),
        any::<u8>().prop_map(Command::Size),
        any::<u8>().prop_map(Command::KanjiCode),
        Just(Command::KanjiOn),
        Just(Command::KanjiOff),
        prop_oneof![Just(0u8), Just(1), Just(48), Just(49)]
            .prop_map(|mode| Command::Cut { mode, feed: None }),
        (prop_oneof![Just(65u8), Just(66)], any::<u8>()).prop_map(|(mode, n)| Command::Cut {
            mode,
            feed: Some(n)
        }),
        (
            any::<u8>(),
            any::<u8>(),
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(cn, fn_code, params)| Command::Symbol {
                cn,
                fn_code,
                params
            }),
        proptest::array::uniform4(32u8..=126).prop_map(|id| Command::RequestProcessId(JobId(id))),
        any::<u8>().prop_map(Command::RealtimeStatus),
        Just(Command::ClearBuffers),
        (any::<u8>(), any::<u8>(), any::<u8>()).prop_map(|(pin, on, off)| Command::DrawerKick {
            pin,
            on,
            off
        }),
    ]
}

fn reply() -> impl Strategy<Value = PrinterReply> {
    prop_oneof![
        any::<u8>().prop_map(|b| PrinterReply::Status((b & !0x93) | 0x12)),
        proptest::array::uniform4(32u8..=126).prop_map(|id| PrinterReply::ProcessId(JobId(id))),
        (any::<u8>(), proptest::array::uniform3(any::<u8>())).prop_map(|(a, rest)| {
            PrinterReply::AutoStatus([
                (a & !0x93) | 0x10,
                rest[0] & 0x6F,
                rest[1] & 0x6F,
                rest[2] & 0x6F,
            ])
        }),
        Just(PrinterReply::Xon),
        Just(PrinterReply::Xoff),
    ]
}

proptest! {
    #[test]
    fn escpos_commands_round_trip(commands in proptest::collection::vec(command(), 1..12),
                                  chunks in proptest::collection::vec(1usize..9, 1..5)) {
        let mut bytes = Vec::new();
        for c in &commands {
            c.encode(&mut bytes);
        }
        // Text runs merge when adjacent; compare re-encoded bytes instead.
        let decoded = decode_chunked(&mut DeviceCodec, &bytes, &chunks);
        let mut again = Vec::new();
        for c in &decoded {
            c.encode(&mut again);
        }
        prop_assert_eq!(again, bytes);
        prop_assert!(decoded.iter().all(|c| !matches!(c, Command::Unknown(_))));
    }

    #[test]
    fn escpos_parser_never_panics_and_progresses(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match parse_command(rest) {
                Parsed::Item(_, n) => { prop_assert!(n >= 1 && n <= rest.len()); rest = &rest[n..]; }
                Parsed::Incomplete => break,
            }
        }
    }

    #[test]
    fn printer_replies_round_trip(replies in proptest::collection::vec(reply(), 1..10),
                                  chunks in proptest::collection::vec(1usize..9, 1..5)) {
        let mut bytes = Vec::new();
        for r in &replies {
            r.encode(&mut bytes);
        }
        let decoded = decode_chunked(&mut HostCodec::default(), &bytes, &chunks);
        prop_assert_eq!(decoded, replies);
    }

    #[test]
    fn printer_replies_resync_after_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..100),
                                            last in reply()) {
        // A run of XON bytes cannot continue any partial pattern.
        let mut bytes = garbage.clone();
        bytes.extend_from_slice(&[XON; 7]);
        last.encode(&mut bytes);
        let decoded = decode_chunked(&mut HostCodec::default(), &bytes, &[3]);
        prop_assert_eq!(decoded.last(), Some(&last));
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            match decode_reply(rest) {
                madoguchi_gateway::devices::printer::escpos::DecodedReply::Reply(_, n) => rest = &rest[n..],
                madoguchi_gateway::devices::printer::escpos::DecodedReply::Skip => rest = &rest[1..],
                madoguchi_gateway::devices::printer::escpos::DecodedReply::Incomplete => break,
            }
        }
    }

    #[test]
    fn tickets_encode_to_parseable_escpos(number in "[A-E][0-9]{3}", ahead in 0u32..500, wait in 0u32..300,
                                          url in "https://[a-z]{1,20}/t/[A-Za-z0-9]{1,40}") {
        let t = TicketContent {
            heading: "大船渡市役所".into(), number, category: "子ども・子育て".into(),
            counter_colour: "緑".into(), people_ahead: ahead, estimated_wait_minutes: wait,
            issued_at: "2026-11-25 09:12".into(), status_url: url,
        };
        let bytes = encode_ticket(&t, JobId::from_sequence(7)).unwrap();
        let decoded = decode_chunked(&mut DeviceCodec, &bytes, &[5]);
        prop_assert!(decoded.iter().all(|c| !matches!(c, Command::Unknown(_))));
        prop_assert!(matches!(decoded.last(), Some(Command::RequestProcessId(_))));
    }
}

// ------------------------------------------------------------------ board

proptest! {
    #[test]
    fn board_display_round_trips_through_registers(prefix in proptest::option::of(prop::sample::select(vec!['A','B','C','D','E','F','H','L','P','U'])),
                                                   number in proptest::option::of(0u16..=9999),
                                                   blink: bool) {
        let d = BoardDisplay { prefix, number, blink, chime: false };
        let back = BoardDisplay::from_registers(&d.registers().unwrap());
        prop_assert_eq!(back, d);
    }

    #[test]
    fn board_ticket_parse_never_panics(s in "\\PC{0,8}") {
        let _ = BoardDisplay::ticket(&s);
    }
}

// ------------------------------------------------------------------ panel

fn panel_line() -> impl Strategy<Value = PanelLine> {
    prop_oneof![
        (1u8..=32, any::<u16>()).prop_map(|(button, counter)| PanelLine::Press { button, counter }),
        any::<u16>().prop_map(|boot| PanelLine::Hello { boot }),
        (1u8..=32, any::<u16>()).prop_map(|(button, counter)| PanelLine::Ack { button, counter }),
        (
            1u8..=32,
            prop_oneof![Just(Led::Off), Just(Led::On), Just(Led::Blink)]
        )
            .prop_map(|(button, led)| PanelLine::SetLed { button, led }),
    ]
}

proptest! {
    #[test]
    fn panel_lines_round_trip(lines in proptest::collection::vec(panel_line(), 1..10),
                              chunks in proptest::collection::vec(1usize..9, 1..5)) {
        let bytes: Vec<u8> = lines.iter().flat_map(|l| l.encode().into_bytes()).collect();
        let decoded: Vec<PanelLine> = decode_chunked(&mut PanelCodec::default(), &bytes, &chunks)
            .into_iter().map(|r| r.unwrap()).collect();
        prop_assert_eq!(decoded, lines);
    }

    #[test]
    fn panel_resyncs_after_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..200), line in panel_line()) {
        let mut bytes = garbage;
        bytes.push(b'\n');
        bytes.extend_from_slice(line.encode().as_bytes());
        let decoded = decode_chunked(&mut PanelCodec::default(), &bytes, &[7]);
        prop_assert_eq!(decoded.last(), Some(&Ok(line)));
    }
}

// --------------------------------------------------------------- terminal

fn yen() -> impl Strategy<Value = Yen> {
    (1u64..=999_999_999_999).prop_map(|n| Yen::new(n).unwrap())
}

fn sale_ref() -> impl Strategy<Value = SaleRef> {
    "[A-Za-z0-9_-]{1,32}".prop_map(|s| SaleRef::parse(&s).unwrap())
}

fn result_code() -> impl Strategy<Value = ResultCode> {
    prop::sample::select(vec![
        ResultCode::Approved,
        ResultCode::Declined,
        ResultCode::Aborted,
        ResultCode::InProgress,
        ResultCode::NotFound,
        ResultCode::Unknown,
    ])
}

fn terminal_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        Just(Reply::Ok),
        any::<u8>().prop_map(Reply::Refused),
        Just(Reply::Completion),
        (
            result_code(),
            sale_ref(),
            proptest::option::of(yen()),
            proptest::option::of("[A-Z0-9]{1,8}"),
            proptest::collection::vec(any::<u8>(), 0..30),
            proptest::option::of(any::<u8>())
        )
            .prop_map(
                |(result, reference, amount, auth_code, pan, brand)| Reply::Result(
                    TransactionResult {
                        result,
                        reference,
                        amount,
                        auth_code,
                        card: CardData {
                            masked_pan: pan.clone(),
                            receipt: pan,
                            brand
                        },
                    }
                )
            ),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (yen(), sale_ref()).prop_map(|(amount, reference)| Request::Sale { amount, reference }),
        (yen(), sale_ref()).prop_map(|(amount, reference)| Request::Refund { amount, reference }),
        Just(Request::Abort),
        sale_ref().prop_map(|reference| Request::StatusEnquiry { reference }),
    ]
}

proptest! {
    #[test]
    fn zvt_blocks_round_trip(apdus in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..5),
                             chunks in proptest::collection::vec(1usize..17, 1..5)) {
        let mut bytes = Vec::new();
        for a in &apdus {
            encode_block(a, &mut bytes);
        }
        let decoded = decode_chunked(&mut ZvtCodec::default(), &bytes, &chunks);
        let expected: Vec<Frame> = apdus.into_iter().map(Frame::Block).collect();
        prop_assert_eq!(decoded, expected);
    }

    #[test]
    fn zvt_requests_and_replies_round_trip(req in request(), rep in terminal_reply()) {
        let apdu = Apdu::parse(&req.to_apdu().encode()).unwrap();
        prop_assert_eq!(Request::from_apdu(&apdu).unwrap(), req);
        let apdu = Apdu::parse(&rep.to_apdu().encode()).unwrap();
        prop_assert_eq!(Reply::from_apdu(&apdu).unwrap(), rep);
    }

    #[test]
    fn zvt_decoder_never_panics_and_resyncs(garbage in proptest::collection::vec(any::<u8>(), 0..200),
                                            apdu in proptest::collection::vec(any::<u8>(), 0..40)) {
        let mut rest = &garbage[..];
        while !rest.is_empty() {
            match decode_frame(rest) {
                Decoded::Frame(_, n) | Decoded::Skip(n) => { prop_assert!(n >= 1 && n <= rest.len()); rest = &rest[n..]; }
                Decoded::Incomplete => break,
            }
        }
        // A block opened by the garbage can swallow one good block (its
        // CRC then fails and the sender retransmits after the NAK), never two.
        let mut bytes = garbage;
        encode_block(&apdu, &mut bytes);
        encode_block(&apdu, &mut bytes);
        let decoded = decode_chunked(&mut ZvtCodec::default(), &bytes, &[5]);
        prop_assert!(decoded.contains(&Frame::Block(apdu)), "{decoded:?}");
    }

    #[test]
    fn apdu_and_field_parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
        if let Ok(apdu) = Apdu::parse(&bytes) {
            let _ = Request::from_apdu(&apdu);
            let _ = Reply::from_apdu(&apdu);
        }
    }
}

// ------------------------------------------------------- golden frames

#[test]
fn golden_frames_quoted_in_the_docs() {
    // Terminal: a sale of ¥300 under reference R1-0001.
    let sale = Request::Sale {
        amount: Yen::new(300).unwrap(),
        reference: SaleRef::parse("R1-0001").unwrap(),
    };
    let mut block = Vec::new();
    encode_block(&sale.to_apdu().encode(), &mut block);
    assert_eq!(
        hex(&block),
        "10 02 06 01 10 10 04 00 00 00 00 03 00 2A 07 52 31 2D 30 30 30 31 10 03 3A F6"
    );
    let mut ok = Vec::new();
    encode_block(&Reply::Ok.to_apdu().encode(), &mut ok);

    // Panel.
    assert_eq!(
        PanelLine::Press {
            button: 2,
            counter: 17
        }
        .encode(),
        "P,2,17*64\n"
    );
    assert_eq!(
        PanelLine::Ack {
            button: 2,
            counter: 17
        }
        .encode(),
        "A,2,17*75\n"
    );
    assert_eq!(
        PanelLine::SetLed {
            button: 2,
            led: Led::Blink
        }
        .encode(),
        "L,2,2*4C\n"
    );

    // Board registers for A012.
    assert_eq!(
        BoardDisplay::ticket("A012").unwrap().registers().unwrap(),
        [12, 0x77, 0x0002]
    );

    // Printer: the head of a ticket and its confirmation request.
    let t = TicketContent {
        heading: "市民課".into(),
        number: "A012".into(),
        category: "住民票".into(),
        counter_colour: "青".into(),
        people_ahead: 3,
        estimated_wait_minutes: 15,
        issued_at: "2026-11-25 09:12".into(),
        status_url: "https://m.example/t/A012".into(),
    };
    let bytes = encode_ticket(&t, JobId::from_sequence(1)).unwrap();
    assert_eq!(
        hex(&bytes[..24]),
        "1B 40 1C 43 01 1B 61 01 1D 21 00 1C 26 8E 73 96 AF 89 DB 1C 2E 0A 1D 21"
    );
    assert_eq!(
        hex(&bytes[bytes.len() - 15..]),
        "1D 56 42 03 1D 28 48 06 00 30 30 30 30 30 31"
    );
    assert_eq!(hex(&ok), "10 02 80 00 00 10 03 5B ED");
}
