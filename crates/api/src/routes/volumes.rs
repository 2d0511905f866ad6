//! `/volumes`: list, create, inspect, remove and prune (local volumes; no cluster volumes, no plugins).

use crate::request::{read_bytes, ReqBody};
use engine::Filters;
use http::{Request, Response, StatusCode};

use crate::body::{self, json, json_status, Body};
use crate::error::{ApiError, ApiResult};
use crate::router::Ctx;

/// `GET /volumes?filters=…`.
pub async fn list(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    Ok(json(&ctx.engine.list_volumes(filters).await?))
}

/// `POST /volumes/create`: 201 with the volume (a new one, or the existing one of that name).
pub async fn create(ctx: &Ctx, req: Request<ReqBody>) -> ApiResult<Response<Body>> {
    let opts = crate::decode::volume_create(&read_bytes(req).await?)?;
    let v = ctx.engine.create_volume(opts).await?;
    Ok(json_status(StatusCode::CREATED, &v))
}

/// `GET /volumes/{name}`.
pub async fn inspect(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    Ok(json(&ctx.engine.inspect_volume(name).await?))
}

/// `DELETE /volumes/{name}?force=…`: 204, 404, or 409 while a container uses it.
pub async fn remove(ctx: &Ctx, name: &str) -> ApiResult<Response<Body>> {
    ctx.engine
        .remove_volume(name, ctx.query.bool("force"))
        .await?;
    Ok(body::empty(StatusCode::NO_CONTENT))
}

/// `PUT /volumes/{name}`: only for swarm cluster volumes (dockerd's answer without swarm).
pub fn update() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "volume update only valid for cluster volumes, but swarm is unavailable",
    )
}

/// `POST /volumes/prune?filters=…`. API 1.42 made prune remove only anonymous volumes unless `all=true`;
/// older clients keep the old behaviour, as with dockerd.
pub async fn prune(ctx: &Ctx) -> ApiResult<Response<Body>> {
    let filters = Filters::parse(ctx.query.get("filters"))?;
    let all_by_default = ctx.version.before(42);
    Ok(json(
        &ctx.engine.prune_volumes(filters, all_by_default).await?,
    ))
}
