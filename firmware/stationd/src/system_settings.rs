//! The owner's system settings in the station's configuration: the Wi-Fi network (`[wifi]`)
//! and the time zone (`[time]`). The daemon does not use them itself; on the appliance a root
//! helper (`stationd --apply-settings`, run by `stagebox-settings.service` at boot) renders
//! them into a run-time directory the read-only root points at:
//!
//! ```text
//! /etc/wpa_supplicant/wpa_supplicant-wlan0.conf -> /run/stagebox-settings/wpa_supplicant-wlan0.conf
//! /etc/localtime                                -> /run/stagebox-settings/localtime
//!                                                  -> /usr/share/zoneinfo/<zone>
//! ```
//!
//! They are read leniently as well ([`SystemSettings::from_text`]): a mistake elsewhere in the
//! file (a typo in `[server]`) must not also cut the station off its Wi-Fi, or from the
//! technician who would come and fix it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

/// Where the zone files are (Debian's `tzdata`, Yocto's `tzdata`).
pub const ZONEINFO: &str = "/usr/share/zoneinfo";

/// A network name: 1 to 32 bytes (802.11's limit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WifiSsid(pub String);

impl<'de> Deserialize<'de> for WifiSsid {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if s.is_empty() || s.len() > 32 {
            return Err(serde::de::Error::custom(format!(
                "the network name must be 1 to 32 bytes, {:?} is {}",
                s,
                s.len()
            )));
        }
        Ok(WifiSsid(s))
    }
}

/// A WPA password: a passphrase of 8 to 63 printable ASCII characters, or the 64-hex-digit
/// key itself. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub enum WifiPassword {
    Passphrase(String),
    Key([u8; 32]),
}

impl fmt::Debug for WifiPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WifiPassword(..)")
    }
}

impl<'de> Deserialize<'de> for WifiPassword {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let mut key = [0u8; 32];
        if s.len() == 64 && hex::decode_to_slice(&s, &mut key).is_ok() {
            return Ok(WifiPassword::Key(key));
        }
        if !(8..=63).contains(&s.len()) {
            return Err(serde::de::Error::custom(format!(
                "a Wi-Fi password has 8 to 63 characters, this one has {} \
                 (leave `password` out for an open network)",
                s.chars().count()
            )));
        }
        if let Some(c) = s.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(serde::de::Error::custom(format!(
                "a Wi-Fi password may only hold letters, digits, spaces and ASCII punctuation; \
                 {c:?} is not one of them"
            )));
        }
        Ok(WifiPassword::Passphrase(s))
    }
}

/// A country, as two letters (ISO 3166-1 alpha-2): which channels and power the radio may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Country(pub [u8; 2]);

impl<'de> Deserialize<'de> for Country {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        match s.as_bytes() {
            [a, b] if a.is_ascii_alphabetic() && b.is_ascii_alphabetic() => {
                Ok(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()]))
            }
            _ => Err(serde::de::Error::custom(format!(
                "the country is two letters, such as \"ES\" or \"GB\", not {s:?}"
            ))),
        }
    }
}

impl fmt::Display for Country {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", char::from(self.0[0]), char::from(self.0[1]))
    }
}

/// `[wifi]`: the wireless network the station joins (besides the wired one, if plugged in).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WifiSection {
    pub ssid: WifiSsid,
    /// Absent for an open network.
    pub password: Option<WifiPassword>,
    pub country: Country,
}

/// A time zone from the tz database (`Europe/Madrid`, `America/New_York`, `UTC`), known to
/// the station's own copy of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeZoneName(pub String);

impl TimeZoneName {
    /// Whether `name` is shaped like a tz database name (letters, digits, `_+-`, parts joined
    /// by `/`): nothing that could step out of the zone directory.
    fn well_formed(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && name.split('/').all(|part| {
                !part.is_empty()
                    && !part.starts_with('.')
                    && part
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_+-".contains(c))
            })
    }
}

impl<'de> Deserialize<'de> for TimeZoneName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        if !TimeZoneName::well_formed(&s) || jiff::tz::db().get(&s).is_err() {
            return Err(serde::de::Error::custom(format!(
                "{s:?} is not a time zone this station knows; use a name such as \
                 \"Europe/Madrid\", \"America/New_York\" or \"UTC\""
            )));
        }
        Ok(TimeZoneName(s))
    }
}

/// `[time]`: the station's local time, for the update's maintenance window and the logs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeSection {
    pub zone: TimeZoneName,
}

/// The system settings of one configuration file, each read on its own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SystemSettings {
    pub wifi: Option<WifiSection>,
    pub time: Option<TimeSection>,
    /// What was wrong with either section (that section is then left out).
    pub mistakes: Vec<String>,
}

