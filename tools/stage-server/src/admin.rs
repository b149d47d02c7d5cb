//! The admin interface: a small HTTP/1.1 JSON endpoint on a local address, for moderators'
//! tools and the `stage-server admin` command.
//!
//! ```text
//! POST /admin   Authorization: Bearer TOKEN   body: {"action":"invite","stage":"townhall","station":"a-1"}
//! ```
//! Replies are JSON; errors are `{"error": "..."}` with status 400, 401, 404 or 413.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use stagebox_server_core::AdminCmd;

use crate::hub::Hub;

const MAX_REQUEST: usize = 16 * 1024;

pub async fn serve(listener: async_net::TcpListener, token: String, hub: Arc<Hub>) {
    let token = Arc::new(token);
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let hub = hub.clone();
        let token = token.clone();
        smol::spawn(async move {
            let work = handle(stream, &token, &hub);
            let timeout = async {
                smol::Timer::after(Duration::from_secs(5)).await;
            };
            futures_lite::future::or(work, timeout).await;
        })
        .detach();
    }
}

async fn handle(mut stream: async_net::TcpStream, token: &str, hub: &Hub) {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let (status, body) = loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > MAX_REQUEST {
            break (413, error("request too large"));
        }
        match parse(&buf) {
            Parsed::Incomplete => continue,
            Parsed::Bad(why) => break (400, error(&why)),
            Parsed::Request {
                authorization,
                body,
            } => {
                let expected = format!("Bearer {token}");
                if !stagebox_server_core::config::secrets_equal(authorization.trim(), &expected) {
                    break (401, error("missing or wrong bearer token"));
                }
                break match serde_json::from_slice::<AdminCmd>(&body) {
                    Err(e) => (400, error(&format!("bad command: {e}"))),
                    Ok(cmd) => match hub.with_core(|core, now| core.handle_admin(now, cmd)) {
                        Ok(reply) => (200, serde_json::to_string(&reply).unwrap_or_default()),
                        Err(e) => (404, error(&e.to_string())),
                    },
                };
            }
        }
    };
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        413 => "Payload Too Large",
        _ => "Bad Request",
    };
    let response = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.flush().await;
}

fn error(message: &str) -> String {
    serde_json::json!({ "error": message }).to_string()
}

/// What a buffer of request bytes holds so far.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    Incomplete,
    Bad(String),
    Request {
        authorization: String,
        body: Vec<u8>,
    },
}

/// Parses one request: `POST /admin` with a body of Content-Length bytes.
pub fn parse(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Incomplete,
        Err(e) => return Parsed::Bad(format!("malformed request: {e}")),
    };
    if req.method != Some("POST") || req.path != Some("/admin") {
        return Parsed::Bad("use POST /admin".into());
    }
    let header = |name: &str| {
        req.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
    };
    let Some(len) = header("content-length").and_then(|v| v.trim().parse::<usize>().ok()) else {
        return Parsed::Bad("Content-Length required".into());
    };
    if len > MAX_REQUEST {
        return Parsed::Bad("body too large".into());
    }
    let Some(body) = buf.get(head_len..head_len + len) else {
        return Parsed::Incomplete;
    };
    Parsed::Request {
        authorization: header("authorization").unwrap_or_default(),
        body: body.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_requests_and_refuses_bad_ones() {
        let body = r#"{"action":"stats"}"#;
        let req = format!(
            "POST /admin HTTP/1.1\r\nAuthorization: Bearer t0ken-t0ken-t0ken\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match parse(req.as_bytes()) {
            Parsed::Request {
                authorization,
                body: b,
            } => {
                assert_eq!(authorization, "Bearer t0ken-t0ken-t0ken");
                assert_eq!(b, body.as_bytes());
            }
            _ => panic!("not parsed"),
        }
        assert!(matches!(
            parse(&req.as_bytes()[..req.len() - 3]),
            Parsed::Incomplete
        ));
        assert!(matches!(parse(b"GET / HTTP/1.1\r\n\r\n"), Parsed::Bad(_)));
        assert!(matches!(
            parse(b"POST /admin HTTP/1.1\r\n\r\n"),
            Parsed::Bad(_)
        ));
        assert!(matches!(parse(b"\x00\x01garbage\r\n\r\n"), Parsed::Bad(_)));
    }
}
