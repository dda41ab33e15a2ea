//! The inbox routes: delivering sealed exchange data to an owner, listing and deleting one's own messages.

use hyper::Method;
use tessera_keys::{InboxMessage, InboxMessageId, OwnerId};

use super::{Client, SMALL_ANSWER};
#[cfg(doc)]
use crate::error::Error;
use crate::error::Result;

impl Client {
    /// Delivers `message` (exchange data sealed for one of `recipient`'s key bundles) to `recipient`'s inbox. The
    /// server does not record the sender. Delivering the same message again changes nothing.
    ///
    /// # Errors
    /// [`Error::Status`] 404 if `recipient` is not registered, 400 if the message is sealed for a bundle the
    /// recipient does not have, 503 (`busy`) if the recipient's inbox is full.
    pub async fn deliver(&self, recipient: OwnerId, message: &InboxMessage) -> Result<()> {
        self.send_body(
            Method::POST,
            &format!("/v1/owners/{recipient}/inbox"),
            message,
        )
        .await
        .map(|_| ())
    }

    /// Messages waiting in the logged-in owner's inbox (at most 1,000 at a time: delete what was opened, then ask
    /// again).
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Status`].
    pub async fn inbox(&self) -> Result<Vec<InboxMessage>> {
        self.call::<(), _>(Method::GET, "/v1/inbox", None).await
    }

    /// Deletes one message of the logged-in owner's inbox.
    ///
    /// # Errors
    /// [`Error::Status`] 404 if it is not there (already deleted).
    pub async fn delete_inbox_message(&self, id: InboxMessageId) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("/v1/inbox/{id}"),
            None,
            &[],
            SMALL_ANSWER,
        )
        .await
        .map(|_| ())
    }
}
