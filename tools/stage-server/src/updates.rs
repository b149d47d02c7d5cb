//! Update files on the gateway's port: `GET /updates/NAME` serves NAME from the directory in
//! `[updates] dir` (with `Range`, so a station resumes a broken download), over the gateway's
//! own TLS — a station trusts its update source exactly as it trusts its gateway. Any other
//! request goes on to the WebSocket upgrade with the bytes already read (`Replay`).
//!
//! What a client sends is outside input: the head is bounded, the name must be one plain file
//! name (letters, digits, `.`, `_`, `-`; no path, no leading dot), a write that stalls is given
//! up, and the connection closes after the file.

use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use futures_lite::{AsyncRead, AsyncWrite};

/// Where update files are served.
pub const PREFIX: &str = "/updates/";
/// The longest request head read.
pub const MAX_HEAD: usize = 8 * 1024;
/// A client that takes nothing for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// What the first request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The WebSocket upgrade (or anything else): handed on with the bytes read.
    Upgrade,
    /// An update file, from byte `from` on.
    File { name: String, from: u64 },
    /// An update path that names no plain file.
    NotFound,
}

/// Reads the request head (up to the blank line, at most [`MAX_HEAD`] bytes); returns every
/// byte read.
pub async fn read_head<S: AsyncRead + Unpin>(s: &mut S) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = s.read(&mut buf).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(buf.get(..n).unwrap_or_default());
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return Ok(head);
        }
        if head.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too long"));
        }
    }
}

/// What `head` asks for.
pub fn route(head: &[u8]) -> Route {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return Route::Upgrade;
    }
    let (Some("GET"), Some(path)) = (request.method, request.path) else {
        return Route::Upgrade;
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
    };
    let Some(name) = path.strip_prefix(PREFIX) else {
        return Route::Upgrade;
    };
    if header("upgrade").is_some() {
        return Route::Upgrade;
    }
    let plain = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if !plain {
        return Route::NotFound;
    }
    // `bytes=N-` resumes; any other range is ignored (the whole file is a valid answer).
    let from = header("range")
        .and_then(|r| r.trim().strip_prefix("bytes="))
        .and_then(|r| r.strip_suffix('-'))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    Route::File {
        name: name.to_string(),
        from,
    }
}

/// Answers with file `name` of `dir` from byte `from`, then returns (the caller closes).
pub async fn serve<S: AsyncWrite + Unpin>(
    s: &mut S,
    dir: &Path,
    name: &str,
    from: u64,
) -> std::io::Result<()> {
    let file = match smol::fs::File::open(dir.join(name)).await {
        Ok(f) if f.metadata().await.is_ok_and(|m| m.is_file()) => f,
        _ => return not_found(s).await,
    };
    let len = file.metadata().await?.len();
    if from > 0 && from >= len {
        let range = format!("Content-Range: bytes */{len}\r\n");
        return answer(s, "416 Range Not Satisfiable", &range, 0).await;
    }
    let mut file = file;
    if from > 0 {
        file.seek(std::io::SeekFrom::Start(from)).await?;
        let range = format!("Content-Range: bytes {from}-{}/{len}\r\n", len - 1);
        answer(s, "206 Partial Content", &range, len - from).await?;
    } else {
        answer(s, "200 OK", "", len).await?;
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        within(s.write_all(buf.get(..n).unwrap_or_default())).await?;
    }
    within(s.flush()).await
}

/// Answers that there is no such update file.
pub async fn not_found<S: AsyncWrite + Unpin>(s: &mut S) -> std::io::Result<()> {
    answer(s, "404 Not Found", "", 0).await
}

async fn answer<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    extra: &str,
    len: u64,
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\
         Accept-Ranges: bytes\r\n{extra}Connection: close\r\n\r\n"
    );
    within(s.write_all(head.as_bytes())).await?;
    within(s.flush()).await
}

async fn within<T>(f: impl Future<Output = std::io::Result<T>>) -> std::io::Result<T> {
    futures_lite::future::or(f, async {
        smol::Timer::after(WRITE_TIMEOUT).await;
        Err(std::io::ErrorKind::TimedOut.into())
    })
    .await
}

/// A stream that first gives back bytes already read from it (the request head), so the
/// WebSocket handshake sees the whole request.
pub struct Replay<S> {
    head: Vec<u8>,
    pos: usize,
    inner: S,
}

impl<S> Replay<S> {
    pub fn new(head: Vec<u8>, inner: S) -> Replay<S> {
        Replay {
            head,
            pos: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        if let Some(rest) = this.head.get(this.pos..)
            && !rest.is_empty()
        {
            let n = rest.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            this.pos += n;
            return Poll::Ready(Ok(n));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

write_through_inner!(Replay);

#[cfg(test)]
mod tests {
    use super::*;

    fn get(path: &str, extra: &str) -> Vec<u8> {
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").into_bytes()
    }

    #[test]
    fn requests_are_routed_and_names_kept_plain() {
        assert_eq!(
            route(&get(
                "/updates/stagebox-pi4-1.3.0.raucb",
                "Range: bytes=1000-\r\n"
            )),
            Route::File {
                name: "stagebox-pi4-1.3.0.raucb".into(),
                from: 1000
            }
        );
        assert_eq!(
            route(&get("/updates/manifest.json", "Range: bytes=0-99\r\n")),
            Route::File {
                name: "manifest.json".into(),
                from: 0
            }
        );
        for bad in [
            "/updates/",
            "/updates/../server.toml",
            "/updates/a/b",
            "/updates/.hidden",
            "/updates/%2e%2e%2fkey.pem",
        ] {
            assert_eq!(route(&get(bad, "")), Route::NotFound, "{bad}");
        }
        assert_eq!(
            route(&get("/signal", "Upgrade: websocket\r\n")),
            Route::Upgrade
        );
        assert_eq!(
            route(&get("/updates/x", "Upgrade: websocket\r\n")),
            Route::Upgrade
        );
        assert_eq!(route(b"\x16\x03\x01garbage\r\n\r\n"), Route::Upgrade);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn a_replay_gives_the_head_back_first() {
        let inner = futures_lite::io::Cursor::new(b" and the rest".to_vec());
        let mut r = Replay::new(b"head".to_vec(), inner);
        let mut out = String::new();
        smol::block_on(r.read_to_string(&mut out)).unwrap();
        assert_eq!(out, "head and the rest");
    }
}
