//! `stagebox-diag shell`: the station's human console, passed through as picocom would
//! (the local terminal raw, keys to the line, the line to the screen; Ctrl-] leaves).

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use rustix::termios::{self, OptionalActions};

/// The key that leaves the shell (Ctrl-], as telnet and picocom's habit).
const LEAVE: u8 = 0x1d;

pub fn run(port_path: &Path) -> Result<()> {
    let name = port_path.to_string_lossy();
    let mut port = serialport::new(name.as_ref(), 115_200)
        .timeout(Duration::from_millis(100))
        .open()
        .with_context(|| format!("opening {name}"))?;
    let mut reader = port.try_clone().context("the port")?;
    let stdin = rustix::stdio::stdin();
    let before = termios::tcgetattr(stdin).ok();
    if let Some(before) = &before {
        let mut raw = before.clone();
        raw.make_raw();
        termios::tcsetattr(stdin, OptionalActions::Now, &raw)?;
    }
    eprint!("stagebox-diag: connected to {name} (Ctrl-] leaves)\r\n");
    let done = Arc::new(AtomicBool::new(false));
    let done_reader = done.clone();
    let screen = std::thread::spawn(move || {
        let mut buf = [0u8; 1024];
        let mut out = std::io::stdout();
        while !done_reader.load(Ordering::Relaxed) {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let _ = out.write_all(&buf[..n]);
                    let _ = out.flush();
                }
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => break,
            }
        }
    });
    // Enter once, so the station shows its prompt.
    let _ = port.write_all(b"\r");
    let mut key = [0u8; 64];
    let result = loop {
        match std::io::stdin().read(&mut key) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                let keys = &key[..n];
                let (send, leave) = match keys.iter().position(|k| *k == LEAVE) {
                    Some(at) => (&keys[..at], true),
                    None => (keys, false),
                };
                if let Err(e) = port.write_all(send) {
                    break Err(e).context("the line (was the cable pulled?)");
                }
                if leave {
                    break Ok(());
                }
            }
            Err(e) => break Err(e.into()),
        }
    };
    done.store(true, Ordering::Relaxed);
    let _ = screen.join();
    if let Some(before) = &before {
        let _ = termios::tcsetattr(stdin, OptionalActions::Now, before);
    }
    eprintln!("\r\nstagebox-diag: left the shell");
    result
}
