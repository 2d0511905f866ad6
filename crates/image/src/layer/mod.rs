//! Layer tar streams: compression detection and safe extraction into snapshots.

pub mod apply;
pub mod compress;
