//! The web console's sign-ins, sans-IO: moderators' sessions (a cookie token and a CSRF
//! token each), and the limits on login attempts per account and per source address. The
//! time comes in with every call; tokens come from the caller's random generator.
//!
//! - A session lasts [`SESSION_IDLE`] without use and [`SESSION_MAX`] at most; at most
//!   [`MAX_SESSIONS`] exist (the least recently used goes first).
//! - After [`ACCOUNT_FAILURES`] wrong passwords for one account, or [`SOURCE_FAILURES`] from one
//!   address, within [`FAILURE_WINDOW`], further attempts are refused until the window has
//!   passed since the first of them — without checking the password, so a guesser learns
//!   nothing and costs no hashing. Both tables are bounded.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A session unused this long ends.
pub const SESSION_IDLE: Duration = Duration::from_secs(8 * 3600);
/// A session ends this long after login, used or not.
pub const SESSION_MAX: Duration = Duration::from_secs(24 * 3600);
/// Sessions at most (all accounts together).
pub const MAX_SESSIONS: usize = 256;
/// Wrong passwords one account may take within [`FAILURE_WINDOW`].
pub const ACCOUNT_FAILURES: u32 = 5;
/// Wrong passwords one source address may send within [`FAILURE_WINDOW`].
pub const SOURCE_FAILURES: u32 = 20;
/// How long failures count.
pub const FAILURE_WINDOW: Duration = Duration::from_secs(15 * 60);
/// Entries in each failure table at most; past it, the oldest window is forgotten.
pub const MAX_FAILURE_ENTRIES: usize = 4096;

/// Random bytes in a session token and in a CSRF token.
pub const TOKEN_BYTES: usize = 32;

/// A signed-in moderator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub account: String,
    pub csrf: String,
    started: Instant,
    last_used: Instant,
}

impl Session {
    /// Neither idle too long nor too old at `now`.
    fn live(&self, now: Instant) -> bool {
        now < self.started + SESSION_MAX && now < self.last_used + SESSION_IDLE
    }
}

/// Why a request is not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No session cookie, or one that is unknown or expired.
    NoSession,
    /// The request's CSRF token is missing or not the session's.
    Csrf,
}

/// Why a login is not tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyAttempts {
    /// When to try again.
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    first: Instant,
    count: u32,
}

/// Sessions and login limits.
#[derive(Debug, Default)]
pub struct ConsoleAuth {
    /// SHA-256 of the session token (hex) → session: the table never holds a usable token,
    /// and a lookup's timing says nothing about one.
    sessions: HashMap<String, Session>,
    by_account: HashMap<String, Failures>,
    by_source: HashMap<IpAddr, Failures>,
}

fn digest(token: &str) -> String {
    hex::encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        token.as_bytes(),
    ))
}

impl ConsoleAuth {
    /// Whether a login for `account` from `source` may be tried at `now`.
    pub fn may_try(
        &mut self,
        now: Instant,
        account: &str,
        source: IpAddr,
    ) -> Result<(), TooManyAttempts> {
        let blocked = |f: Option<&Failures>, limit: u32| {
            f.filter(|f| f.count >= limit && now < f.first + FAILURE_WINDOW)
                .map(|f| f.first + FAILURE_WINDOW - now)
        };
        let wait = blocked(self.by_account.get(account), ACCOUNT_FAILURES)
            .into_iter()
            .chain(blocked(
                self.by_source.get(&source.to_canonical()),
                SOURCE_FAILURES,
            ))
            .max();
        match wait {
            Some(retry_after) => Err(TooManyAttempts { retry_after }),
            None => Ok(()),
        }
    }

    /// A wrong password (or an unknown account) for `account` from `source`.
    pub fn failed(&mut self, now: Instant, account: &str, source: IpAddr) {
        count(&mut self.by_account, account.to_string(), now);
        count(&mut self.by_source, source.to_canonical(), now);
    }

    /// A right password: a new session, whose cookie token and CSRF token the caller made
    /// from fresh random bytes. The account's failures are forgotten (the source's are not:
    /// one right password does not let an address go on guessing others).
    pub fn signed_in(&mut self, now: Instant, account: &str, cookie_token: &str, csrf: &str) {
        self.by_account.remove(account);
        self.expire(now);
        if self.sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = self
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
        {
            self.sessions.remove(&oldest);
        }
        self.sessions.insert(
            digest(cookie_token),
            Session {
                account: account.to_string(),
                csrf: csrf.to_string(),
                started: now,
                last_used: now,
            },
        );
    }

    /// The session a cookie token names, marked used.
    pub fn session(&mut self, now: Instant, cookie_token: &str) -> Result<&Session, Denied> {
        let key = digest(cookie_token);
        let live = self.sessions.get(&key).is_some_and(|s| s.live(now));
        if !live {
            self.sessions.remove(&key);
            return Err(Denied::NoSession);
        }
        let s = self.sessions.get_mut(&key).ok_or(Denied::NoSession)?;
        s.last_used = now;
        Ok(s)
    }

    /// The session for a state-changing request: its cookie and its CSRF token must match.
    pub fn authorize(
        &mut self,
        now: Instant,
        cookie_token: &str,
        csrf: &str,
    ) -> Result<&Session, Denied> {
        let s = self.session(now, cookie_token)?;
        if stagebox_server_core::config::secrets_equal(&s.csrf, csrf) {
            Ok(s)
        } else {
            Err(Denied::Csrf)
        }
    }

    /// Ends the session a cookie token names.
    pub fn sign_out(&mut self, cookie_token: &str) {
        self.sessions.remove(&digest(cookie_token));
    }

    /// Sessions kept.
    #[cfg(test)]
    fn sessions(&self) -> usize {
        self.sessions.len()
    }

