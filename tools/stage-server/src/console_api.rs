//! The moderator console's HTTP interface on the gateway's TLS port, under `/console/api/`:
//!
//! | request | needs | does |
//! |---|---|---|
//! | `POST login` `{"name","password"}` | — | signs in: a session cookie (Secure, HttpOnly, SameSite=Strict) and `{"name","csrf"}` |
//! | `GET session` | cookie | `{"name","csrf"}` of the session (a reloaded page) |
//! | `GET overview` | cookie | the stages, members and hand queues ([`stagebox_server_core::overview`]) |
//! | `POST action` | cookie, CSRF | one moderator action, the admin interface's JSON (`invite`, `move_to_audience`, `mute`, `priority`, `kick`, `end_stage`) |
//! | `POST logout` | cookie, CSRF | ends the session |
//! | `GET clips` | cookie | the soundboard's clips (`[{"id","name","seconds"}]`) |
//! | `POST clips?name=NAME` | cookie, CSRF | a new clip: the body is a WAV or Ogg/Opus file ([`crate::clips`]) |
//! | `POST clips/remove` `{"id"}` | cookie, CSRF | removes a clip |
//! | `POST play` `{"stage","clip"}`, `POST stop` `{"stage"}` | cookie, CSRF | plays a clip into a stage, or stops it |
//!
//! A state-changing request carries the session's CSRF token in `X-CSRF-Token`, and, if it
//! has an `Origin` (browsers send one), that origin is this server's. Logins are limited per
//! account and per address ([`crate::console`]); passwords are checked off the executor, at
//! most [`VERIFY_AT_ONCE`] at a time. An upload is authorized from its head before its body
//! is read, and prepared off the executor one at a time. Answers are JSON; refusals say why in
//! `{"error"}`.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use serde::Deserialize;
use stagebox_server_core::{AdminCmd, AdminReply};

use crate::accounts::{Accounts, Verdict};
use crate::clips::{ClipStore, MAX_CLIP_BYTES};
use crate::console::{ConsoleAuth, Denied, TOKEN_BYTES};
use crate::hub::Hub;

/// Where the interface lives.
pub const PREFIX: &str = "/console/api/";
/// The session cookie's name.
pub const COOKIE: &str = "stagebox_console";
/// The largest request body taken (an action or a login is a few hundred bytes).
pub const MAX_BODY: usize = 4096;
/// Password checks running at once (each is ~19 MiB and tens of milliseconds of Argon2):
/// a crowd of logins waits its turn instead of taking the server's memory and cores.
pub const VERIFY_AT_ONCE: usize = 2;
/// A body not sent within this long is given up on.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// An upload's body, the same (a clip at its largest over a slow venue uplink).
const UPLOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// The console's state beside the core: sign-ins, where the accounts are, the soundboard.
pub struct Console {
    auth: Mutex<ConsoleAuth>,
    accounts: PathBuf,
    verify_slots: smol::lock::Semaphore,
    random: aws_lc_rs::rand::SystemRandom,
    clips: Arc<Mutex<ClipStore>>,
    upload_slot: smol::lock::Semaphore,
}

impl Console {
    pub fn new(accounts: PathBuf, clips: ClipStore) -> Console {
        Console {
            auth: Mutex::new(ConsoleAuth::default()),
            accounts,
            verify_slots: smol::lock::Semaphore::new(VERIFY_AT_ONCE),
            random: aws_lc_rs::rand::SystemRandom::new(),
            clips: Arc::new(Mutex::new(clips)),
            upload_slot: smol::lock::Semaphore::new(1),
        }
    }

    fn clips(&self) -> MutexGuard<'_, ClipStore> {
        unpoisoned(&self.clips)
    }

    fn token(&self) -> Option<String> {
        let mut b = [0u8; TOKEN_BYTES];
        aws_lc_rs::rand::SecureRandom::fill(&self.random, &mut b).ok()?;
        Some(hex::encode(b))
    }

    fn auth(&self) -> MutexGuard<'_, ConsoleAuth> {
        unpoisoned(&self.auth)
    }
}

/// The lock's guard, also after a panic elsewhere: the tables stay consistent between calls.
fn unpoisoned<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a request head is for this interface.
pub fn is_api(head: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    matches!(request.parse(head), Ok(httparse::Status::Complete(_)))
        && request.path.is_some_and(|p| p.starts_with(PREFIX))
}

