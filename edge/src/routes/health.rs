//! `GET /healthz` and `GET /metrics`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode, header};
use serde_json::json;

use crate::app::App;
use crate::error::{ApiError, Body, json_response};

/// 200 when Redis and PostgreSQL both answer within a second, else 503 naming the failure.
pub async fn healthz(app: &App) -> Result<Response<Body>, ApiError> {
    let within = Duration::from_secs(1);
    let redis = async { app.engine.ping().await.map_err(|e| e.to_string()) };
    let postgres = async {
        let client = app.pool.get().await.map_err(|e| e.to_string())?;
        client
            .query_one("SELECT 1", &[])
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let (redis, postgres) = tokio::join!(
        tokio::time::timeout(within, redis),
        tokio::time::timeout(within, postgres)
    );
    let word = |r: Result<Result<(), String>, _>| match r {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error,
        Err(_) => "no answer within 1 s".to_owned(),
    };
    let (redis, postgres) = (word(redis), word(postgres));
    let healthy = redis == "ok" && postgres == "ok";
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok(json_response(
        status,
        &json!({ "status": if healthy { "ok" } else { "unavailable" }, "redis": redis, "postgres": postgres }),
    ))
}

pub fn metrics(app: &App) -> Response<Body> {
    let text = app
        .metrics
        .render(app.worker.as_deref(), &app.hub.metric_series());
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
