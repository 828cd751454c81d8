//! The operator console served by `billhook-worker`: its JSON API and its pages.

mod alerts;
mod api;
mod browser;
mod dunning;
mod emails;
pub mod harness;
mod notices;
mod overview;
mod pages;
mod records;
