//! # stagebox-board — boards as data
//!
//! A board profile says which audio devices a station uses and how its microphones are laid
//! out, where its buttons are wired, what LEDs it has and how they are driven, and what the
//! operating system needs for all that (`config.txt` lines, `asound.conf`, udev rules, the
//! systemd unit). The daemon picks a profile by name from its configuration.
//!
//! A profile is an add-on board (`board/hats/*.toml`: the ReSpeaker HATs, the USB build)
//! on a SoC board (`board/socs/*.toml`: Pi 4, Pi 5, Zero 2 W, CM4); every pairing is a
//! built-in profile named `SOC-HAT` (e.g. `pi4-respeaker-2mic`). `sim` is a whole board by
//! itself. A profile file of one's own (a path ending in `.toml`) has the hat format, and
//! may name a built-in SoC with `soc = "pi4"`. [`BoardProfile::validate`] checks what can be
//! checked without the hardware; `stationd --check-board` checks the rest on the device.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AudioBackend {
    Sim,
    Alsa,
}

/// How GPIO lines, PWM channels and SPI buses are reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GpioBackend {
    Sim,
    /// Raspberry Pi through rppal.
    Rppal,
    /// Any Linux board: GPIO character device, spidev, sysfs PWM.
    Cdev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pull {
    Up,
    Down,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonPin {
    pub pin: u32,
    pub pull: Pull,
    pub active_low: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AudioProfile {
    pub backend: AudioBackend,
    pub capture_device: String,
    /// `soc-speaker`: the SoC board's speaker device (for capture-only HATs).
    pub playback_device: String,
    pub capture_channels: u16,
    /// Which capture channels carry microphones, in array order.
    pub mic_channels: Vec<u16>,
    /// Microphone positions in millimetres (x right, y forward, z up), in `mic_channels`
    /// order; required for two or more microphones (beamforming).
    #[serde(default)]
    pub mic_geometry_mm: Vec<[f32; 3]>,
    /// The ALSA configuration this board needs, under `board/files/`.
    pub asound_conf: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioProfile {
    pub backend: GpioBackend,
    /// The GPIO character device's label (cdev backend).
    pub chip_label: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ButtonProfile {
    pub ptt: ButtonPin,
    pub hand: ButtonPin,
}

fn default_pwm_hz() -> u32 {
    1000
}

/// The LEDs and how they are wired.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum LedProfile {
    /// Drawn in the terminal (sim).
    Terminal,
    /// One LED on a GPIO: on or off.
    Gpio {
        pin: u32,
        #[serde(default)]
        active_low: bool,
    },
    /// One LED on a hardware PWM pin.
    Pwm {
        pin: u32,
        #[serde(default = "default_pwm_hz")]
        pwm_hz: u32,
    },
    /// An RGB LED on three GPIOs, software PWM.
    Rgb {
        red: u32,
        green: u32,
        blue: u32,
        #[serde(default = "default_pwm_hz")]
        pwm_hz: u32,
    },
    /// APA102 LEDs on SPI.
    Apa102 {
        count: u16,
        spi_bus: u8,
        chip_select: u8,
        spi_hz: u32,
        /// 5-bit global brightness, 0–31.
        brightness: u8,
        /// A GPIO that powers the LEDs (high = on).
        power_pin: Option<u32>,
    },
}

impl LedProfile {
    /// The kind, as the profile names it.
    pub fn kind(&self) -> &'static str {
        match self {
            LedProfile::Terminal => "terminal",
            LedProfile::Gpio { .. } => "gpio",
            LedProfile::Pwm { .. } => "pwm",
            LedProfile::Rgb { .. } => "rgb",
            LedProfile::Apa102 { .. } => "apa102",
        }
    }

    /// The GPIO pins the LEDs take.
    pub fn pins(&self) -> Vec<u32> {
        match self {
            LedProfile::Terminal => vec![],
            LedProfile::Gpio { pin, .. } | LedProfile::Pwm { pin, .. } => vec![*pin],
            LedProfile::Rgb {
                red, green, blue, ..
            } => vec![*red, *green, *blue],
            LedProfile::Apa102 { power_pin, .. } => power_pin.iter().copied().collect(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemProfile {
    /// Pins the board's own buses use (I2C, I2S, SPI): nothing else may be wired there.
    #[serde(default)]
    pub reserved_pins: Vec<u32>,
    /// Lines for the Raspberry Pi's `config.txt` (overlays, pulls).
    #[serde(default)]
    pub config_txt: Vec<String>,
    /// What a person installing the board should know.
    #[serde(default)]
    pub notes: String,
}

/// A SoC board: what differs between Pi models.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Soc {
    pub name: String,
    pub description: String,
    /// `/proc/device-tree/model` starts with this.
    pub model: String,
    pub gpio_chip_label: String,
    /// Header pins with hardware PWM → PWM channel.
    pub pwm_pins: BTreeMap<String, u8>,
    /// The PWM controller's device-tree name (`fe20c000.pwm`): its sysfs `pwmchipN` is found
    /// by this name, because the number moves between kernels and boards.
    pub pwm_device: String,
    /// The loudspeaker device for capture-only HATs.
    pub speaker_device: String,
    #[serde(default)]
    pub config_txt: Vec<String>,
    /// The UART a technician's USB-serial cable goes on (`ttyS0`), for the serial console.
    #[serde(default)]
    pub console_uart: Option<String>,
}

impl Soc {
    /// The hardware PWM channel on `pin`, if it has one.
    pub fn pwm_channel(&self, pin: u32) -> Option<u8> {
        self.pwm_pins.get(&pin.to_string()).copied()
    }
}

/// The file format of a hat (and of `sim`, and of a profile file of one's own).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct HatFile {
    name: String,
    description: String,
    soc: Option<String>,
    audio: AudioProfile,
    gpio: Option<GpioProfile>,
    buttons: ButtonProfile,
    leds: LedProfile,
    #[serde(default)]
    system: SystemProfile,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BoardProfile {
    pub name: String,
    pub description: String,
    pub soc: Option<Soc>,
    pub audio: AudioProfile,
    pub gpio: GpioProfile,
    pub buttons: ButtonProfile,
    pub leds: LedProfile,
    /// The hat's and the SoC's needs together.
    pub system: SystemProfile,
    /// The text of `audio.asound_conf`, when it is one of the built-in files.
    pub asound_conf_text: Option<String>,
}

#[derive(Debug, Error)]
pub enum BoardError {
    #[error("unknown board {0:?}; built-in boards: {list}", list = builtin_names().collect::<Vec<_>>().join(", "))]
    Unknown(String),
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

const SOCS: &[(&str, &str)] = &[
    ("pi4", include_str!("../socs/pi4.toml")),
    ("pi5", include_str!("../socs/pi5.toml")),
    ("zero2w", include_str!("../socs/zero2w.toml")),
    ("cm4", include_str!("../socs/cm4.toml")),
];

const HATS: &[(&str, &str)] = &[
    (
        "respeaker-2mic",
        include_str!("../hats/respeaker-2mic.toml"),
    ),
    (
        "respeaker-4mic",
        include_str!("../hats/respeaker-4mic.toml"),
    ),
    ("usb-gpio", include_str!("../hats/usb-gpio.toml")),
];

const SIM: &str = include_str!("../hats/sim.toml");

/// Files under `board/files/` that profiles name, built in so that a profile can be checked
/// (and installed) without the source tree.
pub const FILES: &[(&str, &str)] = &[
    (
        "asound/respeaker-2mic.conf",
        include_str!("../files/asound/respeaker-2mic.conf"),
    ),
    (
        "asound/respeaker-4mic.conf",
        include_str!("../files/asound/respeaker-4mic.conf"),
    ),
    ("asound/usb.conf", include_str!("../files/asound/usb.conf")),
    (
        "udev/60-stagebox.rules",
        include_str!("../files/udev/60-stagebox.rules"),
    ),
    (
        "systemd/stagebox-stationd.service",
        include_str!("../files/systemd/stagebox-stationd.service"),
    ),
];

/// A built-in file by its path under `board/files/`.
pub fn builtin_file(path: &str) -> Option<&'static str> {
    FILES.iter().find(|(p, _)| *p == path).map(|(_, t)| *t)
}

/// Names of the built-in profiles: `sim`, then every SoC with every hat.
pub fn builtin_names() -> impl Iterator<Item = String> {
    std::iter::once("sim".to_string()).chain(
        SOCS.iter()
            .flat_map(|(s, _)| HATS.iter().map(move |(h, _)| format!("{s}-{h}"))),
    )
}

fn invalid(path: &str, message: impl Into<String>) -> BoardError {
    BoardError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

fn builtin_soc(name: &str) -> Result<Soc, BoardError> {
    let (_, text) = SOCS
        .iter()
        .find(|(n, _)| *n == name)
        .ok_or_else(|| BoardError::Unknown(name.into()))?;
    let origin = format!("board/socs/{name}.toml");
    toml::from_str(text).map_err(|e| invalid(&origin, e.to_string()))
}

impl BoardProfile {
    /// A built-in profile by name, or a profile file if `name` is a path ending in `.toml`.
    pub fn load(name: &str) -> Result<BoardProfile, BoardError> {
        if name == "sim" {
            return BoardProfile::parse(SIM, "board/hats/sim.toml");
        }
        for (soc, _) in SOCS {
            for (hat, text) in HATS {
                if name == format!("{soc}-{hat}") {
                    let origin = format!("board/hats/{hat}.toml");
                    let file = parse_hat(text, &origin)?;
                    return compose(file, Some(builtin_soc(soc)?), &origin);
                }
            }
        }
        let path = Path::new(name);
        if path.extension().is_some_and(|e| e == "toml") {
            let text = std::fs::read_to_string(path).map_err(|e| invalid(name, e.to_string()))?;
            return BoardProfile::parse(&text, name);
        }
        Err(BoardError::Unknown(name.into()))
    }

    /// A profile from the text of a hat-format file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<BoardProfile, BoardError> {
        let file = parse_hat(text, origin)?;
        let soc = match &file.soc {
            Some(s) => Some(builtin_soc(s).map_err(|_| {
                invalid(
                    origin,
                    format!(
                        "soc {s:?} is not a built-in SoC board ({})",
                        SOCS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                    ),
                )
            })?),
            None => None,
        };
        compose(file, soc, origin)
    }

    /// Everything that can be checked without the hardware. The message names the field.
    pub fn validate(&self) -> Result<(), String> {
        let audio = &self.audio;
        if audio.capture_channels == 0 {
            return Err("audio.capture_channels must be at least 1".into());
        }
        if audio.mic_channels.is_empty() {
            return Err("audio.mic_channels must name at least one channel".into());
        }
        if let Some(c) = audio
            .mic_channels
            .iter()
            .find(|&&c| c >= audio.capture_channels)
        {
            return Err(format!(
                "audio.mic_channels names channel {c}, but there are only {} capture channels",
                audio.capture_channels
            ));
        }
        if audio.mic_channels.len() > 1 && audio.mic_geometry_mm.len() != audio.mic_channels.len() {
            return Err(format!(
                "audio.mic_geometry_mm must give a position for each of the {} microphones",
                audio.mic_channels.len()
            ));
        }
        if audio
            .mic_geometry_mm
            .iter()
            .flatten()
            .any(|v| !v.is_finite() || v.abs() > 1000.0)
        {
            return Err("audio.mic_geometry_mm: positions must be within a metre".into());
        }
        self.validate_alsa()?;
        self.validate_pins()?;
        if let LedProfile::Apa102 {
            count, brightness, ..
        } = self.leds
        {
            if count == 0 || count > 256 {
                return Err(format!("leds.count must be 1 to 256, got {count}"));
            }
            if brightness > 31 {
                return Err(format!(
                    "leds.brightness is 5 bits (0-31), got {brightness}"
                ));
            }
        }
        if let Some(line) = self
            .system
            .config_txt
            .iter()
            .find(|l| !l.contains('=') || l.trim() != l.as_str() || l.contains('\n'))
        {
            return Err(format!(
                "system.config_txt: {line:?} is not a `key=value` line"
            ));
        }
        Ok(())
    }

    fn validate_alsa(&self) -> Result<(), String> {
        if self.audio.backend != AudioBackend::Alsa {
            return Ok(());
        }
        let Some(conf) = &self.asound_conf_text else {
            return Ok(());
        };
        for (field, device) in [
            ("capture_device", &self.audio.capture_device),
            ("playback_device", &self.audio.playback_device),
        ] {
            let own = !device.contains(':') && device != "default";
            if own && !conf.contains(&format!("pcm.{device} ")) {
                return Err(format!(
                    "audio.{field}: {device:?} is not defined in {}",
                    self.audio.asound_conf.as_deref().unwrap_or("asound.conf")
                ));
            }
        }
        Ok(())
    }

    fn validate_pins(&self) -> Result<(), String> {
        if self.gpio.backend == GpioBackend::Sim {
            if self.buttons.ptt.pin == self.buttons.hand.pin {
                return Err("buttons.ptt and buttons.hand are on the same pin".into());
            }
            return Ok(());
        }
        let mut used: Vec<(u32, &str)> = vec![
            (self.buttons.ptt.pin, "buttons.ptt"),
            (self.buttons.hand.pin, "buttons.hand"),
        ];
        for pin in self.leds.pins() {
            used.push((pin, "leds"));
        }
        for (i, (pin, what)) in used.iter().enumerate() {
            if self.soc.is_some() && *pin > 27 {
                return Err(format!(
                    "{what}: GPIO {pin} is not on the 40-pin header (GPIO 0-27)"
                ));
            }
            if let Some((_, other)) = used[..i].iter().find(|(p, _)| p == pin) {
                return Err(format!("{what} and {other} are both on GPIO {pin}"));
            }
            if self.system.reserved_pins.contains(pin) {
                return Err(format!(
                    "{what}: GPIO {pin} is taken by the board's own buses (system.reserved_pins)"
                ));
            }
        }
        if let (LedProfile::Pwm { pin, .. }, Some(soc)) = (&self.leds, &self.soc)
            && soc.pwm_channel(*pin).is_none()
        {
            return Err(format!(
                "leds.pin: GPIO {pin} has no hardware PWM on {} (PWM pins: {})",
                soc.description,
                soc.pwm_pins.keys().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some(soc) = &self.soc
            && (soc.pwm_device.is_empty()
                || soc.pwm_device.contains(['/', ' '])
                || soc.pwm_device.starts_with("pwmchip"))
        {
            return Err(format!(
                "soc.pwm_device {:?} must be the PWM controller's device-tree name, such as \"fe20c000.pwm\"",
                soc.pwm_device
            ));
        }
        if self.gpio.backend == GpioBackend::Cdev && self.gpio.chip_label.is_none() {
            return Err("gpio.chip_label is needed with the cdev backend".into());
        }
        Ok(())
    }

    /// The lines a Raspberry Pi's `config.txt` needs for this board.
    pub fn config_txt(&self) -> String {
        let mut out = format!("# stagebox: {}\n", self.description);
        for line in &self.system.config_txt {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

fn parse_hat(text: &str, origin: &str) -> Result<HatFile, BoardError> {
    toml::from_str(text).map_err(|e| invalid(origin, e.to_string()))
}

fn compose(file: HatFile, soc: Option<Soc>, origin: &str) -> Result<BoardProfile, BoardError> {
    let mut audio = file.audio;
    let mut system = file.system;
    let gpio = match (&file.gpio, &soc) {
        (Some(g), _) => g.clone(),
        (None, Some(s)) => GpioProfile {
            backend: GpioBackend::Rppal,
            chip_label: Some(s.gpio_chip_label.clone()),
        },
        (None, None) => {
            return Err(invalid(
                origin,
                "a board without `soc` needs a [gpio] table",
            ));
        }
    };
    if audio.playback_device == "soc-speaker" {
        match &soc {
            Some(s) => audio.playback_device = s.speaker_device.clone(),
            None => {
                return Err(invalid(
                    origin,
                    "audio.playback_device: \"soc-speaker\" needs a `soc`",
                ));
            }
        }
    }
    let (name, description) = match &soc {
        Some(s) if file.soc.is_none() => (
            format!("{}-{}", s.name, file.name),
            format!("{} on {}", file.description, s.description),
        ),
        Some(s) => (
            file.name,
            format!("{} on {}", file.description, s.description),
        ),
        None => (file.name, file.description),
    };
    if let Some(s) = &soc {
        system.config_txt.extend(s.config_txt.iter().cloned());
    }
    let asound_conf_text = audio
        .asound_conf
        .as_deref()
        .and_then(builtin_file)
        .map(str::to_string);
    if let Some(path) = &audio.asound_conf
        && asound_conf_text.is_none()
    {
        return Err(invalid(
            origin,
            format!("audio.asound_conf: no file {path:?} in board/files"),
        ));
    }
    let profile = BoardProfile {
        name,
        description,
        soc,
        audio,
        gpio,
        buttons: file.buttons,
        leds: file.leds,
        system,
        asound_conf_text,
    };
    profile.validate().map_err(|m| invalid(origin, m))?;
    Ok(profile)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_profiles_are_refused_with_reasons() {
        assert!(matches!(
            BoardProfile::load("pi9"),
            Err(BoardError::Unknown(_))
        ));
        let refuse = |from: &str, to: &str, want: &str| {
            let text = include_str!("../hats/respeaker-2mic.toml").replace(from, to);
            assert_ne!(text, include_str!("../hats/respeaker-2mic.toml"), "{from}");
            let text = format!("soc = \"pi4\"\n{text}");
            let err = BoardProfile::parse(&text, "x.toml")
                .unwrap_err()
                .to_string();
            assert!(err.starts_with("x.toml: ") && err.contains(want), "{err}");
        };
        refuse(
            "mic_channels = [0, 1]",
            "mic_channels = [0, 3]",
            "channel 3",
        );
        refuse("kind = \"apa102\"", "kind = \"laser\"", "laser");
        refuse("pin = 12,", "pin = 17,", "both on GPIO 17");
        refuse("pin = 12,", "pin = 20,", "GPIO 20 is taken");
        refuse("pin = 12,", "pin = 33,", "not on the 40-pin header");
        refuse("brightness = 8", "brightness = 40", "5 bits");
        refuse(
            "[[-32.0, 0.0, 0.0], [32.0, 0.0, 0.0]]",
            "[[-32.0, 0.0, 0.0]]",
            "position for each",
        );
        refuse(
            "capture_device = \"stagebox_capture\"",
            "capture_device = \"mics\"",
            "not defined in asound/respeaker-2mic.conf",
        );
        refuse("\"dtparam=spi=on\"", "\"dtparam spi\"", "key=value");
        let text = include_str!("../hats/usb-gpio.toml").replace("pin = 18", "pin = 22");
        let err = BoardProfile::parse(&format!("soc = \"pi5\"\n{text}"), "y.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("GPIO 22 has no hardware PWM on Raspberry Pi 5"),
            "{err}"
        );
        let err = BoardProfile::parse(&format!("soc = \"pi7\"\n{text}"), "y.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a built-in SoC"), "{err}");
    }

    #[test]
    fn a_capture_only_hat_plays_through_the_socs_speaker() {
        let pi4 = BoardProfile::load("pi4-respeaker-4mic").unwrap();
        assert_eq!(pi4.audio.playback_device, "plughw:CARD=Headphones");
        let pi5 = BoardProfile::load("pi5-respeaker-4mic").unwrap();
        assert_eq!(pi5.audio.playback_device, "plughw:CARD=Device");
        let usb = BoardProfile::load("pi5-usb-gpio").unwrap();
        assert_eq!(usb.soc.as_ref().unwrap().pwm_channel(18), Some(2));
        assert!(usb.config_txt().contains("dtoverlay=pwm,pin=18,func=2\n"));
    }

    #[test]
    fn the_pwm_controller_is_named_by_device_not_by_number() {
        let pi5 = BoardProfile::load("pi5-usb-gpio").unwrap();
        assert_eq!(pi5.soc.as_ref().unwrap().pwm_device, "1f00098000.pwm");
        let pi4 = BoardProfile::load("pi4-usb-gpio").unwrap();
        assert_eq!(pi4.soc.as_ref().unwrap().pwm_device, "fe20c000.pwm");
        let mut numbered = pi5.clone();
        numbered.soc.as_mut().unwrap().pwm_device = "pwmchip0".into();
        let err = numbered.validate().unwrap_err();
        assert!(err.contains("device-tree name"), "{err}");
    }
}
