//! docs/leds.md carries the LED language table; it must be the one the code renders.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

const DOC: &str = include_str!("../../../docs/leds.md");

#[test]
fn the_docs_table_is_the_codes_table() {
    let start = "<!-- led-table:start -->\n";
    let end = "<!-- led-table:end -->";
    let from = DOC.find(start).expect("start marker") + start.len();
    let to = DOC.find(end).expect("end marker");
    let expected = stagebox_leds::led_language::table_markdown();
    assert!(
        DOC[from..to] == expected,
        "docs/leds.md's table differs from the code; the code's table is:\n{expected}"
    );
}