/// One request, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path under [`PREFIX`], without the query.
    pub endpoint: String,
    /// The query's `name` parameter, decoded (a clip's name).
    pub name: Option<String>,
    pub cookie: Option<String>,
    pub csrf: Option<String>,
    pub origin: Option<String>,
    pub host: Option<String>,
    pub body: Vec<u8>,
}

/// What a request head (and the body bytes read with it) turned out to be.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// The head, and how many body bytes are still to read.
    Head {
        request: Request,
        missing: usize,
    },
    Bad(&'static str),
}

/// Parses `head` (everything read so far, which may hold the start of the body).
pub fn parse(head: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(head) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return Parsed::Bad("malformed request"),
    };
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_string())
    };
    let path = req.path.unwrap_or_default();
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    let endpoint = route.strip_prefix(PREFIX).unwrap_or_default().to_string();
    let method = req.method.unwrap_or_default().to_string();
    let limit = if is_upload(&method, &endpoint) {
        MAX_CLIP_BYTES
    } else {
        MAX_BODY
    };
    let length = match header("content-length").map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(n)) if n <= limit => n,
        Some(Ok(_)) => return Parsed::Bad("body too large"),
        Some(Err(_)) => return Parsed::Bad("bad Content-Length"),
    };
    if header("transfer-encoding").is_some() {
        return Parsed::Bad("send a Content-Length");
    }
    let name = query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == "name").then(|| percent_decode(v)).flatten()
    });
    let cookie = header("cookie").and_then(|c| {
        c.split(';').find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE).then(|| value.to_string())
        })
    });
    let body: Vec<u8> = head.get(head_len..).unwrap_or_default().to_vec();
    if body.len() > length {
        return Parsed::Bad("more bytes than Content-Length");
    }
    let missing = length - body.len();
    Parsed::Head {
        request: Request {
            method,
            endpoint,
            name,
            cookie,
            csrf: header("x-csrf-token"),
            origin: header("origin"),
            host: header("host"),
            body,
        },
        missing,
    }
}

/// Whether a request is a clip upload (a large body, authorized before it is read).
fn is_upload(method: &str, endpoint: &str) -> bool {
    method == "POST" && endpoint == "clips"
}

/// `%XX` and `+` decoded (a query parameter), if the result is UTF-8.
fn percent_decode(v: &str) -> Option<String> {
    let mut out = Vec::with_capacity(v.len());
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        match b {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = char::from(bytes.next()?).to_digit(16)?;
                let lo = char::from(bytes.next()?).to_digit(16)?;
                out.push(u8::try_from(hi * 16 + lo).ok()?);
            }
            b => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

/// An answer: status line and JSON body, with any extra header lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: &'static str,
    pub headers: String,
    pub body: String,
}

impl Answer {
    fn json(status: &'static str, body: serde_json::Value) -> Answer {
        Answer {
            status,
            headers: String::new(),
            body: body.to_string(),
        }
    }

    fn error(status: &'static str, message: &str) -> Answer {
        Answer::json(status, serde_json::json!({ "error": message }))
    }

    fn denied(d: Denied) -> Answer {
        match d {
            Denied::NoSession => Answer::error("401 Unauthorized", "sign in first"),
            Denied::Csrf => Answer::error("403 Forbidden", "missing or wrong CSRF token"),
        }
    }
}

/// Reads the rest of the request on `s` and answers it. `lift_read_limit` lets the connection
/// read past the gateway's limit for requests before login: called for an upload once its
/// head is authorized.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    head: Vec<u8>,
    peer: IpAddr,
    hub: &Hub,
    console: &Console,
    lift_read_limit: impl FnOnce(),
) -> std::io::Result<()> {
    // A request refused from its head still has its body on the way: it is read and dropped
    // for a moment after the answer (within the gateway's limit before login), so the client
    // reads the refusal instead of a reset connection.
    let (answer, unread_body) = match parse(&head) {
        Parsed::Bad(why) => (Answer::error("400 Bad Request", why), true),
        Parsed::Head {
            mut request,
            missing,
        } => {
            let upload = is_upload(&request.method, &request.endpoint);
            let refused = if upload {
                authorized(&request, console).err()
            } else {
                None
            };
            if let Some(refusal) = refused {
                (refusal, missing > 0)
            } else {
                if upload {
                    lift_read_limit();
                }
                let mut rest = vec![0u8; missing];
                let read = async { s.read_exact(&mut rest).await.map(|()| true) };
                let timeout = async {
                    smol::Timer::after(if upload { UPLOAD_TIMEOUT } else { BODY_TIMEOUT }).await;
                    Ok(false)
                };
                if !futures_lite::future::or(read, timeout).await? {
                    return Err(std::io::ErrorKind::TimedOut.into());
                }
                request.body.extend_from_slice(&rest);
                (answer(request, peer, hub, console).await, false)
            }
        }
    };
    crate::web::respond(
        s,
        answer.status,
        "application/json",
        &answer.headers,
        answer.body.as_bytes(),
    )
    .await?;
    if unread_body {
        let drain = async {
            let mut sink = [0u8; 4096];
            while s.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        };
        futures_lite::future::or(drain, async {
            smol::Timer::after(LINGER).await;
        })
        .await;
    }
    Ok(())
}

