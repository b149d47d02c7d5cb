//! The boot health check, sans-IO: when the running slot is marked good (RAUC's
//! `mark-good`, which resets U-Boot's boot counter), and when a new slot that does not work is
//! given up on.
//!
//! U-Boot counts every boot of a slot down and falls back to the other slot when the count is
//! spent; marking good refills it. So marking good must happen **on every boot** of a healthy
//! slot (or a healthy slot would be left after three reboots), **once** per boot, **after**
//! the check, and a failed mark-good is retried, never dropped.
//!
//! - A **trial** boot (the first boots of a slot an update just installed) must prove itself:
//!   joined a stage and the audio device open within the configured time. If it does not, the
//!   station reboots, U-Boot counts the slot down, and after the last try boots the old slot.
//! - A slot already proven only needs its audio device open: a stage server that is down for
//!   the night must not send every station into a reboot loop (and, three power cuts later,
//!   onto older firmware).

use std::time::{Duration, Instant};

/// A failed mark-good is tried again after this long.
pub const MARK_GOOD_RETRY: Duration = Duration::from_secs(10);

/// Why a trial slot was given up on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhealthy {
    NeverJoined,
    AudioNeverOpened,
}

impl std::fmt::Display for Unhealthy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unhealthy::NeverJoined => "the station did not join a stage in time",
            Unhealthy::AudioNeverOpened => "the audio device did not open in time",
        })
    }
}

/// What the check asks of the plumbing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum HealthEvent {
    /// Mark the running slot good; answer with [`HealthCheck::handle_marked`].
    MarkGood,
    /// The trial failed: reboot (U-Boot counts the slot down, then falls back).
    Reboot(Unhealthy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    Checking { deadline: Instant },
    Marking,
    RetryMark { at: Instant },
    Good,
    GaveUp,
}

#[derive(Debug)]
pub struct HealthCheck {
    trial: bool,
    joined: bool,
    audio_open: bool,
    state: HealthState,
    events: Vec<HealthEvent>,
}

impl HealthCheck {
    /// A check starting at boot (`now`). `trial`: the running slot was just installed and has
    /// not been proven. `already_marked`: this boot's mark-good already happened (the daemon
    /// restarted within the boot) — nothing more to do.
    pub fn new(now: Instant, within: Duration, trial: bool, already_marked: bool) -> HealthCheck {
        HealthCheck {
            trial,
            joined: false,
            audio_open: false,
            state: if already_marked {
                HealthState::Good
            } else {
                HealthState::Checking {
                    deadline: now + within,
                }
            },
            events: Vec::new(),
        }
    }

    pub fn state(&self) -> HealthState {
        self.state
    }

    pub fn is_trial(&self) -> bool {
        self.trial
    }

    /// The station joined a stage.
    pub fn handle_joined(&mut self, now: Instant) {
        self.joined = true;
        self.advance(now);
    }

    /// The audio device is open and running.
    pub fn handle_audio_open(&mut self, now: Instant) {
        self.audio_open = true;
        self.advance(now);
    }

    /// The mark-good finished, or failed (tried again after [`MARK_GOOD_RETRY`]).
    pub fn handle_marked(&mut self, now: Instant, result: Result<(), String>) {
        if self.state != HealthState::Marking {
            return;
        }
        self.state = match result {
            Ok(()) => HealthState::Good,
            Err(_) => HealthState::RetryMark {
                at: now + MARK_GOOD_RETRY,
            },
        };
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            HealthState::Checking { deadline } if now >= deadline && self.trial => {
                let why = if self.audio_open {
                    Unhealthy::NeverJoined
                } else {
                    Unhealthy::AudioNeverOpened
                };
                self.state = HealthState::GaveUp;
                self.events.push(HealthEvent::Reboot(why));
            }
            HealthState::RetryMark { at } if now >= at => {
                self.state = HealthState::Marking;
                self.events.push(HealthEvent::MarkGood);
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            HealthState::Checking { deadline } if self.trial => Some(deadline),
            HealthState::RetryMark { at } => Some(at),
            _ => None,
        }
    }

