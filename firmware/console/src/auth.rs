//! The console PIN: each station has its own (made at first boot and printed on its label;
//! never a shared default, as ETSI EN 303 645 asks of debug interfaces), kept only as a
//! salted PBKDF2 verifier, compared in constant time. Wrong PINs are rate-limited: three
//! tries, then a wait that doubles with every further miss (30 s up to an hour), during
//! which no PIN is even looked at. Sans-IO: the caller passes the time.

use std::num::NonZeroU32;
use std::time::{Duration, Instant};

use thiserror::Error;

/// Digits in a console PIN.
pub const PIN_DIGITS: usize = 8;
/// PBKDF2 rounds: a fraction of a second on a Pi, far too slow to try every PIN offline.
pub const ITERATIONS: u32 = 100_000;
/// Misses allowed before the waits start.
pub const FREE_TRIES: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_secs(30);
const LONGEST_WAIT: Duration = Duration::from_secs(3600);

static ALGORITHM: aws_lc_rs::pbkdf2::Algorithm = aws_lc_rs::pbkdf2::PBKDF2_HMAC_SHA256;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("the PIN file is not `pbkdf2-sha256$ROUNDS$SALT$HASH`")]
    BadVerifier,
    #[error("the system's random generator failed")]
    Random,
}

/// What a stored PIN is checked against.
#[derive(Clone, PartialEq, Eq)]
pub struct PinVerifier {
    iterations: NonZeroU32,
    salt: Vec<u8>,
    hash: [u8; 32],
}

impl std::fmt::Debug for PinVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinVerifier(..)")
    }
}

impl PinVerifier {
    /// The verifier of `pin` with a fresh random salt.
    pub fn new(pin: &str, iterations: u32) -> Result<PinVerifier, AuthError> {
        let mut salt = vec![0u8; 16];
        aws_lc_rs::rand::SecureRandom::fill(&aws_lc_rs::rand::SystemRandom::new(), &mut salt)
            .map_err(|_| AuthError::Random)?;
        let iterations = NonZeroU32::new(iterations).ok_or(AuthError::BadVerifier)?;
        let mut hash = [0u8; 32];
        aws_lc_rs::pbkdf2::derive(ALGORITHM, iterations, &salt, pin.as_bytes(), &mut hash);
        Ok(PinVerifier {
            iterations,
            salt,
            hash,
        })
    }

    /// `pbkdf2-sha256$ROUNDS$SALT_HEX$HASH_HEX`, as [`Self::to_text`] writes it.
    pub fn parse(text: &str) -> Result<PinVerifier, AuthError> {
        let mut parts = text.trim().split('$');
        let (Some("pbkdf2-sha256"), Some(rounds), Some(salt), Some(hash), None) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) else {
            return Err(AuthError::BadVerifier);
        };
        let iterations = rounds
            .parse::<u32>()
            .ok()
            .and_then(NonZeroU32::new)
            .ok_or(AuthError::BadVerifier)?;
        let salt = hex_decode(salt).filter(|s| (8..=64).contains(&s.len()));
        let hash = hex_decode(hash).and_then(|h| <[u8; 32]>::try_from(h).ok());
        match (salt, hash) {
            (Some(salt), Some(hash)) => Ok(PinVerifier {
                iterations,
                salt,
                hash,
            }),
            _ => Err(AuthError::BadVerifier),
        }
    }

    pub fn to_text(&self) -> String {
        format!(
            "pbkdf2-sha256${}${}${}",
            self.iterations,
            hex_encode(&self.salt),
            hex_encode(&self.hash)
        )
    }

    /// Whether `pin` is the one (constant time in what matches).
    pub fn verify(&self, pin: &str) -> bool {
        aws_lc_rs::pbkdf2::verify(
            ALGORITHM,
            self.iterations,
            &self.salt,
            pin.trim().as_bytes(),
            &self.hash,
        )
        .is_ok()
    }
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 256 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A new random PIN of [`PIN_DIGITS`] digits (uniform: bytes over the last whole multiple
/// of ten are drawn again).
pub fn new_pin() -> Result<String, AuthError> {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut pin = String::with_capacity(PIN_DIGITS);
    while pin.len() < PIN_DIGITS {
        let mut b = [0u8; 1];
        aws_lc_rs::rand::SecureRandom::fill(&rng, &mut b).map_err(|_| AuthError::Random)?;
        if b[0] < 250 {
            pin.push(char::from(b'0' + b[0] % 10));
        }
    }
    Ok(pin)
}

/// What one try gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Granted,
    /// Wrong; the next try is taken after `wait` (zero while free tries remain).
    Denied {
        wait: Duration,
    },
    /// Too soon after misses: not checked.
    TooSoon {
        wait: Duration,
    },
}

