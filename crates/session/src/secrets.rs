//! `Secrets/GetSecret`: a build secret by ID, from the client that holds it (`docker build --secret`);
//! `Auth/Credentials`: the client's registry logins, for the build's pulls.

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

const CREDENTIALS: &str = "/moby.filesync.v1.Auth/Credentials";

/// A registry login the client holds: a user and password, or (no user) an identity token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The user; empty when `secret` is an identity token.
    pub username: String,
    /// The password or identity token.
    pub secret: String,
}

impl std::fmt::Debug for Credentials {
    // Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// `Auth/Credentials`: the client's login for the registry `host` (as BuildKit names it:
    /// `registry-1.docker.io` for docker.io). `None` when it has none, or offers no logins.
    pub async fn credentials(&self, host: &str) -> Result<Option<Credentials>, Error> {
        if !self.supports(CREDENTIALS) {
            return Ok(None);
        }
        let req = Encoder::new().string(1, host).finish();
        let answer = match unary(&self.client, CREDENTIALS, &req).await {
            Ok(a) => a,
            Err(Error::Status { code, .. }) if code == NOT_FOUND || code == UNIMPLEMENTED => {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let mut c = Credentials {
            username: String::new(),
            secret: String::new(),
        };
        for (f, v) in fields(answer)? {
            match f {
                1 => c.username = v.string(),
                2 => c.secret = v.string(),
                _ => {}
            }
        }
        Ok((!c.secret.is_empty() || !c.username.is_empty()).then_some(c))
    }
}
