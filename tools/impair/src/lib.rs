//! # stagebox-impair — a seeded impairment for UDP links
//!
//! This machine has no netem, and field technicians rarely have one either, so the project
//! carries its own: [`Impairment`] decides, datagram by datagram, what a bad link does to it
//! — random loss, Gilbert–Elliott burst loss, fixed delay, jitter, reordering, duplication
//! and timed blackouts — from a seed, so every run with the same seed and the same traffic
//! does the same. It is sans-IO (`handle_datagram(now, …)` in, `poll_datagram(now)` and
//! `poll_timeout()` out); the `impair-relay` binary is the plumbing that puts it between
//! stations and a server, and tests and benchmarks drive the core directly in virtual time.
//!
//! Bounded: at most [`MAX_HELD`] datagrams are held at once; more are dropped and counted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// Datagrams held for later delivery, at most.
pub const MAX_HELD: usize = 4096;

/// Which way a datagram travels through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// From a client (a station) towards the upstream (the server).
    Up,
    /// From the upstream back to a client.
    Down,
}

/// Gilbert–Elliott burst loss: a two-state chain, moved once per datagram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gilbert {
    /// Chance of going from the good state to the bad one.
    pub p_bad: f64,
    /// Chance of going from the bad state back to the good one.
    pub p_good: f64,
    /// Loss in the bad state (the good state loses at [`Profile::loss`]).
    pub loss_in_bad: f64,
}

impl Gilbert {
    /// Long-run loss rate with `loss_in_good` in the good state.
    pub fn mean_loss(&self, loss_in_good: f64) -> f64 {
        let total = self.p_bad + self.p_good;
        if total <= 0.0 {
            return loss_in_good;
        }
        let in_bad = self.p_bad / total;
        in_bad * self.loss_in_bad + (1.0 - in_bad) * loss_in_good
    }
}

/// A window during which nothing gets through, from the relay's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blackout {
    pub at: Duration,
    pub length: Duration,
}

/// What the link does, per direction it applies to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Profile {
    /// Random loss (0–1), or the good state's loss under [`Profile::gilbert`].
    pub loss: f64,
    pub gilbert: Option<Gilbert>,
    pub delay: Duration,
    /// Each datagram's delay varies uniformly by up to this, either way (never below 0).
    pub jitter: Duration,
    /// Chance (0–1) that a datagram is held back by [`Profile::reorder_by`] more.
    pub reorder: f64,
    pub reorder_by: Duration,
    /// Chance (0–1) that a datagram is delivered twice.
    pub duplicate: f64,
    pub blackouts: Vec<Blackout>,
    /// Which directions the profile applies to; the others pass untouched.
    pub up: bool,
    pub down: bool,
}

impl Profile {
    /// A clean link both ways.
    pub fn clean() -> Profile {
        Profile {
            reorder_by: Duration::from_millis(25),
            up: true,
            down: true,
            ..Profile::default()
        }
    }
}

/// What happened to the datagrams so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ImpairStats {
    pub received: u64,
    pub delivered: u64,
    pub lost_random: u64,
    pub lost_burst: u64,
    pub lost_blackout: u64,
    pub duplicated: u64,
    pub reordered: u64,
    /// Dropped because [`MAX_HELD`] datagrams were already held.
    pub dropped_full: u64,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Held {
    due: Instant,
    /// Arrival order, so equal due times keep it.
    order: u64,
    direction: Direction,
    /// Who it is for (the relay's client index).
    client: usize,
    bytes: Vec<u8>,
}

pub struct Impairment {
    profile: Profile,
    rng: fastrand::Rng,
    start: Instant,
    bad_state: [bool; 2],
    held: BinaryHeap<Reverse<Held>>,
    order: u64,
    stats: ImpairStats,
}

impl Impairment {
    pub fn new(profile: Profile, seed: u64, start: Instant) -> Impairment {
        Impairment {
            profile,
            rng: fastrand::Rng::with_seed(seed),
            start,
            bad_state: [false; 2],
            held: BinaryHeap::new(),
            order: 0,
            stats: ImpairStats::default(),
        }
    }

    pub fn stats(&self) -> ImpairStats {
        self.stats
    }

    fn applies(&self, direction: Direction) -> bool {
        match direction {
            Direction::Up => self.profile.up,
            Direction::Down => self.profile.down,
        }
    }

