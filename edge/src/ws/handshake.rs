//! The WebSocket handshake: the checks of RFC 6455 §4.2.1, the `Origin` allowlist, the
//! per-address cap, the 101 reply, and the spawned session with its gentle close.

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::Full;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use super::WsSettings;
use super::session::run_session;
use crate::error::{ApiError, Body};
use crate::hub::Hub;

/// Answers a `GET /ws/catalog` upgrade request: 101 and a spawned session, or a JSON refusal:
/// 400 `BAD_REQUEST` (not a WebSocket upgrade), 403 `FORBIDDEN` (an `Origin` not allowed),
/// 429 `RATE_LIMITED` (`max_per_ip` connections from this address already). The server
/// connection must be served `with_upgrades()`.
pub fn upgrade(
    req: Request<hyper::body::Incoming>,
    peer: IpAddr,
    hub: &Hub,
    settings: &WsSettings,
) -> Response<Body> {
    let session_hub = hub.clone();
    let limits = settings.clone();
    upgrade_with(req, peer, hub, settings, move |socket| async move {
        let (mut sink, mut stream) = socket.split();
        let end = run_session(&mut sink, &mut stream, &session_hub, &limits).await;
        tracing::debug!(?end, %peer, "ws: session ended");
        sink.reunite(stream).ok()
    })
}

/// A server-side WebSocket over a hyper upgrade.
pub type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// The handshake's checks and the 101 reply of every WebSocket endpoint, with `session`
/// spawned on the socket once hyper hands it over. The session holds one of the address's
/// places (counted in `hub`, against `max_per_ip`) for its whole life, and gives the socket
/// back to be closed gently (or `None` when it could not).
pub fn upgrade_with<F, Fut>(
    req: Request<hyper::body::Incoming>,
    peer: IpAddr,
    hub: &Hub,
    settings: &WsSettings,
    session: F,
) -> Response<Body>
where
    F: FnOnce(Socket) -> Fut + Send + 'static,
    Fut: Future<Output = Option<Socket>> + Send,
{
    let accept_key = match check_handshake(&req, settings) {
        Ok(accept_key) => accept_key,
        Err(refusal) => return *refusal,
    };
    let Some(slot) = hub.admit(peer, settings.max_per_ip) else {
        return ApiError {
            retry_after: Some(5),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                format!(
                    "at most {} live connections per address; close one first",
                    settings.max_per_ip
                ),
            )
        }
        .into_response();
    };
    let Ok(accept_value) = HeaderValue::from_str(&accept_key) else {
        // Base64 is always a valid header value; kept as an error rather than a panic.
        return ApiError::internal("cannot encode Sec-WebSocket-Accept").into_response();
    };

    let on_upgrade = hyper::upgrade::on(req);
    let config = settings.socket_config();
    let handshake_timeout = settings.handshake_timeout;
    tokio::spawn(async move {
        // Held for the session's whole life: dropped when this task ends, however it ends
        // (return, panic, abort), which frees the address's slot.
        let _slot = slot;
        let upgraded = match tokio::time::timeout(handshake_timeout, on_upgrade).await {
            Ok(Ok(upgraded)) => upgraded,
            Ok(Err(error)) => {
                tracing::debug!(%error, %peer, "ws: upgrade did not complete");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "ws: upgrade did not complete in time");
                return;
            }
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        if let Some(socket) = session(socket).await {
            linger(socket).await;
        }
    });

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept_value);
    response
}

/// Closes the TCP connection gently: our FIN first, then whatever the client still sends is
/// read and dropped until it closes too. Closing with unread data in the kernel's buffer (the
/// rest of an oversized message, say) would send a RST, and the client could lose the close
/// frame that explains why.
async fn linger(socket: Socket) {
    let mut io = socket.into_inner();
    let drain = async {
        let _ = io.shutdown().await;
        let mut buffer = [0u8; 4096];
        // Bounded: a client that never closes costs 2 s and 1 MiB of reading at most.
        let mut budget: usize = 1 << 20;
        while let Ok(read) = io.read(&mut buffer).await {
            if read == 0 || read >= budget {
                break;
            }
            budget -= read;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// The checks of a WebSocket handshake (RFC 6455 §4.2.1) and the `Origin` allowlist; the
/// `Sec-WebSocket-Accept` value on success.
pub fn check_handshake<B>(
    req: &Request<B>,
    settings: &WsSettings,
) -> Result<String, Box<Response<Body>>> {
    let refuse = |message: &str| Box::new(ApiError::bad_request(message).into_response());
    let headers = req.headers();
    if req.method() != Method::GET {
        return Err(refuse("a WebSocket upgrade is a GET"));
    }
    if req.version() != Version::HTTP_11 {
        return Err(refuse("a WebSocket upgrade needs HTTP/1.1"));
    }
    if !has_token(headers, header::CONNECTION, "upgrade")
        || !has_token(headers, header::UPGRADE, "websocket")
    {
        return Err(refuse(
            "not a WebSocket upgrade: send Connection: Upgrade and Upgrade: websocket",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|version| version.as_bytes() != b"13")
    {
        let mut response = refuse("only WebSocket version 13 is supported");
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return Err(response);
    }
    // The key is 16 random bytes in base64 (24 characters).
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(HeaderValue::as_bytes)
        .filter(|key| {
            base64::engine::general_purpose::STANDARD
                .decode(key.trim_ascii())
                .is_ok_and(|bytes| bytes.len() == 16)
        });
    let Some(key) = key else {
        return Err(refuse("Sec-WebSocket-Key must be 16 bytes in base64"));
    };
    if !origin_allowed(
        headers.get(header::ORIGIN),
        headers.get(header::HOST),
        &settings.allowed_origins,
    ) {
        return Err(Box::new(
            ApiError::forbidden("this Origin may not open the stock WebSocket").into_response(),
        ));
    }
    Ok(derive_accept_key(key.trim_ascii()))
}

/// Whether a comma-separated header (any of its lines) holds `token`, ignoring case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value.to_str().is_ok_and(|value| {
            value
                .split(',')
                .any(|item| item.trim().eq_ignore_ascii_case(token))
        })
    })
}

