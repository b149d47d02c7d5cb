//! Where the station's datagrams go, sans-IO: the media offer's address, or its host name
//! resolved beside the loop. The core asks for a resolution ([`ResolveRequest`]), the plumbing
//! answers with [`MediaRoute::handle_resolved`]; an answer that does not come within
//! [`RESOLVE_TIMEOUT`] counts as a failure, and failures are retried with backoff for as
//! long as the offer stands. A station on a flaky venue network keeps its heartbeats (the
//! loop never waits on DNS) and gets its audio once the name resolves.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::backoff::{Backoff, BackoffConfig};
use crate::media::MediaHost;

/// The longest a resolution may take before it is given up and retried.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Retries of a failed resolution: soon at first, then every 30 s at most.
const RESOLVE_BACKOFF: BackoffConfig = BackoffConfig {
    base: Duration::from_millis(500),
    cap: Duration::from_secs(30),
    stable_after: Duration::MAX,
};

/// Names one resolution; answers to anything but the offer's current name are ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResolveId(pub u64);

/// A host name the plumbing should resolve and answer about with
/// [`MediaRoute::handle_resolved`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveRequest {
    pub id: ResolveId,
    pub host: String,
    pub port: u16,
}

/// Why a resolution gave no address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveFailure {
    /// The resolver answered with an error (no such name, SERVFAIL, no network).
    Failed(String),
    /// The name resolved to no address.
    NoAddress,
    /// No answer within [`RESOLVE_TIMEOUT`].
    TimedOut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No offer yet.
    Idle,
    Known(SocketAddr),
    /// Waiting for the answer to `id` until `deadline`.
    Resolving {
        id: ResolveId,
        deadline: Instant,
    },
    /// The last attempt failed; the next is at `at`.
    Retrying {
        at: Instant,
    },
}

/// Figures for reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteStats {
    pub resolutions: u64,
    pub resolve_failures: u64,
    pub resolve_timeouts: u64,
}

#[derive(Debug)]
pub struct MediaRoute {
    /// The name of the current offer (`None` for an address, or before any offer).
    name: Option<(String, u16)>,
    /// Resolutions of ids below this are for an earlier offer.
    first_id_of_offer: u64,
    next_id: u64,
    state: State,
    backoff: Backoff,
    requests: Option<ResolveRequest>,
    stats: RouteStats,
}

impl MediaRoute {
    pub fn new(seed: u64) -> MediaRoute {
        MediaRoute {
            name: None,
            first_id_of_offer: 0,
            next_id: 0,
            state: State::Idle,
            backoff: Backoff::new(RESOLVE_BACKOFF, seed),
            requests: None,
            stats: RouteStats::default(),
        }
    }

    /// A new offer names where media goes.
    pub fn handle_offer(&mut self, now: Instant, host: &MediaHost, port: u16) {
        self.backoff.reset();
        self.first_id_of_offer = self.next_id;
        self.requests = None;
        match host {
            MediaHost::Ip(ip) => {
                self.name = None;
                self.state = State::Known(SocketAddr::new(*ip, port));
            }
            MediaHost::Name(name) => {
                self.name = Some((name.clone(), port));
                self.resolve(now);
            }
        }
    }

    /// The answer to a [`ResolveRequest`]. A late answer for the current name is still
    /// welcome (the timeout only decided when to ask again); one for an earlier offer is not.
    pub fn handle_resolved(
        &mut self,
        now: Instant,
        id: ResolveId,
        answer: Result<SocketAddr, ResolveFailure>,
    ) {
        if id.0 < self.first_id_of_offer || matches!(self.state, State::Known(_) | State::Idle) {
            return;
        }
        match answer {
            Ok(addr) => {
                self.state = State::Known(addr);
                self.requests = None;
            }
            Err(failure) => {
                if failure == ResolveFailure::TimedOut {
                    self.stats.resolve_timeouts += 1;
                } else {
                    self.stats.resolve_failures += 1;
                }
                if matches!(self.state, State::Resolving { id: current, .. } if current == id) {
                    self.retry_later(now);
                }
            }
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Resolving { deadline, .. } if now >= deadline => {
                self.stats.resolve_timeouts += 1;
                self.retry_later(now);
            }
            State::Retrying { at } if now >= at => self.resolve(now),
            _ => {}
        }
    }

