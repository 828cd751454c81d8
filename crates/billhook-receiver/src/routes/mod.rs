//! HTTP routes: the public webhook endpoint and the internal admin listener.

pub mod admin;
pub mod endpoint_info;
pub mod webhook;
