//! `stagebox-diag`: the field technician's tool for a stagebox station's serial console.
//!
//! ```text
//! stagebox-diag status                      (the one station plugged in)
//! stagebox-diag /dev/ttyUSB0 logs -f
//! stagebox-diag update push bundle.raucb --install
//! stagebox-diag support-bundle out.tar.gz
//! stagebox-diag shell                       (the human console; Ctrl-] leaves)
//! ```
//!
//! It speaks the console's machine frames (docs/console.md) on the same line a person could
//! type on; `shell` hands the line to the person.

mod link;
mod ports;
mod shell;
mod transfer;
mod watch;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result, bail};
use clap::{CommandFactory as _, Parser, Subcommand};
use serde_json::{Value, json};

use crate::link::{ANSWER_LIMIT, Link, quote, text_of};

#[derive(Debug, Parser)]
#[command(
    name = "stagebox-diag",
    version,
    about = "Diagnose a stagebox station over its serial console (UART or USB)",
    long_about = "Diagnose a stagebox station over its serial console: a USB-serial cable on \
                  its UART, or a USB cable to its USB port. With one station plugged in, the \
                  port is found by itself; otherwise name it first (stagebox-diag /dev/ttyUSB0 \
                  status) or with --port.\n\nCommands that change the station ask for its \
                  console PIN (on the station's label) unless --pin or STAGEBOX_PIN gives it."
)]
struct Cli {
    /// The serial port (found by itself when exactly one is plugged in).
    #[arg(long, short = 'p', global = true, value_name = "PORT")]
    port: Option<PathBuf>,
    /// The station's console PIN (or set STAGEBOX_PIN; asked for when needed otherwise).
    #[arg(long, global = true, value_name = "PIN")]
    pin: Option<String>,
    /// Print the station's answers as JSON, one object per line.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Role, stage, server, connection and why, version, slot, uptime, last errors.
    Status,
    /// Addresses, Wi-Fi signal, gateway round trip, voice node reachability, certificate.
    Net,
    /// A live dashboard: status, levels, buttons and the latest log lines (Ctrl-C ends it).
    Watch,
    /// The station's log.
    Logs {
        /// Follow it (Ctrl-C ends).
        #[arg(short = 'f', long)]
        follow: bool,
        /// Only lines containing TEXT.
        text: Option<String>,
    },
    /// Microphones and speaker.
    #[command(subcommand)]
    Audio(AudioCmd),
    /// Live button presses (Ctrl-C ends).
    Buttons,
    /// Every state of the LED language in turn.
    Leds,
    /// The station's configuration.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Wi-Fi.
    #[command(subcommand)]
    Wifi(WifiCmd),
    /// Updates: status, check, push a bundle, install, mark good, roll back.
    #[command(subcommand)]
    Update(UpdateCmd),
    /// Restart the station.
    Reboot,
    /// Erase the station's settings and data.
    FactoryReset {
        /// Do not ask to confirm.
        #[arg(long)]
        yes: bool,
    },
    /// Logs, configuration and figures, secrets removed, saved to FILE (.tar.gz).
    SupportBundle { file: PathBuf },
    /// The human console, passed through (Ctrl-] leaves).
    Shell,
    /// Print shell completions (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    Man,
}

#[derive(Debug, Subcommand)]
enum AudioCmd {
    /// Live level of the microphones (Ctrl-C ends).
    Levels,
    /// A test tone on the speaker.
    Tone,
    /// A chirp from the speaker to the microphones: delay and echo level.
    Chirp,
    /// The speaker's tone, then the sweep: what the microphones heard, delay and echo level.
    Test,
}

#[derive(Debug, Subcommand)]
enum ConfigCmd {
    /// The configuration, or one key (secrets hidden).
    Get { key: Option<String> },
    /// Change one key (checked by the station first, then applied).
    Set { key: String, value: String },
    /// Check the configuration as it is.
    Validate,
}

#[derive(Debug, Subcommand)]
enum WifiCmd {
    /// The networks in reach.
    Scan,
    /// Join a network (the password is asked for, or read from STAGEBOX_WIFI_PASSWORD).
    Join {
        name: String,
        /// An open network: no password.
        #[arg(long)]
        open: bool,
    },
}