impl SystemSettings {
    /// The `[wifi]` and `[time]` sections of `text`, whatever else the file holds.
    pub fn from_text(text: &str) -> SystemSettings {
        let mut out = SystemSettings::default();
        let table: toml::Table = match toml::from_str(text) {
            Ok(t) => t,
            Err(e) => {
                out.mistakes
                    .push(format!("the file cannot be read as TOML: {}", e.message()));
                return out;
            }
        };
        fn section<T: for<'de> Deserialize<'de>>(
            table: &toml::Table,
            name: &str,
            mistakes: &mut Vec<String>,
        ) -> Option<T> {
            let value = table.get(name)?.clone();
            match value.try_into() {
                Ok(v) => Some(v),
                Err(e) => {
                    mistakes.push(format!("[{name}]: {}", e.message()));
                    None
                }
            }
        }
        out.wifi = section(&table, "wifi", &mut out.mistakes);
        out.time = section(&table, "time", &mut out.mistakes);
        out
    }

    /// One line for the owner's report.
    pub fn summary(&self) -> String {
        let wrong = |section: &str| {
            self.mistakes
                .iter()
                .any(|m| m.starts_with(&format!("[{section}]")) || !m.starts_with('['))
        };
        let wifi = match &self.wifi {
            Some(w) => format!(
                "Wi-Fi: joins {:?} ({}, country {})",
                w.ssid.0,
                if w.password.is_some() {
                    "with its password"
                } else {
                    "open network"
                },
                w.country
            ),
            None if wrong("wifi") => "Wi-Fi: off until the mistake is fixed".into(),
            None => "Wi-Fi: off (no [wifi] section)".into(),
        };
        let zone = match &self.time {
            Some(t) => t.zone.0.clone(),
            None if wrong("time") => "UTC until the mistake is fixed".into(),
            None => "UTC".into(),
        };
        format!("{wifi}. Time zone: {zone}.")
    }
}

/// wpa_supplicant's configuration for `wifi`. The network name is written in hex, the
/// passphrase quoted (wpa_supplicant takes everything up to the last quote, and the password
/// holds only printable ASCII), so nothing in either can break out of its line. WPA2 and WPA3
/// (SAE, with protected management frames where the network offers them) are both allowed.
pub fn wpa_supplicant_conf(wifi: &WifiSection) -> String {
    let mut out = format!(
        "# Written at boot from stagebox.toml's [wifi] by stationd --apply-settings.\n\
         ctrl_interface=DIR=/run/wpa_supplicant GROUP=netdev\n\
         update_config=0\n\
         country={}\n\
         network={{\n\
         \tssid={}\n\
         \tscan_ssid=1\n",
        wifi.country,
        hex::encode(wifi.ssid.0.as_bytes())
    );
    match &wifi.password {
        None => out.push_str("\tkey_mgmt=NONE\n"),
        Some(WifiPassword::Passphrase(p)) => {
            out.push_str(&format!(
                "\tkey_mgmt=WPA-PSK WPA-PSK-SHA256 SAE\n\tieee80211w=1\n\tpsk=\"{p}\"\n"
            ));
        }
        Some(WifiPassword::Key(k)) => {
            out.push_str(&format!(
                "\tkey_mgmt=WPA-PSK WPA-PSK-SHA256\n\tieee80211w=1\n\tpsk={}\n",
                hex::encode(k)
            ));
        }
    }
    out.push_str("}\n");
    out
}

/// The wpa_supplicant configuration's name in the settings directory.
pub const WPA_CONF: &str = "wpa_supplicant-wlan0.conf";
/// The time zone link's name in the settings directory.
pub const LOCALTIME: &str = "localtime";

