//! Signed session tokens: who is calling, proven, never taken from the request body.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload))` where the
//! payload is `v1:<user id>:<expires unix s>:<username>`. The server keeps no session
//! state: any edge with the same secret verifies any token, and a restart keeps sessions
//! (when the secret comes from the environment).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use hyper::header::{COOKIE, HeaderMap};
use sha2::Sha256;

/// The cookie a browser carries the token in.
pub const COOKIE_NAME: &str = "flash_session";

/// A verified caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub username: String,
}

impl User {
    /// The user as the engine knows it (`FLASH.RESERVE sale cart <user> …`).
    pub fn engine_id(&self) -> String {
        self.id.to_string()
    }
}

pub struct Signer {
    key: Vec<u8>,
    ttl_secs: u64,
}

impl Signer {
    pub fn new(key: &[u8], ttl_secs: u64) -> Signer {
        Signer {
            key: key.to_vec(),
            ttl_secs,
        }
    }

    fn mac(&self) -> Hmac<Sha256> {
        // HMAC takes keys of any length; this cannot fail.
        <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"))
    }

    pub fn ttl_secs(&self) -> u64 {
        self.ttl_secs
    }

    pub fn issue(&self, user: &User) -> String {
        let expires = now_secs() + self.ttl_secs;
        let payload = format!("v1:{}:{}:{}", user.id, expires, user.username);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The user a token proves, or `None` for a forged, malformed or expired one.
    pub fn verify(&self, token: &str) -> Option<User> {
        let (payload, tag) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        let mut mac = self.mac();
        mac.update(&payload);
        // Constant-time comparison: a timing side channel must not leak the tag.
        mac.verify_slice(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.splitn(4, ':');
        if parts.next()? != "v1" {
            return None;
        }
        let id = parts.next()?.parse().ok()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        let username = parts.next()?.to_owned();
        (expires > now_secs()).then_some(User { id, username })
    }

    /// The caller of a request: the bearer token if given, else the session cookie.
    pub fn caller(&self, headers: &HeaderMap) -> Option<User> {
        self.verify(token_of(headers)?)
    }
}

/// The token a request carries: `Authorization: Bearer …` (API clients) or the cookie.
fn token_of(headers: &HeaderMap) -> Option<&str> {
    if let Some(bearer) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim());
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value)
}

/// The Set-Cookie value that stores `token` (or clears it, for `None`).
pub fn cookie(token: Option<&str>, max_age_secs: u64) -> String {
    match token {
        Some(token) => format!(
            "{COOKIE_NAME}={token}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
        ),
        None => format!("{COOKIE_NAME}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    }
}

/// A username: 1..64 of the characters the engine accepts in names, minus the separator.
pub fn valid_username(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn alice() -> User {
        User {
            id: 7,
            username: "alice".into(),
        }
    }

    #[test]
    fn a_token_proves_its_user() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = signer.issue(&alice());
        assert_eq!(signer.verify(&token), Some(alice()));
    }

    #[test]
    fn a_tampered_or_foreign_token_proves_nothing() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = signer.issue(&alice());
        let (payload, tag) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("v1:8:99999999999:mallory");
        assert_eq!(signer.verify(&format!("{forged_payload}.{tag}")), None);
        assert_eq!(signer.verify(&format!("{payload}.AAAA")), None);
        assert_eq!(signer.verify("garbage"), None);
        let other = Signer::new(b"another key, also long enough......", 60);
        assert_eq!(other.verify(&token), None);
    }

    #[test]
    fn an_expired_token_proves_nothing() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 0);
        assert_eq!(signer.verify(&signer.issue(&alice())), None);
    }

    #[test]
    fn the_cookie_or_the_bearer_header_carries_the_token() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = signer.issue(&alice());
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            format!("a=b; {COOKIE_NAME}={token}").parse().unwrap(),
        );
        assert_eq!(signer.caller(&headers), Some(alice()));
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        assert_eq!(signer.caller(&headers), Some(alice()));
    }
}
