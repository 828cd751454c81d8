//! Job kinds, one per file.

pub mod process_event;
