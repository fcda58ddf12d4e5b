//! The wire: the edge's base URL ([`Base`]), one keep-alive HTTP/1.1 connection opened with
//! hyper's connection-level client, and one exchange on it read whole into a [`Reply`].
//!
//! No pool: a client is one connection with one request in flight, which is what each of
//! the load generator's workers and each of the simulator's buyers wants, and it costs no
//! pool bookkeeping per request.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::error::{ApiError, ErrorBody, Refusal};

pub(crate) type Sender = SendRequest<Full<Bytes>>;

/// Where the edge is: `http://host:port[/prefix]`.
#[derive(Clone, Debug)]
pub(crate) struct Base {
    /// `host:port`, to connect to.
    pub address: String,
    /// The `Host` header.
    pub host: HeaderValue,
    /// A path the edge is mounted under (behind a proxy), without a trailing `/`; often empty.
    pub prefix: String,
}

impl Base {
    pub fn parse(url: &str) -> Result<Base, ApiError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| ApiError::Invalid(format!("base URL {url:?}: {e}")))?;
        // The edge serves plain HTTP; TLS, if any, ends in front of it.
        if uri.scheme_str() != Some("http") {
            return Err(ApiError::Invalid(format!(
                "base URL {url:?}: only http:// is spoken"
            )));
        }
        let authority = uri
            .authority()
            .ok_or_else(|| ApiError::Invalid(format!("base URL {url:?}: no host")))?;
        let address = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let host = HeaderValue::from_str(authority.as_str())
            .map_err(|e| ApiError::Invalid(format!("base URL {url:?}: {e}")))?;
        Ok(Base {
            address,
            host,
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The request target for an API path (`/cart/add`, `/products/?skip=0`).
    pub fn target(&self, path: &str) -> Result<Uri, ApiError> {
        let target = if self.prefix.is_empty() {
            Uri::try_from(path)
        } else {
            Uri::try_from(format!("{}{path}", self.prefix))
        };
        target.map_err(|e| ApiError::Invalid(format!("path {path:?}: {e}")))
    }
}

/// Opens a connection to the edge; its driver runs as a task of its own until either side
/// closes it.
pub(crate) async fn open(base: &Base, within: Option<Duration>) -> Result<Sender, ApiError> {
    let connect = async {
        let stream = TcpStream::connect(&base.address).await?;
        // Requests are small and answered one at a time: Nagle would only add delay.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(sender)
    };
    let failed = |detail: String| ApiError::Connect {
        address: base.address.clone(),
        detail,
    };
    match within {
        Some(limit) => match tokio::time::timeout(limit, connect).await {
            Ok(result) => result.map_err(|e| failed(e.to_string())),
            Err(_) => Err(failed(format!("no connection within {limit:?}"))),
        },
        None => connect.await.map_err(|e| failed(e.to_string())),
    }
}

/// How an exchange failed.
pub(crate) enum Failed {
    /// The connection was closed before the request left (the edge ended a keep-alive
    /// connection between two requests): the request is handed back, to send on a new one.
    NotSent(Box<Request<Full<Bytes>>>),
    /// The request left, or may have, and no whole reply came.
    Lost(ApiError),
}

/// Sends one request and reads the whole reply. After any failure the connection can no
/// longer be trusted: the caller drops it.
pub(crate) async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
    within: Option<Duration>,
) -> Result<Reply, Failed> {
    let lost = |e: hyper::Error| Failed::Lost(ApiError::Transport(e.to_string()));
    let exchange = async {
        if sender.ready().await.is_err() {
            return Err(Failed::NotSent(Box::new(request)));
        }
        let response = match sender.try_send_request(request).await {
            Ok(response) => response,
            Err(mut error) => {
                return Err(match error.take_message() {
                    Some(request) => Failed::NotSent(Box::new(request)),
                    None => lost(error.into_error()),
                });
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(lost)?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match within {
        Some(limit) => tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Failed::Lost(ApiError::Transport(format!(
                    "no reply within {limit:?}"
                ))))
            }),
        None => exchange.await,
    }
}

/// A whole reply, as the edge sent it.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    /// The body as text (lossy), for pages, metrics and messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON of any shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Unexpected {
            status: self.status,
            detail: format!("{e}: {}", self.text()),
        })
    }

    /// A header's value as text (`name`: a `HeaderName` or a lower-case `&str`).
    pub fn header(&self, name: impl header::AsHeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The edge's refusal, if this reply is one (a 4xx or 5xx with the error body).
    pub fn refusal(&self) -> Option<Refusal> {
        if !(self.status.is_client_error() || self.status.is_server_error()) {
            return None;
        }
        let body: ErrorBody = serde_json::from_slice(&self.body).ok()?;
        Some(Refusal {
            status: self.status,
            code: body.error,
            message: body.message,
            retry_after: self
                .header(header::RETRY_AFTER)
                .and_then(|v| v.trim().parse().ok()),
        })
    }

    /// `Ok(self)` if the status is `expected`; otherwise the refusal, or
    /// [`ApiError::Unexpected`] for a status without the error body.
    pub fn expect(self, expected: StatusCode) -> Result<Reply, ApiError> {
        if self.status == expected {
            return Ok(self);
        }
        match self.refusal() {
            Some(refusal) => Err(ApiError::Refused(refusal)),
            None => Err(ApiError::Unexpected {
                status: self.status,
                detail: format!("expected {}: {}", expected.as_u16(), self.text()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_base_url_gives_the_address_host_and_prefix() {
        let base = Base::parse("http://127.0.0.1:8000/").expect("a base");
        assert_eq!(base.address, "127.0.0.1:8000");
        assert_eq!(base.host, "127.0.0.1:8000");
        assert_eq!(base.target("/cart/add").expect("a target"), "/cart/add");
        let behind = Base::parse("http://shop.example/flash").expect("a base");
        assert_eq!(behind.address, "shop.example:80");
        assert_eq!(
            behind.target("/products/?skip=0").expect("a target"),
            "/flash/products/?skip=0"
        );
        assert!(matches!(
            Base::parse("https://shop.example"),
            Err(ApiError::Invalid(_))
        ));
        assert!(base.target("/cart/with space").is_err());
    }

    fn reply(status: u16, body: &str) -> Reply {
        let mut headers = HeaderMap::new();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        Reply {
            status: StatusCode::from_u16(status).expect("a status"),
            headers,
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn a_reply_is_the_expected_one_a_refusal_or_unexpected() {
        assert!(reply(202, "{}").expect(StatusCode::ACCEPTED).is_ok());
        let refused = reply(429, r#"{"error":"RATE_LIMITED","message":"slow down"}"#)
            .expect(StatusCode::OK)
            .expect_err("a refusal");
        let refusal = refused.refusal().expect("the edge's words");
        assert_eq!(
            (refusal.status.as_u16(), refusal.code.as_str()),
            (429, "RATE_LIMITED")
        );
        assert_eq!(refusal.retry_after, Some(1));
        let odd = reply(502, "<html>bad gateway</html>")
            .expect(StatusCode::OK)
            .expect_err("not the edge's");
        assert!(matches!(odd, ApiError::Unexpected { status, .. } if status == 502));
        // A 200 where 202 is documented is not taken for success.
        assert!(matches!(
            reply(200, "{}").expect(StatusCode::ACCEPTED),
            Err(ApiError::Unexpected { .. })
        ));
    }
}
