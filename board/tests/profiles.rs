//! Every built-in board profile, validated one by one: it loads, it is what its name says,
//! and the files it names agree with it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use stagebox_board::{
    AudioBackend, BoardProfile, GpioBackend, LedProfile, builtin_file, builtin_names,
};

fn check(name: &str) {
    let p = BoardProfile::load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(p.name, name);
    p.validate().unwrap();
    if name == "sim" {
        assert_eq!(p.gpio.backend, GpioBackend::Sim);
        assert_eq!(p.leds, LedProfile::Terminal);
        return;
    }
    let soc = p.soc.as_ref().expect("a Pi build has a SoC");
    assert!(name.starts_with(&format!("{}-", soc.name)));
    assert_eq!(p.gpio.backend, GpioBackend::Rppal);
    assert_eq!(p.audio.backend, AudioBackend::Alsa);
    // Buttons are wired to ground with pull-ups, and config.txt sets those pulls at boot
    // (before the daemon runs, so a floating line never reads as a press).
    for b in [&p.buttons.ptt, &p.buttons.hand] {
        assert!(b.active_low);
        let pulled = p.system.config_txt.iter().any(|l| {
            l.starts_with("gpio=")
                && l.ends_with("=ip,pu")
                && l["gpio=".len()..l.len() - "=ip,pu".len()]
                    .split(',')
                    .any(|n| n == b.pin.to_string())
        });
        assert!(pulled, "{name}: no config.txt pull-up for GPIO {}", b.pin);
    }
    // The ALSA configuration exists and, where it fixes the card's channels, captures the
    // profile's channel count (elsewhere `plug` adapts the card to it).
    let conf_path = p.audio.asound_conf.as_deref().expect("asound.conf");
    let conf = builtin_file(conf_path).unwrap();
    assert!(
        !conf.contains("channels ")
            || conf.contains(&format!("channels {}", p.audio.capture_channels)),
        "{name}: {conf_path} does not capture {} channels",
        p.audio.capture_channels
    );
    assert!(conf.contains("rate 48000") || conf_path.ends_with("usb.conf"));
    // Beamforming needs the geometry of every microphone.
    assert!(
        p.audio.mic_channels.len() == 1
            || p.audio.mic_geometry_mm.len() == p.audio.mic_channels.len()
    );
    // LEDs the hardware can drive.
    match &p.leds {
        LedProfile::Apa102 { count, .. } => {
            assert!(p.system.config_txt.iter().any(|l| l == "dtparam=spi=on"));
            assert!(*count == 3 || *count == 12);
        }
        LedProfile::Pwm { pin, .. } => {
            assert!(soc.pwm_channel(*pin).is_some());
            assert!(
                p.system
                    .config_txt
                    .iter()
                    .any(|l| l.starts_with(&format!("dtoverlay=pwm,pin={pin},")))
            );
        }
        other => panic!("{name}: unexpected LEDs {other:?}"),
    }
    // What every Pi build installs.
    assert!(
        builtin_file("udev/60-stagebox.rules")
            .unwrap()
            .contains("spidev")
    );
    let unit = builtin_file("systemd/stagebox-stationd.service").unwrap();
    assert!(
        unit.contains("Type=notify") && unit.contains("WatchdogSec=") && unit.contains("Restart=")
    );
}

macro_rules! profile_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        $(#[test] fn $test() { check($name); })*

        #[test]
        fn every_built_in_profile_has_its_test() {
            let tested = [$($name),*];
            let all: Vec<String> = builtin_names().collect();
            assert_eq!(all, tested, "add the new profile to this file");
        }
    };
}

profile_tests! {
    sim => "sim",
    pi4_respeaker_2mic => "pi4-respeaker-2mic",
    pi4_respeaker_4mic => "pi4-respeaker-4mic",
    pi4_usb_gpio => "pi4-usb-gpio",
    pi5_respeaker_2mic => "pi5-respeaker-2mic",
    pi5_respeaker_4mic => "pi5-respeaker-4mic",
    pi5_usb_gpio => "pi5-usb-gpio",
    zero2w_respeaker_2mic => "zero2w-respeaker-2mic",
    zero2w_respeaker_4mic => "zero2w-respeaker-4mic",
    zero2w_usb_gpio => "zero2w-usb-gpio",
    cm4_respeaker_2mic => "cm4-respeaker-2mic",
    cm4_respeaker_4mic => "cm4-respeaker-4mic",
    cm4_usb_gpio => "cm4-usb-gpio",
}
