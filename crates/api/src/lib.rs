//! Berth's Docker Engine API server: HTTP/1.1 on unix sockets and TCP (TLS), Docker's paths, version negotiation,
//! `{"message": …}` errors and stream framing. Handlers parse requests and call the engine; nothing here
//! decides anything about images or containers.

mod body;
pub mod decode;
mod error;
mod head_limits;
mod json;
mod query;
mod request;
mod router;
mod routes;
mod server;
mod shapes;
mod stdin;
pub mod tls;
mod version;

pub use error::ApiError;
pub use query::Query;
pub use server::{serve, Listener};
pub use version::ApiVersion;
