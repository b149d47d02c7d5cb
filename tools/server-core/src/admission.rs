//! Who may open a connection: caps on connections that have not yet identified, per source
//! address and in total. A connection counts from its TCP accept until it identifies or
//! resumes (or ends); beyond the caps, new connections are closed at once. Logged-in stations
//! are never refused by this: a venue's stations behind one NAT address reconnecting together
//! after a restart only meet the per-source cap while they are mid-handshake, and retry with
//! their backoff.

use std::collections::HashMap;
use std::net::IpAddr;

/// The caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdmissionLimits {
    /// Connections not yet identified from one source address.
    pub per_source: usize,
    /// Connections not yet identified in all.
    pub total: usize,
}

impl Default for AdmissionLimits {
    fn default() -> Self {
        AdmissionLimits {
            per_source: 32,
            total: 128,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Too many connections from this address have not identified yet.
    PerSource,
    /// Too many connections have not identified yet.
    Total,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::PerSource => "too many connections from this address before login",
            Refusal::Total => "too many connections before login",
        })
    }
}

/// Counts connections that have not identified, per source.
#[derive(Debug, Default)]
pub struct Admission {
    limits: AdmissionLimits,
    pending: HashMap<IpAddr, usize>,
    total: usize,
}

impl Admission {
    pub fn new(limits: AdmissionLimits) -> Admission {
        Admission {
            limits,
            pending: HashMap::new(),
            total: 0,
        }
    }

    /// A connection from `source` was accepted: admitted (and counted) or refused.
    pub fn admit(&mut self, source: IpAddr) -> Result<(), Refusal> {
        if self.total >= self.limits.total {
            return Err(Refusal::Total);
        }
        let n = self.pending.entry(source).or_insert(0);
        if *n >= self.limits.per_source {
            return Err(Refusal::PerSource);
        }
        *n += 1;
        self.total += 1;
        Ok(())
    }

    /// An admitted connection from `source` identified, resumed or ended.
    pub fn release(&mut self, source: IpAddr) {
        if let Some(n) = self.pending.get_mut(&source) {
            *n -= 1;
            self.total -= 1;
            if *n == 0 {
                self.pending.remove(&source);
            }
        }
    }

    /// Connections not identified yet, in all.
    pub fn pending(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_source_and_in_total_and_frees_on_release() {
        let mut a = Admission::new(AdmissionLimits {
            per_source: 2,
            total: 3,
        });
        let (x, y, z): (IpAddr, IpAddr, IpAddr) = (
            [192, 0, 2, 1].into(),
            [192, 0, 2, 2].into(),
            [192, 0, 2, 3].into(),
        );
        assert_eq!(a.admit(x), Ok(()));
        assert_eq!(a.admit(x), Ok(()));
        assert_eq!(a.admit(x), Err(Refusal::PerSource));
        assert_eq!(a.admit(y), Ok(()));
        assert_eq!(a.admit(z), Err(Refusal::Total));
        a.release(x);
        assert_eq!(a.admit(z), Ok(()));
        assert_eq!(a.pending(), 3);
        for ip in [x, y, z] {
            a.release(ip);
        }
        // A release for a source with nothing pending changes nothing.
        a.release(y);
        assert_eq!(a.pending(), 0);
        assert!(a.pending.is_empty(), "no table left behind");
    }
}
