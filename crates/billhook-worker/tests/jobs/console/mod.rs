//! The operator console served by `billhook-worker`: its JSON API and its pages.

mod api;
mod browser;
pub mod harness;
mod pages;
mod records;
