//! Berth's registry client: the distribution protocol as Docker speaks it.
//!
//! It knows nothing of the engine or the image store. The engine parses references (with the
//! image crate's parser) and hands this crate the registry host and repository path as strings;
//! blobs go to a sink the caller gives and come from a source the caller gives. See README.md
//! for the calls a pull and a push make.

pub mod auth;
pub mod client;
pub mod config;
pub mod digest;
pub mod error;
pub mod manifest;
mod transport;
pub mod web;

pub use auth::{AuthConfig, Challenge, Scope};
pub use client::{
    BlobPush, ChunkSink, Client, FetchedManifest, SearchResult, SearchResults, Session, UploadMode,
};
pub use config::{RegistryConfig, RetryPolicy};
pub use error::{Error, Result};
pub use manifest::{Descriptor, ImageIndex, ImageManifest, Manifest, Platform, PlatformSpec};
pub use web::WebResponse;