/// How long an unread body is drained after a refusal.
const LINGER: Duration = Duration::from_secs(1);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    name: String,
    password: String,
}

/// The answer to one whole request.
pub async fn answer(request: Request, peer: IpAddr, hub: &Hub, console: &Console) -> Answer {
    let cookie = request.cookie.clone().unwrap_or_default();
    match (request.method.as_str(), request.endpoint.as_str()) {
        ("POST", "login") => {
            if let Err(a) = same_origin(&request) {
                return a;
            }
            login(&request.body, peer, console).await
        }
        ("GET", "session") => match console.auth().session(Instant::now(), &cookie) {
            Ok(s) => Answer::json(
                "200 OK",
                serde_json::json!({ "name": s.account, "csrf": s.csrf }),
            ),
            Err(d) => Answer::denied(d),
        },
        ("GET", "overview") => {
            if let Err(d) = console.auth().session(Instant::now(), &cookie) {
                return Answer::denied(d);
            }
            let overview = hub.with_core(|core, now| core.overview(now));
            Answer {
                status: "200 OK",
                headers: String::new(),
                body: serde_json::to_string(&overview).unwrap_or_default(),
            }
        }
        ("GET", "clips") => {
            if let Err(d) = console.auth().session(Instant::now(), &cookie) {
                return Answer::denied(d);
            }
            let list = console.clips().list();
            Answer::json("200 OK", serde_json::json!({ "clips": list }))
        }
        ("POST", "action" | "logout" | "clips" | "clips/remove" | "play" | "stop") => {
            let account = match authorized(&request, console) {
                Ok(account) => account,
                Err(a) => return a,
            };
            match request.endpoint.as_str() {
                "clips" => return upload(request, &account, console).await,
                "clips/remove" | "play" | "stop" => {
                    return soundboard(&request, &account, hub, console);
                }
                _ => {}
            }
            if request.endpoint == "logout" {
                console.auth().sign_out(&cookie);
                log::info!("console: {account} signed out");
                let mut a = Answer::json("200 OK", serde_json::json!({ "ok": true }));
                a.headers = format!(
                    "Set-Cookie: {COOKIE}=; Path=/console; Secure; HttpOnly; SameSite=Strict; Max-Age=0\r\n"
                );
                return a;
            }
            action(&request.body, &account, hub)
        }
        (
            _,
            "login" | "session" | "overview" | "action" | "logout" | "clips" | "clips/remove"
            | "play" | "stop",
        ) => Answer::error("405 Method Not Allowed", "wrong method"),
        _ => Answer::error("404 Not Found", "no such endpoint"),
    }
}

/// The account behind a state-changing request: same origin, a live session, its CSRF token.
fn authorized(request: &Request, console: &Console) -> Result<String, Answer> {
    same_origin(request)?;
    let cookie = request.cookie.as_deref().unwrap_or_default();
    let csrf = request.csrf.as_deref().unwrap_or_default();
    console
        .auth()
        .authorize(Instant::now(), cookie, csrf)
        .map(|s| s.account.clone())
        .map_err(Answer::denied)
}

