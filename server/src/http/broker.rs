//! `/api/v1/broker/mosquitto`: the password file and ACL of a Mosquitto broker for the
//! fleet (`signage broker mosquitto-config --server`), from the stored `$7$` hashes. Admin
//! only: the file lets anyone who reads it try the hashes.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{blocking, ApiError, Caller, ErrorBody};
use crate::app::Shared;
use crate::broker_auth::PasswordHash;
use crate::store::Role;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new().routes(routes!(mosquitto))
}

/// The files a Mosquitto broker for the fleet needs beside its configuration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct MosquittoFiles {
    /// `passwd`: the server's login and every screen in service (PBKDF2-SHA512, `$7$`).
    pub passwd: String,
    /// `acl`: each screen its own topics; the server everything under the prefix.
    pub acl: String,
}

/// The Mosquitto password file and ACL for the fleet.
#[utoipa::path(get, path = "/api/v1/broker/mosquitto",
    responses((status = 200, body = MosquittoFiles), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn mosquitto(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
) -> Result<Json<MosquittoFiles>, ApiError> {
    caller.require(&[Role::Admin])?;
    let files = blocking(move || {
        let secret =
            crate::broker_auth::server_secret(shared.store.dir()).map_err(ApiError::internal)?;
        let server = PasswordHash::new(&secret).map_err(ApiError::internal)?;
        let screens = shared.store.broker_logins().map_err(ApiError::from)?;
        Ok(MosquittoFiles {
            passwd: crate::mosquitto::passwd(&server, &screens),
            acl: crate::mosquitto::acl(shared.topics.prefix()),
        })
    })
    .await?;
    Ok(Json(files))
}
