//! `POST /session {username}`, `GET /session`, `DELETE /session`.

use hyper::{Response, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, Body, json_response};
use crate::routes::Call;
use crate::session::{User, cookie, valid_username};

#[derive(Deserialize)]
struct SignIn {
    username: String,
}

/// Creates the user if new, and returns a signed token: as an HttpOnly cookie for browsers
/// and in the body for API clients (`Authorization: Bearer …`).
pub async fn sign_in(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let SignIn { username } = call.body().await?;
    if !valid_username(&username) {
        return Err(ApiError::invalid(
            "field `username`: 1 to 64 characters of A-Z a-z 0-9 - _ .",
        ));
    }
    let client = app.pool.get().await?;
    // The no-op update makes RETURNING give the id of an existing user too.
    let row = client
        .query_one(
            "INSERT INTO users (username) VALUES ($1)
             ON CONFLICT (username) DO UPDATE SET username = EXCLUDED.username
             RETURNING id",
            &[&username],
        )
        .await?;
    let user = User {
        id: row.get(0),
        username,
    };
    let token = app.signer.issue(&user);
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "token": token, "user": user_json(&user) }),
    );
    set_cookie(&mut response, &cookie(Some(&token), app.signer.ttl_secs()));
    Ok(response)
}

pub fn whoami(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let user = call.signed_in().ok_or_else(ApiError::unauthenticated)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "user": user_json(&user) }),
    ))
}

pub fn sign_out() -> Response<Body> {
    let mut response = json_response(StatusCode::OK, &json!({ "user": null }));
    set_cookie(&mut response, &cookie(None, 0));
    response
}

fn user_json(user: &User) -> serde_json::Value {
    json!({ "id": user.id, "username": user.username })
}

fn set_cookie(response: &mut Response<Body>, value: &str) {
    if let Ok(value) = header::HeaderValue::from_str(value) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}
