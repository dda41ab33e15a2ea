//! The connection to a server that a [`Session`](crate::Session) logs in through: the SDK's own handle on the
//! HTTP client, so that no type of the transport (its errors, hyper's) is part of this crate's API.

/// A connection to one Tessera server (pooled, cheap to clone), for [`Session::login`](crate::Session::login) and
/// [`register_owner`](crate::register_owner).
#[derive(Clone, Debug)]
pub struct Client {
    inner: tessera_client::Client,
}

impl Client {
    /// A client of the server at `base` (for example `http://127.0.0.1:8080`).
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            inner: tessera_client::Client::new(base),
        }
    }

    pub(crate) fn inner(&self) -> &tessera_client::Client {
        &self.inner
    }

    pub(crate) fn into_inner(self) -> tessera_client::Client {
        self.inner
    }
}
