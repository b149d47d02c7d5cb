//! Opening the board's buttons and LEDs from its profile: the sim's, or real GPIO, PWM and
//! SPI through the rppal or cdev backend, wrapped in the board-agnostic drivers. Errors name
//! the pin or bus and what it is for.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use stagebox_board::{BoardProfile, GpioBackend};
use stagebox_core::button::PerButton;
use stagebox_hal::drivers::button::{ButtonInput, SampleButton};
use stagebox_hal::gpio::OpenError;
use stagebox_hal::indicator::AnyIndicator;
use stagebox_hal::sim::{SimButton, SimLeds};

use crate::input::Input;

/// The board's two buttons.
pub type Buttons = PerButton<Box<dyn SampleButton>>;

/// How often buttons are sampled: well inside the 20 ms debounce.
pub const BUTTON_POLL: Duration = Duration::from_millis(4);

/// Samples the buttons until `shutdown`, sending every change to the network task. A pin that
/// fails to read is reported once per failure streak.
pub fn spawn_button_poller(
    mut buttons: Buttons,
    inputs: async_channel::Sender<Input>,
    shutdown: Arc<AtomicBool>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("buttons".into())
        .spawn(move || {
            let mut failing = PerButton::<bool>::default();
            while !shutdown.load(Ordering::Relaxed) {
                for id in stagebox_core::ButtonId::ALL {
                    match buttons[id].sample() {
                        Ok(Some(pressed)) => {
                            failing[id] = false;
                            if inputs.send_blocking(Input::Button { id, pressed }).is_err() {
                                return;
                            }
                        }
                        Ok(None) => failing[id] = false,
                        Err(e) if !failing[id] => {
                            failing[id] = true;
                            log::warn!("reading the {id:?} button failed: {e}");
                        }
                        Err(_) => {}
                    }
                }
                std::thread::sleep(BUTTON_POLL);
            }
        })
}

/// The sim board's buttons (the control socket presses them).
pub fn sim_buttons(ptt: &SimButton, hand: &SimButton) -> Buttons {
    Buttons {
        ptt: Box::new(ButtonInput::new(ptt.clone(), true)),
        hand: Box::new(ButtonInput::new(hand.clone(), true)),
    }
}

/// Opens the buttons and LEDs of a hardware board.
pub fn open(board: &BoardProfile) -> Result<(Buttons, AnyIndicator), OpenError> {
    match board.gpio.backend {
        GpioBackend::Sim => Err(OpenError::new(
            "buttons and LEDs",
            board.name.clone(),
            "the sim board has no hardware",
        )),
        GpioBackend::Rppal => open_rppal(board),
        GpioBackend::Cdev => open_cdev(board),
    }
}

/// The terminal LEDs, whatever the board (`--board sim`, or `[sim] draw_leds`).
pub fn terminal_leds(leds: SimLeds) -> AnyIndicator {
    AnyIndicator(Box::new(leds))
}

#[cfg(not(all(feature = "rppal", feature = "cdev")))]
fn unsupported(backend: &str) -> OpenError {
    OpenError::new(
        "GPIO",
        backend.to_string(),
        "this build of stationd has no such backend (cargo feature)",
    )
}

