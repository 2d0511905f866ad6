//! `docker save` / `docker load` archives.

pub mod load;
pub mod save;
