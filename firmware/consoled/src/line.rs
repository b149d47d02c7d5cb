//! The console's event loop on one serial line: bytes and time into the session, its output
//! onto the line, its commands to [`crate::work`], and the line reopened when it hangs up.
//!
//! One session lives as long as the service: a line that hangs up and comes back (the cable
//! pulled and plugged in, the host port closed and opened) ends the login and drops what was
//! half typed. The count of wrong PINs is the station's ([`crate::pin_tries`]): reopening the
//! port, restarting the service, another line or a power cycle buys no extra tries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_lite::{AsyncReadExt as _, AsyncWriteExt as _, future};
use smol::Async;
use stagebox_console::command::Command;
use stagebox_console::session::{Console, ConsoleConfig, ConsoleEvent, Reply};

use crate::pin_tries::{BootClock, LockedTries};
use crate::serial::{self, BREAK_BYTE};
use crate::work::{Live, Station};

/// A write the line does not take within this long means nobody is draining it.
const WRITE_LIMIT: Duration = Duration::from_secs(10);
/// How long a line that will not open waits before the next try.
const REOPEN_AFTER: Duration = Duration::from_secs(1);
/// A login ends after this long without a key.
const IDLE_LOGOUT: Duration = Duration::from_secs(600);

#[derive(Debug)]
pub struct LineOptions {
    pub port: PathBuf,
    pub baud: u32,
    pub pin_file: PathBuf,
    pub station: Station,
}

/// The settings the session takes from the station's files.
fn console_config(opts: &LineOptions) -> ConsoleConfig {
    let doc = std::fs::read_to_string(&opts.station.config)
        .ok()
        .and_then(|t| t.parse::<toml_edit::DocumentMut>().ok());
    let station = doc
        .as_ref()
        .and_then(|d| d.get("station")?.get("id")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "stagebox".into());
    let read_without_pin = doc
        .as_ref()
        .and_then(|d| d.get("console")?.get("read_without_pin")?.as_bool())
        .unwrap_or(false);
    let verifier = match crate::pin_file::load(&opts.pin_file) {
        Ok(v) => v,
        Err(e) => {
            log::error!("console PIN: {e:#}; nothing that needs the PIN can run");
            None
        }
    };
    if verifier.is_none() {
        log::warn!(
            "no console PIN at {}: it is made at first boot (stagebox-console --make-pin)",
            opts.pin_file.display()
        );
    }
    ConsoleConfig {
        station,
        verifier,
        read_without_pin,
        idle_logout: IDLE_LOGOUT,
    }
}

/// Serves the console on `opts.port` until the process is stopped.
pub fn serve(opts: LineOptions) -> Result<()> {
    let mut console = Console::new(Instant::now(), console_config(&opts));
    let station = Arc::new(opts.station.clone());
    let (replies_tx, replies_rx) = async_channel::bounded::<(u64, Reply)>(64);
    let mut running: HashMap<u64, Arc<AtomicBool>> = HashMap::new();
    let tries_path = crate::pin_tries::path_for(&opts.pin_file);
    smol::block_on(async {
        let mut last_error = String::new();
        loop {
            let file = match serial::open(&opts.port, opts.baud) {
                Ok(f) => f,
                Err(e) => {
                    let said = e.to_string();
                    if said != last_error {
                        log::warn!("{}: {said}; trying again every second", opts.port.display());
                        last_error = said;
                    }
                    smol::Timer::after(REOPEN_AFTER).await;
                    continue;
                }
            };
            last_error.clear();
            log::info!("console on {} at {} baud", opts.port.display(), opts.baud);
            let port = match Async::new(file) {
                Ok(p) => p,
                Err(e) => {
                    log::error!("{}: {e}", opts.port.display());
                    smol::Timer::after(REOPEN_AFTER).await;
                    continue;
                }
            };
            let mut session = LineSession {
                console: &mut console,
                station: &station,
                replies_tx: &replies_tx,
                replies_rx: &replies_rx,
                running: &mut running,
                tries_path: &tries_path,
            };
            let why = session.run(port).await;
            log::info!("{}: {why}; the login ended", opts.port.display());
            session.hung_up();
            smol::Timer::after(REOPEN_AFTER).await;
        }
    })
}

/// One opening of the line.
struct LineSession<'a> {
    console: &'a mut Console,
    station: &'a Arc<Station>,
    replies_tx: &'a async_channel::Sender<(u64, Reply)>,
    replies_rx: &'a async_channel::Receiver<(u64, Reply)>,
    running: &'a mut HashMap<u64, Arc<AtomicBool>>,
    /// The station's wrong-PIN count, shared with its other lines.
    tries_path: &'a std::path::Path,
}

enum Wake {
    Read(std::io::Result<usize>),
    Reply(u64, Reply),
    Timer,
}

