//! Turning API answers into Docker's text: sizes, durations, tables, templates, indented JSON.

pub mod duration;
pub mod json_indent;
pub mod size;
pub mod table;
pub mod template;