#[cfg(feature = "rppal")]
fn open_rppal(board: &BoardProfile) -> Result<(Buttons, AnyIndicator), OpenError> {
    use stagebox_board::LedProfile;
    use stagebox_hal::drivers::Led;
    use stagebox_hal::drivers::rgb::RgbLed;
    use stagebox_hal::drivers::single::{OnOffLed, PwmLed};
    use stagebox_hal::rpi;

    let gpio = rpi::gpio()?;
    let pin = |p: u32, what: &str| {
        u8::try_from(p).map_err(|_| OpenError::new(what, format!("GPIO {p}"), "no such pin"))
    };
    let b = &board.buttons;
    let buttons = Buttons {
        ptt: Box::new(ButtonInput::new(
            rpi::input(
                &gpio,
                pin(b.ptt.pin, "PTT button")?,
                pull(&b.ptt.pull),
                "PTT button",
            )?,
            b.ptt.active_low,
        )),
        hand: Box::new(ButtonInput::new(
            rpi::input(
                &gpio,
                pin(b.hand.pin, "hand button")?,
                pull(&b.hand.pull),
                "hand button",
            )?,
            b.hand.active_low,
        )),
    };
    let leds = match &board.leds {
        LedProfile::Terminal => terminal_leds(SimLeds::new(&board.name, true)),
        LedProfile::Gpio { pin: p, active_low } => {
            let out = rpi::output(&gpio, pin(*p, "LED")?, *active_low, "LED")?;
            AnyIndicator(Box::new(Led::new(OnOffLed::new(out, *active_low))))
        }
        LedProfile::Pwm { pin: p, pwm_hz } => {
            let (chip, channel) = pwm_chip(board, *p)?;
            let number = stagebox_hal::sysfs_pwm::chip_number(&chip).ok_or_else(|| {
                OpenError::new(
                    "LED",
                    chip.display().to_string(),
                    "not a pwmchipN directory",
                )
            })?;
            let pwm = rpi::hard_pwm(number, channel, *pwm_hz, "LED")?;
            AnyIndicator(Box::new(Led::new(PwmLed::new(pwm))))
        }
        LedProfile::Rgb {
            red,
            green,
            blue,
            pwm_hz,
        } => {
            let r = rpi::soft_pwm(&gpio, pin(*red, "red LED")?, *pwm_hz, "red LED")?;
            let g = rpi::soft_pwm(&gpio, pin(*green, "green LED")?, *pwm_hz, "green LED")?;
            let bl = rpi::soft_pwm(&gpio, pin(*blue, "blue LED")?, *pwm_hz, "blue LED")?;
            AnyIndicator(Box::new(Led::new(RgbLed::new(r, g, bl))))
        }
        LedProfile::Apa102 {
            count,
            spi_bus,
            chip_select,
            spi_hz,
            brightness,
            power_pin,
        } => {
            let power = match power_pin {
                Some(p) => Some(rpi::output(
                    &gpio,
                    pin(*p, "LED power")?,
                    true,
                    "LED power",
                )?),
                None => None,
            };
            let spi = rpi::spi(*spi_bus, *chip_select, *spi_hz, "LEDs")?;
            ring(spi, power, *count, *brightness)
        }
    };
    Ok((buttons, leds))
}

#[cfg(not(feature = "rppal"))]
fn open_rppal(_: &BoardProfile) -> Result<(Buttons, AnyIndicator), OpenError> {
    Err(unsupported("rppal"))
}

#[cfg(feature = "cdev")]
fn open_cdev(board: &BoardProfile) -> Result<(Buttons, AnyIndicator), OpenError> {
    use stagebox_board::LedProfile;
    use stagebox_hal::cdev;
    use stagebox_hal::drivers::Led;
    use stagebox_hal::drivers::single::{OnOffLed, PwmLed};
    use stagebox_hal::sysfs_pwm::SysfsPwm;

    let label = board.gpio.chip_label.as_deref().unwrap_or("");
    let chip = cdev::find_chip(label, "buttons")?;
    let b = &board.buttons;
    let buttons = Buttons {
        ptt: Box::new(ButtonInput::new(
            cdev::input(&chip, b.ptt.pin, "PTT button")?,
            b.ptt.active_low,
        )),
        hand: Box::new(ButtonInput::new(
            cdev::input(&chip, b.hand.pin, "hand button")?,
            b.hand.active_low,
        )),
    };
    let leds = match &board.leds {
        LedProfile::Terminal => terminal_leds(SimLeds::new(&board.name, true)),
        LedProfile::Gpio { pin, active_low } => {
            let out = cdev::output(&chip, *pin, *active_low, "LED")?;
            AnyIndicator(Box::new(Led::new(OnOffLed::new(out, *active_low))))
        }
        LedProfile::Pwm { pin, pwm_hz } => {
            let (chip_dir, channel) = pwm_chip(board, *pin)?;
            let pwm = SysfsPwm::open(&chip_dir, channel.into(), *pwm_hz)
                .map_err(|e| OpenError::new("LED", format!("GPIO {pin}"), e))?;
            AnyIndicator(Box::new(Led::new(PwmLed::new(pwm))))
        }
        LedProfile::Rgb { .. } => {
            return Err(OpenError::new(
                "LED",
                "RGB on GPIO",
                "software PWM needs the rppal backend",
            ));
        }
        LedProfile::Apa102 {
            count,
            spi_bus,
            chip_select,
            spi_hz,
            brightness,
            power_pin,
        } => {
            let power = match power_pin {
                Some(p) => Some(cdev::output(&chip, *p, true, "LED power")?),
                None => None,
            };
            let spi = cdev::spi(*spi_bus, *chip_select, *spi_hz, "LEDs")?;
            ring(spi, power, *count, *brightness)
        }
    };
    Ok((buttons, leds))
}

