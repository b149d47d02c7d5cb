//! # stagebox-stage-server — the reference stage server's plumbing
//!
//! Around the sans-IO [`stagebox_server_core::StageServer`]: the TLS + WebSocket [`gateway`],
//! the UDP media loop and timer (in `main.rs`), the HTTP [`admin`] interface, the
//! [`cert`]ificate and the [`config`] file; update files for stations on the gateway's port
//! ([`updates`]). Every input goes through [`hub::Hub::with_core`], the one place the core
//! lives and the clock is read. A library so that tests and fuzz targets reach the parts that
//! read outside bytes.

pub mod admin;
pub mod cert;
pub mod config;
pub mod gateway;
pub mod hub;
pub mod updates;
