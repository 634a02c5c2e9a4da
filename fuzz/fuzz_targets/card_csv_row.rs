//! Fuzzes the card import's CSV rows: any header and row give an enrollment record or a
//! field-named error that never echoes a card number.
#![no_main]
use cardguard_app::CardRecord;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut lines = text.splitn(2, '\n');
    let (Some(head), Some(row)) = (lines.next(), lines.next()) else { return };
    let cells: Vec<(&str, &str)> = head.split(',').zip(row.split(',')).collect();
    match CardRecord::from_columns(cells.iter().copied()) {
        Ok(_) => {}
        Err(e) => {
            for (_, cell) in &cells {
                if cell.len() >= 12 && cell.bytes().all(|b| b.is_ascii_digit()) {
                    assert!(!e.message.contains(cell), "a cell echoed in {}", e.message);
                }
            }
        }
    }
});
