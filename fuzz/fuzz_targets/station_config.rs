//! A station's config file: any text parses or gives an error naming a line; never a panic.
//! Its Wi-Fi and time zone, read on their own, render a supplicant file whose every line is
//! ours (nothing the owner wrote starts a line or a second network).
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stagebox_stationd::config::{Config, ConfigError};
use stagebox_stationd::config_mistake::board_named_in;
use stagebox_stationd::system_settings::{SystemSettings, wpa_supplicant_conf};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match Config::parse(text, Path::new("station.toml")) {
            Ok(cfg) => {
                let _ = cfg.trust();
            }
            Err(ConfigError::Invalid { line, .. }) => assert!(line <= text.lines().count() + 1),
            Err(ConfigError::Read { .. }) => unreachable!("parse reads no file"),
        }
        let _ = board_named_in(text);
        let settings = SystemSettings::from_text(text);
        let _ = settings.summary();
        if let Some(wifi) = &settings.wifi {
            let conf = wpa_supplicant_conf(wifi);
            assert_eq!(conf.matches("network={").count(), 1);
            assert!(conf.lines().count() <= 12);
            for line in conf.lines() {
                let ours = line.starts_with('#')
                    || line == "}"
                    || line.trim_start().split('=').next().is_some_and(|key| {
                        [
                            "ctrl_interface", "update_config", "country", "network", "ssid",
                            "scan_ssid", "key_mgmt", "ieee80211w", "psk",
                        ]
                        .contains(&key)
                    });
                assert!(ours, "{line:?}");
            }
        }
    }
});
