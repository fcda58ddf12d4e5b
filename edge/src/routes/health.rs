//! `GET /healthz` and `GET /metrics`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use serde_json::json;

use crate::app::App;
use crate::error::{Body, json_response};

/// 200 when Redis and PostgreSQL both answered the latest probe (at most a second old),
/// else 503 naming the failure. No I/O: see [`crate::health`].
pub fn healthz(app: &App) -> Response<Body> {
    let finding = app.health.latest();
    let healthy = finding.healthy();
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(
        status,
        &json!({
            "status": if healthy { "ok" } else { "unavailable" },
            "redis": finding.redis,
            "postgres": finding.postgres,
            "checked_ms_ago": finding.at.elapsed().as_millis() as u64,
        }),
    )
}

pub fn metrics(app: &App) -> Response<Body> {
    let text = app.metrics.render(
        app.worker.as_deref(),
        &app.hubs.default_hub().metric_series(),
    );
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
