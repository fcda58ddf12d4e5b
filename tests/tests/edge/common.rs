//! The suite's clients of the edge, all flash-api-client: a browser-like one (the session in
//! the cookie the edge sets), the raw requests the typed calls cannot make (malformed,
//! mistyped or foreign bodies, other methods), and the shape every refusal has.

use std::fmt::Debug;

use flash_api_client::{ApiError, Carrier, EdgeClient, Method, Refusal, Reply};
use flash_tests::Stack;
use serde_json::Value;

/// A browser-like client: signed out, and once signed in it carries the session in the
/// cookie, as the UI does.
pub fn browser(stack: &Stack) -> EdgeClient {
    EdgeClient::new(&stack.url(""))
        .expect("the stack's URL")
        .carrying(Carrier::Cookie)
}

/// A browser-like client signed in as `username`.
pub async fn signed_in(stack: &Stack, username: &str) -> EdgeClient {
    let client = browser(stack);
    client.sign_in(username).await.expect("signed in");
    client
}

/// How many users PostgreSQL has.
pub async fn user_count(stack: &Stack) -> i64 {
    let pg = stack.database().await.expect("PostgreSQL");
    pg.query_one("SELECT count(*) FROM users", &[])
        .await
        .expect("the users")
        .get(0)
}

/// `GET path`, whatever the reply.
pub async fn get(client: &EdgeClient, path: &str) -> Reply {
    client
        .send(Method::GET, path, None)
        .await
        .expect("the edge answers")
}

/// `POST path` with this JSON, as is: bodies the typed calls would never send.
pub async fn post_json(client: &EdgeClient, path: &str, body: Value) -> Reply {
    post_raw(client, path, body.to_string().into_bytes()).await
}

/// `POST path` with these bytes as `application/json`.
pub async fn post_raw(client: &EdgeClient, path: &str, body: Vec<u8>) -> Reply {
    client
        .send(Method::POST, path, Some(body.into()))
        .await
        .expect("the edge answers")
}

/// Every error reply has this shape: the status, the code, and a message.
pub fn assert_error(reply: &Reply, status: u16, code: &str) -> Refusal {
    let refusal = reply
        .refusal()
        .unwrap_or_else(|| panic!("not a refusal: {} {}", reply.status, reply.text()));
    assert_refusal(&refusal, status, code);
    refusal
}

/// A typed call the edge refused with this status and code (and a message).
pub fn assert_refused<T: Debug>(result: Result<T, ApiError>, status: u16, code: &str) -> Refusal {
    match result {
        Err(ApiError::Refused(refusal)) => {
            assert_refusal(&refusal, status, code);
            refusal
        }
        other => panic!("expected {status} {code}, got {other:?}"),
    }
}

fn assert_refusal(refusal: &Refusal, status: u16, code: &str) {
    assert_eq!(
        (refusal.status.as_u16(), refusal.code.as_str()),
        (status, code),
        "{refusal}"
    );
    assert!(!refusal.message.is_empty(), "{refusal}");
}
