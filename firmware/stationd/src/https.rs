//! HTTPS GET for the update agent: a manifest (small, read whole) or a bundle (streamed,
//! resumed with a `Range` request). The update source is trusted exactly as the gateway is
//! (its pin or its CA). Plumbing only: what the bytes mean is the core's business.
//!
//! Everything from the source is outside input: the response head is bounded and parsed by
//! `httparse`, every read has a timeout, a body is cut at the caller's limit, and a response
//! that does not say how long it is (chunked) is refused rather than guessed at.

use std::sync::Arc;
use std::time::Duration;

use futures_lite::{AsyncReadExt, AsyncWriteExt, future};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use stagebox_core::gateway::https_target;
use thiserror::Error;

/// The longest a connection (TCP and TLS) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// A source that sends nothing for this long is given up.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The largest response head read.
const MAX_HEAD: usize = 16 * 1024;

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("URL: {0}")]
    Url(#[from] stagebox_core::gateway::GatewayError),
    #[error("connect: {0}")]
    Connect(String),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("the source sent nothing for {} s", READ_TIMEOUT.as_secs())]
    Timeout,
    #[error("the source answered HTTP {0}")]
    Status(u16),
    #[error("the source's answer is malformed: {0}")]
    Malformed(String),
    #[error("more than {0} bytes")]
    TooLarge(u64),
    #[error("reading: {0}")]
    Io(std::io::Error),
}

type Stream = futures_rustls::client::TlsStream<async_net::TcpStream>;

/// A response body being read.
pub struct Body {
    stream: Stream,
    /// Body bytes read with the head, not yet handed out.
    pending: Vec<u8>,
    /// Where in the file the body starts: the requested offset (206), or 0 (200: the source
    /// ignored the range, start again).
    pub starts_at: u64,
    /// Bytes of body still to come, if the source said.
    remaining: Option<u64>,
}

impl Body {
    /// GETs `url`, asking for the bytes from `from` on when it is not 0.
    pub async fn open(url: &str, tls: Arc<ClientConfig>, from: u64) -> Result<Body, HttpError> {
        let (host, port, path) = https_target(url)?;
        let connect = async {
            let tcp = async_net::TcpStream::connect((host.as_str(), port))
                .await
                .map_err(|e| HttpError::Connect(e.to_string()))?;
            let name = ServerName::try_from(host.clone())
                .map_err(|e| HttpError::Connect(format!("server name {host}: {e}")))?;
            futures_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| HttpError::Tls(e.to_string()))
        };
        let mut stream = within(CONNECT_TIMEOUT, connect).await??;
        let host_header = if port == 443 {
            host_for_header(&host)
        } else {
            format!("{}:{port}", host_for_header(&host))
        };
        let range = if from > 0 {
            format!("Range: bytes={from}-\r\n")
        } else {
            String::new()
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: stagebox/{}\r\n\
             Accept-Encoding: identity\r\n{range}Connection: close\r\n\r\n",
            env!("CARGO_PKG_VERSION")
        );
        within(READ_TIMEOUT, stream.write_all(request.as_bytes()))
            .await?
            .map_err(HttpError::Io)?;
        within(READ_TIMEOUT, stream.flush())
            .await?
            .map_err(HttpError::Io)?;
        let mut head = Vec::with_capacity(1024);
        let mut buf = [0u8; 4096];
        loop {
            let n = read_some(&mut stream, &mut buf).await?;
            if n == 0 {
                return Err(HttpError::Malformed(
                    "closed before the end of the head".into(),
                ));
            }
            head.extend_from_slice(buf.get(..n).unwrap_or_default());
            if let Some((parsed, len)) = parse_head(&head)? {
                let pending = head.get(len..).unwrap_or_default().to_vec();
                return Body::start(stream, parsed, pending, from);
            }
        }
    }

    fn start(stream: Stream, head: Head, pending: Vec<u8>, from: u64) -> Result<Body, HttpError> {
        if head.chunked {
            return Err(HttpError::Malformed(
                "chunked transfer (serve the file with its length)".into(),
            ));
        }
        let starts_at = match head.status {
            200 => 0,
            206 => {
                if head.range_start != Some(from) {
                    return Err(HttpError::Malformed(format!(
                        "asked for bytes from {from}, got a range from {:?}",
                        head.range_start
                    )));
                }
                from
            }
            other => return Err(HttpError::Status(other)),
        };
        Ok(Body {
            stream,
            remaining: head.content_length,
            pending,
            starts_at,
        })
    }

    /// The next piece of the body into `buf`, or `None` at its end.
    pub async fn next<'b>(&mut self, buf: &'b mut [u8]) -> Result<Option<&'b [u8]>, HttpError> {
        if self.remaining == Some(0) {
            return Ok(None);
        }
        let n = if self.pending.is_empty() {
            read_some(&mut self.stream, buf).await?
        } else {
            let n = self.pending.len().min(buf.len());
            if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.pending.get(..n)) {
                dst.copy_from_slice(src);
            }
            self.pending.drain(..n);
            n
        };
        if n == 0 {
            return match self.remaining {
                None => Ok(None),
                Some(left) => Err(HttpError::Malformed(format!(
                    "the source closed {left} bytes before the end"
                ))),
            };
        }
        let n = match &mut self.remaining {
            Some(left) => {
                let take = (n as u64).min(*left);
                *left -= take;
                usize::try_from(take).unwrap_or(n)
            }
            None => n,
        };
        Ok(buf.get(..n))
    }

    /// The whole body, at most `limit` bytes.
    pub async fn read_all(mut self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut out = Vec::new();
        let mut buf = [0u8; 8192];
        while let Some(piece) = self.next(&mut buf).await? {
            if out.len() + piece.len() > limit {
                return Err(HttpError::TooLarge(limit as u64));
            }
            out.extend_from_slice(piece);
        }
        Ok(out)
    }
}

