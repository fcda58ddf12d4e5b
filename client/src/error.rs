//! What can go wrong talking to the engine.

use flash_core::{Error as FlashError, ErrorCode};

#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// The engine refused the command (SOLDOUT, LIMIT, …): nothing changed.
    #[error("{0}")]
    Flash(FlashError),
    /// Connection trouble, or an error reply that is not the engine's.
    #[error("redis: {0}")]
    Redis(redis::RedisError),
    /// A reply of an unexpected shape (a client and engine of different versions?).
    #[error("unexpected reply to {command}: {detail}")]
    Reply {
        command: &'static str,
        detail: String,
    },
    /// A durable write ([`crate::DurableWrites`]) was made on the master, but fewer replicas
    /// than asked acknowledged it in time: a failover now could lose it.
    #[error("order {} written, but {acked} of {wanted} replicas acknowledged it in time", order.order)]
    NotDurable {
        order: Box<crate::replies::Order>,
        acked: i64,
        wanted: u32,
    },
}

impl ClientError {
    /// The engine's error code, when the engine refused.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            ClientError::Flash(error) => Some(error.code),
            _ => None,
        }
    }
}

impl From<redis::RedisError> for ClientError {
    fn from(error: redis::RedisError) -> ClientError {
        // The engine's words are first words of error replies, from the module and from the
        // scripts alike. A Lua error raised by redis.call carries a "script: …" suffix that
        // is not part of the engine's message.
        if let Some(code) = error.code().and_then(ErrorCode::from_word) {
            let detail = error.detail().unwrap_or_default();
            let message = detail
                .split(" script: ")
                .next()
                .unwrap_or(detail)
                .trim_end();
            return ClientError::Flash(FlashError::new(code, message));
        }
        ClientError::Redis(error)
    }
}