/// A new clip: prepared off the executor (decoding and encoding up to 30 s of audio), one
/// upload at a time.
async fn upload(request: Request, account: &str, console: &Console) -> Answer {
    let Request { name, body, .. } = request;
    let Some(name) = name else {
        return Answer::error("400 Bad Request", "name the clip: POST clips?name=NAME");
    };
    if !console.clips().has_room() {
        return Answer::error("409 Conflict", &crate::clips::ClipError::Full.to_string());
    }
    let Some(id) = console
        .token()
        .map(|t| t.chars().take(16).collect::<String>())
    else {
        return Answer::error("500 Internal Server Error", "no randomness");
    };
    let _slot = console.upload_slot.acquire().await;
    let clips = console.clips.clone();
    let added = smol::unblock(move || {
        let clip = crate::clips::prepare(&name, &body)?;
        unpoisoned(&clips).add(&id, clip, &body)
    })
    .await;
    match added {
        Ok(info) => {
            log::info!(
                "console: {account} added soundboard clip {} ({:.1} s)",
                info.id,
                info.seconds
            );
            Answer::json("200 OK", serde_json::json!(info))
        }
        Err(e @ crate::clips::ClipError::Io(_)) => {
            log::error!("console: soundboard: {e}");
            Answer::error("500 Internal Server Error", "the clip could not be stored")
        }
        Err(e) => Answer::error("400 Bad Request", &e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClipRequest {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    clip: Option<String>,
}

/// Removing a clip, playing one into a stage, stopping it.
fn soundboard(request: &Request, account: &str, hub: &Hub, console: &Console) -> Answer {
    let Ok(r) = serde_json::from_slice::<ClipRequest>(&request.body) else {
        return Answer::error("400 Bad Request", "send {\"id\"} or {\"stage\", \"clip\"}");
    };
    let done = Answer::json("200 OK", serde_json::json!({ "ok": true }));
    match (request.endpoint.as_str(), r) {
        ("clips/remove", ClipRequest { id: Some(id), .. }) => match console.clips().remove(&id) {
            Ok(()) => {
                log::info!("console: {account} removed soundboard clip {id}");
                done
            }
            Err(e) => Answer::error("404 Not Found", &e.to_string()),
        },
        (
            "play",
            ClipRequest {
                stage: Some(stage),
                clip: Some(id),
                ..
            },
        ) => {
            let Some(clip) = console.clips().get(&id).cloned() else {
                return Answer::error("404 Not Found", "no such clip");
            };
            match hub.with_core(|core, now| core.play_clip(now, &stage, &clip.name, clip.frames)) {
                Ok(()) => {
                    log::info!("console: {account} plays clip {id} on {stage}");
                    done
                }
                Err(e) => Answer::error("409 Conflict", &e.to_string()),
            }
        }
        (
            "stop",
            ClipRequest {
                stage: Some(stage), ..
            },
        ) => match hub.with_core(|core, _| core.stop_clip(&stage)) {
            Ok(()) => done,
            Err(e) => Answer::error("409 Conflict", &e.to_string()),
        },
        _ => Answer::error("400 Bad Request", "send {\"id\"} or {\"stage\", \"clip\"}"),
    }
}

/// A browser's cross-site request is refused whatever it carries: its `Origin`, when it sends
/// one, must be this server.
fn same_origin(request: &Request) -> Result<(), Answer> {
    match (&request.origin, &request.host) {
        (None, _) => Ok(()),
        (Some(origin), Some(host)) if origin.strip_prefix("https://") == Some(host.as_str()) => {
            Ok(())
        }
        _ => Err(Answer::error(
            "403 Forbidden",
            "cross-site requests are refused",
        )),
    }
}

async fn login(body: &[u8], peer: IpAddr, console: &Console) -> Answer {
    let Ok(Login { name, password }) = serde_json::from_slice::<Login>(body) else {
        return Answer::error("400 Bad Request", "send {\"name\", \"password\"}");
    };
    if let Err(wait) = console.auth().may_try(Instant::now(), &name, peer) {
        let secs = wait.retry_after.as_secs().max(1);
        let mut a = Answer::error(
            "429 Too Many Requests",
            &format!("too many wrong passwords: try again in {secs} s"),
        );
        a.headers = format!("Retry-After: {secs}\r\n");
        return a;
    }
    let accounts_path = console.accounts.clone();
    let verdict = {
        let _slot = console.verify_slots.acquire().await;
        let who = name.clone();
        smol::unblock(move || {
            Accounts::load(&accounts_path).map(|accounts| accounts.verify(&who, &password))
        })
        .await
    };
    match verdict {
        Ok(Verdict::Valid) => {
            let (Some(cookie), Some(csrf)) = (console.token(), console.token()) else {
                return Answer::error("500 Internal Server Error", "no randomness");
            };
            console
                .auth()
                .signed_in(Instant::now(), &name, &cookie, &csrf);
            log::info!("console: {name} signed in from {peer}");
            let mut a = Answer::json("200 OK", serde_json::json!({ "name": name, "csrf": csrf }));
            a.headers = format!(
                "Set-Cookie: {COOKIE}={cookie}; Path=/console; Secure; HttpOnly; SameSite=Strict; Max-Age={}\r\n",
                crate::console::SESSION_MAX.as_secs()
            );
            a
        }
        Ok(Verdict::Invalid) => {
            console.auth().failed(Instant::now(), &name, peer);
            log::warn!(
                "console: wrong name or password from {peer} (account {:?})",
                name.chars().take(64).collect::<String>()
            );
            Answer::error("401 Unauthorized", "wrong name or password")
        }
        Err(e) => {
            log::error!("console: {e}");
            Answer::error(
                "500 Internal Server Error",
                "the accounts file cannot be read",
            )
        }
    }
}

/// One moderator action, as the admin interface takes it; the console may only run the stage
/// (not move stations to other gateways).
fn action(body: &[u8], account: &str, hub: &Hub) -> Answer {
    let cmd = match serde_json::from_slice::<AdminCmd>(body) {
        Ok(cmd) => cmd,
        Err(e) => return Answer::error("400 Bad Request", &format!("bad action: {e}")),
    };
    let allowed = matches!(
        cmd,
        AdminCmd::Invite { .. }
            | AdminCmd::MoveToAudience { .. }
            | AdminCmd::Mute { .. }
            | AdminCmd::Priority { .. }
            | AdminCmd::Kick { .. }
            | AdminCmd::EndStage { .. }
    );
    if !allowed {
        return Answer::error("400 Bad Request", "not a moderator action");
    }
    let described = format!("{cmd:?}");
    match hub.with_core(|core, now| core.handle_admin(now, cmd)) {
        Ok(AdminReply::Done { ok }) => {
            log::info!("console: {account}: {described}");
            Answer::json("200 OK", serde_json::json!({ "ok": ok }))
        }
        Ok(_) => Answer::json("200 OK", serde_json::json!({ "ok": true })),
        Err(e) => Answer::error("409 Conflict", &e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Parsed::Head { request, .. } => request,
            Parsed::Bad(why) => panic!("{why}"),
        }
    }

    #[test]
    fn requests_are_parsed_with_their_cookie_token_and_origin() {
        let r = head(
            "POST /console/api/action?x=1 HTTP/1.1\r\nHost: stage.example:8443\r\n\
             Cookie: other=1; stagebox_console=abc; more=2\r\nX-CSRF-Token: t0k\r\n\
             Origin: https://stage.example:8443\r\nContent-Length: 2\r\n\r\n{}",
        );
        assert_eq!(r.method, "POST");
        assert_eq!(r.endpoint, "action");
        assert_eq!(r.cookie.as_deref(), Some("abc"));
        assert_eq!(r.csrf.as_deref(), Some("t0k"));
        assert_eq!(r.body, b"{}");
        assert!(same_origin(&r).is_ok());

        let mut cross = r.clone();
        cross.origin = Some("https://evil.example".into());
        assert!(same_origin(&cross).is_err());
        cross.origin = Some("http://stage.example:8443".into());
        assert!(
            same_origin(&cross).is_err(),
            "not over TLS: not this server"
        );

        match parse(b"POST /console/api/login HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"a\"") {
            Parsed::Head { missing, request } => {
                assert_eq!((missing, request.body.len()), (6, 4));
            }
            Parsed::Bad(why) => panic!("{why}"),
        }
        let too_big = format!(
            "POST /console/api/login HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(parse(too_big.as_bytes()), Parsed::Bad("body too large"));
        assert_eq!(
            parse(b"POST /console/api/login HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Bad("send a Content-Length")
        );
        assert_eq!(
            parse(b"\x00garbage\r\n\r\n"),
            Parsed::Bad("malformed request")
        );
        assert!(is_api(b"GET /console/api/overview HTTP/1.1\r\n\r\n"));
        assert!(!is_api(b"GET /console HTTP/1.1\r\n\r\n"));
    }
}