/// Browsers always send `Origin` on a WebSocket handshake; a page from another site must
/// not read our socket with its visitors' cookies (cross-site WebSocket hijacking). A
/// request without one is not from a browser page and is let through.
pub fn origin_allowed(
    origin: Option<&HeaderValue>,
    host: Option<&HeaderValue>,
    allowed_origins: &[String],
) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let origin = origin.trim();
    if allowed_origins
        .iter()
        .any(|allowed| allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    // Same host: a deployment under any hostname serves its own pages. (`Origin: null`, from
    // sandboxed frames and files, has no authority and never matches.)
    let (Some((scheme, authority)), Some(host)) =
        (origin.split_once("://"), host.and_then(|h| h.to_str().ok()))
    else {
        return false;
    };
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return false;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return false,
    };
    let strip = |authority: &str| -> String {
        let lower = authority.trim().to_ascii_lowercase();
        match lower.strip_suffix(default_port) {
            Some(bare) => bare.to_owned(),
            None => lower,
        }
    };
    strip(authority) == strip(host)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn handshake(headers: &[(&str, &str)]) -> Request<()> {
        let mut builder = Request::get("/ws/catalog");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap()
    }

    const UPGRADE_HEADERS: [(&str, &str); 5] = [
        ("host", "127.0.0.1:8000"),
        ("connection", "keep-alive, Upgrade"),
        ("upgrade", "websocket"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn a_proper_handshake_gets_the_rfc_accept_key() {
        let req = handshake(&UPGRADE_HEADERS);
        // The example of RFC 6455 §1.3.
        assert_eq!(
            check_handshake(&req, &WsSettings::default()).unwrap(),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn requests_that_are_not_upgrades_get_400() {
        let settings = WsSettings::default();
        for drop in [
            "connection",
            "upgrade",
            "sec-websocket-version",
            "sec-websocket-key",
        ] {
            let headers: Vec<_> = UPGRADE_HEADERS
                .iter()
                .copied()
                .filter(|(name, _)| *name != drop)
                .collect();
            let refusal = check_handshake(&handshake(&headers), &settings).unwrap_err();
            assert_eq!(refusal.status(), StatusCode::BAD_REQUEST, "without {drop}");
        }
        let mut headers = UPGRADE_HEADERS.to_vec();
        headers[4] = ("sec-websocket-key", "c2hvcnQ=");
        let refusal = check_handshake(&handshake(&headers), &settings).unwrap_err();
        assert_eq!(refusal.status(), StatusCode::BAD_REQUEST);
        let mut headers = UPGRADE_HEADERS.to_vec();
        headers[3] = ("sec-websocket-version", "8");
        let refusal = check_handshake(&handshake(&headers), &settings).unwrap_err();
        assert_eq!(refusal.headers()[header::SEC_WEBSOCKET_VERSION], "13");
    }

    #[test]
    fn a_foreign_origin_gets_403_and_an_allowed_one_passes() {
        let settings = WsSettings::default();
        let with_origin = |origin: &str| {
            let mut headers = UPGRADE_HEADERS.to_vec();
            headers.push(("origin", origin));
            check_handshake(&handshake(&headers), &settings)
        };
        assert!(with_origin("http://localhost:8000").is_ok());
        let refusal = with_origin("https://evil.example").unwrap_err();
        assert_eq!(refusal.status(), StatusCode::FORBIDDEN);
    }

    #[test]
    fn origin_rules() {
        let allowed = WsSettings::default().allowed_origins;
        let value = |text: &str| HeaderValue::from_str(text).unwrap();
        let check = |origin: Option<&str>, host: Option<&str>| {
            origin_allowed(
                origin.map(value).as_ref(),
                host.map(value).as_ref(),
                &allowed,
            )
        };
        // No Origin: not a browser.
        assert!(check(None, Some("shop.example")));
        assert!(check(Some("http://127.0.0.1:8000"), Some("127.0.0.1:8000")));
        assert!(check(Some("HTTP://LOCALHOST:8000"), None));
        // Same host as the request, default ports either way.
        assert!(check(Some("https://shop.example"), Some("shop.example")));
        assert!(check(
            Some("https://shop.example"),
            Some("shop.example:443")
        ));
        assert!(check(
            Some("http://shop.example:8080"),
            Some("Shop.Example:8080")
        ));
        assert!(!check(
            Some("http://shop.example:8080"),
            Some("shop.example")
        ));
        assert!(!check(Some("https://evil.example"), Some("shop.example")));
        assert!(!check(Some("null"), Some("shop.example")));
        assert!(!check(
            Some("http://user@shop.example"),
            Some("shop.example")
        ));
        assert!(!check(
            Some("http://127.0.0.1:8001"),
            Some("127.0.0.1:8000")
        ));
    }
}
