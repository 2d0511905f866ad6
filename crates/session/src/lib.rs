//! Berth's side of a BuildKit session.
//!
//! In BuildKit mode (`DOCKER_BUILDKIT=1`), the docker CLI does not upload a build context: it opens
//! `POST /session`, upgrades the connection to HTTP/2 and serves gRPC on it, and the daemon calls the
//! client for what the build needs: the files of the context and of the Dockerfile's directory
//! (`FileSync/DiffCopy`), build secrets (`Secrets/GetSecret`). The daemon is the HTTP/2 client on a
//! connection the CLI opened.
//!
//! [`Manager`] holds the sessions by ID until a build asks for one; [`Session`] makes the calls; the
//! [`trace`] module writes the progress records the client's display reads. The crate knows nothing of
//! HTTP routing or of builds: the API hands it the upgraded connection, the engine reads what it fetches.

mod filesync;
mod grpc;
mod secrets;
pub mod trace;
mod wire;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};

pub use filesync::{Stat, SyncRequest, Synced, TarReader, Walk};
pub use secrets::Credentials;

/// The header naming the session.
pub const HEADER_ID: &str = "X-Docker-Expose-Session-Uuid";
/// The header with the key the client gives the directories it shares, the same each time it shares
/// them (the docker CLI derives it from the context's path).
pub const HEADER_SHARED_KEY: &str = "X-Docker-Expose-Session-Sharedkey";
/// The headers listing the gRPC methods the client serves.
pub const HEADER_METHOD: &str = "X-Docker-Expose-Session-Grpc-Method";

/// What went wrong in a session.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The connection or the call failed.
    #[error("session: {0}")]
    Transport(String),
    /// The client answered a call with an error status.
    #[error("{message}")]
    Status {
        /// The call.
        method: String,
        /// gRPC's status code.
        code: u32,
        /// The client's message.
        message: String,
    },
    /// A message could not be decoded.
    #[error("session: {0}")]
    Decode(#[from] wire::DecodeError),
    /// No session by that ID came in time.
    #[error("no active session for {0}: context deadline exceeded")]
    NoSession(String),
}

/// One client's session: cheap to clone, usable until the client closes it.
#[derive(Clone)]
pub struct Session {
    id: String,
    client: h2::client::SendRequest<Bytes>,
    /// The methods the client serves, lower-cased.
    methods: Arc<HashSet<String>>,
    /// [`HEADER_SHARED_KEY`]'s value (empty without one).
    shared_key: Arc<str>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The session's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The key the client gives the directories it shares ([`HEADER_SHARED_KEY`]), empty without one:
    /// the same directory shared again, from the same client, has the same key.
    pub fn shared_key(&self) -> &str {
        &self.shared_key
    }

    /// Whether the client serves `method` (`/package.Service/Method`).
    pub fn supports(&self, method: &str) -> bool {
        self.methods.contains(&method.to_ascii_lowercase())
    }

    /// The regular files of the shared directory `req` names, read whole, at most `limit` bytes in all.
    /// Blocking: call it off the runtime, `rt` being its handle.
    pub fn read_files(
        &self,
        req: &SyncRequest,
        rt: tokio::runtime::Handle,
        limit: u64,
    ) -> Result<HashMap<String, Vec<u8>>, Error> {
        filesync::read_files(self, req, rt, limit)
    }

    /// The shared directory `req` names as a tar stream (names relative, directories first), made as it
    /// is read. A transfer that fails is an error of the reader.
    pub fn tar(&self, req: SyncRequest, rt: tokio::runtime::Handle) -> TarReader {
        filesync::tar_stream(self.clone(), req, rt)
    }
}

/// The sessions of connected clients, by ID.
#[derive(Default)]
pub struct Manager {
    sessions: Mutex<HashMap<String, Session>>,
    arrived: tokio::sync::Notify,
    /// Contexts uploaded apart (`docker build - < ctx.tar` in BuildKit mode), by build ID.
    uploads: Mutex<HashMap<String, Upload>>,
    uploaded: tokio::sync::Notify,
}

/// A build context the client uploaded in a request of its own (`POST /build?buildid=upload-request:ID`)
/// for the build it names `ID` (`buildid=ID`): the request's body, and the signal that answers that request once the
/// build has finished with it.
pub struct Upload {
    /// The context tar, as the request's body streams in.
    pub body: Box<dyn std::io::Read + Send>,
    /// Dropped or sent when the build is done with the body.
    pub done: tokio::sync::oneshot::Sender<()>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager").finish_non_exhaustive()
    }
}

impl Manager {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Serves the session a client opened (`io`: its connection after the upgrade; `headers`: the
    /// request's), until the client closes it.
    pub async fn serve<T>(&self, io: T, headers: &http::HeaderMap) -> Result<(), Error>
    where
        T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let id = headers
            .get(HEADER_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .ok_or_else(|| Error::Transport(format!("no {HEADER_ID} header")))?
            .to_owned();
        let methods: HashSet<String> = headers
            .get_all(HEADER_METHOD)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|m| m.trim().to_ascii_lowercase())
            .collect();
        // Big windows: a context streams through this connection at the disk's speed.
        let (client, conn) = h2::client::Builder::new()
            .initial_window_size(4 << 20)
            .initial_connection_window_size(16 << 20)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| Error::Transport(format!("HTTP/2 handshake: {e}")))?;
        let shared_key: Arc<str> = headers
            .get(HEADER_SHARED_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .into();
        let session = Session {
            id: id.clone(),
            client,
            methods: Arc::new(methods),
            shared_key,
        };
        tracing::debug!(session = %id, "session attached");
        self.lock().insert(id.clone(), session);
        self.arrived.notify_waiters();
        let ended = conn.await;
        self.lock().remove(&id);
        tracing::debug!(session = %id, "session ended");
        ended.map_err(|e| Error::Transport(e.to_string()))
    }

    /// Holds `upload` for the build `id` (see [`Manager::take_upload`]).
    pub fn offer_upload(&self, id: &str, upload: Upload) {
        self.uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(id.to_owned(), upload);
        self.uploaded.notify_waiters();
    }

    /// Forgets the upload for build `id` that no build took; true if it was still there.
    pub fn withdraw_upload(&self, id: &str) -> bool {
        self.uploads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id)
            .is_some()
    }

    /// The context uploaded for build `id`, waiting up to `wait` for it (the docker CLI sends the upload
    /// and the build at once, in no fixed order).
    pub async fn take_upload(&self, id: &str, wait: Duration) -> Option<Upload> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.uploaded.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let found = self
                .uploads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(id);
            if found.is_some() {
                return found;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return None;
            }
        }
    }

    /// The session `id`, waiting up to `wait` for the client to attach it (the docker CLI opens it
    /// alongside the build request, in no fixed order).
    pub async fn get(&self, id: &str, wait: Duration) -> Result<Session, Error> {
        // BuildKit's clients may prefix the ID ("name:id").
        let id = match id.split_once(':') {
            Some((_, rest)) if !rest.is_empty() => rest,
            _ => id,
        };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let arrived = self.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if let Some(s) = self.lock().get(id) {
                return Ok(s.clone());
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(Error::NoSession(id.to_owned()));
            }
        }
    }
}
