//! A browser-like API client: a cookie jar, JSON in and out.

use flash_tests::Stack;
use serde_json::Value;

pub struct Buyer {
    pub http: reqwest::Client,
    base: String,
}

impl Buyer {
    pub fn new(stack: &Stack) -> Buyer {
        Buyer {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .build()
                .expect("an HTTP client"),
            base: stack.url(""),
        }
    }

    /// A buyer signed in as `username`.
    pub async fn signed_in(stack: &Stack, username: &str) -> Buyer {
        let buyer = Buyer::new(stack);
        let (status, body) = buyer
            .post("/session", serde_json::json!({ "username": username }))
            .await;
        assert_eq!(status, 200, "{body}");
        buyer
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("the edge answers");
        reply(response).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("the edge answers");
        reply(response).await
    }

    pub async fn post_raw(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("the edge answers");
        reply(response).await
    }
}

async fn reply(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Every error reply has this shape.
pub fn assert_error(reply: &(u16, Value), status: u16, code: &str) {
    assert_eq!(reply.0, status, "{}", reply.1);
    assert_eq!(reply.1["error"], code, "{}", reply.1);
    assert!(
        reply.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        reply.1
    );
}
