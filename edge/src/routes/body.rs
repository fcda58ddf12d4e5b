//! JSON request bodies: at most 16 KiB (413 beyond), exactly one JSON object (nothing after
//! it), and a 422 that names the field.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::Request;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::settings::MAX_BODY_BYTES;

pub async fn read_json<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, ApiError> {
    // A declared length over the limit is refused before a byte is read.
    let declared = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(ApiError::too_large(MAX_BODY_BYTES));
    }
    let bytes: Bytes = Limited::new(req.into_body(), MAX_BODY_BYTES)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                ApiError::too_large(MAX_BODY_BYTES)
            } else {
                ApiError::bad_request(format!("cannot read the body: {error}"))
            }
        })?
        .to_bytes();
    parse_json(&bytes)
}

/// Every body the API takes is one JSON object. serde reads a struct from an array too
/// (`[1, "c1"]` as `{product_id: 1, cart_id: "c1"}`) and stops after the first value, so
/// both are refused here, lest `{…} {…}` act on the first and ignore the rest.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::invalid(format!("the body is not valid JSON: {inner}"))
        } else if path == "." {
            // A missing field is reported at the top level; serde's message names it.
            ApiError::invalid(inner.to_string())
        } else {
            ApiError::invalid(format!("field `{path}`: {inner}"))
        }
    })?;
    deserializer.end().map_err(|error| {
        ApiError::invalid(format!("nothing may follow the JSON object: {error}"))
    })?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Add {
        product_id: i64,
        cart_id: String,
        qty: Option<i64>,
    }

    #[test]
    fn the_422_names_the_field() {
        let missing = parse_json::<Add>(br#"{"product_id": 1}"#).unwrap_err();
        assert_eq!(missing.status.as_u16(), 422);
        assert!(missing.message.contains("cart_id"), "{}", missing.message);
        let wrong = parse_json::<Add>(br#"{"product_id": "x", "cart_id": "c"}"#).unwrap_err();
        assert!(wrong.message.contains("product_id"), "{}", wrong.message);
        let broken = parse_json::<Add>(b"{").unwrap_err();
        assert!(
            broken.message.contains("not valid JSON"),
            "{}",
            broken.message
        );
    }

    #[test]
    fn only_one_object_is_a_body() {
        let good = parse_json::<Add>(b" {\"product_id\": 1, \"cart_id\": \"c\"}\n").unwrap();
        assert_eq!(good.product_id, 1);
        for refused in [
            &br#"{"product_id": 1, "cart_id": "c"} xyz"#[..],
            br#"{"product_id": 1, "cart_id": "c"}{"product_id": 2}"#,
            br#"[1, "k2", 1, null]"#,
            br#""text""#,
            b"",
        ] {
            let error = parse_json::<Add>(refused).unwrap_err();
            assert_eq!(
                error.status.as_u16(),
                422,
                "{}",
                String::from_utf8_lossy(refused)
            );
        }
    }
}