/// The wait a run of `misses` wrong PINs earns before the next try is looked at.
pub fn wait_after(misses: u32) -> Duration {
    match misses.checked_sub(FREE_TRIES) {
        None => Duration::ZERO,
        Some(over) => FIRST_WAIT
            .saturating_mul(1u32 << over.min(16))
            .min(LONGEST_WAIT),
    }
}

/// The wrong PINs in a row and what is left of the wait they earned: the station's, shared
/// by its console lines and kept beside the PIN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PinTries {
    pub misses: u32,
    /// Until the next try is looked at (zero: now).
    pub wait_left: Duration,
}

impl PinTries {
    /// `misses` kept from an earlier boot: the station has no clock to tell how much of their
    /// wait passed, so it starts again in full — a power cycle never shortens it.
    pub fn from_an_earlier_boot(misses: u32) -> PinTries {
        PinTries {
            misses,
            wait_left: wait_after(misses),
        }
    }

    /// A kept count that cannot be read: as many misses as are free, with their wait — a
    /// garbled count must not hand out fresh tries.
    pub fn unreadable() -> PinTries {
        PinTries::from_an_earlier_boot(FREE_TRIES)
    }
}

/// The rate-limited door in front of the changing commands.
#[derive(Debug)]
pub struct PinGate {
    verifier: PinVerifier,
    misses: u32,
    not_before: Option<Instant>,
}

impl PinGate {
    pub fn new(verifier: PinVerifier) -> PinGate {
        PinGate {
            verifier,
            misses: 0,
            not_before: None,
        }
    }

    /// Misses so far (the console logs each).
    pub fn misses(&self) -> u32 {
        self.misses
    }

    pub fn handle_attempt(&mut self, now: Instant, pin: &str) -> Attempt {
        if let Some(t) = self.not_before
            && now < t
        {
            return Attempt::TooSoon { wait: t - now };
        }
        if self.verifier.verify(pin) {
            self.misses = 0;
            self.not_before = None;
            return Attempt::Granted;
        }
        self.misses = self.misses.saturating_add(1);
        let wait = wait_after(self.misses);
        self.not_before = (!wait.is_zero()).then(|| now + wait);
        Attempt::Denied { wait }
    }

    /// The count and the wait as they stand at `now`, for the plumbing to keep.
    pub fn tries(&self, now: Instant) -> PinTries {
        PinTries {
            misses: self.misses,
            wait_left: self
                .not_before
                .map_or(Duration::ZERO, |t| t.saturating_duration_since(now)),
        }
    }

