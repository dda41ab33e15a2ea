#![doc = include_str!("../README.md")]

mod auth;
mod challenge;
mod commit;
mod connection;
mod error;
mod http;
mod metrics;
mod names;
mod routes;
pub mod serve;
mod server;

pub use crate::server::{Limits, Server, ServerConfig};

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Server>();
    assert_send_sync::<ServerConfig>();
    assert_send_sync::<serve::ServeError>();
};
