#![doc = include_str!("../README.md")]

mod body;
mod client;
mod error;

pub use crate::body::AttachmentReader;
pub use crate::client::{Client, DEFAULT_MAX_ANSWER_BYTES};
pub use crate::error::{Error, Result};
pub use tessera_wire::Format;

/// Every public type can cross threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
    assert_send_sync::<Error>();
};
