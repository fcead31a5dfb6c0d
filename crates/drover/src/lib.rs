//! The one binary's wiring: configuration, logging and the agent, which
//! runs a server and a client in one process in dev mode. The `drover`
//! and `drover-bench` binaries are thin shells over this library.

pub mod agent;
pub mod config;
pub mod log_monitor;
pub mod rss;
