//! Silence suppression: which frames are sent.
//!
//! While transmitting is allowed, voice frames are sent; after the last voice frame the gate
//! keeps sending for a hangover (~300 ms, so word tails are not clipped), then a few frames of
//! encoded digital silence so the receiver's decoder fades out rather than concealing, and
//! then nothing until the next voice frame, whose packet carries the RTP marker bit. When
//! transmitting stops (PTT released) the same tail is sent.

/// What to do with the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateDecision {
    /// Encode and send the captured frame; `marker` on the first of a talk spurt.
    Send { marker: bool },
    /// Encode and send digital silence (end of a talk spurt).
    SendSilence,
    /// Send nothing.
    Skip,
}

/// Talk-spurt boundaries, for speaking indicators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpurtChange {
    Started,
    Ended,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateConfig {
    /// Frames sent after the last voice frame.
    pub hangover_frames: u32,
    /// Frames of digital silence that close a talk spurt.
    pub silence_frames: u32,
}

impl GateConfig {
    /// ~300 ms of hangover and three silence frames for a frame duration in ms.
    pub fn for_frame_ms(frame_ms: u32) -> GateConfig {
        GateConfig {
            hangover_frames: 300 / frame_ms.max(1),
            silence_frames: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Talking { hangover_left: u32 },
    Closing { silence_left: u32 },
}

#[derive(Debug, Clone)]
pub struct SilenceGate {
    cfg: GateConfig,
    state: State,
}

impl SilenceGate {
    pub fn new(cfg: GateConfig) -> SilenceGate {
        SilenceGate {
            cfg,
            state: State::Idle,
        }
    }

    /// Whether a talk spurt is in progress (including its closing frames).
    pub fn in_spurt(&self) -> bool {
        self.state != State::Idle
    }

    /// Decides for one frame, given whether it is voice and whether sending is allowed.
    pub fn decide(&mut self, voice: bool, allowed: bool) -> (GateDecision, Option<SpurtChange>) {
        let hangover = self.cfg.hangover_frames;
        match self.state {
            State::Idle if allowed && voice => {
                self.state = State::Talking {
                    hangover_left: hangover,
                };
                (
                    GateDecision::Send { marker: true },
                    Some(SpurtChange::Started),
                )
            }
            State::Idle => (GateDecision::Skip, None),
            State::Talking { .. } if !allowed => self.close(),
            State::Talking { .. } if voice => {
                self.state = State::Talking {
                    hangover_left: hangover,
                };
                (GateDecision::Send { marker: false }, None)
            }
            State::Talking { hangover_left: 0 } => self.close(),
            State::Talking { hangover_left } => {
                self.state = State::Talking {
                    hangover_left: hangover_left - 1,
                };
                (GateDecision::Send { marker: false }, None)
            }
            // Voice again while closing: carry on with the same spurt.
            State::Closing { .. } if allowed && voice => {
                self.state = State::Talking {
                    hangover_left: hangover,
                };
                (GateDecision::Send { marker: false }, None)
            }
            State::Closing { silence_left: 0 } => {
                self.state = State::Idle;
                (GateDecision::Skip, Some(SpurtChange::Ended))
            }
            State::Closing { silence_left } => {
                self.state = State::Closing {
                    silence_left: silence_left - 1,
                };
                (GateDecision::SendSilence, None)
            }
        }
    }

    fn close(&mut self) -> (GateDecision, Option<SpurtChange>) {
        if self.cfg.silence_frames == 0 {
            self.state = State::Idle;
            return (GateDecision::Skip, Some(SpurtChange::Ended));
        }
        self.state = State::Closing {
            silence_left: self.cfg.silence_frames - 1,
        };
        (GateDecision::SendSilence, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use GateDecision::*;

    #[test]
    fn spurt_has_marker_hangover_and_silence_tail() {
        let mut g = SilenceGate::new(GateConfig {
            hangover_frames: 2,
            silence_frames: 3,
        });
        let voice = [
            true, true, false, false, false, false, false, false, false, true,
        ];
        let got: Vec<_> = voice.iter().map(|&v| g.decide(v, true)).collect();
        assert_eq!(
            got,
            vec![
                (Send { marker: true }, Some(SpurtChange::Started)),
                (Send { marker: false }, None),
                (Send { marker: false }, None), // hangover 1
                (Send { marker: false }, None), // hangover 2
                (SendSilence, None),
                (SendSilence, None),
                (SendSilence, None),
                (Skip, Some(SpurtChange::Ended)),
                (Skip, None),
                (Send { marker: true }, Some(SpurtChange::Started)),
            ]
        );
    }

    #[test]
    fn releasing_ptt_closes_at_once_and_blocks_new_spurts() {
        let mut g = SilenceGate::new(GateConfig::for_frame_ms(20));
        assert_eq!(g.decide(true, true).0, Send { marker: true });
        assert_eq!(g.decide(true, false).0, SendSilence);
        assert_eq!(g.decide(true, false).0, SendSilence);
        assert_eq!(g.decide(true, false).0, SendSilence);
        assert_eq!(g.decide(true, false), (Skip, Some(SpurtChange::Ended)));
        assert_eq!(g.decide(true, false), (Skip, None));
        assert!(!g.in_spurt());
    }

    #[test]
    fn hangover_is_about_300ms() {
        assert_eq!(GateConfig::for_frame_ms(20).hangover_frames, 15);
        assert_eq!(GateConfig::for_frame_ms(10).hangover_frames, 30);
    }
}
