//! `/networks`: list, inspect, create, remove, prune, connect and disconnect.

use crate::request::ReqBody;
use engine::networks::{ConnectRequest, NetworkCreate};
use engine::Filters;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;

use crate::body::{self, json, json_status, Body};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;

/// Reads a JSON body; an empty body reads as `T::default()`.
async fn body_json<T: serde::de::DeserializeOwned + Default>(
    req: Request<ReqBody>,
) -> ApiResult<T> {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request body: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON in the request body: {e}")))
}

/// `GET /networks?filters=…`.
pub async fn list(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    Ok(json(&ctx.engine.list_networks(filters).await?))
}

/// `GET /networks/{id}`.
pub async fn inspect(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    Ok(json(&ctx.engine.inspect_network(name).await?))
}

/// `POST /networks/create`: 201 with the new ID.
pub async fn create(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let body: NetworkCreate = body_json(req).await?;
    let created = ctx.engine.create_network(body).await?;
    Ok(json_status(StatusCode::CREATED, &created))
}

/// `DELETE /networks/{id}`: 204.
pub async fn remove(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    ctx.engine.remove_network(name).await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `POST /networks/prune?filters=…`.
pub async fn prune(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    Ok(json(&ctx.engine.prune_networks(filters).await?))
}

/// `POST /networks/{id}/connect`.
pub async fn connect(ctx: &Ctx, req: Request<ReqBody>, name: &str) -> ApiResult<Response<Body>> {
    let body: ConnectRequest = body_json(req).await?;
    ctx.engine.connect_network(name, body).await?;
    Ok(body::empty(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`.
pub async fn disconnect(ctx: &Ctx, req: Request<ReqBody>, name: &str) -> ApiResult<Response<Body>> {
    #[derive(Default, serde::Deserialize)]
    struct Disconnect {
        #[serde(rename = "Container", default)]
        container: String,
        #[serde(rename = "Force", default)]
        force: bool,
    }
    let body: Disconnect = body_json(req).await?;
    ctx.engine
        .disconnect_network(name, &body.container, body.force)
        .await?;
    Ok(body::empty(StatusCode::OK))
}
