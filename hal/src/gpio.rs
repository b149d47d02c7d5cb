//! What opening a GPIO line, a PWM channel or an SPI bus can fail with, naming the thing a
//! technician has to look at: which pin, for what, on which device.

/// A GPIO, PWM or SPI resource that could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{what} ({resource}): {reason}")]
pub struct OpenError {
    /// What it is for: "PTT button", "LED ring".
    pub what: String,
    /// The resource: "GPIO 17 on /dev/gpiochip0", "/dev/spidev0.0".
    pub resource: String,
    pub reason: String,
}

impl OpenError {
    pub fn new(what: &str, resource: impl Into<String>, reason: impl ToString) -> OpenError {
        OpenError {
            what: what.into(),
            resource: resource.into(),
            reason: reason.to_string(),
        }
    }
}

/// A line's bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pull {
    Up,
    Down,
    None,
}
