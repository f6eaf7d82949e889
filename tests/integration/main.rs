//! The integration tests, one binary (one link, and the harness compiled once): each module
//! drives the proxy through real HTTP against mock upstreams started in the test.

mod common;

mod admin;
mod anthropic;
mod auth;
mod binary;
mod bounds;
mod catalogue;
mod codex;
mod dashboard;
mod faults;
mod forwarding;
mod limits;
mod logging;
mod providers;
mod replicas;
mod responses;
mod rotation;
mod routing;
mod sdk;
mod status;
mod streaming;
