//! The client against a stub server that answers canned replies and closes every connection
//! after one: sessions carried as a bearer token or a cookie, a connection the server closed
//! replaced, refusals read. (The client against the real edge: flash-tests' `edge` suite.)

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use flash_api_client::{ApiError, Carrier, EdgeClient, LineChange};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the stub saw: each request's head, and how many connections it accepted.
#[derive(Default)]
struct Seen {
    heads: Vec<String>,
    connections: usize,
}

/// Serves `replies` in order (`(status line, extra headers, body)`), one per connection.
async fn stub(
    replies: Vec<(&'static str, &'static str, &'static str)>,
) -> (String, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Seen::default()));
    let log = seen.clone();
    tokio::spawn(async move {
        for (status, headers, body) in replies {
            let (mut stream, _) = listener.accept().await.unwrap();
            log.lock().unwrap().connections += 1;
            let head = read_request(&mut stream).await;
            log.lock().unwrap().heads.push(head);
            let reply = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                 {headers}connection: close\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(reply.as_bytes()).await.unwrap();
            stream.shutdown().await.unwrap();
        }
    });
    (url, seen)
}

/// Reads one request (head and body) and returns its head, lower-cased.
async fn read_request(stream: &mut TcpStream) -> String {
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        data.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&data).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .map_or(0, |v| v.trim().parse().unwrap());
            if data.len() >= end + 4 + length || n == 0 {
                return text[..end].to_owned();
            }
        }
    }
}

const SIGNED_IN: &str = r#"{"token":"tok.en","user":{"id":7,"username":"alice"}}"#;
const ME: &str = r#"{"user":{"id":7,"username":"alice"}}"#;

#[tokio::test]
async fn a_bearer_session_survives_the_server_closing_each_connection() {
    let (url, seen) = stub(vec![
        ("200 OK", "", SIGNED_IN),
        ("200 OK", "", ME),
        (
            "409 Conflict",
            "",
            r#"{"error":"SOLDOUT","message":"no unit left"}"#,
        ),
    ])
    .await;
    let client = EdgeClient::new(&url).unwrap();
    let signed = client.sign_in("alice").await.unwrap();
    assert_eq!(signed.user.id, 7);
    assert_eq!(client.whoami().await.unwrap().username, "alice");
    let refused = client
        .cart_add(&LineChange::one(1, "c1"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some("SOLDOUT"));
    assert_eq!(refused.status().map(|s| s.as_u16()), Some(409));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.connections, 3);
    assert!(seen.heads[0].starts_with("post /session http/1.1"));
    assert!(
        !seen.heads[0].contains("authorization"),
        "{}",
        seen.heads[0]
    );
    assert!(
        seen.heads[1].contains("authorization: bearer tok.en"),
        "{}",
        seen.heads[1]
    );
    assert!(seen.heads[2].contains("content-type: application/json"));
}

#[tokio::test]
async fn a_cookie_session_is_sent_back_and_forgotten_when_cleared() {
    let (url, seen) = stub(vec![
        (
            "200 OK",
            "set-cookie: flash_session=abc; Path=/; HttpOnly\r\n",
            SIGNED_IN,
        ),
        ("200 OK", "", ME),
        (
            "200 OK",
            "set-cookie: flash_session=; Path=/; Max-Age=0\r\n",
            r#"{"user":null}"#,
        ),
        (
            "401 Unauthorized",
            "",
            r#"{"error":"UNAUTHENTICATED","message":"sign in first"}"#,
        ),
    ])
    .await;
    let client = EdgeClient::new(&url).unwrap().carrying(Carrier::Cookie);
    client.sign_in("alice").await.unwrap();
    client.whoami().await.unwrap();
    client.sign_out().await.unwrap();
    assert_eq!(
        client.whoami().await.unwrap_err().code(),
        Some("UNAUTHENTICATED")
    );
    let seen = seen.lock().unwrap();
    assert!(
        seen.heads[1].contains("cookie: flash_session=abc"),
        "{}",
        seen.heads[1]
    );
    assert!(!seen.heads[1].contains("authorization"));
    assert!(!seen.heads[3].contains("cookie"), "{}", seen.heads[3]);
}

#[tokio::test]
async fn no_server_is_a_connect_error_and_a_documented_status_is_required() {
    let (url, _) = stub(vec![(
        "200 OK",
        "",
        r#"{"order_id":"o","status":"pending","units":1}"#,
    )])
    .await;
    // Checkout is documented as 202: a 200 is not taken for an accepted order.
    let client = EdgeClient::new(&url).unwrap();
    assert!(matches!(
        client.checkout("c1").await,
        Err(ApiError::Unexpected { .. })
    ));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let nobody = EdgeClient::new(&closed).unwrap();
    assert!(matches!(nobody.sale().await, Err(ApiError::Connect { .. })));
}
