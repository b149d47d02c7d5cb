//! The owner's configuration on the SD card's boot partition: `stationd --report` writes what
//! it found beside it — the mistake with its line and field, or that all is well — so a
//! hobbyist without a serial cable can read why the station does not start.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

const GOOD: &str = "[station]\nid = \"podium-1\"\ntoken = \"secret-token\"\n\
[server]\ngateway = \"wss://127.0.0.1:9/signal\"\nstage = \"hall\"\n\
pin_sha256 = \"00000000000000000000000000000000000000000000000000000000000000ab\"\n\
[board]\nprofile = \"sim\"\n";

fn check(config: &str, name: &str) -> (i32, String) {
    let dir = std::env::temp_dir().join(format!("stagebox-report-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let toml = dir.join("stagebox.toml");
    let report = dir.join("stagebox-report.txt");
    std::fs::write(&toml, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stationd"))
        .arg("--check-config")
        .arg(&toml)
        .arg("--report")
        .arg(&report)
        .output()
        .unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn a_mistake_is_written_back_with_its_line_and_a_good_file_says_so() {
    let (code, text) = check(&GOOD.replace("\"hall\"", "\"\""), "mistake");
    assert_eq!(code, 2);
    assert!(text.contains("MISTAKE"), "{text}");
    assert!(text.contains("stagebox.toml:6:"), "{text}");
    let (code, text) = check(&GOOD.replace("\"sim\"", "\"pi9-nothing\""), "board");
    assert_eq!(code, 2);
    assert!(text.contains("board.profile"), "{text}");
    let (code, text) = check(GOOD, "good");
    assert_eq!(code, 0);
    assert!(
        text.contains("OK — station podium-1 on stage hall"),
        "{text}"
    );
}