#[derive(Debug, Subcommand)]
enum UpdateCmd {
    /// Version, slots, the update in progress and the last problem.
    Status,
    /// Look for an update now.
    Check,
    /// Send a bundle over the line (it resumes where a pulled cable stopped it).
    Push {
        bundle: PathBuf,
        /// Install it once it is there.
        #[arg(long)]
        install: bool,
        /// With --install: install it even though it is not newer than the running version
        /// (or already failed here) — name the bundle's own version; the station logs it.
        #[arg(long, value_name = "VERSION", requires = "install")]
        downgrade: Option<String>,
    },
    /// Install the pushed bundle (only a newer version than the running one), or look for
    /// the one the server offers.
    Install {
        /// Install the pushed bundle even though it is older than the running version (or
        /// already failed here): name the bundle's own version; the station logs it.
        #[arg(long, value_name = "VERSION")]
        downgrade: Option<String>,
    },
    /// Mark the running system good.
    MarkGood,
    /// Start the other system at the next boot.
    Rollback,
}

/// A port named as the first word (`stagebox-diag /dev/ttyUSB0 status`) becomes `--port`.
fn arguments() -> Vec<String> {
    let mut args: Vec<String> = std::env::args().collect();
    if let Some(first) = args.get(1)
        && (first.starts_with("/dev/") || first.starts_with("COM") || first.starts_with("./"))
    {
        args.insert(1, "--port".into());
    }
    args
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(arguments());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stagebox-diag: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Whether Ctrl-C was pressed (live views end cleanly on it).
fn interrupted() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone());
    flag
}

fn run(cli: Cli) -> Result<()> {
    match &cli.command {
        Cmd::Completions { shell } => {
            clap_complete::generate(
                *shell,
                &mut Cli::command(),
                "stagebox-diag",
                &mut std::io::stdout(),
            );
            return Ok(());
        }
        Cmd::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let port = match &cli.port {
        Some(p) => p.clone(),
        None => ports::the_one_station()?,
    };
    let pin = cli
        .pin
        .clone()
        .or_else(|| std::env::var("STAGEBOX_PIN").ok());
    if let Cmd::Shell = cli.command {
        return shell::run(&port);
    }
    let mut link = Link::open(
        &port,
        pin,
        Box::new(|| ask_hidden("PIN (on the station's label): ")),
    )
    .with_context(|| format!("the station on {}", port.display()))?;
    let out = Output { json: cli.json };
    match cli.command {
        Cmd::Status => out.simple(&mut link, "status"),
        Cmd::Net => out.simple(&mut link, "net"),
        Cmd::Watch => watch::run(&mut link, &interrupted()),
        Cmd::Logs { follow, text } => {
            let mut line = "logs".to_string();
            if follow {
                line.push_str(" -f");
            }
            if let Some(t) = text {
                line.push(' ');
                line.push_str(&quote(&t));
            }
            if follow {
                out.live(&mut link, &line)
            } else {
                out.simple(&mut link, &line)
            }
        }
        Cmd::Audio(AudioCmd::Levels) => out.live(&mut link, "audio levels"),
        Cmd::Audio(AudioCmd::Tone) => out.simple(&mut link, "audio tone"),
        Cmd::Audio(AudioCmd::Chirp) => out.simple(&mut link, "audio chirp"),
        Cmd::Audio(AudioCmd::Test) => {
            out.simple(&mut link, "audio tone")?;
            // The sweep's "before" is taken once the tone is over.
            std::thread::sleep(std::time::Duration::from_millis(2500));
            out.simple(&mut link, "audio chirp")
        }
        Cmd::Buttons => out.live(&mut link, "buttons"),
        Cmd::Leds => out.live(&mut link, "leds"),
        Cmd::Config(ConfigCmd::Get { key }) => match key {
            Some(k) => out.simple(&mut link, &format!("config get {}", quote(&k))),
            None => out.simple(&mut link, "config get"),
        },
        Cmd::Config(ConfigCmd::Set { key, value }) => out.simple(
            &mut link,
            &format!("config set {} {}", quote(&key), quote(&value)),
        ),
        Cmd::Config(ConfigCmd::Validate) => out.simple(&mut link, "config validate"),
        Cmd::Wifi(WifiCmd::Scan) => out.simple(&mut link, "wifi scan"),
        Cmd::Wifi(WifiCmd::Join { name, open }) => {
            let password = if open {
                String::new()
            } else {
                match std::env::var("STAGEBOX_WIFI_PASSWORD") {
                    Ok(p) => p,
                    Err(_) => ask_hidden(&format!("Password for {name}: "))?,
                }
            };
            out.with(
                &mut link,
                &format!("wifi join {}", quote(&name)),
                json!({"secret": password}),
            )
        }
        Cmd::Update(UpdateCmd::Status) => out.simple(&mut link, "update status"),
        Cmd::Update(UpdateCmd::Check) => out.simple(&mut link, "update check"),
        Cmd::Update(UpdateCmd::Push {
            bundle,
            install,
            downgrade,
        }) => {
            transfer::push(&mut link, &bundle, &interrupted())?;
            if install {
                out.live(&mut link, &install_line(downgrade.as_deref()))
            } else {
                Ok(())
            }
        }
        Cmd::Update(UpdateCmd::Install { downgrade }) => {
            out.live(&mut link, &install_line(downgrade.as_deref()))
        }
        Cmd::Update(UpdateCmd::MarkGood) => out.simple(&mut link, "update mark-good"),
        Cmd::Update(UpdateCmd::Rollback) => out.simple(&mut link, "update rollback"),
        Cmd::Reboot => out.simple(&mut link, "reboot"),
        Cmd::FactoryReset { yes } => {
            if !yes {
                eprint!("This erases the station's settings and data. Type yes to go on: ");
                let mut answer = String::new();
                std::io::stdin().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    bail!("not confirmed: nothing was done");
                }
            }
            out.with(&mut link, "factory-reset", json!({"confirm": true}))
        }
        Cmd::SupportBundle { file } => transfer::support_bundle(&mut link, &file),
        Cmd::Shell | Cmd::Completions { .. } | Cmd::Man => Ok(()),
    }
}

