//! # stagebox-logging — structured logs for the daemons
//!
//! One line per event on stderr (journald picks it up under systemd): either
//! `  12.345s INFO  stationd::net: connected to wss://…` or, with `json`, an object with
//! `t` (seconds since start), `unix_ms`, `level`, `target` and `msg`. Strings a peer sent go
//! through [`Untrusted`] on their way in.

mod throttle;
mod untrusted;

pub use throttle::Throttle;
pub use untrusted::Untrusted;

use std::io::Write;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

struct Logger {
    start: Instant,
    format: Format,
    level: LevelFilter,
    prefix: String,
}

static LOGGER: OnceLock<Logger> = OnceLock::new();

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let t = self.start.elapsed().as_secs_f64();
        let line = match self.format {
            Format::Text => format!(
                "{t:8.3}s {:<5} {}{}: {}",
                record.level(),
                self.prefix,
                record.target(),
                record.args()
            ),
            Format::Json => {
                let unix_ms = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis());
                serde_json::json!({
                    "t": (t * 1000.0).round() / 1000.0,
                    "unix_ms": unix_ms as u64,
                    "level": record.level().as_str(),
                    "target": record.target(),
                    "station": self.prefix.trim_end_matches(' '),
                    "msg": record.args().to_string(),
                })
                .to_string()
            }
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn flush(&self) {}
}

/// Installs the logger once; later calls are ignored. `prefix` names the process in each
/// line (useful when several stations share a terminal).
pub fn init(format: Format, level: Level, prefix: &str) {
    let logger = LOGGER.get_or_init(|| Logger {
        start: Instant::now(),
        format,
        level: level.to_level_filter(),
        prefix: if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix} ")
        },
    });
    if log::set_logger(logger).is_ok() {
        log::set_max_level(logger.level);
    }
}
