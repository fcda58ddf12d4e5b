//! Every refusal the edge sends: an HTTP status and a JSON body `{"error": CODE, "message": …}`.
//!
//! Codes are stable (clients branch on them); messages say what happened and may change. The
//! engine's words (`SOLDOUT`, `LIMIT`, …) pass through unchanged, each with the status that
//! HTTP's meaning gives it (the table in the README).

use bytes::Bytes;
use flash_client::ClientError;
use flash_core::ErrorCode;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};

/// A response body: every reply of the edge is small and built whole.
pub type Body = Full<Bytes>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 422: the body is not the JSON the route expects; the message names the field.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "INVALID", message)
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    pub fn unauthenticated() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHENTICATED",
            "sign in first: POST /session {\"token\": <the shop's JWT>} (or {\"username\": …} \
             where the demo login is on)",
        )
    }

    /// 401 `BAD_TOKEN`: the shop's token was refused; the message says why.
    pub fn bad_token(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, "BAD_TOKEN", message)
    }

    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::forbidden_as("FORBIDDEN", message)
    }

    /// 403 with a code of its own (`DEMO_LOGIN_OFF`, `SHOP_ACCOUNT`, …).
    pub fn forbidden_as(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", message)
    }

    /// 404 `NOCART`, for a cart or order that does not exist and for one of another user
    /// alike, on every route: the two must not be told apart, or ids could be probed. The
    /// message names no id, so the two replies are the same bytes.
    pub fn no_cart() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoCart.as_str(),
            "no such cart or order",
        )
    }

    /// 404 `NOSALE`: the shop runs no sale of that name (neither the default sale nor a row
    /// of `sales`), the engine's word for a sale it does not have.
    pub fn no_sale(name: &str) -> ApiError {
        // The name comes from the path: only its start is echoed.
        let shown: String = name.chars().take(64).collect();
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoSale.as_str(),
            format!("no sale {shown:?}: GET /sales/ lists the sales"),
        )
    }

    /// 404 `NOSKU`: a product this sale does not sell (another sale's, or none), the engine's
    /// word for a product it was never loaded with.
    pub fn not_sold(sale: &str, product_id: i64) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NoSku.as_str(),
            format!("sale '{sale}' sells no product {product_id}"),
        )
    }

    /// 415: a cookie-carried write that is not `application/json` (see `routes/origin.rs`).
    pub fn unsupported_media_type(message: impl Into<String>) -> ApiError {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            message,
        )
    }

    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "TOO_LARGE",
            format!("request bodies are limited to {limit} bytes"),
        )
    }

    pub fn rate_limited(retry_after: u64) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.max(1)),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                "too many requests; retry after the Retry-After delay",
            )
        }
    }

    /// 503: a backing service (Redis, PostgreSQL) cannot be reached; worth retrying.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError {
            retry_after: Some(1),
            ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
        }
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", message)
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({ "error": self.code, "message": self.message });
        let mut response = json_response(self.status, &body);
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

/// The status each engine word gets.
pub fn engine_status(code: ErrorCode) -> StatusCode {
    match code {
        // The request was fine; the state of the sale refuses it.
        ErrorCode::SoldOut
        | ErrorCode::Limit
        | ErrorCode::Empty
        | ErrorCode::BadState
        | ErrorCode::Expired => StatusCode::CONFLICT,
        // The sale is not open, or not yet for this shopper (its waiting room has not
        // admitted them): the resource exists but cannot be acted on now.
        ErrorCode::Closed | ErrorCode::NotAdmitted => StatusCode::FORBIDDEN,
        // No waiting room, or no place in it (never joined, or lost by leaving the page).
        ErrorCode::NoQueue | ErrorCode::NotQueued => StatusCode::NOT_FOUND,
        // Another user's cart is as unknown as a missing one ([`ApiError::no_cart`]).
        ErrorCode::NotOwner | ErrorCode::NoCart | ErrorCode::NoSale | ErrorCode::NoSku => {
            StatusCode::NOT_FOUND
        }
        ErrorCode::Err => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::WrongType => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<ClientError> for ApiError {
    fn from(error: ClientError) -> ApiError {
        match error {
            ClientError::Flash(error)
                if matches!(error.code, ErrorCode::NoCart | ErrorCode::NotOwner) =>
            {
                ApiError::no_cart()
            }
            ClientError::Flash(error) => ApiError::new(
                engine_status(error.code),
                error.code.as_str(),
                error.message.clone(),
            ),
            ClientError::Redis(error) => ApiError::unavailable(format!("redis: {error}")),
            ClientError::Reply { command, detail } => {
                ApiError::internal(format!("{command}: unexpected reply: {detail}"))
            }
            // `--durability replica`: taken by the master, not yet on a replica in time.
            ClientError::NotDurable {
                order,
                acked,
                wanted,
            } => ApiError {
                retry_after: Some(1),
                ..ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "NOTDURABLE",
                    format!(
                        "order {} was taken but only {acked} of {wanted} replicas confirmed                          it in time: it may be lost if the store fails now; look it up before                          ordering again",
                        order.order
                    ),
                )
            },
        }
    }
}

impl From<deadpool_postgres::PoolError> for ApiError {
    fn from(error: deadpool_postgres::PoolError) -> ApiError {
        ApiError::unavailable(format!("database: {error}"))
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> ApiError {
        if error.is_closed() {
            ApiError::unavailable(format!("database: {error}"))
        } else {
            ApiError::internal(format!("database: {error}"))
        }
    }
}

/// A JSON reply.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}
