//! The station's control socket (and, on the sim board, optionally the keyboard), taking one
//! command per line: diagnostics for the technician's console on every board, and on the sim
//! board what a person's finger and mouth do to a real station.
//!
//! ```text
//! stats  (JSON line)                 update check  (look for an update now)
//! tone  (a test tone, 1 kHz, 2 s)     chirp  (a 300 Hz–4 kHz sweep, 2 s)
//! leds tour  (every LED state in turn)
//! quit                               help
//! stall MS  (the network task stops for MS ms, at most 10 000: a wedged loop, for tests)
//! sim board only:
//! ptt down | ptt up | ptt click      hand down | hand up | hand click
//! p  (toggle PTT)   h  (click hand)  mic play  (the sim mouth speaks its WAV)
//! ```

use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use futures_lite::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use futures_lite::{AsyncRead, AsyncWrite, StreamExt};
use smol::Async;
use stagebox_core::ButtonId;
use stagebox_core::button::PerButton;
use stagebox_hal::sim::{MicControl, SimButtonHandle};

use crate::input::{Command, Input};

/// The station's control: its inputs, and on the sim board its fingers and mouth.
#[derive(Clone)]
pub struct SimControls {
    pub buttons: PerButton<SimButtonHandle>,
    pub mic: MicControl,
    pub inputs: async_channel::Sender<Input>,
    /// The buttons and microphone above are the board's (the sim board); elsewhere they
    /// are not wired to anything and their commands are refused.
    pub sim_board: bool,
}

const HELP: &str = "commands: ptt down|up|click, hand down|up|click, p (toggle PTT), h (click hand), mic play, stats, update check, tone, chirp, leds tour, stall MS, quit";

/// The longest `stall`.
const MAX_STALL: Duration = Duration::from_secs(10);

impl SimControls {
    async fn press(&self, id: ButtonId, pressed: bool) {
        // The button poller sees the pin change, as it would a finger on a real button.
        self.buttons[id].set_pressed(pressed);
    }

    /// A finger's click: 80 ms down, then up, and a moment for the release to settle past
    /// the debounce, so a following command is a new press rather than contact bounce.
    async fn click(&self, id: ButtonId) {
        self.press(id, true).await;
        smol::Timer::after(Duration::from_millis(80)).await;
        self.press(id, false).await;
        smol::Timer::after(Duration::from_millis(80)).await;
    }

    async fn ask(&self, command: Command) -> String {
        let (tx, rx) = async_channel::bounded(1);
        if self
            .inputs
            .send(Input::Command { command, reply: tx })
            .await
            .is_err()
        {
            return "{\"error\":\"station is shutting down\"}".into();
        }
        rx.recv()
            .await
            .unwrap_or_else(|_| "{\"error\":\"no answer\"}".into())
    }

    /// Carries out one command line; returns the reply line.
    pub async fn execute(&self, line: &str, ptt_down: &mut bool) -> String {
        let words: Vec<&str> = line.split_whitespace().collect();
        let button = |w: &str| match w {
            "ptt" => Some(ButtonId::Ptt),
            "hand" => Some(ButtonId::Hand),
            _ => None,
        };
        let finger = matches!(words.as_slice(), [b, _] if button(b).is_some())
            || matches!(words.as_slice(), ["p"] | ["h"] | ["mic", "play"]);
        if finger && !self.sim_board {
            return "error: buttons and microphone are pressed from here only on the sim board"
                .into();
        }
        match words.as_slice() {
            [b, action] if button(b).is_some() => {
                let id = button(b).unwrap_or(ButtonId::Ptt);
                match *action {
                    "down" => self.press(id, true).await,
                    "up" => self.press(id, false).await,
                    "click" => self.click(id).await,
                    _ => return format!("error: {action:?}: say down, up or click"),
                }
                if id == ButtonId::Ptt {
                    *ptt_down = *action == "down";
                }
                "ok".into()
            }
            ["p"] => {
                *ptt_down = !*ptt_down;
                self.press(ButtonId::Ptt, *ptt_down).await;
                format!("ok: PTT {}", if *ptt_down { "held" } else { "released" })
            }
            ["h"] => {
                self.click(ButtonId::Hand).await;
                "ok".into()
            }
            ["mic", "play"] => {
                self.mic.play();
                "ok".into()
            }
            ["stats"] => self.ask(Command::Stats).await,
            ["stall", ms] => match ms.parse::<u64>() {
                Ok(ms) => {
                    let d = Duration::from_millis(ms).min(MAX_STALL);
                    self.ask(Command::Stall(d)).await
                }
                Err(_) => format!("error: {ms:?}: say how many milliseconds"),
            },
            ["quit"] => self.ask(Command::Quit).await,
            ["update", "check"] => self.ask(Command::CheckUpdate).await,
            ["tone"] => self.ask(Command::Tone { sweep: false }).await,
            ["chirp"] => self.ask(Command::Tone { sweep: true }).await,
            ["leds", "tour"] => self.ask(Command::LedTour).await,
            [] => String::new(),
            _ => format!("error: unknown command; {HELP}"),
        }
    }

    async fn serve<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(self, reader: R, mut writer: W) {
        let mut lines = BufReader::new(reader).lines();
        let mut ptt_down = false;
        while let Some(Ok(line)) = lines.next().await {
            // Lines are bounded by the reader's buffer growth; refuse absurd ones.
            let reply = if line.len() > 256 {
                "error: line too long".to_string()
            } else {
                self.execute(&line, &mut ptt_down).await
            };
            if !reply.is_empty()
                && writer
                    .write_all(format!("{reply}\n").as_bytes())
                    .await
                    .is_err()
            {
                break;
            }
            let _ = writer.flush().await;
        }
    }

    /// Serves the control socket at `path` (replacing a stale one). The socket is the
    /// station's user's alone (mode 0600): whoever can connect can press its buttons.
    pub async fn serve_socket(self, path: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::remove_file(path);
        let listener = Async::<std::os::unix::net::UnixListener>::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        loop {
            let (stream, _) = listener.accept().await?;
            let stream = std::sync::Arc::new(stream);
            let this = self.clone();
            smol::spawn(async move {
                this.serve(ArcStream(stream.clone()), ArcStream(stream))
                    .await;
            })
            .detach();
        }
    }

    /// Reads commands from standard input (the keyboard).
    pub async fn serve_keyboard(self) {
        let stdin = smol::Unblock::new(std::io::stdin());
        let stdout = smol::Unblock::new(std::io::stdout());
        let _ = writeln!(std::io::stderr(), "{HELP}");
        self.serve(stdin, stdout).await;
    }
}

/// Lets one Unix stream be read and written from two places.
struct ArcStream(std::sync::Arc<Async<std::os::unix::net::UnixStream>>);

impl AsyncRead for ArcStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut &*self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for ArcStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut &*self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut &*self.0).poll_flush(cx)
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut &*self.0).poll_close(cx)
    }
}
