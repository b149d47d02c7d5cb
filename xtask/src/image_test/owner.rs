//! The owner's `stagebox.toml` on the running station: the time zone and Wi-Fi it names are
//! set (a simulated radio, `mac80211_hwsim`, gives wpa_supplicant a `wlan0` to run on), the
//! report beside the file says so; a mistake is written back, is the daemon's status, and
//! waits without a restart loop; fixed, the station joins the stage again.

use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::{Rig, control_cmd, expect};
use crate::demo::wait_for;

/// What the image test's `stagebox.toml` says beyond the station's own settings.
pub(super) const SETTINGS: &str = "[wifi]\nssid = \"Hall B\"\npassword = \"stage-door-42\"\n\
    country = \"es\"\n\n[time]\nzone = \"Europe/Madrid\"\n";

const CONFIG: &str = "/boot/firmware/stagebox.toml";
const REPORT: &str = "/boot/firmware/stagebox-report.txt";

pub(super) fn check(rig: &Rig) -> Result<Value> {
    let report = rig.guest(&format!("cat {REPORT}"))?;
    expect(
        "the report on the boot partition",
        &report,
        &[
            "OK — station",
            "Wi-Fi: joins \"Hall B\" (with its password, country ES)",
            "Time zone: Europe/Madrid.",
        ],
    )?;
    let zone = rig.guest("readlink -f /etc/localtime; date +%Z")?;
    expect(
        "the time zone",
        &zone,
        &["/usr/share/zoneinfo/Europe/Madrid"],
    )?;
    if !(zone.ends_with("CET") || zone.ends_with("CEST")) {
        bail!("the station's clock is not on Madrid's time: {zone}");
    }

    // A Wi-Fi adapter appears: wpa_supplicant starts on it with the owner's network.
    rig.guest("modprobe mac80211_hwsim radios=1")?;
    wait_for("wpa_supplicant on wlan0", Duration::from_secs(60), || {
        Ok(rig
            .guest("systemctl is-active wpa_supplicant@wlan0 || true")?
            .trim()
            == "active")
    })?;
    let networks = rig.guest("wpa_cli -i wlan0 list_networks")?;
    expect("wpa_supplicant's networks", &networks, &["Hall B"])?;
    let wifi_state = rig.guest("wpa_cli -i wlan0 status | grep ^wpa_state=")?;

    // A mistake: the stage name emptied, as an owner might.
    rig.guest(&format!(
        "cp {CONFIG} /run/stagebox-good.toml && \
         sed -i 's/^stage = .*/stage = \"\"/' {CONFIG} && \
         (systemctl restart stagebox-settings || true) && systemctl restart stagebox-stationd"
    ))?;
    let report = rig.guest(&format!("cat {REPORT}"))?;
    expect(
        "the report of a mistake",
        &report,
        &[
            "MISTAKE",
            "stagebox.toml:",
            "Time zone: Europe/Madrid.",
            "Wi-Fi: joins",
        ],
    )?;
    std::thread::sleep(Duration::from_secs(5));
    let unit = rig.guest(
        "systemctl show -p ActiveState -p NRestarts -p StatusText stagebox-stationd; \
         systemctl is-failed stagebox-settings || true",
    )?;
    expect(
        "the daemon waiting on the mistake",
        &unit,
        &[
            "ActiveState=active",
            "NRestarts=0",
            "StatusText=configuration mistake:",
            "failed",
        ],
    )?;

    // Fixed: the station joins again, without a reboot.
    let boot = rig.boot_id()?;
    rig.guest(&format!(
        "cp /run/stagebox-good.toml {CONFIG} && \
         systemctl restart stagebox-settings stagebox-stationd"
    ))?;
    wait_for("the station to join again", Duration::from_secs(90), || {
        let stats: Value =
            serde_json::from_str(&rig.guest(&format!("{} stats || echo null", control_cmd()))?)?;
        let joined = stats["milestones"]["ready_unix_ns"].as_u64().unwrap_or(0) > 0;
        Ok(joined && rig.station_view()?["connected"] == true)
    })?;
    if rig.boot_id()? != boot {
        bail!("the station rebooted over a configuration mistake");
    }
    let report = rig.guest(&format!("cat {REPORT}"))?;
    expect("the report once fixed", &report, &["OK — station"])?;
    Ok(json!({
        "time_zone": zone.lines().collect::<Vec<_>>(),
        "wifi": wifi_state.trim(),
        "mistake_status": unit.lines().find(|l| l.starts_with("StatusText=")),
    }))
}