    /// A datagram entered the relay at `now`, going `direction`, for `client`.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        direction: Direction,
        client: usize,
        bytes: &[u8],
    ) {
        self.stats.received += 1;
        if !self.applies(direction) {
            self.hold(now, direction, client, bytes);
            return;
        }
        let since_start = now.saturating_duration_since(self.start);
        if self
            .profile
            .blackouts
            .iter()
            .any(|b| since_start >= b.at && since_start < b.at + b.length)
        {
            self.stats.lost_blackout += 1;
            return;
        }
        let mut bad = self.bad_state[direction as usize];
        let loss = match self.profile.gilbert {
            Some(g) => {
                let flip = if bad { g.p_good } else { g.p_bad };
                if self.rng.f64() < flip {
                    bad = !bad;
                }
                if bad {
                    g.loss_in_bad
                } else {
                    self.profile.loss
                }
            }
            None => self.profile.loss,
        };
        self.bad_state[direction as usize] = bad;
        if self.rng.f64() < loss {
            if bad {
                self.stats.lost_burst += 1;
            } else {
                self.stats.lost_random += 1;
            }
            return;
        }
        let mut delay = self.profile.delay;
        let jitter = self.profile.jitter.as_secs_f64();
        if jitter > 0.0 {
            let offset = (self.rng.f64() * 2.0 - 1.0) * jitter;
            delay = Duration::from_secs_f64((delay.as_secs_f64() + offset).max(0.0));
        }
        if self.rng.f64() < self.profile.reorder {
            self.stats.reordered += 1;
            delay += self.profile.reorder_by;
        }
        self.hold(now + delay, direction, client, bytes);
        if self.rng.f64() < self.profile.duplicate {
            self.stats.duplicated += 1;
            self.hold(
                now + delay + Duration::from_millis(1),
                direction,
                client,
                bytes,
            );
        }
    }

    fn hold(&mut self, due: Instant, direction: Direction, client: usize, bytes: &[u8]) {
        if self.held.len() >= MAX_HELD {
            self.stats.dropped_full += 1;
            return;
        }
        self.order += 1;
        self.held.push(Reverse(Held {
            due,
            order: self.order,
            direction,
            client,
            bytes: bytes.to_vec(),
        }));
    }

    /// The next datagram due by `now`: (direction, client, bytes).
    pub fn poll_datagram(&mut self, now: Instant) -> Option<(Direction, usize, Vec<u8>)> {
        if self.held.peek().is_some_and(|Reverse(h)| h.due <= now) {
            let Reverse(h) = self.held.pop()?;
            self.stats.delivered += 1;
            return Some((h.direction, h.client, h.bytes));
        }
        None
    }

    /// When the next held datagram is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.held.peek().map(|Reverse(h)| h.due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Sends `n` datagrams 20 ms apart through `profile` and returns, for each delivered
    /// one, (index sent, ms after start it came out).
    fn run(profile: Profile, seed: u64, n: u32) -> (Vec<(u32, u64)>, ImpairStats) {
        let start = Instant::now();
        let mut imp = Impairment::new(profile, seed, start);
        let mut out = Vec::new();
        let mut now = start;
        for i in 0..n {
            imp.handle_datagram(now, Direction::Down, 0, &i.to_le_bytes());
            let next = now + ms(20);
            while let Some(due) = imp.poll_timeout().filter(|&d| d < next) {
                let (_, _, bytes) = imp.poll_datagram(due).unwrap();
                let index = u32::from_le_bytes(bytes[..4].try_into().unwrap());
                out.push((index, (due - start).as_millis() as u64));
            }
            now = next;
        }
        (out, imp.stats())
    }

    #[test]
    fn random_loss_is_near_the_rate_and_seeded() {
        let p = Profile {
            loss: 0.1,
            ..Profile::clean()
        };
        let (a, stats) = run(p.clone(), 7, 10_000);
        let lost = 10_000 - a.len();
        assert!((800..1200).contains(&lost), "lost {lost}");
        assert_eq!(stats.lost_random as usize, lost);
        assert_eq!(run(p.clone(), 7, 10_000).0, a, "same seed, same result");
        assert_ne!(run(p, 8, 10_000).0, a);
    }

    #[test]
    fn gilbert_loss_comes_in_bursts() {
        let g = Gilbert {
            p_bad: 0.02,
            p_good: 0.25,
            loss_in_bad: 1.0,
        };
        let p = Profile {
            gilbert: Some(g),
            ..Profile::clean()
        };
        let (a, stats) = run(p, 1, 20_000);
        let lost = 20_000 - a.len() as u64;
        let expected = g.mean_loss(0.0) * 20_000.0;
        assert!(
            (lost as f64 - expected).abs() < expected * 0.25,
            "lost {lost}, expected about {expected}"
        );
        assert_eq!(stats.lost_burst, lost);
        // Mean run of consecutive losses: about 1 / p_good = 4 datagrams.
        let mut runs = Vec::new();
        let mut prev = None;
        for &(i, _) in &a {
            if let Some(p) = prev
                && i > p + 1
            {
                runs.push(i - p - 1);
            }
            prev = Some(i);
        }
        let mean = runs.iter().sum::<u32>() as f64 / runs.len() as f64;
        assert!((3.0..5.0).contains(&mean), "mean burst {mean}");
    }

    #[test]
    fn delay_jitter_reorder_duplicate_and_blackout() {
        let p = Profile {
            delay: ms(50),
            jitter: ms(30),
            duplicate: 0.1,
            blackouts: vec![Blackout {
                at: ms(1000),
                length: ms(500),
            }],
            ..Profile::clean()
        };
        let (a, stats) = run(p, 3, 200);
        // Delays within 50 ± 30 ms of sending (a duplicate 1 ms after).
        for &(i, at) in &a {
            let d = at as i64 - i64::from(i) * 20;
            assert!((20..=81).contains(&d), "datagram {i} delayed {d} ms");
        }
        assert!(a.windows(2).any(|w| w[1].0 < w[0].0), "jitter reorders");
        assert!(stats.duplicated > 5);
        assert_eq!(stats.lost_blackout, 25, "500 ms of 20 ms datagrams");
        assert!(a.iter().all(|&(i, _)| !(50..75).contains(&i)));
    }

    #[test]
    fn only_the_chosen_direction_is_impaired_and_holding_is_bounded() {
        let start = Instant::now();
        let p = Profile {
            loss: 1.0,
            up: false,
            ..Profile::clean()
        };
        let mut imp = Impairment::new(p, 1, start);
        imp.handle_datagram(start, Direction::Up, 3, b"up");
        imp.handle_datagram(start, Direction::Down, 3, b"down");
        assert_eq!(
            imp.poll_datagram(start),
            Some((Direction::Up, 3, b"up".to_vec()))
        );
        assert_eq!(imp.poll_datagram(start), None);
        let mut imp = Impairment::new(
            Profile {
                delay: Duration::from_secs(10),
                ..Profile::clean()
            },
            1,
            start,
        );
        for _ in 0..MAX_HELD + 10 {
            imp.handle_datagram(start, Direction::Down, 0, &[0; 100]);
        }
        assert_eq!(imp.stats().dropped_full, 10);
    }
}
