//! Route handlers, one module per area of the API.

pub mod archive;
pub mod build;
pub mod containers;
pub mod exec;
pub mod images;
pub mod networks;
pub mod system;
pub mod unsupported;
pub mod volumes;
