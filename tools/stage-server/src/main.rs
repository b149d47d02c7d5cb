//! `stage-server` — the reference stage server: gateway (WebSocket + TLS), signaling, stage
//! rules, selective forwarding of encrypted RTP, and an admin interface.
//!
//! ```text
//! stage-server [--config PATH]                 run (default /etc/stagebox/server.toml)
//! stage-server admin --config PATH JSON        send one admin command, print the reply
//! stage-server user add NAME [--password-stdin] add a moderator for the web console
//! stage-server user remove NAME | user list
//! stage-server --version
//! ```

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use stagebox_server_core::{Entropy, StageServer};

use stagebox_stage_server::clips::ClipStore;
use stagebox_stage_server::config::Config;
use stagebox_stage_server::hub::Hub;
use stagebox_stage_server::{admin, cert, console_api, gateway};

/// Keys and ids from the operating system's generator.
struct OsEntropy(aws_lc_rs::rand::SystemRandom);

impl Entropy for OsEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        if aws_lc_rs::rand::SecureRandom::fill(&self.0, buf).is_err() {
            // Without randomness there are no safe keys: stop rather than serve weak ones.
            log::error!("the system random generator failed");
            std::process::abort();
        }
    }
}

/// The stagebox reference stage server: gateway (WebSocket + TLS), signaling, stage rules,
/// selective forwarding of encrypted RTP, and an admin interface.
#[derive(Debug, clap::Parser)]
#[command(name = "stage-server", version)]
struct Cli {
    /// The server's configuration.
    #[arg(
        short,
        long,
        value_name = "PATH",
        default_value = "/etc/stagebox/server.toml",
        global = true
    )]
    config: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Send one admin command to the running server and print its reply, e.g.
    /// '{"action":"stats"}'.
    Admin {
        /// The command, as JSON.
        json: String,
    },
    /// The moderators who sign in to the web console (https://GATEWAY/console).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Debug, clap::Subcommand)]
