//! `Secrets/GetSecret`: a build secret by ID, from the client that holds it (`docker build --secret`).

use crate::grpc::{unary, NOT_FOUND, UNIMPLEMENTED};
use crate::wire::{fields, Encoder};
use crate::{Error, Session};

const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";

impl Session {
    /// The secret `id`: `None` when the client has no secret by that ID (or shares none).
    pub async fn secret(&self, id: &str) -> Result<Option<Vec<u8>>, Error> {
        if !self.supports(GET_SECRET) {
            return Ok(None);
        }
        let req = Encoder::new().string(1, id).finish();
        match unary(&self.client, GET_SECRET, &req).await {
            Ok(answer) => {
                let data = fields(answer)?
                    .into_iter()
                    .find(|(f, _)| *f == 1)
                    .map(|(_, v)| v.bytes().to_vec())
                    .unwrap_or_default();
                Ok(Some(data))
            }
            Err(Error::Status { code, .. }) if code == NOT_FOUND || code == UNIMPLEMENTED => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }
}
