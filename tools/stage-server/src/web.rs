//! The web app on the gateway's port: the listener page and its script and style, built from
//! `tools/stage-server/web/` into the binary (a venue may have no internet; nothing is
//! fetched from elsewhere). Every answer carries a strict Content-Security-Policy: scripts and
//! styles from this server only, no inline script, connections only back to this server.

use std::time::Duration;

use futures_lite::{AsyncWrite, AsyncWriteExt};

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

impl Asset {
    const fn html(body: &'static str) -> Asset {
        Asset {
            content_type: "text/html; charset=utf-8",
            body,
        }
    }

    const fn script(body: &'static str) -> Asset {
        Asset {
            content_type: "text/javascript; charset=utf-8",
            body,
        }
    }
}

const LISTEN_HTML: Asset = Asset::html(include_str!("../web/listen.html"));
const LISTEN_JS: Asset = Asset::script(include_str!("../web/listen.js"));
const CONSOLE_HTML: Asset = Asset::html(include_str!("../web/console.html"));
const CONSOLE_JS: Asset = Asset::script(include_str!("../web/console.js"));
const STAGE_CSS: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_str!("../web/stage.css"),
};

/// What the page may load and talk to: this server, nothing inline, no frames, no forms
/// elsewhere.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; connect-src 'self'; img-src 'self'; media-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A client that takes nothing for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a plain `GET` (no `Upgrade`) outside `/updates/` is answered with: one of the app's
/// files, or 404 (a browser's favicon request, a mistyped link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    Asset(Asset),
    NotFound,
}

/// The page a request head asks for; `None` for the WebSocket upgrade and update files.
pub fn route(head: &[u8]) -> Option<Page> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    if !matches!(request.parse(head), Ok(httparse::Status::Complete(_))) {
        return None;
    }
    if request.method != Some("GET")
        || request
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade"))
    {
        return None;
    }
    // The query never matters; the stage link rides in the fragment, which is not sent.
    let path = request.path?.split('?').next()?;
    if path.starts_with(crate::updates::PREFIX) || path.starts_with(crate::console_api::PREFIX) {
        return None;
    }
    Some(match path {
        "/listen" => Page::Asset(LISTEN_HTML),
        "/web/listen.js" => Page::Asset(LISTEN_JS),
        "/console" => Page::Asset(CONSOLE_HTML),
        "/web/console.js" => Page::Asset(CONSOLE_JS),
        "/web/stage.css" => Page::Asset(STAGE_CSS),
        _ => Page::NotFound,
    })
}

/// Answers with `page`, then returns (the caller closes the connection).
pub async fn serve<S: AsyncWrite + Unpin>(s: &mut S, page: Page) -> std::io::Result<()> {
    match page {
        Page::Asset(asset) => {
            respond(s, "200 OK", asset.content_type, "", asset.body.as_bytes()).await
        }
        Page::NotFound => {
            respond(
                s,
                "404 Not Found",
                "text/plain; charset=utf-8",
                "",
                b"not found\n",
            )
            .await
        }
    }
}

/// Writes one whole response with the app's security headers; `extra_headers` are more
/// header lines, each ending in CRLF. A client that does not take it within the write timeout
/// is given up on.
pub async fn respond<S: AsyncWrite + Unpin>(
    s: &mut S,
    status: &str,
    content_type: &str,
    extra_headers: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Content-Security-Policy: {CONTENT_SECURITY_POLICY}\r\n\
         X-Content-Type-Options: nosniff\r\nReferrer-Policy: no-referrer\r\n\
         Cache-Control: no-store\r\n{extra_headers}Connection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        s.write_all(head.as_bytes()).await?;
        s.write_all(body).await?;
        s.flush().await
    };
    let timeout = async {
        smol::Timer::after(WRITE_TIMEOUT).await;
        Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "client does not read",
        ))
    };
    futures_lite::future::or(write, timeout).await
}

#[cfg(test)]
mod tests {
    use super::{CONSOLE_HTML, CONSOLE_JS, LISTEN_HTML, LISTEN_JS, Page, route};

    #[test]
    fn pages_are_found_by_path_and_upgrades_pass_through() {
        let get = |path: &str, extra: &str| {
            route(format!("GET {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n").as_bytes())
        };
        assert_eq!(get("/listen", ""), Some(Page::Asset(LISTEN_HTML)));
        assert_eq!(get("/listen?utm=1", ""), Some(Page::Asset(LISTEN_HTML)));
        assert_eq!(get("/web/listen.js", ""), Some(Page::Asset(LISTEN_JS)));
        assert_eq!(get("/console", ""), Some(Page::Asset(CONSOLE_HTML)));
        assert_eq!(
            get("/console/api/overview", ""),
            None,
            "the console's interface"
        );
        assert_eq!(get("/", "Upgrade: websocket\r\n"), None);
        assert_eq!(get("/listen", "Upgrade: websocket\r\n"), None);
        assert_eq!(
            get("/updates/bundle.raucb", ""),
            None,
            "update files are not pages"
        );
        assert_eq!(get("/web/../secret", ""), Some(Page::NotFound));
        assert_eq!(get("/favicon.ico", ""), Some(Page::NotFound));
        assert_eq!(route(b"POST /listen HTTP/1.1\r\n\r\n"), None);
        assert_eq!(route(b"garbage"), None);
    }

    #[test]
    fn the_pages_have_no_inline_script_or_style() {
        for (html, js) in [(LISTEN_HTML, LISTEN_JS), (CONSOLE_HTML, CONSOLE_JS)] {
            let html = html.body;
            assert!(!html.contains("<script>"), "scripts come from files");
            let handler = html.split(" on").skip(1).any(|rest| {
                let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
                !name.is_empty() && rest[name.len()..].starts_with('=')
            });
            assert!(!handler, "no inline event handlers");
            assert!(!html.contains("style="), "no inline style");
            for markup in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
            ] {
                assert!(
                    !js.body.contains(markup),
                    "peers' text never becomes markup"
                );
            }
        }
    }
}
