//! # stagebox-stationd — the station daemon
//!
//! Plumbing around the sans-IO cores: it reads the configuration, opens the board's devices,
//! runs the real-time [`audio_thread`] (capture → encode, decode → mix → playback) and the
//! smol network task ([`net`]) that carries signaling over WebSocket + TLS ([`ws`], [`tls`])
//! and media over UDP, and feeds the [`stagebox_core::Station`] and
//! [`stagebox_core::media::MediaLink`] cores with what happens. The two talk only through
//! fixed-capacity lock-free queues and atomics, so the audio path never waits on the network.
//!
//! Updates and the boot health check ([`updater`]) run beside the network loop: the
//! `stagebox_core::update` and `stagebox_core::health` cores decide, jobs on their own threads
//! fetch over HTTPS ([`https`], trusted as the gateway is), run RAUC and reboot.
//!
//! Where time and I/O enter: `net` reads the clock and passes `now` to the cores; `ws` and
//! the UDP socket move bytes; the audio thread is paced by the capture device.

pub mod audio_thread;
pub mod check_board;
pub mod config;
pub mod config_mistake;
pub mod control;
pub mod devices;
pub mod hardware;
pub mod https;
pub mod input;
pub mod net;
pub mod notify;
pub mod realtime;
pub mod report;
pub mod system_settings;
pub mod time_floor;
pub mod tls;
pub mod udp;
pub mod updater;
pub mod ws;
