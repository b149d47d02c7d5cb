//! `stationd` — the station daemon.
//!
//! ```text
//! stationd [--config PATH] [--report PATH] [--wait-on-mistake]
//!                               run (default /etc/stagebox/station.toml)
//! stationd --check-config PATH  validate a configuration and exit
//! stationd --apply-settings PATH [--report PATH]
//!                               as root at boot: apply the file's Wi-Fi and time zone, check
//!                               the rest, write the report
//! stationd --check-board [--board NAME]
//! stationd --control SOCKET COMMAND…  send one command to a running sim station's control
//!                                     socket and print its answer
//! stationd --list-boards | --version | --help
//! ```
//! Exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid configuration or usage.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use stagebox_audio::frame::FrameDuration;
use stagebox_audio::jitter::JitterConfig;
use stagebox_audio::pipeline::{CaptureConfig, CapturePath, PlayoutPath};
use stagebox_board::{BoardProfile, GpioBackend};
use stagebox_core::button::PerButton;
use stagebox_core::{SessionConfig, Station, StationConfig};
use stagebox_hal::sim::{MicControl, SimButton, SimLeds};
use stagebox_stationd::audio_thread::{self, AudioShared};
use stagebox_stationd::config::{Config, LogFormat, LogLevel};
use stagebox_stationd::control::SimControls;
use stagebox_stationd::net::{NetParts, NetTask};
use stagebox_stationd::{devices, hardware, realtime, report, tls, udp};

const DEFAULT_CONFIG: &str = "/etc/stagebox/station.toml";

/// The stagebox station daemon: joins a stage, plays it, and sends the microphone while
/// push-to-talk is held.
///
/// Exit codes: 0 clean shutdown, 1 runtime failure, 2 invalid configuration or usage.
#[derive(Debug, clap::Parser)]
#[command(name = "stationd", version)]
struct Cli {
    /// The station's configuration.
    #[arg(short, long, value_name = "PATH", default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// Validate this configuration and exit.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["check_board", "list_boards"])]
    check_config: Option<PathBuf>,
    /// As root at boot (the appliance's stagebox-settings.service): apply this configuration's
    /// `[wifi]` and `[time]` (even if other sections have mistakes), check the rest, write the
    /// report; exit 2 if anything is wrong.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["check_config", "check_board", "list_boards"])]
    apply_settings: Option<PathBuf>,
    /// Where --apply-settings writes the files the system's links point at.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/run/stagebox-settings",
        hide = true
    )]
    settings_dir: PathBuf,
    /// On a configuration mistake, show `error` on the board's LEDs and wait to be stopped,
    /// instead of exiting with code 2 (under systemd: the mistake is the unit's status).
    #[arg(long)]
    wait_on_mistake: bool,
    /// Open the board's hardware (the configuration's board, or --board) and report.
    #[arg(long)]
    check_board: bool,
    /// The board profile (a built-in name or a file) for --check-board.
    #[arg(long, value_name = "NAME", requires = "check_board")]
    board: Option<String>,
    /// List the built-in board profiles.
    #[arg(long)]
    list_boards: bool,
    /// Write what was found in the configuration to this file: its mistakes, or that it is
    /// good (on the image, `stagebox-report.txt` beside `stagebox.toml` on the boot
    /// partition, where the owner who edited it will look).
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
    /// Serve the control socket at PATH (`stats`, `update check`: what the technician's
    /// console asks), whatever the board; the sim board's `[sim] control_socket` also adds
    /// its buttons and microphone.
    #[arg(long, value_name = "PATH")]
    control_socket: Option<PathBuf>,
    /// Send COMMAND (`stats`, `ptt click`, `update check`, …) to the control socket of a
    /// running station and print its answer.
    #[arg(long, value_name = "SOCKET", requires = "command")]
    control: Option<PathBuf>,
    /// The command for --control.
    #[arg(requires = "control")]
    command: Vec<String>,
}

