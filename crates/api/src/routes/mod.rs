//! Route handlers, one module per area of the API.

pub mod containers;
pub mod images;
pub mod networks;
pub mod system;
pub mod unsupported;