/// What a response head said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<u64>,
    /// Where a `206`'s `Content-Range` starts.
    pub range_start: Option<u64>,
    pub chunked: bool,
}

/// The response head at the start of `bytes` and its length, `None` while it is incomplete
/// (and shorter than the most read), or why it is refused.
pub fn parse_head(bytes: &[u8]) -> Result<Option<(Head, usize)>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => Ok(Some((Head::from(&response)?, len))),
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => Ok(None),
        Ok(httparse::Status::Partial) => Err(HttpError::Malformed("the head is too long".into())),
        Err(e) => Err(HttpError::Malformed(e.to_string())),
    }
}

impl Head {
    fn from(r: &httparse::Response<'_, '_>) -> Result<Head, HttpError> {
        let status = r.code.unwrap_or(0);
        let header = |name: &str| {
            r.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .and_then(|h| std::str::from_utf8(h.value).ok())
                .map(str::trim)
        };
        let content_length = match header("content-length") {
            None => None,
            Some(v) => Some(
                v.parse::<u64>()
                    .map_err(|_| HttpError::Malformed(format!("Content-Length {v:?}")))?,
            ),
        };
        // `Content-Range: bytes 100-999/1000`
        let range_start = header("content-range")
            .and_then(|v| v.strip_prefix("bytes "))
            .and_then(|v| v.split_once('-'))
            .and_then(|(start, _)| start.trim().parse::<u64>().ok());
        let chunked =
            header("transfer-encoding").is_some_and(|v| !v.eq_ignore_ascii_case("identity"));
        Ok(Head {
            status,
            content_length,
            range_start,
            chunked,
        })
    }
}

fn host_for_header(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

async fn read_some(stream: &mut Stream, buf: &mut [u8]) -> Result<usize, HttpError> {
    match within(READ_TIMEOUT, stream.read(buf)).await? {
        Ok(n) => Ok(n),
        // A source that closes without TLS's close_notify: the length (if any) decides.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(0),
        Err(e) => Err(HttpError::Io(e)),
    }
}

async fn within<T>(limit: Duration, f: impl Future<Output = T>) -> Result<T, HttpError> {
    future::or(async { Ok(f.await) }, async {
        smol::Timer::after(limit).await;
        Err(HttpError::Timeout)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_read_for_what_a_download_needs() {
        let ok = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 900\r\n\
                   Content-Range: bytes 100-999/1000\r\n\r\nbody";
        let (head, len) = parse_head(ok).unwrap().unwrap();
        assert_eq!(len, ok.len() - 4);
        assert_eq!(
            head,
            Head {
                status: 206,
                content_length: Some(900),
                range_start: Some(100),
                chunked: false
            }
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-").unwrap(), None);
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).unwrap().unwrap().0.chunked);
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n"[..],
            b"SSH-2.0-OpenSSH\r\n\r\n",
            &[b'x'; MAX_HEAD + 1],
        ] {
            assert!(parse_head(bad).is_err());
        }
    }
}