enum UserCommand {
    /// Add a moderator, or set a moderator's password (asked twice on the terminal).
    Add {
        /// Letters, digits, '.', '_', '-' or '@'.
        name: String,
        /// Read the password from the first line of standard input instead (for scripts).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a moderator (signed-in sessions end at their next request's check of the
    /// file; sign-ins are checked against the file every time).
    Remove { name: String },
    /// List the moderators.
    List,
}

fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    let config_path = cli.config;
    let cfg = match Config::load(&config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("stage-server: {e:#}");
            return ExitCode::from(2);
        }
    };
    if let Some(Command::User { command }) = cli.command {
        return match user(&cfg.console.accounts, command) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("stage-server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if let Some(Command::Admin { json }) = cli.command {
        return match stagebox_admin_client::request(cfg.listen.admin, &cfg.admin.token, &json) {
            Ok(reply) => {
                println!("{reply}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stage-server: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let format = if cfg.log_json {
        stagebox_logging::Format::Json
    } else {
        stagebox_logging::Format::Text
    };
    stagebox_logging::init(format, log::Level::Info, "server");
    match run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn user(path: &std::path::Path, command: UserCommand) -> Result<()> {
    use stagebox_stage_server::accounts::Accounts;
    let mut accounts = Accounts::load(path)?;
    match command {
        UserCommand::List => {
            for name in accounts.moderators.keys() {
                println!("{name}");
            }
            return Ok(());
        }
        UserCommand::Remove { name } => {
            if accounts.moderators.remove(&name).is_none() {
                anyhow::bail!("no moderator {name:?} in {}", path.display());
            }
        }
        UserCommand::Add {
            name,
            password_stdin,
        } => {
            let password = if password_stdin {
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else {
                let first = rpassword::prompt_password(format!("password for {name}: "))
                    .context("no terminal to ask on: use --password-stdin")?;
                let again = rpassword::prompt_password("again: ")?;
                if first != again {
                    anyhow::bail!("the two passwords differ");
                }
                first
            };
            let mut salt = [0u8; 16];
            aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut salt)
                .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
            accounts.set(&name, &password, &salt)?;
        }
    }
    accounts.save(path)?;
    println!(
        "{}: {} moderator(s)",
        path.display(),
        accounts.moderators.len()
    );
    Ok(())
}

fn run(cfg: Config) -> Result<()> {
    let (tls, fingerprint) = cert::server_tls(&cfg.tls)?;
    log::info!(
        "certificate {} sha256 {fingerprint}",
        cfg.tls.cert.display()
    );
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone())?;
    }
    let udp = std::net::UdpSocket::bind(cfg.listen.media)
        .with_context(|| format!("media {}", cfg.listen.media))?;
    udp.set_nonblocking(true)?;
    let udp_recv = async_net::UdpSocket::try_from(udp.try_clone()?)?;
    let server_cfg = cfg.server_config();
    if !server_cfg.stage_links.is_empty() && server_cfg.browser_addresses.is_empty() {
        log::warn!(
            "stages have browser links, but browsers have no address for the media socket \
             (it listens on a wildcard): set listen.browser_addresses"
        );
    }
    for stage in server_cfg.stage_links.keys() {
        log::info!(
            "browsers join stage {stage} at https://{}/listen#stage={stage}&link=…",
            cfg.listen.gateway
        );
    }
    let core = StageServer::new(
        server_cfg,
        Box::new(OsEntropy(aws_lc_rs::rand::SystemRandom::new())),
    );
    let hub = Arc::new(Hub::new(core, udp));

    smol::block_on(async {
        let gateway = async_net::TcpListener::bind(cfg.listen.gateway)
            .await
            .with_context(|| format!("gateway {}", cfg.listen.gateway))?;
        let admin_listener = async_net::TcpListener::bind(cfg.listen.admin)
            .await
            .with_context(|| format!("admin {}", cfg.listen.admin))?;
        log::info!(
            "gateway wss://{}/signal, media udp {}, admin http://{}",
            cfg.listen.gateway,
            cfg.listen.media,
            cfg.listen.admin
        );
        // Printed once every socket is bound: scripts take this line as "ready". Nobody may
        // be reading stdout (a closed pipe), which must not stop the server.
        let mut stdout = std::io::stdout();
        let _ = writeln!(stdout, "pin_sha256 = \"{fingerprint}\"").and_then(|()| stdout.flush());
        let updates = cfg.updates.as_ref().map(|u| Arc::new(u.dir.clone()));
        if let Some(dir) = &updates {
            log::info!("update files from {} at /updates/", dir.display());
        }
        log::info!(
            "moderators sign in at https://{}/console (accounts in {})",
            cfg.listen.gateway,
            cfg.console.accounts.display()
        );
        let clips = match ClipStore::load(&cfg.console.clips) {
            Ok(c) => c,
            Err(e) => {
                log::error!(
                    "soundboard {}: {e}; starting without clips",
                    cfg.console.clips.display()
                );
                ClipStore::empty(&cfg.console.clips)
            }
        };
        let console = Arc::new(console_api::Console::new(
            cfg.console.accounts.clone(),
            clips,
        ));
        smol::spawn(gateway::serve(gateway, tls, hub.clone(), updates, console)).detach();
        smol::spawn(admin::serve(
            admin_listener,
            cfg.admin.token.clone(),
            hub.clone(),
        ))
        .detach();
        let media_hub = hub.clone();
        smol::spawn(async move {
            let mut buf = vec![0u8; 2048];
            loop {
                match udp_recv.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let packet = buf.get_mut(..n).unwrap_or(&mut []);
                        media_hub.with_core(|core, now| core.handle_datagram(now, from, packet));
                    }
                    Err(e) => log::debug!("UDP receive: {e}"),
                }
            }
        })
        .detach();
        while !shutdown.load(Ordering::Relaxed) {
            let now = Instant::now();
            let tick = now + Duration::from_millis(100);
            let deadline = hub.next_deadline().map_or(tick, |d| d.min(tick)).max(now);
            smol::Timer::at(deadline).await;
            hub.with_core(|core, now| core.handle_timeout(now));
        }
        log::info!("stopping");
        anyhow::Ok(())
    })
}
