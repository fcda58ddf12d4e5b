//! [`Call`]: what a handler gets, built once per request by [`super::dispatch`]: the shared
//! state, the route (its name is what metrics record), and, as the handler asks, the
//! signed-in caller, the JSON body parsed into the handler's type, and the id in the path.
//!
//! The order of the checks is the API's: a call that needs a caller is refused 401 (or 429
//! for the per-user limit) before its body is read, a body that does not parse is a 422 that
//! names the field, and a body's `user_id` that is not the caller's is a 403.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::Request;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::app::App;
use crate::catalog::SaleCatalog;
use crate::error::ApiError;
use crate::routes::body::read_json;
use crate::session::{Session, User};

/// One request on its way to a handler.
pub struct Call<'a> {
    pub app: &'a App,
    /// The route's name (`/cart/{id}`, ids folded away), as metrics record it.
    pub route: &'static str,
    pub peer: IpAddr,
    /// The sale the call is for: the one its path names (`/sales/{sale}/…`), known to the
    /// catalog, or the default sale.
    pub sale: Arc<SaleCatalog>,
    req: Request<Incoming>,
    /// Where the route's own path starts (after `/sales/{sale}`; 0 for the default sale's
    /// paths).
    rest_at: usize,
}

/// A JSON body that may say whose call it is. The original API trusted that `user_id`;
/// Flash takes the caller from the session and refuses a body that disagrees, instead of
/// acting for someone else.
pub trait NamesUser {
    fn user_id(&self) -> Option<&serde_json::Value>;
}

impl<'a> Call<'a> {
    pub fn new(
        app: &'a App,
        route: &'static str,
        peer: IpAddr,
        req: Request<Incoming>,
        sale: Arc<SaleCatalog>,
        rest_at: usize,
    ) -> Self {
        Call {
            app,
            route,
            peer,
            sale,
            req,
            rest_at,
        }
    }

    /// The request itself, for a handler that takes the connection over (the WebSocket).
    pub fn into_request(self) -> Request<Incoming> {
        self.req
    }

    /// The route's path: the request's, after `/sales/{sale}` when it names a sale.
    pub fn path(&self) -> &str {
        let path = self.req.uri().path();
        path.get(self.rest_at..).unwrap_or(path)
    }

    /// The query string, empty when there is none.
    pub fn query(&self) -> &str {
        self.req.uri().query().unwrap_or_default()
    }

    /// The session the request's token proves, unless it was signed out.
    pub fn session(&self) -> Option<Session> {
        self.app
            .signer
            .caller(self.req.headers())
            .filter(|session| !self.app.revocations.is_revoked(&session.token_id))
    }

    /// Whoever the session token says, if anyone: for `GET /session`, which answers
    /// "nobody" with a 401 and is not counted against the per-user limit.
    pub fn signed_in(&self) -> Option<User> {
        self.session().map(|session| session.user)
    }

    /// The signed-in caller, with the per-user limit applied: for cart and order calls.
    pub fn caller(&self) -> Result<User, ApiError> {
        let user = self.signed_in().ok_or_else(ApiError::unauthenticated)?;
        self.app.limits.check_user(user.id)?;
        Ok(user)
    }

    /// The JSON body as `T` (16 KiB at most).
    pub async fn body<T: DeserializeOwned>(self) -> Result<T, ApiError> {
        read_json(self.req).await
    }

    /// The caller and the JSON body as `T`, whose `user_id`, if any, must be the caller's.
    pub async fn caller_and_body<T: DeserializeOwned + NamesUser>(
        self,
    ) -> Result<(User, T), ApiError> {
        let user = self.caller()?;
        let body: T = self.body().await?;
        same_user(body.user_id(), &user)?;
        Ok((user, body))
    }

    /// The id in the path of a route named `/prefix/{id}` (`/cart/{id}`, `/orders/{id}`,
    /// `/products/{id}`);
    /// a trailing slash is allowed, anything else after the id is no route (404).
    pub fn path_id(&self) -> Result<&str, ApiError> {
        let path = self.path();
        let no_route = || ApiError::not_found(format!("no route {path}"));
        let prefix = self.route.strip_suffix("{id}").ok_or_else(no_route)?;
        let id = path.strip_prefix(prefix).unwrap_or_default();
        let id = id.strip_suffix('/').unwrap_or(id);
        if id.is_empty() || id.contains('/') {
            return Err(no_route());
        }
        Ok(id)
    }
}

/// A body's `user_id`, if it has one, must be the caller's: a number or a numeric string
/// equal to the caller's id, or null.
fn same_user(body_user: Option<&serde_json::Value>, user: &User) -> Result<(), ApiError> {
    let agrees = match body_user {
        None | Some(serde_json::Value::Null) => true,
        Some(serde_json::Value::Number(n)) => n.as_i64() == Some(user.id),
        Some(serde_json::Value::String(s)) => s.parse::<i64>().ok() == Some(user.id),
        Some(_) => false,
    };
    if agrees {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "user_id does not match the signed-in user; omit it, the session says who you are",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use serde_json::json;

    #[test]
    fn a_body_user_id_must_be_the_callers_when_given() {
        let alice = User {
            id: 7,
            username: "alice".to_owned(),
        };
        for agrees in [None, Some(json!(null)), Some(json!(7)), Some(json!("7"))] {
            assert!(same_user(agrees.as_ref(), &alice).is_ok(), "{agrees:?}");
        }
        for disagrees in [json!(8), json!("8"), json!("x"), json!([7]), json!(7.5)] {
            let refused = same_user(Some(&disagrees), &alice).unwrap_err();
            assert_eq!(refused.status.as_u16(), 403, "{disagrees}");
        }
    }
}
