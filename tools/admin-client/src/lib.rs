//! # stagebox-admin-client — one admin request to a stage server
//!
//! What a moderator's tool sends: `POST /admin` with a bearer token and a JSON body, one
//! request per connection, the reply read to its end within a timeout. Standard library only,
//! so the server's `admin` command, `cargo xtask` (before anything else is installed) and the
//! system tests share it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long the server may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The largest reply read.
const MAX_REPLY: u64 = 1 << 20;

/// Why a request got no good answer.
#[derive(Debug)]
pub enum AdminError {
    /// The server could not be reached or the exchange broke.
    Io(std::io::Error),
    /// The reply was not HTTP.
    Malformed,
    /// The server answered with another status than 200: its status line and body.
    Refused { status: String, body: String },
}

impl std::fmt::Display for AdminError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AdminError::Io(e) => write!(f, "admin interface: {e}"),
            AdminError::Malformed => f.write_str("admin interface: the reply is not HTTP"),
            AdminError::Refused { status, body } => write!(f, "{status}: {body}"),
        }
    }
}

impl std::error::Error for AdminError {}

impl From<std::io::Error> for AdminError {
    fn from(e: std::io::Error) -> AdminError {
        AdminError::Io(e)
    }
}

/// Sends `body` (JSON) to the admin interface at `addr` with `token`; returns the reply's
/// body when the status is 200.
pub fn request(addr: SocketAddr, token: &str, body: &str) -> Result<String, AdminError> {
    let mut s = TcpStream::connect_timeout(&addr, TIMEOUT)?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    write!(
        s,
        "POST /admin HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reply = String::new();
    s.take(MAX_REPLY).read_to_string(&mut reply)?;
    let (head, body) = reply.split_once("\r\n\r\n").ok_or(AdminError::Malformed)?;
    let status = head.lines().next().unwrap_or("").to_string();
    if !status.starts_with("HTTP/1.1 ") {
        return Err(AdminError::Malformed);
    }
    if !status.starts_with("HTTP/1.1 200") {
        return Err(AdminError::Refused {
            status,
            body: body.to_string(),
        });
    }
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::io::BufRead;

    /// A one-shot server that answers `reply` and hands back what it was sent.
    fn serve_once(reply: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = std::io::BufReader::new(s);
            let mut head = String::new();
            loop {
                let mut line = String::new();
                r.read_line(&mut line).unwrap();
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .unwrap()
                .parse()
                .unwrap();
            let mut body = vec![0; len];
            r.read_exact(&mut body).unwrap();
            r.get_mut().write_all(reply.as_bytes()).unwrap();
            head + &String::from_utf8(body).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn sends_the_token_and_body_and_returns_a_200_body() {
        let (addr, server) = serve_once("HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{\"a\":1}");
        let reply = request(addr, "t0ken", "{\"action\":\"stats\"}").unwrap();
        assert_eq!(reply, "{\"a\":1}");
        let sent = server.join().unwrap();
        assert!(sent.starts_with("POST /admin HTTP/1.1\r\n"), "{sent}");
        assert!(sent.contains("Authorization: Bearer t0ken\r\n"));
        assert!(sent.ends_with("{\"action\":\"stats\"}"));
    }

    #[test]
    fn another_status_is_a_refusal_with_its_reason() {
        let (addr, _server) = serve_once("HTTP/1.1 401 Unauthorized\r\n\r\nbad token");
        match request(addr, "x", "{}") {
            Err(AdminError::Refused { status, body }) => {
                assert_eq!(status, "HTTP/1.1 401 Unauthorized");
                assert_eq!(body, "bad token");
            }
            other => panic!("{other:?}"),
        }
    }
}
