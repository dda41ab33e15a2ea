#![doc = include_str!("../README.md")]

mod client;
mod error;
pub mod serve;
mod server;
pub mod wire;

pub use crate::client::{AttachmentReader, Client};
pub use crate::error::{Error, Result};
pub use crate::server::{Limits, Server, ServerConfig};
