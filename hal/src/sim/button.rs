//! A button as an embedded-hal input pin, wired like the real ones: to ground with a pull-up,
//! so pressed reads low.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use embedded_hal::digital::{ErrorType, InputPin};

#[derive(Debug, Clone, Default)]
pub struct SimButton {
    pressed: Arc<AtomicBool>,
}

/// The finger on a [`SimButton`].
#[derive(Debug, Clone)]
pub struct SimButtonHandle {
    pressed: Arc<AtomicBool>,
}

impl SimButton {
    pub fn new() -> SimButton {
        SimButton::default()
    }

    pub fn handle(&self) -> SimButtonHandle {
        SimButtonHandle {
            pressed: self.pressed.clone(),
        }
    }
}

impl SimButtonHandle {
    pub fn set_pressed(&self, pressed: bool) {
        self.pressed.store(pressed, Ordering::SeqCst);
    }
}

impl ErrorType for SimButton {
    type Error = Infallible;
}

impl InputPin for SimButton {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(!self.pressed.load(Ordering::SeqCst))
    }

    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(self.pressed.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressed_reads_low() {
        let mut b = SimButton::new();
        let h = b.handle();
        assert!(b.is_high().unwrap());
        h.set_pressed(true);
        assert!(b.is_low().unwrap());
    }
}
