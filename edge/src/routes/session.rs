//! `POST /session {username}`, `GET /session`, `DELETE /session`.

use hyper::{Response, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
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
    let user = find_or_create(app, &username).await?;
    let token = app.signer.issue(&user);
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "token": token, "user": user_json(&user) }),
    );
    set_cookie(&mut response, &cookie(Some(&token), app.signer.ttl_secs()));
    Ok(response)
}

/// The user named `username` in any case (names are unique case-insensitively, migration
/// 0003), with the name as first written; made if new. An existing user costs one SELECT
/// and no sequence value: an `INSERT … ON CONFLICT` takes its id from the sequence before
/// it finds the conflict, so signing in again through it burnt an id each time. Two first
/// sign-ins of one name at once: one inserts, the other's insert does nothing (that race
/// alone burns an id) and it reads the winner's row.
async fn find_or_create(app: &App, username: &str) -> Result<User, ApiError> {
    let client = app.pool.get().await?;
    let find = "SELECT id, username FROM users WHERE lower(username) = lower($1)";
    let user = |row: &tokio_postgres::Row| User {
        id: row.get(0),
        username: row.get(1),
    };
    if let Some(row) = client.query_opt(find, &[&username]).await? {
        return Ok(user(&row));
    }
    let inserted = client
        .query_opt(
            "INSERT INTO users (username) VALUES ($1) ON CONFLICT DO NOTHING
             RETURNING id, username",
            &[&username],
        )
        .await?;
    match inserted {
        Some(row) => Ok(user(&row)),
        None => Ok(user(&client.query_one(find, &[&username]).await?)),
    }
}

pub fn whoami(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    let user = call.signed_in().ok_or_else(ApiError::unauthenticated)?;
    Ok(json_response(
        StatusCode::OK,
        &json!({ "user": user_json(&user) }),
    ))
}

/// Revokes the token the request carries (cookie or bearer), on every edge, until its own
/// expiry, and clears the cookie. Without a valid token there is nothing to revoke: still
/// 200 (signing out twice is signed out). If Redis does not take the revocation, 503: the
/// token still works, and the client must not think otherwise.
pub async fn sign_out(call: &Call<'_>) -> Result<Response<Body>, ApiError> {
    if let Some(session) = call.session() {
        call.app
            .revocations
            .revoke(&session)
            .await
            .map_err(|error| ApiError::unavailable(format!("redis: {error}")))?;
    }
    let mut response = json_response(StatusCode::OK, &json!({ "user": null }));
    set_cookie(&mut response, &cookie(None, 0));
    Ok(response)
}

fn user_json(user: &User) -> serde_json::Value {
    json!({ "id": user.id, "username": user.username })
}

fn set_cookie(response: &mut Response<Body>, value: &str) {
    if let Ok(value) = header::HeaderValue::from_str(value) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
}