/// Writes the configuration report, if one was asked for; a report that cannot be written
/// is logged, never fatal.
fn report(path: Option<&std::path::Path>, config: &std::path::Path, text: &str) {
    let Some(path) = path else {
        return;
    };
    let body = format!(
        "stagebox station — {} as read at start-up\n\n{text}\n",
        config.display()
    );
    if let Err(e) = std::fs::write(path, body) {
        eprintln!("stationd: {}: {e}", path.display());
    }
}

fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    if cli.list_boards {
        for name in stagebox_board::builtin_names() {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    if let Some(socket) = &cli.control {
        return match control(socket, &cli.command.join(" ")) {
            Ok(answer) => {
                println!("{answer}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("stationd: {}: {e}", socket.display());
                ExitCode::FAILURE
            }
        };
    }
    if let Some(path) = &cli.apply_settings {
        return apply_settings(path, &cli.settings_dir, cli.report.as_deref());
    }
    let check_only = cli.check_config.is_some();
    let config_path = cli.check_config.unwrap_or(cli.config);
    if cli.check_board {
        return check_board(cli.board, &config_path);
    }
    let report_path = cli.report.as_deref();
    let (cfg, board) = match validate(&config_path) {
        Ok(found) => found,
        Err(text) => {
            eprintln!("stationd: {text}");
            report(report_path, &config_path, &mistake_report(&text));
            if cli.wait_on_mistake && !check_only {
                return wait_on_mistake(&config_path, &text);
            }
            return ExitCode::from(2);
        }
    };
    report(report_path, &config_path, &good_report(&cfg, &board));
    if check_only {
        println!("{}: ok (board {})", config_path.display(), board.name);
        return ExitCode::SUCCESS;
    }
    let level = match cfg.log.level {
        LogLevel::Error => log::Level::Error,
        LogLevel::Warn => log::Level::Warn,
        LogLevel::Info => log::Level::Info,
        LogLevel::Debug => log::Level::Debug,
    };
    let format = match cfg.log.format {
        LogFormat::Text => stagebox_logging::Format::Text,
        LogFormat::Json => stagebox_logging::Format::Json,
    };
    stagebox_logging::init(format, level, &cfg.station.id.0);
    match run(cfg, board, cli.control_socket.clone()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The configuration at `path` and its board, or what is wrong with them.
fn validate(path: &std::path::Path) -> Result<(Config, BoardProfile), String> {
    let cfg = Config::load(path).map_err(|e| e.to_string())?;
    let board = BoardProfile::load(&cfg.board.profile)
        .map_err(|e| format!("{}: field `board.profile`: {e}", path.display()))?;
    Ok((cfg, board))
}

fn mistake_report(text: &str) -> String {
    format!(
        "MISTAKE — the station does not start until it is fixed:\n  {text}\n\n\
         Correct that line, save the file and restart the station."
    )
}

fn good_report(cfg: &Config, board: &BoardProfile) -> String {
    format!(
        "OK — station {} on stage {} at {}, board {}.",
        cfg.station.id.0, cfg.server.stage.0, cfg.server.gateway.0, board.name
    )
}

/// `--wait-on-mistake`: the mistake on the LEDs and in systemd's status until stopped; then
/// exit 2, as without it.
fn wait_on_mistake(config_path: &std::path::Path, text: &str) -> ExitCode {
    use stagebox_stationd::config_mistake;
    stagebox_logging::init(stagebox_logging::Format::Text, log::Level::Info, "");
    let file = std::fs::read_to_string(config_path).unwrap_or_default();
    if let Some(version) = config_mistake::version_on_trial(&file) {
        // The previous version ran with this file: the new one fails its boot (the unit's
        // start limit reboots, and the boot loader goes back after its last try).
        log::error!(
            "version {version} is on trial and cannot use the configuration its predecessor \
             ran with; this boot has failed"
        );
        return ExitCode::FAILURE;
    }
    let board =
        config_mistake::board_named_in(&file).and_then(|name| match BoardProfile::load(&name) {
            Ok(b) => Some(b),
            Err(e) => {
                log::warn!("board {name:?}: {e}");
                None
            }
        });
    if let Err(e) = config_mistake::hold(board.as_ref(), text) {
        log::error!("waiting on the mistake: {e}");
    }
    ExitCode::from(2)
}

/// `--apply-settings`: the Wi-Fi and time zone of `path` into `dir` (whatever else is wrong),
/// then the whole file checked and the report written. Exit 0 when all is well, 2 on a
/// mistake, 1 when the settings could not be written.
fn apply_settings(
    path: &std::path::Path,
    dir: &std::path::Path,
    report_path: Option<&std::path::Path>,
) -> ExitCode {
    use stagebox_stationd::system_settings::{self, SystemSettings};
    let settings = match std::fs::read_to_string(path) {
        Ok(text) => SystemSettings::from_text(&text),
        // The report below says the file is missing; the system runs on UTC, without Wi-Fi.
        Err(_) => SystemSettings::default(),
    };
    let applied = system_settings::apply(&settings, dir);
    if let Err(e) = &applied {
        eprintln!("stationd: {}: {e}", dir.display());
    }
    let (text, code) = match validate(path) {
        Ok((cfg, board)) => (good_report(&cfg, &board), ExitCode::SUCCESS),
        Err(mistake) => {
            eprintln!("stationd: {mistake}");
            (mistake_report(&mistake), ExitCode::from(2))
        }
    };
    let applied_line = match &applied {
        Ok(()) => settings.summary(),
        Err(e) => format!("The Wi-Fi and time zone could not be set: {e}"),
    };
    report(report_path, path, &format!("{text}\n\n{applied_line}"));
    if code == ExitCode::SUCCESS && applied.is_err() {
        return ExitCode::FAILURE;
    }
    code
}

/// `--control`: one command line to the socket, one answer line back (at most 10 s).
fn control(socket: &std::path::Path, command: &str) -> std::io::Result<String> {
    use std::io::{BufRead as _, Write as _};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    writeln!(stream, "{command}")?;
    let mut answer = String::new();
    std::io::BufReader::new(stream).read_line(&mut answer)?;
    Ok(answer.trim_end().to_string())
}

/// `--check-board`: opens what the board profile names and reports (exit 1 if anything
/// fails, 2 if the profile cannot be loaded).
fn check_board(board_name: Option<String>, config_path: &std::path::Path) -> ExitCode {
    let name = match board_name {
        Some(b) => b,
        None => match Config::load(config_path) {
            Ok(c) => c.board.profile,
            Err(e) => {
                eprintln!("stationd: {e}");
                return ExitCode::from(2);
            }
        },
    };
    match BoardProfile::load(&name) {
        Ok(board) => {
            let report = stagebox_stationd::check_board::check(&board);
            print!("{report}");
            if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("stationd: {e}");
            ExitCode::from(2)
        }
    }
}

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    // The OS generator; if it fails, the clock still makes stations differ.
    if aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b = (t as u64).to_le_bytes();
    }
    u64::from_le_bytes(b)
}

fn run(cfg: Config, board: BoardProfile, cli_control_socket: Option<PathBuf>) -> Result<()> {
    log::info!(
        "stationd {} starting, board {}",
        env!("CARGO_PKG_VERSION"),
        board.name
    );
    let tls = tls::client_config(&cfg.trust()).context("TLS set-up")?;
    let seed = random_u64();
    let (capture_path, playout) = audio_paths(&cfg, seed)?;
    let shutdown = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, shutdown.clone()).context("signal handler")?;
    }

    let shared = Arc::new(AudioShared::default());
    // The one way the encoder's FEC is set: the audio thread applies this knob (the
    // configured floor from here; then the network task, from the listeners' reports and
    // whether the session carries redundant audio instead) before its first frame.
    shared
        .expected_loss_percent
        .store(cfg.audio.expected_loss_percent, Ordering::Relaxed);
    // The audio clock is valid before the first period: keepalives may go out first.
    shared
        .rtp_clock
        .store(capture_path.rtp_clock(), Ordering::Relaxed);
    let (audio_ends, net_ends) = audio_thread::queues().context("audio queues")?;
    // The devices are opened on the audio thread (ALSA handles stay on the thread that opened
    // them); a device that cannot be opened, or fails later, is retried there every second
    // while the station carries on (its LEDs say `error`).
    let mic_control = MicControl::default();
    let audio = spawn_audio(
        (capture_path, playout),
        audio_ends,
        shared.clone(),
        &board,
        &cfg,
        &mic_control,
    )?;
    let station = station_core(&cfg, seed);
    // Bounded: a server flooding a stalled station is held back by TCP, not by memory.
    let inputs = async_channel::bounded(stagebox_stationd::input::CAPACITY);
    let ptt = SimButton::new();
    let hand = SimButton::new();
    let controls = SimControls {
        buttons: PerButton {
            ptt: ptt.handle(),
            hand: hand.handle(),
        },
        mic: mic_control,
        inputs: inputs.0.clone(),
        sim_board: board.gpio.backend == GpioBackend::Sim,
    };
    let control_socket = cli_control_socket.or_else(|| cfg.sim.control_socket.clone());
    let sim_leds = SimLeds::new(&cfg.station.id.0, cfg.sim.draw_leds);
    let timeline = sim_leds.timeline();
    let (buttons, leds) = if board.gpio.backend == GpioBackend::Sim {
        (
            hardware::sim_buttons(&ptt, &hand),
            hardware::terminal_leds(sim_leds),
        )
    } else {
        hardware::open(&board).context("board hardware")?
    };
    let button_poller = hardware::spawn_button_poller(buttons, inputs.0.clone(), shutdown.clone())
        .context("button thread")?;
    let station_id = cfg.station.id.0.clone();
    let report_fn = Box::new(
        move |st: &Station, sh: &AudioShared, ms: &report::Milestones| {
            report::build(&station_id, st, sh, ms, Some(&timeline))
        },
    );

    let result = smol::block_on(async {
        let udp = udp::bind()
            .and_then(async_net::UdpSocket::try_from)
            .context("UDP socket")?;
        if let Some(path) = control_socket.clone() {
            let c = controls.clone();
            smol::spawn(async move {
                if let Err(e) = c.serve_socket(&path).await {
                    log::error!("control socket {}: {e}", path.display());
                }
            })
            .detach();
        }
        if cfg.sim.keyboard {
            smol::spawn(controls.clone().serve_keyboard()).detach();
        }
        let updater = cfg.update.as_ref().map(|section| {
            stagebox_stationd::updater::Updater::new(
                Instant::now(),
                update_settings(section, &board),
                tls.clone(),
                inputs.0.clone(),
            )
        });
        let task = NetTask::new(NetParts {
            station,
            tls,
            inputs,
            udp,
            audio: net_ends,
            shared: shared.clone(),
            leds,
            shutdown: shutdown.clone(),
            report: report_fn,
            updater,
        });
        task.run().await;
        anyhow::Ok(())
    });
    shared.running.store(false, Ordering::SeqCst);
    shutdown.store(true, Ordering::SeqCst);
    let _ = button_poller.join();
    audio
        .join()
        .map_err(|_| anyhow::anyhow!("audio thread panicked"))?;
    if let Some(path) = &control_socket {
        let _ = std::fs::remove_file(path);
    }
    result?;
    log::info!("stopped");
    Ok(())
}

