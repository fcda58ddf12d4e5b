//! [`ApiError`]: what a call can end with other than its documented reply. A refusal of the
//! edge (its status and `{"error": CODE, "message": …}` body, [`Refusal`]) is told apart
//! from a reply that is not the API's, from no reply at all, and from never connecting, so
//! a caller can tell "the edge said no" from "it may or may not have happened".

use hyper::StatusCode;
use serde::Deserialize;

/// A refusal: a 4xx or 5xx with the edge's error body (the README's "Errors" table).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    /// The stable code clients branch on: `SOLDOUT`, `UNAUTHENTICATED`, …
    pub code: String,
    /// What happened, for a person; may change between versions.
    pub message: String,
    /// `Retry-After`, in seconds (429 and 503).
    pub retry_after: Option<u64>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        )
    }
}

/// The error body every 4xx and 5xx of the edge carries.
#[derive(Deserialize)]
pub(crate) struct ErrorBody {
    pub error: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The edge refused, in its own words.
    #[error("{0}")]
    Refused(Refusal),
    /// The edge answered, but not as the API documents: another status without the error
    /// body, or a body that does not parse as the reply.
    #[error("HTTP {}, not the documented reply: {detail}", status.as_u16())]
    Unexpected { status: StatusCode, detail: String },
    /// No connection could be made: the request was never sent.
    #[error("cannot connect to the edge at {address}: {detail}")]
    Connect { address: String, detail: String },
    /// The request was sent (or being sent) and no whole reply came: the connection failed
    /// or the request timed out. It may or may not have taken effect.
    #[error("no reply from the edge: {0}")]
    Transport(String),
    /// The request cannot be made: a base URL or path that is not a valid URI.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl ApiError {
    /// The HTTP status, when the edge answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ApiError::Refused(refusal) => Some(refusal.status),
            ApiError::Unexpected { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code of a refusal.
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Refused(refusal) => Some(&refusal.code),
            _ => None,
        }
    }

    /// The refusal, if the edge refused.
    pub fn refusal(&self) -> Option<&Refusal> {
        match self {
            ApiError::Refused(refusal) => Some(refusal),
            _ => None,
        }
    }
}
