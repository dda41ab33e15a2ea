//! The session's inbox: exchange data partners delivered sealed for this owner, opened, kept in the key bag and
//! deleted (protocol v2; docs/formats.md, "Inbox message").

use tessera_keys::{ExchangeSecret, InboxMessage};
use tessera_wire::INBOX_PAGE;

use super::Session;
#[cfg(doc)]
use super::SessionStats;
use crate::error::{ErrorKind, Result};

impl Session {
    /// Opens the exchange data partners delivered to this owner's inbox since the login or the last refresh (each
    /// verified against the partner's trusted key bundle, then decrypted once, sealed into the key bag and deleted
    /// from the inbox); returns how many. Reads call it by themselves when a record is not found or cannot be opened.
    ///
    /// # Errors
    /// [`ErrorKind::Transport`] or [`ErrorKind::Server`]. A message from a sender the trust policy refuses stays in
    /// the inbox, counted in [`SessionStats::unopened_exchange_data`]; one that does not open or verify is deleted,
    /// counted in [`SessionStats::discarded_inbox_messages`].
    pub async fn refresh(&self) -> Result<usize> {
        let mut opened = 0;
        loop {
            let messages = self.call(|c| async move { c.inbox().await }).await?;
            let page_full = messages.len() >= INBOX_PAGE;
            let mut progressed = false;
            for message in messages {
                let skip =
                    !message.is_for(&self.keys) || self.lock().unopened.contains(&message.id);
                if skip {
                    continue;
                }
                match self.open_inbox_message(&message).await {
                    Ok(Some(secret)) => {
                        self.remember(secret).await?;
                        opened += 1;
                    }
                    Ok(None) => self.lock().stats.discarded_inbox_messages += 1,
                    Err(error) if error.kind() == ErrorKind::Untrusted => {
                        let mut state = self.lock();
                        state.unopened.insert(message.id);
                        state.stats.unopened_exchange_data += 1;
                        continue;
                    }
                    // Never usable: it does not open or verify, is malformed, or names a sender that does not exist.
                    Err(error)
                        if matches!(
                            error.kind(),
                            ErrorKind::Crypto | ErrorKind::Invalid | ErrorKind::NotFound
                        ) =>
                    {
                        self.lock().stats.discarded_inbox_messages += 1;
                    }
                    // Anything else (the server busy or unreachable, a session to renew) may pass: the message stays
                    // for the next refresh.
                    Err(error) => return Err(error),
                }
                // Opened and kept in the key bag, or never usable: either way it leaves the inbox.
                let id = message.id;
                match self
                    .call(|c| async move { c.delete_inbox_message(id).await })
                    .await
                {
                    Ok(()) => progressed = true,
                    Err(error) if error.kind() == ErrorKind::NotFound => progressed = true,
                    Err(error) => return Err(error),
                }
            }
            if !(page_full && progressed) {
                break;
            }
        }
        self.save_state().await?;
        Ok(opened)
    }

    /// Opens an inbox message: the anonymous box with this owner's key (no RSA), then the exchange data in it as
    /// [`Session::open_exchange_data`] does. `None` for exchange data this owner already has (a message delivered
    /// twice, or replayed by the server): nothing to open.
    async fn open_inbox_message(&self, message: &InboxMessage) -> Result<Option<ExchangeSecret>> {
        let data = message.open(&self.keys)?;
        if self.lock().exchange.contains(&data.id()) {
            return Ok(None);
        }
        self.open_exchange_data(&data).await.map(Some)
    }
}