/// The capture and playout paths the configuration asks for.
fn audio_paths(cfg: &Config, seed: u64) -> Result<(CapturePath, PlayoutPath)> {
    let frame = FrameDuration::from_ms(cfg.audio.frame_ms.0).unwrap_or(FrameDuration::Ms20);
    let mut capture_config = CaptureConfig::new(frame);
    capture_config.encoder.bitrate_bps = i32::from(cfg.audio.bitrate_kbps) * 1000;
    capture_config.processing = Some(cfg.audio.processing());
    let capture_path =
        CapturePath::new(capture_config, (seed >> 16) as u32).context("audio encoder")?;
    let playout = PlayoutPath::new(JitterConfig {
        min_target_us: u32::from(cfg.audio.jitter_frames.saturating_sub(1)) * frame.ms() * 1000,
        ..JitterConfig::default()
    })
    .context("audio decoders")?;
    Ok((capture_path, playout))
}

/// The audio thread. The devices are opened on it (ALSA handles stay on the thread that
/// opened them); a device that cannot be opened, or fails later, is retried there every
/// second while the station carries on (its LEDs say `error`).
fn spawn_audio(
    (mut capture_path, mut playout): (CapturePath, PlayoutPath),
    mut audio_ends: audio_thread::AudioEnds,
    shared: Arc<AudioShared>,
    board: &BoardProfile,
    cfg: &Config,
    mic: &MicControl,
) -> Result<std::thread::JoinHandle<()>> {
    let (board, cfg, mic) = (board.clone(), cfg.clone(), mic.clone());
    std::thread::Builder::new()
        .name("audio".into())
        .spawn(move || {
            realtime::promote_current_thread().log();
            audio_thread::run(
                || devices::open_audio(&board, &cfg, &mic),
                &board.audio.mic_channels,
                &board.audio.mic_geometry_mm,
                &mut capture_path,
                &mut playout,
                &mut audio_ends,
                &shared,
                || {},
            );
            shared.running.store(false, Ordering::SeqCst);
        })
        .context("audio thread")
}