    /// What the station's shared count says at `now` (another line's misses, or those from
    /// before a restart): it replaces this gate's own.
    pub fn handle_tries(&mut self, now: Instant, tries: PinTries) {
        self.misses = tries.misses;
        self.not_before = (!tries.wait_left.is_zero()).then(|| now + tries.wait_left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pin_is_kept_only_as_its_verifier_and_checked_against_it() {
        let v = PinVerifier::new("40718263", 1000).unwrap();
        let text = v.to_text();
        assert!(!text.contains("40718263"));
        let back = PinVerifier::parse(&text).unwrap();
        assert_eq!(back, v);
        assert!(back.verify("40718263"));
        assert!(back.verify(" 40718263\n"));
        assert!(!back.verify("40718264"));
        assert!(!back.verify(""));
        for bad in [
            "",
            "pbkdf2-sha256$0$00112233445566778899aabbccddeeff$00",
            "pbkdf2-sha256$1000$zz$00",
            "md5$1$00$00",
            &format!("{text}$extra"),
        ] {
            assert_eq!(
                PinVerifier::parse(bad),
                Err(AuthError::BadVerifier),
                "{bad}"
            );
        }
        // Two verifiers of one PIN differ (their salts do).
        assert_ne!(PinVerifier::new("40718263", 1000).unwrap(), v);
    }

    #[test]
    fn new_pins_are_eight_digits_and_differ() {
        let a = new_pin().unwrap();
        assert_eq!(a.len(), PIN_DIGITS);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
        let others: Vec<String> = (0..8).map(|_| new_pin().unwrap()).collect();
        assert!(others.iter().any(|o| *o != a));
    }

    #[test]
    fn misses_past_the_free_tries_wait_longer_each_time_and_the_right_pin_resets() {
        let t = Instant::now();
        let mut gate = PinGate::new(PinVerifier::new("1234", 1000).unwrap());
        for _ in 0..FREE_TRIES - 1 {
            assert_eq!(
                gate.handle_attempt(t, "0000"),
                Attempt::Denied {
                    wait: Duration::ZERO
                }
            );
        }
        assert_eq!(
            gate.handle_attempt(t, "0000"),
            Attempt::Denied {
                wait: Duration::from_secs(30)
            }
        );
        // Even the right PIN is not looked at while the wait runs.
        assert_eq!(
            gate.handle_attempt(t + Duration::from_secs(10), "1234"),
            Attempt::TooSoon {
                wait: Duration::from_secs(20)
            }
        );
        let t = t + Duration::from_secs(30);
        assert_eq!(
            gate.handle_attempt(t, "9999"),
            Attempt::Denied {
                wait: Duration::from_secs(60)
            }
        );
        let mut later = t;
        for _ in 0..20 {
            later += LONGEST_WAIT;
            gate.handle_attempt(later, "9999");
        }
        assert_eq!(
            gate.handle_attempt(later + Duration::from_secs(1), "1234"),
            Attempt::TooSoon {
                wait: LONGEST_WAIT - Duration::from_secs(1)
            }
        );
        assert_eq!(
            gate.handle_attempt(later + LONGEST_WAIT, "1234"),
            Attempt::Granted
        );
        assert_eq!(gate.misses(), 0);
    }

    #[test]
    fn the_count_and_the_wait_carry_over_to_another_gate() {
        let t = Instant::now();
        let mut line_a = PinGate::new(PinVerifier::new("1234", 1000).unwrap());
        let mut line_b = PinGate::new(PinVerifier::new("1234", 1000).unwrap());
        for _ in 0..FREE_TRIES {
            line_a.handle_attempt(t, "0000");
        }
        let shared = line_a.tries(t + Duration::from_secs(5));
        assert_eq!(
            shared,
            PinTries {
                misses: FREE_TRIES,
                wait_left: Duration::from_secs(25)
            }
        );
        // The other line takes the station's count: the right PIN waits there too.
        let t = t + Duration::from_secs(5);
        line_b.handle_tries(t, shared);
        assert_eq!(
            line_b.handle_attempt(t, "1234"),
            Attempt::TooSoon {
                wait: Duration::from_secs(25)
            }
        );
        // The next miss there doubles the wait, as it would have on the first line.
        let t = t + Duration::from_secs(25);
        assert_eq!(
            line_b.handle_attempt(t, "0000"),
            Attempt::Denied {
                wait: Duration::from_secs(60)
            }
        );
        assert_eq!(wait_after(FREE_TRIES + 1), Duration::from_secs(60));
        // The right PIN clears the count for every line.
        let t = t + Duration::from_secs(60);
        assert_eq!(line_b.handle_attempt(t, "1234"), Attempt::Granted);
        line_a.handle_tries(t, line_b.tries(t));
        assert_eq!(line_a.tries(t), PinTries::default());
    }
}
