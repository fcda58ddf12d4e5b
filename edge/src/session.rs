//! Signed session tokens: who is calling, proven, never taken from the request body.
//!
//! A token is `base64url(payload) "." base64url(HMAC-SHA256(secret, payload))` where the
//! payload is `v2:<user id>:<expires unix s>:<nonce>:<username>` (the random nonce makes
//! every token unique, so signing one out never hits another issued in the same second;
//! `v1` tokens, without it, are still accepted until they expire). Any edge with the same secret
//! verifies any token, and a restart keeps sessions (when the secret comes from the
//! environment). The one state kept is the list of tokens signed out before their expiry
//! ([`revoked`]), shared by every edge through Redis.

pub mod revoked;
pub mod shop_login;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use hyper::header::{COOKIE, HeaderMap};
use sha2::Sha256;

/// The cookie a browser carries the token in.
pub const COOKIE_NAME: &str = "flash_session";

/// A verified token: who it proves, and what revoking it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub user: User,
    /// The token's MAC tag as sent (base64url): unique to the token, and what a revocation
    /// names, so the token itself is never stored.
    pub token_id: String,
    /// Unix seconds after which the token proves nothing anyway: a revocation lasts until
    /// then.
    pub expires_secs: u64,
}

/// Where a request's token came from. Only a cookie is sent by the browser on its own, so
/// only cookie-carried calls need the cross-site checks (`routes/origin.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier {
    Bearer,
    Cookie,
}

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
        self.issue_until(user, u64::MAX)
    }

    /// A token for `user` that expires after the session TTL or at `until_secs` (Unix
    /// seconds), whichever comes first: a session made from the shop's token ends no later
    /// than that token.
    pub fn issue_until(&self, user: &User, until_secs: u64) -> String {
        let expires = (now_secs() + self.ttl_secs).min(until_secs);
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 12]>());
        let payload = format!("v2:{}:{}:{nonce}:{}", user.id, expires, user.username);
        let mut mac = self.mac();
        mac.update(payload.as_bytes());
        let tag = mac.finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The session a token proves, or `None` for a forged, malformed or expired one (a
    /// revoked one is the caller's to refuse: [`revoked::Revocations`]).
    pub fn verify(&self, token: &str) -> Option<Session> {
        let (payload, tag_text) = token.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(payload).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag_text).ok()?;
        let mut mac = self.mac();
        mac.update(&payload);
        // Constant-time comparison: a timing side channel must not leak the tag.
        mac.verify_slice(&tag).ok()?;
        let payload = String::from_utf8(payload).ok()?;
        let mut parts = payload.splitn(5, ':');
        let version = parts.next()?;
        let id = parts.next()?.parse().ok()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        let username = match version {
            // No nonce; the name is the rest (names hold no `:`).
            "v1" => parts.map(str::to_owned).collect::<Vec<_>>().join(":"),
            "v2" => {
                let _nonce = parts.next()?;
                parts.next()?.to_owned()
            }
            _ => return None,
        };
        (expires > now_secs()).then(|| Session {
            user: User { id, username },
            token_id: tag_text.to_owned(),
            expires_secs: expires,
        })
    }

    /// The session a request's token proves (the bearer token if given, else the cookie),
    /// revoked or not.
    pub fn caller(&self, headers: &HeaderMap) -> Option<Session> {
        self.verify(token_of(headers)?.1)
    }
}

/// The token a request carries and how: `Authorization: Bearer …` (API clients), else the
/// cookie. The scheme is case-insensitive (RFC 9110 §11.1): `bearer …` is a bearer token
/// too, not a reason to fall back to the cookie. Another scheme is not ours and is ignored.
pub fn token_of(headers: &HeaderMap) -> Option<(Carrier, &str)> {
    if let Some(bearer) = headers
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
    {
        return Some((Carrier::Bearer, bearer));
    }
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| (Carrier::Cookie, value))
}

/// The token of an `Authorization` value whose scheme is Bearer, in any case.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
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
        let session = signer.verify(&token).unwrap();
        assert_eq!(session.user, alice());
        assert_eq!(Some(session.token_id.as_str()), token.split('.').nth(1));
        assert!(session.expires_secs > now_secs());
    }

    #[test]
    fn a_tampered_or_foreign_token_proves_nothing() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = signer.issue(&alice());
        let (payload, tag) = token.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("v1:8:99999999999:mallory");
        assert!(signer.verify(&format!("{forged_payload}.{tag}")).is_none());
        assert!(signer.verify(&format!("{payload}.AAAA")).is_none());
        assert!(signer.verify("garbage").is_none());
        let other = Signer::new(b"another key, also long enough......", 60);
        assert!(other.verify(&token).is_none());
    }

    #[test]
    fn every_token_is_unique_and_v1_tokens_still_verify() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 60);
        let (a, b) = (signer.issue(&alice()), signer.issue(&alice()));
        assert_ne!(a, b);
        let a = signer.verify(&a).unwrap();
        assert_ne!(a.token_id, signer.verify(&b).unwrap().token_id);
        // A token from before the nonce, signed with the same key.
        let payload = format!("v1:7:{}:alice", now_secs() + 60);
        let mut mac = signer.mac();
        mac.update(payload.as_bytes());
        let tag = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let v1 = format!("{}.{tag}", URL_SAFE_NO_PAD.encode(&payload));
        assert_eq!(signer.verify(&v1).unwrap().user, alice());
    }

    #[test]
    fn an_expired_token_proves_nothing() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 0);
        assert!(signer.verify(&signer.issue(&alice())).is_none());
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
        assert_eq!(signer.caller(&headers).unwrap().user, alice());
        assert_eq!(token_of(&headers).unwrap().0, Carrier::Cookie);
        let mut headers = HeaderMap::new();
        headers.insert(
            hyper::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        assert_eq!(signer.caller(&headers).unwrap().user, alice());
        assert_eq!(token_of(&headers).unwrap().0, Carrier::Bearer);
    }

    #[test]
    fn the_bearer_scheme_is_case_insensitive_and_wins_over_the_cookie() {
        let signer = Signer::new(b"0123456789abcdef0123456789abcdef", 60);
        let token = signer.issue(&alice());
        let bob = signer.issue(&User {
            id: 8,
            username: "bob".into(),
        });
        for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
            let mut headers = HeaderMap::new();
            headers.insert(COOKIE, format!("{COOKIE_NAME}={bob}").parse().unwrap());
            headers.insert(
                hyper::header::AUTHORIZATION,
                format!("{scheme}  {token} ").parse().unwrap(),
            );
            assert_eq!(token_of(&headers), Some((Carrier::Bearer, token.as_str())));
        }
        // Another scheme is not a session token: the cookie speaks.
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, format!("{COOKIE_NAME}={bob}").parse().unwrap());
        headers.insert(hyper::header::AUTHORIZATION, "Basic YTpi".parse().unwrap());
        assert_eq!(token_of(&headers), Some((Carrier::Cookie, bob.as_str())));
    }
}