#[cfg(not(feature = "cdev"))]
fn open_cdev(_: &BoardProfile) -> Result<(Buttons, AnyIndicator), OpenError> {
    Err(unsupported("cdev"))
}

#[cfg(feature = "rppal")]
fn pull(p: &stagebox_board::Pull) -> stagebox_hal::gpio::Pull {
    match p {
        stagebox_board::Pull::Up => stagebox_hal::gpio::Pull::Up,
        stagebox_board::Pull::Down => stagebox_hal::gpio::Pull::Down,
        stagebox_board::Pull::None => stagebox_hal::gpio::Pull::None,
    }
}

/// The sysfs PWM chip and channel of an LED pin on this board's SoC. The chip is found by the
/// controller's device-tree name: its `pwmchipN` number differs between kernels (on a Pi 5,
/// pwmchip2 on older kernels, pwmchip0 on newer ones, and the fan's controller may take
/// either), so neither a fixed number nor rppal's per-model guess is trusted.
#[cfg(any(feature = "rppal", feature = "cdev"))]
fn pwm_chip(board: &BoardProfile, pin: u32) -> Result<(std::path::PathBuf, u8), OpenError> {
    let resource = format!("GPIO {pin}");
    let soc = board
        .soc
        .as_ref()
        .ok_or_else(|| OpenError::new("LED", resource.clone(), "no SoC, no hardware PWM"))?;
    let channel = soc
        .pwm_channel(pin)
        .ok_or_else(|| OpenError::new("LED", resource.clone(), "no hardware PWM"))?;
    let chip =
        stagebox_hal::sysfs_pwm::find_chip(std::path::Path::new("/sys/class/pwm"), &soc.pwm_device)
            .map_err(|e| OpenError::new("LED", resource, e))?;
    Ok((chip, channel))
}

/// An APA102 string on `spi`, with the pin that powers it (if any).
#[cfg(any(feature = "rppal", feature = "cdev"))]
fn ring<S, P>(spi: S, power: Option<P>, count: u16, brightness: u8) -> AnyIndicator
where
    S: embedded_hal::spi::SpiBus + Send + 'static,
    S::Error: std::fmt::Display,
    P: Send + 'static,
{
    use stagebox_hal::drivers::Led;
    use stagebox_hal::drivers::apa102::Apa102;
    let leds = Led::new(Apa102::new(spi, usize::from(count), brightness));
    AnyIndicator(Box::new(Powered {
        leds,
        _power: power,
    }))
}

/// LEDs with the pin that powers them, held for as long as the LEDs are.
#[cfg(any(feature = "rppal", feature = "cdev"))]
struct Powered<L, P> {
    leds: L,
    _power: Option<P>,
}

#[cfg(any(feature = "rppal", feature = "cdev"))]
impl<L: stagebox_hal::Indicator, P> stagebox_hal::Indicator for Powered<L, P> {
    type Error = L::Error;

    fn show(
        &mut self,
        now: std::time::Instant,
        state: stagebox_core::LedState,
    ) -> Result<(), L::Error> {
        self.leds.show(now, state)
    }

    fn level(&mut self, percent: u8) -> Result<(), L::Error> {
        self.leds.level(percent)
    }

    fn refresh(&mut self, now: std::time::Instant) -> Result<(), L::Error> {
        self.leds.refresh(now)
    }
}
