//! `POST /session {token}` (the shop's login) or `{username}` (the demo login), `GET /session`,
//! `DELETE /session`.

use hyper::{Response, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, Body, json_response};
use crate::routes::Call;
use crate::session::shop_login::ShopIdentity;
use crate::session::{User, cookie, valid_username};

/// `{"token": "<JWT>"}` (the shop's login) or `{"username": …}` (the demo login).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignIn {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

/// Verifies who is signing in, makes the user on first sight, and returns a signed session
/// token: as an HttpOnly cookie for browsers and in the body for API clients
/// (`Authorization: Bearer …`).
pub async fn sign_in(call: Call<'_>) -> Result<Response<Body>, ApiError> {
    let app = call.app;
    let (user, token) = match call.body().await? {
        SignIn {
            token: Some(jwt),
            username: None,
        } => {
            let shop = app.shop_login.as_ref().ok_or_else(|| {
                ApiError::forbidden_as(
                    "NO_SHOP_LOGIN",
                    "this edge has no shop login (--jwt-secret or --jwt-jwks)",
                )
            })?;
            let identity = shop
                .verify(&jwt)
                .map_err(|error| ApiError::bad_token(error.to_string()))?;
            let user = shop_user(app, &identity).await?;
            let token = app.signer.issue_until(&user, identity.expires_secs);
            (user, token)
        }
        SignIn {
            token: None,
            username: Some(username),
        } => {
            if !app.settings.login.demo_login {
                return Err(ApiError::forbidden_as(
                    "DEMO_LOGIN_OFF",
                    "signing in by name alone is the demo login, off on this edge: sign in \
                     through the shop (POST /session {\"token\": <its JWT>})",
                ));
            }
            if !valid_username(&username) {
                return Err(ApiError::invalid(
                    "field `username`: 1 to 64 characters of A-Z a-z 0-9 - _ .",
                ));
            }
            let user = demo_user(app, &username).await?;
            let token = app.signer.issue(&user);
            (user, token)
        }
        _ => {
            return Err(ApiError::invalid(
                "give `token` (the shop's JWT) or `username` (the demo login), one of them",
            ));
        }
    };
    let mut response = json_response(
        StatusCode::OK,
        &json!({ "token": token, "user": user_json(&user) }),
    );
    set_cookie(&mut response, &cookie(Some(&token), app.signer.ttl_secs()));
    Ok(response)
}

/// The demo login's user named `username` in any case (names are unique case-insensitively,
/// migration 0003), with the name as first written; made if new. A name that belongs to a
/// shop account is refused: the demo login must not reach it. An existing user costs one
/// SELECT and no sequence value: an `INSERT … ON CONFLICT` takes its id from the sequence
/// before it finds the conflict, so signing in again through it burnt an id each time. Two
/// first sign-ins of one name at once: one inserts, the other's insert does nothing (that
/// race alone burns an id) and it reads the winner's row.
async fn demo_user(app: &App, username: &str) -> Result<User, ApiError> {
    let client = app.pool.get().await?;
    let find =
        "SELECT id, username, subject IS NOT NULL FROM users WHERE lower(username) = lower($1)";
    let user = |row: &tokio_postgres::Row| -> Result<User, ApiError> {
        if row.get::<_, bool>(2) {
            return Err(ApiError::forbidden_as(
                "SHOP_ACCOUNT",
                "that name is a shop account: sign in through the shop",
            ));
        }
        Ok(User {
            id: row.get(0),
            username: row.get(1),
        })
    };
    if let Some(row) = client.query_opt(find, &[&username]).await? {
        return user(&row);
    }
    let inserted = client
        .query_opt(
            "INSERT INTO users (username) VALUES ($1) ON CONFLICT DO NOTHING
             RETURNING id, username, false",
            &[&username],
        )
        .await?;
    match inserted {
        Some(row) => user(&row),
        None => user(&client.query_one(find, &[&username]).await?),
    }
}

/// The user of a shop token's subject, made on first sight. Its name is the token's
/// `preferred_username` (or `name`, or the subject) when that is a valid name nobody has,
/// else `shopper-<digest of the subject>`: names are for display, the subject is who it is.
async fn shop_user(app: &App, identity: &ShopIdentity) -> Result<User, ApiError> {
    let client = app.pool.get().await?;
    let find = "SELECT id, username FROM users WHERE subject = $1";
    let user = |row: &tokio_postgres::Row| User {
        id: row.get(0),
        username: row.get(1),
    };
    if let Some(row) = client.query_opt(find, &[&identity.subject]).await? {
        return Ok(user(&row));
    }
    let wanted = identity
        .display_name
        .iter()
        .chain(std::iter::once(&identity.subject))
        .find(|name| valid_username(name))
        .cloned();
    let fallback = format!("shopper-{}", short_digest(&identity.subject));
    for name in wanted.into_iter().chain(std::iter::once(fallback)) {
        // Nothing when the name is taken, or when a sign-in of the same subject got there
        // first (then the SELECT below finds it).
        let inserted = client
            .query_opt(
                "INSERT INTO users (username, subject) VALUES ($1, $2) ON CONFLICT DO NOTHING
                 RETURNING id, username",
                &[&name, &identity.subject],
            )
            .await?;
        if let Some(row) = inserted {
            return Ok(user(&row));
        }
        if let Some(row) = client.query_opt(find, &[&identity.subject]).await? {
            return Ok(user(&row));
        }
    }
    Err(ApiError::internal(format!(
        "no name could be given to the shop account {:?}",
        identity.subject
    )))
}

/// 12 hex digits of SHA-256: a name part for a subject that cannot be a name itself.
fn short_digest(text: &str) -> String {
    use sha2::Digest as _;
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .take(6)
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// `GET /login`: how this edge signs shoppers in, for the UI: the demo login's form, and the
/// shop's sign-in page to send them to (when the shop login is on and has one).
pub fn login_modes(app: &App) -> Response<Body> {
    let login = &app.settings.login;
    let shop_url = app.shop_login.as_ref().and(login.shop_login_url.as_deref());
    json_response(
        StatusCode::OK,
        &json!({
            "demo": login.demo_login,
            "shop_login": app.shop_login.is_some(),
            "shop_login_url": shop_url,
        }),
    )
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