impl LineSession<'_> {
    /// Runs until the line hangs up; says why.
    async fn run(&mut self, mut port: Async<std::fs::File>) -> String {
        let mut buf = [0u8; 1024];
        loop {
            self.events();
            while let Some(out) = self.console.poll_output() {
                let wrote = future::or(async { Some(port.write_all(&out).await) }, async {
                    smol::Timer::after(WRITE_LIMIT).await;
                    None
                })
                .await;
                match wrote {
                    Some(Ok(())) => {}
                    Some(Err(e)) => return format!("writing: {e}"),
                    None => return "nobody is reading the line".into(),
                }
            }
            let deadline = self.console.poll_timeout();
            let replies = self.replies_rx;
            let wake = future::or(
                future::or(async { Wake::Read(port.read(&mut buf).await) }, async {
                    match replies.recv().await {
                        Ok((t, r)) => Wake::Reply(t, r),
                        Err(_) => future::pending().await,
                    }
                }),
                async {
                    match deadline {
                        Some(at) => {
                            smol::Timer::at(at).await;
                        }
                        None => future::pending::<()>().await,
                    }
                    Wake::Timer
                },
            )
            .await;
            let now = Instant::now();
            match wake {
                Wake::Read(Ok(0)) => return "the line hung up".into(),
                Wake::Read(Err(e)) => return format!("the line hung up ({e})"),
                Wake::Read(Ok(n)) => self.with_station_tries(now, |console| {
                    let mut rest = &buf[..n];
                    while let Some(at) = rest.iter().position(|b| *b == BREAK_BYTE) {
                        console.handle_bytes(now, &rest[..at]);
                        // A break (or a NUL in garbage): the line is not to be trusted.
                        console.handle_line_reset();
                        rest = &rest[at + 1..];
                    }
                    console.handle_bytes(now, rest);
                }),
                Wake::Reply(ticket, reply) => {
                    if matches!(reply, Reply::Done(_)) {
                        self.running.remove(&ticket);
                    }
                    self.console.handle_reply(ticket, reply);
                }
                Wake::Timer => self.with_station_tries(now, |c| c.handle_timeout(now)),
            }
        }
    }

    /// Runs `f` (input that may hold a PIN) with the station's wrong-PIN count: read and
    /// locked before, written back after if a try changed it. Where the count cannot be kept
    /// (the file will not open), this line's own count still holds, and the log says why.
    fn with_station_tries(&mut self, now: Instant, f: impl FnOnce(&mut Console)) {
        if self.console.pin_tries(now).is_none() {
            return f(self.console);
        }
        let clock = BootClock::read();
        let locked = match LockedTries::open(self.tries_path, &clock) {
            Ok(l) => Some(l),
            Err(e) => {
                log::error!("{}: {e}", self.tries_path.display());
                None
            }
        };
        if let Some(l) = &locked {
            self.console.handle_pin_tries(now, l.tries());
        }
        f(self.console);
        if let (Some(l), Some(tries)) = (locked, self.console.pin_tries(now))
            && let Err(e) = l.store(tries, &clock)
        {
            log::error!("{}: {e}", self.tries_path.display());
        }
    }

    /// The line went away: the session forgets the login and what was half done, and the
    /// running command is told to stop; what was for the line is dropped.
    fn hung_up(&mut self) {
        self.console.handle_line_reset();
        self.events();
        let _ = self.console.poll_output();
    }

    /// Hands the session's requests to the work, and its audit lines to the log.
    fn events(&mut self) {
        while let Some(event) = self.console.poll_event() {
            match event {
                ConsoleEvent::Run { ticket, command } => self.start(ticket, command),
                ConsoleEvent::Stop { ticket } => {
                    if let Some(flag) = self.running.get(&ticket) {
                        flag.store(true, Ordering::Relaxed);
                    }
                }
                ConsoleEvent::Audit(text) => log::warn!("{text}"),
            }
        }
    }

    fn start(&mut self, ticket: u64, command: Command) {
        match command {
            // A push or fetch comes in thousands of pieces.
            Command::Push(_) | Command::Fetch { .. } => {
                log::debug!("console command: {}", describe(&command))
            }
            _ => log::info!("console command: {}", describe(&command)),
        }
        let stop = Arc::new(AtomicBool::new(false));
        self.running.insert(ticket, stop.clone());
        let live = Live {
            ticket,
            replies: self.replies_tx.clone(),
            stop,
        };
        let station = self.station.clone();
        smol::spawn(async move {
            let result = station.execute(command, &live).await;
            let _ = live.replies.send((ticket, Reply::Done(result))).await;
        })
        .detach();
    }
}

/// A command for the log: its words, never a secret or a pushed piece's bytes.
fn describe(command: &Command) -> String {
    match command {
        Command::Push(c) => format!("update push ({} bytes at {})", c.data.len(), c.offset),
        Command::Fetch { offset, .. } => format!("support-bundle fetch at {offset}"),
        other => stagebox_console::command::spec_of(other).words.join(" "),
    }
}
