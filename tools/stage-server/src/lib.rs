//! # stagebox-stage-server — the reference stage server's plumbing
//!
//! Around the sans-IO [`stagebox_server_core::StageServer`]: the TLS + WebSocket [`gateway`],
//! the UDP media loop and timer (in `main.rs`), the HTTP [`admin`] interface, the
//! [`cert`]ificate and the [`config`] file; update files for stations on the gateway's port
//! ([`updates`]), the web app for people in browsers ([`web`]) and the moderators' console
//! ([`console_api`] over [`console`]'s sign-ins and the [`accounts`] file). Every input goes through [`hub::Hub::with_core`], the one place the core
//! lives and the clock is read. A library so that tests and fuzz targets reach the parts that
//! read outside bytes.

/// `AsyncWrite` for a wrapper whose `inner` stream is written as is (the wrappers here only
/// change how a connection is read).
macro_rules! write_through_inner {
    ($wrapper:ident) => {
        impl<S: futures_lite::AsyncWrite + Unpin> futures_lite::AsyncWrite for $wrapper<S> {
            fn poll_write(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
            }

            fn poll_flush(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_flush(cx)
            }

            fn poll_close(
                mut self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.inner).poll_close(cx)
            }
        }
    };
}

pub mod accounts;
pub mod admin;
pub mod cert;
pub mod clips;
pub mod config;
pub mod console;
pub mod console_api;
pub mod gateway;
pub mod hub;
pub mod updates;
pub mod web;