    fn expire(&mut self, now: Instant) {
        self.sessions.retain(|_, s| s.live(now));
    }
}

fn count<K: std::hash::Hash + Eq + Clone>(table: &mut HashMap<K, Failures>, key: K, now: Instant) {
    if let Some(f) = table.get_mut(&key) {
        if now >= f.first + FAILURE_WINDOW {
            *f = Failures {
                first: now,
                count: 1,
            };
        } else {
            f.count = f.count.saturating_add(1);
        }
        return;
    }
    if table.len() >= MAX_FAILURE_ENTRIES {
        table.retain(|_, f| now < f.first + FAILURE_WINDOW);
    }
    if table.len() >= MAX_FAILURE_ENTRIES
        && let Some(oldest) = table
            .iter()
            .min_by_key(|(_, f)| f.first)
            .map(|(k, _)| k.clone())
    {
        table.remove(&oldest);
    }
    table.insert(
        key,
        Failures {
            first: now,
            count: 1,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn start() -> Instant {
        Instant::now()
    }

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const AWAY: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, 7));

    #[test]
    fn an_account_locks_after_five_wrong_passwords_until_the_window_passes() {
        let mut auth = ConsoleAuth::default();
        let t = start();
        for i in 0..ACCOUNT_FAILURES {
            assert!(auth.may_try(t, "ana", HOME).is_ok(), "attempt {i}");
            auth.failed(t + Duration::from_secs(u64::from(i)), "ana", HOME);
        }
        let refused = auth.may_try(t + Duration::from_secs(60), "ana", AWAY);
        assert_eq!(
            refused,
            Err(TooManyAttempts {
                retry_after: FAILURE_WINDOW - Duration::from_secs(60)
            }),
            "from any address"
        );
        assert!(auth.may_try(t, "bo", HOME).is_ok(), "other accounts go on");
        assert!(auth.may_try(t + FAILURE_WINDOW, "ana", HOME).is_ok());
        auth.failed(t + FAILURE_WINDOW, "ana", HOME);
        assert!(
            auth.may_try(t + FAILURE_WINDOW, "ana", HOME).is_ok(),
            "a new window counts afresh"
        );
    }

    #[test]
    fn a_source_that_guesses_many_accounts_is_held_back() {
        let mut auth = ConsoleAuth::default();
        let t = start();
        for i in 0..SOURCE_FAILURES {
            auth.failed(t, &format!("user{i}"), HOME);
        }
        assert!(auth.may_try(t, "someone-new", HOME).is_err());
        assert!(auth.may_try(t, "someone-new", AWAY).is_ok());
        // A right password elsewhere does not lift the source's limit.
        auth.signed_in(t, "user1", "cookie", "csrf");
        assert!(auth.may_try(t, "user2", HOME).is_err());
    }

    #[test]
    fn the_failure_tables_stay_bounded() {
        let mut auth = ConsoleAuth::default();
        let t = start();
        for i in 0..(MAX_FAILURE_ENTRIES as u32 + 100) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            auth.failed(t, &format!("u{i}"), ip);
        }
        assert!(auth.by_account.len() <= MAX_FAILURE_ENTRIES);
        assert!(auth.by_source.len() <= MAX_FAILURE_ENTRIES);
    }

    #[test]
    fn sessions_need_their_cookie_and_csrf_token_and_expire() {
        let mut auth = ConsoleAuth::default();
        let t = start();
        auth.signed_in(t, "ana", "cookie-1", "csrf-1");
        assert_eq!(
            auth.session(t, "cookie-1").map(|s| s.account.clone()),
            Ok("ana".into())
        );
        assert_eq!(auth.session(t, "cookie-2").err(), Some(Denied::NoSession));
        assert!(auth.authorize(t, "cookie-1", "csrf-1").is_ok());
        assert_eq!(
            auth.authorize(t, "cookie-1", "csrf-2").err(),
            Some(Denied::Csrf)
        );
        assert_eq!(auth.authorize(t, "cookie-1", "").err(), Some(Denied::Csrf));
        assert_eq!(
            auth.authorize(t, "", "csrf-1").err(),
            Some(Denied::NoSession)
        );

        // Used every hour, it still ends a day after login.
        let mut now = t;
        while now < t + SESSION_MAX - Duration::from_secs(3600) {
            now += Duration::from_secs(3600);
            assert!(auth.session(now, "cookie-1").is_ok());
        }
        assert!(auth.session(t + SESSION_MAX, "cookie-1").is_err());

        // Unused for the idle time, it ends.
        auth.signed_in(t, "ana", "cookie-3", "csrf-3");
        assert!(auth.session(t + SESSION_IDLE, "cookie-3").is_err());

        auth.signed_in(t, "ana", "cookie-4", "csrf-4");
        auth.sign_out("cookie-4");
        assert!(auth.session(t, "cookie-4").is_err());
    }

    #[test]
    fn sessions_are_bounded_and_the_least_recently_used_goes_first() {
        let mut auth = ConsoleAuth::default();
        let t = start();
        for i in 0..MAX_SESSIONS {
            auth.signed_in(
                t + Duration::from_millis(i as u64),
                "ana",
                &format!("c{i}"),
                "x",
            );
        }
        let later = t + Duration::from_secs(1);
        assert!(
            auth.session(later, "c0").is_ok(),
            "c0 used again: now the newest"
        );
        auth.signed_in(later, "ana", "new", "x");
        assert_eq!(auth.sessions(), MAX_SESSIONS);
        assert!(auth.session(later, "c0").is_ok());
        assert!(
            auth.session(later, "c1").is_err(),
            "c1 was the least recently used"
        );
    }
}
