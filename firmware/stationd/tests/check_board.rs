//! `stationd --check-board` as a technician runs it: the report says what works and names
//! what does not (the Pi model, the ALSA devices, the GPIO lines, config.txt), and the exit
//! code says whether everything passed.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn run(args: &[&str], alsa_conf: Option<&std::path::Path>) -> (i32, String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stationd"));
    cmd.args(args);
    if let Some(conf) = alsa_conf {
        cmd.env("ALSA_CONFIG_PATH", conf);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_sim_board_passes() {
    let (code, out, _) = run(&["--check-board", "--board", "sim"], None);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all checks passed"), "{out}");
}

#[test]
fn a_pi_profile_off_the_pi_says_what_is_missing() {
    // ALSA devices named as the profile names them, opening over the null plugin: the audio
    // checks pass, with the profile's channel count.
    let dir = std::env::temp_dir().join(format!("stagebox-check-board-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let conf = dir.join("asound.conf");
    std::fs::write(
        &conf,
        "pcm.stagebox_capture { type null }\npcm.stagebox_playback { type null }\n",
    )
    .unwrap();
    let (code, out, _) = run(
        &["--check-board", "--board", "pi4-respeaker-2mic"],
        Some(&conf),
    );
    assert_eq!(code, 1, "{out}");
    let line = |start: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?} in\n{out}"))
            .to_string()
    };
    assert!(
        line("ok    capture stagebox_capture (2 ch").ends_with("opens"),
        "{out}"
    );
    assert!(
        line("ok    playback stagebox_playback").ends_with("opens"),
        "{out}"
    );
    // Not a Pi: the model, the GPIO and config.txt fail, naming what they wanted.
    assert!(
        line("FAIL  model").contains("Raspberry Pi 4 Model B"),
        "{out}"
    );
    assert!(
        line("FAIL  buttons and LEDs").contains("PTT GPIO 17, hand GPIO 12, apa102"),
        "{out}"
    );
    assert!(
        line("FAIL  config.txt").contains("dtoverlay=seeed-2mic-voicecard"),
        "{out}"
    );
    assert!(out.contains("problem(s)"), "{out}");

    // Without those devices the audio checks fail and say so.
    std::fs::write(&conf, "").unwrap();
    let (_, out, _) = run(
        &["--check-board", "--board", "pi5-respeaker-4mic"],
        Some(&conf),
    );
    assert!(
        out.contains("FAIL  capture stagebox_capture (4 ch, 48 kHz, S16)"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_gpio_chip_that_is_not_there_is_named() {
    let dir = std::env::temp_dir().join(format!("stagebox-check-cdev-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let profile = dir.join("board.toml");
    std::fs::write(
        &profile,
        r#"name = "custom"
description = "A Linux board with two buttons and an LED"
[audio]
backend = "sim"
capture_device = "default"
playback_device = "default"
capture_channels = 1
mic_channels = [0]
[gpio]
backend = "cdev"
chip_label = "gpio-board-x"
[buttons]
ptt = { pin = 4, pull = "up", active_low = true }
hand = { pin = 5, pull = "up", active_low = true }
[leds]
kind = "gpio"
pin = 6
"#,
    )
    .unwrap();
    let (code, out, _) = run(
        &["--check-board", "--board", profile.to_str().unwrap()],
        None,
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("FAIL  buttons and LEDs: PTT GPIO 4, hand GPIO 5, gpio LEDs: buttons (GPIO chip \"gpio-board-x\")"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_board_lists_the_known_ones() {
    let (code, _, err) = run(&["--check-board", "--board", "pi9-laser"], None);
    assert_eq!(code, 2);
    assert!(
        err.contains("unknown board \"pi9-laser\"") && err.contains("pi5-usb-gpio"),
        "{err}"
    );
}
