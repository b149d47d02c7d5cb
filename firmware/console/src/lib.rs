//! # stagebox-console — the technician's serial console, sans-IO
//!
//! A technician plugs a USB-serial cable into the station's UART (or a USB cable into its
//! gadget serial port) and types at a prompt, or runs `stagebox-diag`, which speaks machine
//! frames over the same line. This crate is the part that decides, without touching the
//! line, the clock or the daemon:
//!
//! - [`input`] sorts the line's bytes into a person's keys and machine frame lines;
//! - [`frame`] reads and writes machine frames (MCUmgr's SMP over a console: a marker,
//!   base64 of a length-prefixed body, a CRC-16, newline-terminated lines);
//! - [`editor`] is the human mode's line editor (history, completion, VT100 echo);
//! - [`command`] is the command table, the parser and Tab completion;
//! - [`auth`] is the per-station PIN and its rate limit.
//!
//! Time enters as `now` arguments; bytes enter through `handle_*` and leave through what the
//! caller reads back. Every buffer a peer can fill is bounded.

pub mod auth;
pub mod command;
pub mod editor;
pub mod frame;
pub mod input;
pub mod session;
