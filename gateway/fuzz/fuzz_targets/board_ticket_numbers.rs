//! Ticket numbers and register words into board displays (the board line
//! itself is decoded by tokio-modbus, fuzzed upstream).
#![no_main]

use libfuzzer_sys::fuzz_target;
use madoguchi_gateway::devices::board::registers::BoardDisplay;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(display) = BoardDisplay::ticket(text)
    {
        let words = display.registers().expect("accepted displays encode");
        assert!(BoardDisplay::from_registers(&words).same_picture(&display));
    }
    let words: Vec<u16> = data
        .chunks(2)
        .map(|c| u16::from_le_bytes([c[0], *c.get(1).unwrap_or(&0)]))
        .collect();
    let _ = BoardDisplay::from_registers(&words);
});
