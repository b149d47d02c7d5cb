//! The technician's console service: the plumbing around `stagebox-console`'s sans-IO
//! session on one serial line, and the work its commands ask of the station.
//!
//! - [`serial`] opens the line (raw 8N1, a break read as NUL).
//! - [`line`] is the event loop: bytes and time into the session, its output onto the line,
//!   its commands to [`work`], and a line that hangs up (the cable pulled, the host port
//!   closed) reopened until it comes back.
//! - [`work`] carries out each command against the station: the daemon's control socket,
//!   the journal, RAUC, `ip`, the configuration file (through `stationd --check-config`).
//! - [`transfer`] keeps a bundle pushed over the line, and the support bundle fetched.
//! - [`pin_file`] makes the station's PIN at first boot and reads its verifier.
//!
//! Time enters in [`line`] (the session's timeouts) and in the live views' pacing in
//! [`work`]; I/O in every module here.

pub mod brought_bundle;
pub mod line;
pub mod pin_file;
pub mod pin_tries;
pub mod probe;
pub mod serial;
pub mod system;
pub mod transfer;
pub mod work;

/// Logs to standard error (the journal, under systemd).
pub fn log_init() {
    stagebox_logging::init(stagebox_logging::Format::Text, log::Level::Info, "console");
}
