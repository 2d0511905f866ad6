//! `/networks`: list, inspect, create, remove, prune, connect and disconnect.

use crate::request::{read_json, ReqBody};
use engine::networks::{ConnectRequest, NetworkCreate};
use engine::Filters;
use http::{Request, Response, StatusCode};

use crate::body::{self, json, json_status, Body};
use crate::error::ApiResult;
use crate::router::Ctx;

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
    let body: NetworkCreate = read_json(req).await?;
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
    let body: ConnectRequest = read_json(req).await?;
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
    let body: Disconnect = read_json(req).await?;
    ctx.engine
        .disconnect_network(name, &body.container, body.force)
        .await?;
    Ok(body::empty(StatusCode::OK))
}
