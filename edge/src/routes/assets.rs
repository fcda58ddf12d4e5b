//! The browser UI, compiled into the binary: no files to deploy beside it.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, header};

use crate::error::{ApiError, Body};

const INDEX: &str = include_str!("../../static/index.html");
const APP_JS: &str = include_str!("../../static/app.js");
const STYLE_CSS: &str = include_str!("../../static/style.css");

pub fn index() -> Response<Body> {
    reply(INDEX, "text/html; charset=utf-8", "no-cache")
}

pub fn file(path: &str) -> Result<Response<Body>, ApiError> {
    match path {
        "/static/app.js" => Ok(reply(APP_JS, "text/javascript; charset=utf-8", "no-cache")),
        "/static/style.css" => Ok(reply(STYLE_CSS, "text/css; charset=utf-8", "no-cache")),
        _ => Err(ApiError::not_found(format!("no file {path}"))),
    }
}

fn reply(text: &'static str, content_type: &'static str, cache: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static(cache),
    );
    response
}
