//! A station's config file: any text parses or gives an error naming a line; never a panic.
#![no_main]
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use stagebox_stationd::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match Config::parse(text, Path::new("station.toml")) {
            Ok(cfg) => {
                let _ = cfg.trust();
            }
            Err(ConfigError::Invalid { line, .. }) => assert!(line <= text.lines().count() + 1),
            Err(ConfigError::Read { .. }) => unreachable!("parse reads no file"),
        }
    }
});