    pub fn poll_event(&mut self) -> Option<HealthEvent> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }

    fn advance(&mut self, _now: Instant) {
        let healthy = self.audio_open && (self.joined || !self.trial);
        if healthy && matches!(self.state, HealthState::Checking { .. }) {
            self.state = HealthState::Marking;
            self.events.push(HealthEvent::MarkGood);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn drain(h: &mut HealthCheck) -> Vec<HealthEvent> {
        std::iter::from_fn(|| h.poll_event()).collect()
    }

    const WITHIN: Duration = Duration::from_secs(120);

    #[test]
    fn a_trial_slot_is_marked_good_once_after_joining_with_audio() {
        let t = t0();
        let mut h = HealthCheck::new(t, WITHIN, true, false);
        h.handle_audio_open(t);
        assert_eq!(
            drain(&mut h),
            vec![],
            "audio alone does not prove a new slot"
        );
        h.handle_joined(t + Duration::from_secs(30));
        assert_eq!(drain(&mut h), vec![HealthEvent::MarkGood]);
        // Joining again (a reconnect) does not mark again.
        h.handle_joined(t + Duration::from_secs(40));
        assert_eq!(drain(&mut h), vec![]);
        h.handle_marked(t + Duration::from_secs(31), Ok(()));
        assert_eq!(h.state(), HealthState::Good);
        h.handle_timeout(t + WITHIN * 2);
        assert_eq!(drain(&mut h), vec![], "a proven slot is never rebooted");
    }

    #[test]
    fn a_failed_mark_good_is_retried_never_dropped() {
        let t = t0();
        let mut h = HealthCheck::new(t, WITHIN, false, false);
        h.handle_audio_open(t);
        assert_eq!(drain(&mut h), vec![HealthEvent::MarkGood]);
        let mut now = t;
        for _ in 0..3 {
            h.handle_marked(now, Err("the boot environment is busy".into()));
            let retry = h.poll_timeout().unwrap();
            assert_eq!(retry, now + MARK_GOOD_RETRY);
            h.handle_timeout(retry);
            assert_eq!(drain(&mut h), vec![HealthEvent::MarkGood]);
            now = retry;
        }
        h.handle_marked(now, Ok(()));
        assert_eq!(h.state(), HealthState::Good);
        assert_eq!(h.poll_timeout(), None);
    }

    #[test]
    fn a_trial_slot_that_never_joins_is_given_up_and_a_proven_one_never_is() {
        let t = t0();
        let mut h = HealthCheck::new(t, WITHIN, true, false);
        h.handle_audio_open(t);
        h.handle_timeout(t + WITHIN - Duration::from_millis(1));
        assert_eq!(drain(&mut h), vec![]);
        h.handle_timeout(t + WITHIN);
        assert_eq!(
            drain(&mut h),
            vec![HealthEvent::Reboot(Unhealthy::NeverJoined)]
        );
        // Joining after giving up changes nothing: the reboot is under way.
        h.handle_joined(t + WITHIN);
        assert_eq!(drain(&mut h), vec![]);

        // A proven slot whose stage server is down: marked good on its audio, no reboot.
        let mut h = HealthCheck::new(t, WITHIN, false, false);
        assert_eq!(h.poll_timeout(), None);
        h.handle_timeout(t + WITHIN * 10);
        assert_eq!(drain(&mut h), vec![]);
        h.handle_audio_open(t + WITHIN * 10);
        assert_eq!(drain(&mut h), vec![HealthEvent::MarkGood]);
    }

    #[test]
    fn a_restarted_daemon_does_not_mark_twice_in_one_boot() {
        let t = t0();
        let mut h = HealthCheck::new(t, WITHIN, true, true);
        h.handle_audio_open(t);
        h.handle_joined(t);
        h.handle_timeout(t + WITHIN);
        assert_eq!(drain(&mut h), vec![]);
        assert_eq!(h.state(), HealthState::Good);
    }
}