    /// A resolution the plumbing should start now.
    #[must_use]
    pub fn poll_resolve(&mut self) -> Option<ResolveRequest> {
        self.requests.take()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Resolving { deadline, .. } => Some(deadline),
            State::Retrying { at } => Some(at),
            State::Idle | State::Known(_) => None,
        }
    }

    /// Where datagrams go, once known.
    pub fn destination(&self) -> Option<SocketAddr> {
        match self.state {
            State::Known(addr) => Some(addr),
            _ => None,
        }
    }

    /// An offer was made and its destination is not known (yet).
    pub fn is_unresolved(&self) -> bool {
        matches!(self.state, State::Resolving { .. } | State::Retrying { .. })
    }

    pub fn stats(&self) -> RouteStats {
        self.stats
    }

    fn resolve(&mut self, now: Instant) {
        let Some((host, port)) = self.name.clone() else {
            return;
        };
        let id = ResolveId(self.next_id);
        self.next_id += 1;
        self.stats.resolutions += 1;
        self.state = State::Resolving {
            id,
            deadline: now + RESOLVE_TIMEOUT,
        };
        self.requests = Some(ResolveRequest { id, host, port });
    }

    fn retry_later(&mut self, now: Instant) {
        // The first retry waits too: a resolver that just failed is asked again in a moment.
        let delay = self.backoff.next_delay().max(RESOLVE_BACKOFF.base / 2);
        self.state = State::Retrying { at: now + delay };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    fn name() -> MediaHost {
        MediaHost::Name("voice.example.org".into())
    }

    fn addr() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 7], 50000))
    }

    #[test]
    fn an_address_needs_no_resolution() {
        let t = t0();
        let mut route = MediaRoute::new(1);
        route.handle_offer(t, &MediaHost::Ip([192, 0, 2, 7].into()), 50000);
        assert_eq!(route.destination(), Some(addr()));
        assert_eq!(route.poll_resolve(), None);
        assert_eq!(route.poll_timeout(), None);
    }

    #[test]
    fn a_failed_or_silent_resolver_is_asked_again_with_backoff_until_it_answers() {
        let t = t0();
        let mut route = MediaRoute::new(7);
        route.handle_offer(t, &name(), 50000);
        let first = route.poll_resolve().unwrap();
        assert_eq!(
            (first.host.as_str(), first.port),
            ("voice.example.org", 50000)
        );
        assert!(route.is_unresolved());
        // SERVFAIL: asked again later, not never.
        route.handle_resolved(t, first.id, Err(ResolveFailure::Failed("SERVFAIL".into())));
        assert_eq!(route.poll_resolve(), None);
        let mut now = t;
        let mut asked = Vec::new();
        // The resolver then stays silent: every attempt times out and is retried.
        while now < t + Duration::from_secs(120) {
            now = route.poll_timeout().unwrap();
            route.handle_timeout(now);
            if let Some(r) = route.poll_resolve() {
                asked.push((now - t, r.id));
            }
        }
        assert!(asked.len() >= 4, "{asked:?}");
        let gaps: Vec<Duration> = asked.windows(2).map(|w| w[1].0 - w[0].0).collect();
        assert!(
            gaps.iter()
                .all(|g| *g >= RESOLVE_TIMEOUT && *g <= RESOLVE_TIMEOUT + RESOLVE_BACKOFF.cap),
            "{gaps:?}"
        );
        assert_eq!(route.destination(), None);
        // A late answer to an earlier attempt is still the right address.
        route.handle_resolved(now, asked[0].1, Ok(addr()));
        assert_eq!(route.destination(), Some(addr()));
        assert_eq!(route.poll_timeout(), None);
        assert!(route.stats().resolve_timeouts >= 3);
    }

    #[test]
    fn an_answer_about_an_earlier_offer_is_ignored() {
        let t = t0();
        let mut route = MediaRoute::new(7);
        route.handle_offer(t, &name(), 50000);
        let old = route.poll_resolve().unwrap();
        route.handle_offer(t, &MediaHost::Name("voice-2.example.org".into()), 50002);
        let new = route.poll_resolve().unwrap();
        route.handle_resolved(t, old.id, Ok(addr()));
        assert_eq!(route.destination(), None);
        route.handle_resolved(t, new.id, Ok(SocketAddr::from(([192, 0, 2, 8], 50002))));
        assert_eq!(
            route.destination(),
            Some(SocketAddr::from(([192, 0, 2, 8], 50002)))
        );
    }
}