/// The update agent's and health check's settings, as `[update]` says.
fn update_settings(
    u: &stagebox_stationd::config::UpdateSection,
    board: &BoardProfile,
) -> stagebox_stationd::updater::UpdateSettings {
    use stagebox_core::update::{MaintenanceWindow, UpdateConfig, Version};
    let own = Version::parse(env!("CARGO_PKG_VERSION")).unwrap_or(Version(0, 0, 0));
    let running = match std::fs::read_to_string(&u.version_file) {
        Ok(text) => Version::parse(text.trim()).unwrap_or_else(|| {
            log::error!(
                "{}: not MAJOR.MINOR.PATCH; taking the daemon's version {own}",
                u.version_file.display()
            );
            own
        }),
        Err(_) => own,
    };
    // The image's board when the image says it (a Pi 4 image runs whatever HAT profile the
    // owner chose), else the board profile's.
    let image_board = std::fs::read_to_string(&u.board_file)
        .ok()
        .map(|b| b.trim().to_string())
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| board.name.clone());
    log::info!("running version {running} for board {image_board}");
    stagebox_stationd::updater::UpdateSettings {
        agent: u.manifest_url.as_ref().map(|url| {
            (
                url.clone(),
                UpdateConfig {
                    board: image_board.clone(),
                    running,
                    keys: u.public_keys(),
                    poll_every: Duration::from_secs(u.check_every_s),
                    retry_after: Duration::from_secs(u.retry_after_s),
                    window: u
                        .maintenance_window
                        .as_deref()
                        .and_then(MaintenanceWindow::parse),
                    failed: None,
                },
            )
        }),
        running,
        dir: u.dir.clone(),
        marked_file: u.marked_file.clone(),
        health_within: Duration::from_secs(u.health_within_s),
        install: u.install_command.clone(),
        mark_good: u.mark_good_command.clone(),
        mark_active: u.mark_active_command.clone(),
        reboot: u.reboot_command.clone(),
        boot_id: stagebox_stationd::updater::boot_id(),
    }
}

/// The station core, as the configuration says.
fn station_core(cfg: &Config, seed: u64) -> Station {
    let mut session = SessionConfig::new(
        &cfg.station.id.0,
        &cfg.station.token.0,
        &cfg.server.stage.0,
        &cfg.server.gateway.0,
    );
    session.seed = seed;
    Station::new(
        Instant::now(),
        StationConfig {
            ptt_latch: cfg.buttons.ptt_latch,
            stuck_after: Duration::from_secs(cfg.buttons.stuck_after_s.0.into()),
            min_expected_loss: cfg.audio.expected_loss_percent,
            protection_mode: cfg.audio.loss_protection.into(),
            ..StationConfig::new(session)
        },
    )
}