/// Writes `settings` into `dir` (`/run/stagebox-settings` on the appliance): the Wi-Fi
/// configuration (readable by root only; removed without `[wifi]`) and the `localtime` link
/// (to UTC without `[time]`). Each file is replaced whole (written beside it, then renamed).
pub fn apply(settings: &SystemSettings, dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
    let wpa = dir.join(WPA_CONF);
    match &settings.wifi {
        Some(wifi) => {
            let tmp = dir.join(format!(".{WPA_CONF}.tmp"));
            let _ = std::fs::remove_file(&tmp);
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&tmp)?;
            std::io::Write::write_all(&mut file, wpa_supplicant_conf(wifi).as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, &wpa)?;
        }
        None => match std::fs::remove_file(&wpa) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        },
    }
    let zone = settings
        .time
        .as_ref()
        .map_or("Etc/UTC", |t| t.zone.0.as_str());
    let target: PathBuf = Path::new(ZONEINFO).join(zone);
    let tmp = dir.join(format!(".{LOCALTIME}.tmp"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)?;
    std::fs::rename(&tmp, dir.join(LOCALTIME))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_wifi_and_time_sections_are_read_even_when_the_rest_is_wrong() {
        let s = SystemSettings::from_text(
            "[server]\nnonsense = 1\n[wifi]\nssid = \"Hall \\\"B\\\"\"\n\
             password = \"correct horse\"\ncountry = \"es\"\n[time]\nzone = \"UTC\"\n",
        );
        assert_eq!(s.mistakes, Vec::<String>::new());
        let wifi = s.wifi.unwrap();
        assert_eq!(wifi.ssid.0, "Hall \"B\"");
        assert_eq!(wifi.country, Country(*b"ES"));
        assert_eq!(
            wifi.password,
            Some(WifiPassword::Passphrase("correct horse".into()))
        );
        assert_eq!(s.time.unwrap().zone.0, "UTC");
    }

    #[test]
    fn each_mistake_names_its_section_and_leaves_the_other_section_applied() {
        for (bad, says) in [
            ("password = \"short\"", "8 to 63 characters"),
            ("password = \"tab\there-and-more\"", "ASCII punctuation"),
            ("country = \"Spain\"", "two letters"),
            ("ssid = \"\"", "1 to 32 bytes"),
            ("bssid = \"x\"", "unknown field"),
        ] {
            let base = "ssid = \"Hall\"\npassword = \"12345678\"\ncountry = \"ES\"\n";
            let key = bad.split(' ').next().unwrap();
            let wifi: String = base
                .lines()
                .filter(|l| !l.starts_with(key))
                .map(|l| format!("{l}\n"))
                .collect::<String>()
                + bad;
            let s = SystemSettings::from_text(&format!("[wifi]\n{wifi}\n[time]\nzone = \"UTC\"\n"));
            assert_eq!(s.wifi, None, "{bad}");
            assert_eq!(s.mistakes.len(), 1, "{bad}: {:?}", s.mistakes);
            assert!(s.mistakes[0].starts_with("[wifi]:"), "{:?}", s.mistakes);
            assert!(s.mistakes[0].contains(says), "{bad}: {:?}", s.mistakes);
            assert!(s.time.is_some(), "{bad}");
        }
    }

    #[test]
    fn a_zone_must_be_a_plain_tz_name_the_station_knows() {
        for bad in [
            "../../etc/shadow",
            "/etc/passwd",
            "Europe/../UTC",
            "Mars/Olympus",
            "",
        ] {
            let s = SystemSettings::from_text(&format!("[time]\nzone = {bad:?}\n"));
            assert_eq!(s.time, None, "{bad}");
            assert!(
                s.mistakes[0].contains("not a time zone"),
                "{:?}",
                s.mistakes
            );
        }
    }

    #[test]
    fn the_supplicant_file_holds_the_name_in_hex_and_never_a_second_line_from_the_owner() {
        let wifi = WifiSection {
            ssid: WifiSsid("x\"\n}network={".into()),
            password: Some(WifiPassword::Passphrase("pa\"ss}word".into())),
            country: Country(*b"GB"),
        };
        let conf = wpa_supplicant_conf(&wifi);
        assert!(
            conf.contains("\tssid=78220a7d6e6574776f726b3d7b\n"),
            "{conf}"
        );
        assert!(conf.contains("\tpsk=\"pa\"ss}word\"\n"), "{conf}");
        assert!(conf.contains("country=GB\n"), "{conf}");
        assert_eq!(conf.matches("network={").count(), 1, "{conf}");
        let open = wpa_supplicant_conf(&WifiSection {
            password: None,
            ..wifi.clone()
        });
        assert!(open.contains("key_mgmt=NONE"), "{open}");
        assert!(!open.contains("psk"), "{open}");
        let key = wpa_supplicant_conf(&WifiSection {
            password: Some(WifiPassword::Key([0xab; 32])),
            ..wifi
        });
        assert!(
            key.contains(&format!("\tpsk={}\n", "ab".repeat(32))),
            "{key}"
        );
    }

    #[test]
    fn applying_writes_the_files_and_taking_wifi_out_removes_its_file() {
        let dir = std::env::temp_dir().join(format!("stagebox-settings-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = SystemSettings::from_text(
            "[wifi]\nssid = \"Hall\"\npassword = \"12345678\"\ncountry = \"ES\"\n\
             [time]\nzone = \"UTC\"\n",
        );
        apply(&s, &dir).unwrap();
        let wpa = dir.join(WPA_CONF);
        let mode = std::os::unix::fs::PermissionsExt::mode(&wpa.metadata().unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            std::fs::read_to_string(&wpa)
                .unwrap()
                .contains("ssid=48616c6c")
        );
        assert_eq!(
            std::fs::read_link(dir.join(LOCALTIME)).unwrap(),
            Path::new("/usr/share/zoneinfo/UTC")
        );
        apply(&SystemSettings::default(), &dir).unwrap();
        assert!(!wpa.exists());
        assert_eq!(
            std::fs::read_link(dir.join(LOCALTIME)).unwrap(),
            Path::new("/usr/share/zoneinfo/Etc/UTC")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