/// How answers are shown.
struct Output {
    json: bool,
}

impl Output {
    fn simple(&self, link: &mut Link, line: &str) -> Result<()> {
        self.with(link, line, json!({}))
    }

    fn with(&self, link: &mut Link, line: &str, extra: Value) -> Result<()> {
        let answer = link.command(line, extra, ANSWER_LIMIT, &mut |_| true)?;
        self.show(&answer)
    }

    /// A live view, until it ends or Ctrl-C.
    fn live(&self, link: &mut Link, line: &str) -> Result<()> {
        let stop = interrupted();
        let json = self.json;
        let mut drawn = 0usize;
        let answer = link.command(line, json!({}), ANSWER_LIMIT, &mut |picture| {
            if json {
                println!("{}", json!({"progress": picture}));
            } else {
                let mut out = std::io::stdout().lock();
                if drawn > 0 {
                    let _ = write!(out, "\x1b[{drawn}A");
                }
                let _ = write!(out, "\r\x1b[J{picture}\n");
                let _ = out.flush();
                drawn = picture.lines().count().max(1);
            }
            !stop.load(Ordering::Relaxed)
        })?;
        self.show(&answer)
    }

    fn show(&self, answer: &Value) -> Result<()> {
        if self.json {
            println!("{answer}");
            return if answer["ok"] == true {
                Ok(())
            } else {
                bail!("{}", answer["error"].as_str().unwrap_or("refused"))
            };
        }
        let text = text_of(answer)?;
        if !text.is_empty() {
            println!("{}", text.trim_end());
        }
        Ok(())
    }
}

/// Reads a line from the terminal without showing it.
fn ask_hidden(prompt: &str) -> Result<String> {
    use rustix::termios::{self, LocalModes, OptionalActions};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask on: give the PIN with --pin or STAGEBOX_PIN")?;
    let before = termios::tcgetattr(&tty)?;
    let mut quiet = before.clone();
    quiet.local_modes -= LocalModes::ECHO;
    termios::tcsetattr(&tty, OptionalActions::Now, &quiet)?;
    let mut w = &tty;
    let _ = write!(w, "{prompt}");
    let mut line = String::new();
    let read = std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut line);
    let _ = termios::tcsetattr(&tty, OptionalActions::Now, &before);
    let _ = writeln!(w);
    read?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// The console's install command, with the version a downgrade names.
fn install_line(downgrade: Option<&str>) -> String {
    match downgrade {
        Some(v) => format!("update install downgrade {}", quote(v)),
        None => "update install".into(),
    }
}
