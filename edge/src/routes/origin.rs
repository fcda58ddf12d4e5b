//! Cross-site request forgery: a page on another site must not act with our visitors'
//! cookie.
//!
//! A browser attaches the session cookie to any request for our host, whichever page sends
//! it: a form on `evil.example` posting `text/plain` to `/cart/checkout` would check the
//! visitor's cart out. `SameSite=Strict` stops that in current browsers; these checks do not
//! rely on it. A write carried by the cookie (and every `POST /session`, which would
//! otherwise sign the visitor in as the attacker: login CSRF) must
//!
//! - come from one of our pages: `Sec-Fetch-Site: same-origin`, or an `Origin` that is in
//!   `--allowed-origins` or has the request's own host (the WebSocket's rule,
//!   [`crate::ws::origin_allowed`]); else 403 `FORBIDDEN`;
//! - carry a JSON body (`Content-Type: application/json`), which no form can send and no
//!   other site's script can send without a CORS preflight this edge never grants; else
//!   415 `UNSUPPORTED_MEDIA_TYPE`.
//!
//! A request with neither `Origin` nor `Sec-Fetch-Site` is let through: every browser this UI
//! supports sends `Origin` on a POST or DELETE, so such a request comes from a program (a
//! script with a cookie jar, `curl -b`), which no other site can steer; the JSON rule still
//! holds for it. A bearer token is never attached by a browser on its own, so calls that
//! carry one are not checked.

use hyper::header::{self, HeaderMap};
use hyper::{Method, Request};

use crate::error::ApiError;
use crate::session::{Carrier, token_of};

/// Refuses a request another site could have made on our visitor's behalf.
pub fn check<B>(req: &Request<B>, route: &str, allowed_origins: &[String]) -> Result<(), ApiError> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let headers = req.headers();
    let carried_by_cookie = match token_of(headers) {
        Some((Carrier::Bearer, _)) => return Ok(()),
        Some((Carrier::Cookie, _)) => true,
        None => false,
    };
    // Without a token, only signing in acts (the others answer 401).
    if !carried_by_cookie && route != "/session" {
        return Ok(());
    }
    if !from_our_pages(headers, allowed_origins) {
        return Err(ApiError::forbidden(
            "this request comes from another site's page; sign in on this one",
        ));
    }
    if *req.method() == Method::POST && !is_json(headers) {
        return Err(ApiError::unsupported_media_type(
            "send the body as Content-Type: application/json",
        ));
    }
    Ok(())
}

fn from_our_pages(headers: &HeaderMap, allowed_origins: &[String]) -> bool {
    let fetch_site = headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    if fetch_site.is_some_and(|site| site.eq_ignore_ascii_case("same-origin")) {
        return true;
    }
    match headers.get(header::ORIGIN) {
        Some(origin) => {
            crate::ws::origin_allowed(Some(origin), headers.get(header::HOST), allowed_origins)
        }
        // No Origin: a program, unless a browser says otherwise (`none` is the user's own
        // navigation, not another site's).
        None => fetch_site.is_none_or(|site| site.eq_ignore_ascii_case("none")),
    }
}

/// `application/json`, in any case, with any parameters (`; charset=utf-8`).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const ALLOWED: &[&str] = &["http://127.0.0.1:8000"];

    fn outcome(method: Method, route: &str, headers: &[(&str, &str)]) -> Result<(), u16> {
        let mut req = Request::builder().method(method).uri(route);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let allowed: Vec<String> = ALLOWED.iter().map(|s| s.to_string()).collect();
        check(&req.body(()).unwrap(), route, &allowed).map_err(|e| e.status.as_u16())
    }

    const COOKIE: (&str, &str) = ("cookie", "flash_session=t.t");
    const JSON: (&str, &str) = ("content-type", "application/json");
    const HOST: (&str, &str) = ("host", "shop.example");

    #[test]
    fn a_cross_site_cookie_write_is_refused() {
        let evil = ("origin", "https://evil.example");
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/json",
        ] {
            let headers = [COOKIE, HOST, evil, ("content-type", content_type)];
            assert_eq!(outcome(Method::POST, "/cart/add", &headers), Err(403));
        }
        // Signing in is checked without a cookie (login CSRF); a sign-out too.
        assert_eq!(
            outcome(Method::POST, "/session", &[HOST, evil, JSON]),
            Err(403)
        );
        assert_eq!(
            outcome(Method::DELETE, "/session", &[COOKIE, HOST, evil]),
            Err(403)
        );
        // A browser that says it is cross-site, without an Origin, is believed.
        let cross = ("sec-fetch-site", "cross-site");
        assert_eq!(
            outcome(Method::POST, "/orders/", &[COOKIE, JSON, cross]),
            Err(403)
        );
        assert_eq!(
            outcome(
                Method::POST,
                "/cart/add",
                &[COOKIE, JSON, ("origin", "null")]
            ),
            Err(403)
        );
    }

    #[test]
    fn our_pages_and_programs_pass_with_json() {
        let same_host = ("origin", "https://shop.example");
        assert_eq!(
            outcome(Method::POST, "/cart/add", &[COOKIE, HOST, same_host, JSON]),
            Ok(())
        );
        let listed = ("origin", "http://127.0.0.1:8000");
        assert_eq!(
            outcome(Method::POST, "/cart/add", &[COOKIE, HOST, listed, JSON]),
            Ok(())
        );
        let same_origin = ("sec-fetch-site", "same-origin");
        assert_eq!(
            outcome(Method::POST, "/session", &[same_origin, JSON]),
            Ok(())
        );
        // No Origin, no Sec-Fetch-Site: a program with a cookie jar.
        let charset = ("content-type", "Application/JSON; charset=utf-8");
        assert_eq!(
            outcome(Method::POST, "/cart/add", &[COOKIE, charset]),
            Ok(())
        );
        assert_eq!(outcome(Method::DELETE, "/session", &[COOKIE]), Ok(()));
        // But never a body a form could send.
        let form = ("content-type", "text/plain");
        assert_eq!(
            outcome(Method::POST, "/cart/add", &[COOKIE, HOST, same_host, form]),
            Err(415)
        );
        assert_eq!(outcome(Method::POST, "/cart/add", &[COOKIE]), Err(415));
    }

    #[test]
    fn bearer_calls_reads_and_anonymous_calls_are_not_checked() {
        let evil = ("origin", "https://evil.example");
        let form = ("content-type", "text/plain");
        for scheme in ["Bearer t.t", "bearer t.t"] {
            let headers = [COOKIE, evil, form, ("authorization", scheme)];
            assert_eq!(outcome(Method::POST, "/cart/add", &headers), Ok(()));
        }
        assert_eq!(outcome(Method::GET, "/cart/c1", &[COOKIE, evil]), Ok(()));
        // No token: the handler's 401 answers.
        assert_eq!(outcome(Method::POST, "/cart/add", &[evil, form]), Ok(()));
    }
}
