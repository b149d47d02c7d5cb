//! `stagebox-console`: the technician's console on one serial line (the board's UART or the
//! USB gadget port), started by systemd as `stagebox-console@ttyS0.service` and so on.
//!
//! ```text
//! stagebox-console --port /dev/ttyGS0            serve the console on a line
//! stagebox-console --make-pin --label FILE       first boot: make this station's PIN
//! ```
//!
//! The console's decisions are `stagebox-console`'s (sans-IO); this binary opens the line,
//! feeds it bytes and time, and does the commands' work (the daemon's control socket, the
//! journal, RAUC, the configuration file). It does not need the network or the daemon: what
//! it cannot reach, it says.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use stagebox_consoled::line::{self, LineOptions};
use stagebox_consoled::pin_file;
use stagebox_consoled::work::Station;

#[derive(Debug, clap::Parser)]
#[command(
    name = "stagebox-console",
    version,
    about = "stagebox technician console on a serial line"
)]
struct Cli {
    /// The serial line (`/dev/ttyS0`, `/dev/ttyGS0`, or a pty in tests).
    #[arg(long, value_name = "DEVICE", required_unless_present = "make_pin")]
    port: Option<PathBuf>,
    /// The line's speed (8N1, no flow control).
    #[arg(long, default_value_t = 115_200)]
    baud: u32,
    /// The station's configuration (its name, server, and `[console]`).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/etc/stagebox/station.toml"
    )]
    station_config: PathBuf,
    /// The station daemon's control socket.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/run/stagebox/control.sock"
    )]
    control: PathBuf,
    /// The console PIN's verifier (made at first boot with --make-pin).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/stagebox-console/pin"
    )]
    pin_file: PathBuf,
    /// Where a pushed update bundle and the support bundle are kept while they travel.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/stagebox-console/spool"
    )]
    spool: PathBuf,
    /// Read the station's log from this file instead of the journal.
    #[arg(long, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// How a changed configuration is applied.
    #[arg(
        long,
        value_name = "COMMAND",
        default_value = "systemctl try-restart stagebox-settings.service stagebox-stationd.service"
    )]
    apply_command: String,
    /// How the station restarts.
    #[arg(long, value_name = "COMMAND", default_value = "systemctl reboot")]
    reboot_command: String,
    /// What a factory reset runs (then the station restarts).
    #[arg(
        long,
        value_name = "COMMAND",
        default_value = "/usr/lib/stagebox/factory-reset"
    )]
    factory_reset_command: String,
    /// First boot: make the station's PIN if it has none; its verifier goes to --pin-file and
    /// the PIN itself to LABEL, for the station's label.
    #[arg(long)]
    make_pin: bool,
    /// With --make-pin: where the PIN is written for the label.
    #[arg(long, value_name = "FILE", requires = "make_pin")]
    label: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = <Cli as clap::Parser>::parse();
    stagebox_consoled::log_init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stagebox-console: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if cli.make_pin {
        let label = cli.label.context("--make-pin needs --label FILE")?;
        return match pin_file::make_if_missing(&cli.pin_file, &label)? {
            true => {
                println!("made the console PIN: {} for the label", label.display());
                Ok(())
            }
            false => {
                println!("the station has its console PIN already");
                Ok(())
            }
        };
    }
    let port = cli.port.context("--port DEVICE")?;
    let station = Station {
        config: cli.station_config,
        control: cli.control,
        spool: cli.spool,
        log_file: cli.log_file,
        apply_command: cli.apply_command,
        reboot_command: cli.reboot_command,
        factory_reset_command: cli.factory_reset_command,
    };
    line::serve(LineOptions {
        port,
        baud: cli.baud,
        pin_file: cli.pin_file,
        station,
    })
}
