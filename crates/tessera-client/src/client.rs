//! The async client: the same wire types as the server, pooled connections, typed errors, and retries only for
//! idempotent requests.

use std::ops::Range;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RANGE};
use hyper::{Method, Request, Response};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_keys::{AccessControlKey, DelegationKey, KeyBagEntry, Owner, OwnerId, OwnerKeys};
use tessera_primitives::SecretString;
use tessera_sharing::{
    AttachmentId, EncryptedEntity, EntityId, SearchTag, ShareRequest, SideMapEntry,
};
use tokio::io::AsyncRead;
use zeroize::Zeroizing;

use tessera_wire::{
    ACCESS_KEYS_HEADER, AccessKeyBytes, AccessKeys, BearerToken, BulkWritten, Challenge,
    ChallengeRequest, Entities, EntityPage, EntityUpdate, Format, LoginRequest, OCTET_STREAM,
    RecoveryBody, Revocation, RevokeBody, Session, ShareBody, Versioned, Written,
};

mod inbox;

use crate::body::{AttachmentReader, ReaderBody, answer, successful};
use crate::error::{Error, Result};

/// Access keys per header value, so that no header line grows past common limits.
const KEYS_PER_HEADER: usize = 256;
/// Extra attempts for idempotent requests that failed in transport.
const RETRIES: u32 = 2;
/// Default of [`Client::with_max_answer_bytes`]: the largest answer body read, 64 MiB.
pub const DEFAULT_MAX_ANSWER_BYTES: usize = 64 << 20;
/// Cap of answers whose size is small and known (a challenge, a session, a revision, an empty answer).
const SMALL_ANSWER: usize = 64 << 10;
/// Cap of an error answer's body (a JSON code and message); a longer one is cut, not read.
pub(crate) const ERROR_ANSWER: usize = 64 << 10;

/// The body of every request: whole for most, read from an [`AsyncRead`] for [`Client::put_attachment_from`].
type RequestBody = UnsyncBoxBody<Bytes, std::io::Error>;

/// A client of one Tessera server.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: HyperClient<HttpConnector, RequestBody>,
    format: Format,
    token: Option<BearerToken>,
    /// Header values of the presented access-control keys (lowercase hex, comma-separated): secrets, wiped on drop.
    access_headers: Vec<SecretString>,
    /// Largest answer body read; a larger one is [`Error::AnswerTooLarge`].
    max_answer_bytes: usize,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("format", &self.format)
            .field("max_answer_bytes", &self.max_answer_bytes)
            .field("logged_in", &self.token.is_some())
            .finish()
    }
}

impl Client {
    /// A client of the server at `base` (for example `http://127.0.0.1:8080`), speaking bincode.
    pub fn new(base: impl Into<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            http: HyperClient::builder(TokioExecutor::new())
                .pool_idle_timeout(Duration::from_secs(30))
                .build(connector),
            format: Format::Bincode,
            token: None,
            access_headers: Vec::new(),
            max_answer_bytes: DEFAULT_MAX_ANSWER_BYTES,
        }
    }

    /// Reads no answer body larger than `max` bytes ([`DEFAULT_MAX_ANSWER_BYTES`] unless set): a larger one,
    /// announced or endless, fails with [`Error::AnswerTooLarge`] without being held in memory. Answers of a known
    /// small size (a challenge, a session, a revision) have a smaller cap. Streamed attachment downloads
    /// ([`Client::attachment_reader`]) are not bounded by it: they hold one piece at a time.
    #[must_use]
    pub fn with_max_answer_bytes(mut self, max: usize) -> Self {
        self.max_answer_bytes = max;
        self
    }

    /// Uses `format` for bodies.
    #[must_use]
    pub fn with_format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Uses an existing session token.
    pub fn set_token(&mut self, token: impl Into<String>) {
        self.token = Some(BearerToken::new(token.into()));
    }

    /// Sends these access-control keys with every later request (in addition to those registered in the session).
    pub fn present_access_keys(&mut self, keys: &[AccessControlKey]) {
        self.access_headers = keys
            .chunks(KEYS_PER_HEADER)
            .map(|chunk| {
                // Sized up front so that no reallocation leaves a copy of a key behind.
                let mut value = String::with_capacity(chunk.len() * 33);
                for (index, key) in chunk.iter().enumerate() {
                    if index > 0 {
                        value.push(',');
                    }
                    value.push_str(&Zeroizing::new(tessera_keys::wire::hex(
                        key.expose_secret(),
                    )));
                }
                SecretString::new(value)
            })
            .collect();
    }

    /// Whether the server is up.
    ///
    /// # Errors
    /// [`Error::Transport`] if it cannot be reached, [`Error::Status`] if it is unhealthy.
    pub async fn health(&self) -> Result<()> {
        self.send(Method::GET, "/v1/health", None, &[], SMALL_ANSWER)
            .await
            .map(|_| ())
    }

    /// Logs in as `keys`' owner by challenge–response; later requests carry the session. The answer is signed
    /// for the server's name as this client knows it, the normalised origin of its base URL
    /// ([`tessera_wire::server_name`]), so that another server relaying the challenge cannot use it.
    ///
    /// # Errors
    /// [`Error::Request`] if the base URL is not an `http`/`https` URL with a host; [`Error::Status`] 401 if the
    /// server does not know the owner or the bundle, or has another name than the base URL's (a relay).
    pub async fn login(&mut self, keys: &OwnerKeys) -> Result<Session> {
        let server = tessera_wire::server_name(&self.base).map_err(Error::Request)?;
        let challenge: Challenge = self
            .call_capped(
                Method::POST,
                "/v1/auth/challenge",
                Some(&ChallengeRequest {
                    owner: keys.owner(),
                }),
                SMALL_ANSWER,
            )
            .await?;
        let signature = keys
            .sign_login_challenge(&server, &challenge.challenge)
            .map_err(|e| Error::Request(e.to_string()))?;
        let login = LoginRequest {
            owner: keys.owner(),
            challenge: challenge.challenge,
            fingerprint: keys.fingerprint(),
            server,
            signature,
        };
        let session: Session = self
            .call_capped(Method::POST, "/v1/auth/login", Some(&login), SMALL_ANSWER)
            .await?;
        self.token = Some(session.token.clone());
        Ok(session)
    }

    /// Registers access-control keys in the session (held in server memory until the session ends).
    ///
    /// # Errors
    /// [`Error::Status`] 431 above the server's limit.
    pub async fn register_access_keys(&self, keys: &[AccessControlKey]) -> Result<()> {
        let body = AccessKeys {
            keys: keys
                .iter()
                .map(|k| AccessKeyBytes(*k.expose_secret()))
                .collect(),
        };
        self.send_body(Method::POST, "/v1/auth/access-keys", &body)
            .await
            .map(|_| ())
    }

    /// Registers a top-level owner with the administrator token.
    ///
    /// # Errors
    /// [`Error::Status`] 401/403 with a wrong token, 409 if the owner exists.
    pub async fn register_owner_as_admin(
        &self,
        admin_token: &str,
        owner: &Owner,
    ) -> Result<Written> {
        let body = self.format.encode(owner).map_err(Error::Request)?;
        let bytes = self
            .send(
                Method::POST,
                "/v1/owners",
                Some(Bytes::from(body)),
                &[(AUTHORIZATION.as_str(), format!("Admin {admin_token}"))],
                SMALL_ANSWER,
            )
            .await?;
        self.decode(&bytes)
    }

    /// Registers an owner below the logged-in owner (an HCP creating a patient).
    ///
    /// # Errors
    /// [`Error::Status`] 403 if `owner.parent` is not the logged-in owner.
    pub async fn register_owner(&self, owner: &Owner) -> Result<Written> {
        self.call_capped(Method::POST, "/v1/owners", Some(owner), SMALL_ANSWER)
            .await
    }

    /// An owner's public record.
    ///
    /// # Errors
    /// [`Error::Status`] 404 if unknown.
    pub async fn owner(&self, id: OwnerId) -> Result<Versioned<Owner>> {
        self.call::<(), _>(Method::GET, &format!("/v1/owners/{id}"), None)
            .await
    }

    /// Replaces the logged-in owner's record (to add a chained key bundle).
    ///
    /// # Errors
    /// [`Error::Status`] 409 on a stale revision.
    pub async fn update_owner(&self, owner: &Owner, expected_rev: u64) -> Result<Written> {
        self.call_capped(
            Method::PUT,
            &format!("/v1/owners/{}?rev={expected_rev}", owner.id),
            Some(owner),
            SMALL_ANSWER,
        )
        .await
    }

    /// Adds an entry to the logged-in owner's key bag.
    ///
    /// # Errors
    /// [`Error::Status`] 409 if a different entry has that id.
    pub async fn put_key_bag_entry(&self, entry: &KeyBagEntry) -> Result<()> {
        self.send_body(Method::PUT, &format!("/v1/key-bag/{}", entry.id), entry)
            .await
            .map(|_| ())
    }

    /// Replaces one entry of the logged-in owner's bag if the stored one is `previous` (compare-and-swap).
    ///
    /// # Errors
    /// [`Error::Status`] 409 if the stored entry is another one; [`Error::Transport`].
    pub async fn swap_key_bag_entry(
        &self,
        entry: &KeyBagEntry,
        previous: Option<&KeyBagEntry>,
    ) -> Result<()> {
        let body = tessera_wire::KeyBagSwap {
            entry: entry.clone(),
            previous: previous.cloned(),
        };
        self.send_body(
            Method::PUT,
            &format!("/v1/key-bag/{}/swap", entry.id),
            &body,
        )
        .await
        .map(|_| ())
    }

    /// The logged-in owner's key bag.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Status`].
    pub async fn key_bag(&self) -> Result<Vec<KeyBagEntry>> {
        self.call::<(), _>(Method::GET, "/v1/key-bag", None).await
    }

    /// Creates entities in one request and one durable commit.
    ///
    /// # Errors
    /// [`Error::Status`] 422 if one breaks a rule, 409 if one exists.
    pub async fn create_entities(&self, entities: &[EncryptedEntity]) -> Result<BulkWritten> {
        let body = Entities {
            entities: entities.to_vec(),
        };
        self.call(Method::POST, "/v1/entities", Some(&body)).await
    }

    /// Creates one entity; returns its revision.
    ///
    /// # Errors
    /// As [`Client::create_entities`].
    pub async fn create_entity(&self, entity: &EncryptedEntity) -> Result<u64> {
        let written = self.create_entities(std::slice::from_ref(entity)).await?;
        written
            .written
            .first()
            .map(|(_, rev)| *rev)
            .ok_or_else(|| Error::Decode("no revision in the answer".into()))
    }

    /// An entity the logged-in owner may see.
    ///
    /// # Errors
    /// [`Error::Status`] 404 if it does not exist or is not visible.
    pub async fn entity(&self, id: EntityId) -> Result<EncryptedEntity> {
        self.call::<(), _>(Method::GET, &format!("/v1/entities/{id}"), None)
            .await
    }

    /// Replaces revision `expected_rev` of an entity (content only: security metadata cannot change this way).
    ///
    /// # Errors
    /// [`Error::Status`] 409 on a stale revision, 422 if the metadata changed.
    pub async fn update_entity(&self, entity: &EncryptedEntity, expected_rev: u64) -> Result<u64> {
        self.put_entity(entity, expected_rev, "").await
    }

    /// Stores a revoke-and-rotate result.
    ///
    /// # Errors
    /// As [`Client::update_entity`].
    pub async fn rotate_entity(&self, entity: &EncryptedEntity, expected_rev: u64) -> Result<u64> {
        self.put_entity(entity, expected_rev, "/rotation").await
    }

    async fn put_entity(
        &self,
        entity: &EncryptedEntity,
        expected_rev: u64,
        suffix: &str,
    ) -> Result<u64> {
        let body = EntityUpdate {
            entity: entity.clone(),
            expected_rev,
        };
        let written: Written = self
            .call_capped(
                Method::PUT,
                &format!("/v1/entities/{}{suffix}", entity.id),
                Some(&body),
                SMALL_ANSWER,
            )
            .await?;
        Ok(written.rev)
    }

    /// Deletes revision `expected_rev` of an entity.
    ///
    /// # Errors
    /// [`Error::Status`] 409 on a stale revision.
    pub async fn delete_entity(&self, id: EntityId, expected_rev: u64) -> Result<()> {
        self.send(
            Method::DELETE,
            &format!("/v1/entities/{id}?rev={expected_rev}"),
            None,
            &[],
            SMALL_ANSWER,
        )
        .await
        .map(|_| ())
    }

    /// Adds delegations to any number of entities.
    ///
    /// # Errors
    /// [`Error::Status`] 422 if a rule rejects an entry (nothing is stored), 409 on a concurrent change.
    pub async fn share(&self, request: &ShareRequest) -> Result<BulkWritten> {
        let body = ShareBody {
            request: request.clone(),
        };
        self.call(Method::POST, "/v1/entities/share", Some(&body))
            .await
    }

    /// Removes delegations and their descendants.
    ///
    /// # Errors
    /// As [`Client::share`].
    pub async fn revoke(&self, revocations: &[Revocation]) -> Result<BulkWritten> {
        let body = RevokeBody {
            revocations: revocations.to_vec(),
        };
        self.call(Method::POST, "/v1/entities/revoke", Some(&body))
            .await
    }

    /// Entities carrying search tag `tag` that the logged-in owner may see.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Status`].
    pub async fn query_by_tag(&self, tag: &SearchTag) -> Result<Vec<EncryptedEntity>> {
        self.query_all(&format!("tag={tag}")).await
    }

    /// Entities holding a delegation under `key` (which the logged-in owner must have proved), every page.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Status`].
    pub async fn query_by_delegation_key(
        &self,
        key: &DelegationKey,
    ) -> Result<Vec<EncryptedEntity>> {
        self.query_all(&format!("delegation_key={key}")).await
    }

    /// One page of a query: `selector` is `tag=<hex>` or `delegation_key=<hex>`, `after` the previous page's
    /// [`EntityPage::next`], `limit` at most the server's page size (its bulk limit, 1,000 by default).
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Status`] (400 for a malformed selector or a limit out of range).
    pub async fn query_page(
        &self,
        selector: &str,
        after: Option<EntityId>,
        limit: Option<usize>,
    ) -> Result<EntityPage> {
        let mut path = format!("/v1/entities?{selector}");
        if let Some(after) = after {
            path.push_str(&format!("&after={after}"));
        }
        if let Some(limit) = limit {
            path.push_str(&format!("&limit={limit}"));
        }
        self.call::<(), _>(Method::GET, &path, None).await
    }

    /// Every page of a query, in ascending id order: never a truncated answer.
    async fn query_all(&self, selector: &str) -> Result<Vec<EncryptedEntity>> {
        let mut entities = Vec::new();
        let mut after = None;
        loop {
            let page = self.query_page(selector, after, None).await?;
            entities.extend(page.entities);
            match page.next {
                // Ids ascend: a cursor that does not move forward would loop for ever (a broken or hostile server).
                Some(next) if after.is_none_or(|after| next > after) => after = Some(next),
                Some(_) => {
                    return Err(Error::Decode(
                        "a query page whose cursor does not advance".into(),
                    ));
                }
                None => return Ok(entities),
            }
        }
    }

    /// Uploads an attachment's sealed stream (its reference must already be on the entity).
    ///
    /// # Errors
    /// [`Error::Status`] 400 if the length differs from the reference, 413 above the limit.
    pub async fn put_attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        sealed: Vec<u8>,
    ) -> Result<()> {
        self.send(
            Method::PUT,
            &attachment_path(entity, attachment),
            Some(Bytes::from(sealed)),
            &[(CONTENT_TYPE.as_str(), OCTET_STREAM.to_owned())],
            SMALL_ANSWER,
        )
        .await
        .map(|_| ())
    }

    /// Uploads an attachment's sealed stream of `len` bytes read from `reader` as it is sent, without holding it
    /// in memory (its reference must already be on the entity). Not retried: the reader cannot be read twice.
    ///
    /// # Errors
    /// [`Error::Status`] 400 if `len` differs from the reference, 413 above the limit; [`Error::Transport`] if
    /// `reader` fails or ends before `len` bytes (the server then keeps the previous content).
    pub async fn put_attachment_from<R>(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        reader: R,
        len: u64,
    ) -> Result<()>
    where
        R: AsyncRead + Send + Unpin + 'static,
    {
        let body = ReaderBody::new(reader, len);
        let request = self
            .builder(
                Method::PUT,
                &attachment_path(entity, attachment),
                true,
                &[(CONTENT_TYPE.as_str(), OCTET_STREAM.to_owned())],
            )
            .body(UnsyncBoxBody::new(body))
            .map_err(|e| Error::request(&self.base, &e))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| Error::transport(&self.base, &e))?;
        answer(response, SMALL_ANSWER.min(self.max_answer_bytes))
            .await
            .map(|_| ())
    }

    /// Downloads an attachment's sealed stream, or the byte range `range` of it (for segment reads).
    ///
    /// # Errors
    /// [`Error::Status`] 404 if not visible, 416 for a range past the end.
    pub async fn attachment(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Option<Range<u64>>,
    ) -> Result<Vec<u8>> {
        let bytes = self
            .send(
                Method::GET,
                &attachment_path(entity, attachment),
                None,
                &range_header(range),
                self.max_answer_bytes,
            )
            .await?;
        Ok(bytes.to_vec())
    }

    /// Starts downloading an attachment's sealed stream, or the byte range `range` of it, and returns it as an
    /// [`AsyncRead`] that receives the answer as it arrives, never holding more than one piece of it. The request
    /// is retried like [`Client::attachment`]'s until the server answers; the body is not.
    ///
    /// # Errors
    /// As [`Client::attachment`]: a status other than success is an [`Error::Status`] here, before any byte is
    /// read.
    pub async fn attachment_reader(
        &self,
        entity: EntityId,
        attachment: AttachmentId,
        range: Option<Range<u64>>,
    ) -> Result<AttachmentReader> {
        let response = self
            .request(
                Method::GET,
                &attachment_path(entity, attachment),
                None,
                &range_header(range),
            )
            .await?;
        let response = successful(response).await?;
        let len = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse().ok());
        Ok(AttachmentReader::new(response.into_body(), len))
    }

    /// Stores recovery data under `id` (the hash of a recovery key).
    ///
    /// # Errors
    /// [`Error::Status`] 409 if the id exists.
    pub async fn put_recovery(&self, id: &[u8; 32], body: &RecoveryBody) -> Result<()> {
        self.send_body(
            Method::PUT,
            &format!("/v1/recovery/{}", tessera_keys::wire::hex(id)),
            body,
        )
        .await
        .map(|_| ())
    }

    /// Recovery data `id` (no session needed).
    ///
    /// # Errors
    /// [`Error::Status`] 404 if unknown or expired.
    pub async fn recovery(&self, id: &[u8; 32]) -> Result<RecoveryBody> {
        self.call::<(), _>(
            Method::GET,
            &format!("/v1/recovery/{}", tessera_keys::wire::hex(id)),
            None,
        )
        .await
    }

    /// Stores a side-map entry of the logged-in owner.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Status`].
    pub async fn put_side_map_entry(&self, entry: &SideMapEntry) -> Result<()> {
        self.send_body(Method::PUT, "/v1/side-map", entry)
            .await
            .map(|_| ())
    }

    /// The logged-in owner's side-map entry for `key`.
    ///
    /// # Errors
    /// [`Error::Status`] 404 if none.
    pub async fn side_map_entry(&self, key: &DelegationKey) -> Result<SideMapEntry> {
        self.call::<(), _>(Method::GET, &format!("/v1/side-map/{key}"), None)
            .await
    }

    // ---- plumbing ----

    /// Sends `body` and decodes the answer, read up to [`Client::with_max_answer_bytes`].
    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T> {
        self.call_capped(method, path, body, usize::MAX).await
    }

    /// As [`Client::call`], reading at most `cap` bytes of the answer (or the client's limit if smaller).
    async fn call_capped<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
        cap: usize,
    ) -> Result<T> {
        let bytes = match body {
            Some(body) => Some(Bytes::from(
                self.format.encode(body).map_err(Error::Request)?,
            )),
            None => None,
        };
        let answer = self.send(method, path, bytes, &[], cap).await?;
        self.decode(&answer)
    }

    /// Sends `body` to a route that answers nothing (or nothing needed): the answer is read up to a small cap.
    async fn send_body<B: Serialize>(&self, method: Method, path: &str, body: &B) -> Result<Bytes> {
        let bytes = Bytes::from(self.format.encode(body).map_err(Error::Request)?);
        self.send(method, path, Some(bytes), &[], SMALL_ANSWER)
            .await
    }

    /// Decodes an answer: bincode may read no more than the bytes received and no trailing byte is left.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T> {
        let limit = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        self.format.decode(bytes, limit).map_err(Error::Decode)
    }

    /// Sends a request and collects the answer, reading at most `cap` bytes of it (or the client's limit if
    /// smaller); retries idempotent methods whose connection failed.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
        cap: usize,
    ) -> Result<Bytes> {
        let response = self.request(method, path, body, headers).await?;
        answer(response, cap.min(self.max_answer_bytes)).await
    }

    /// Sends a request and returns the answer with its body unread; retries idempotent methods whose connection
    /// failed before an answer arrived.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let idempotent = matches!(method, Method::GET | Method::PUT | Method::DELETE);
        let mut attempt = 0;
        loop {
            let request = self.build(method.clone(), path, body.clone(), headers)?;
            match self.http.request(request).await {
                Ok(response) => return Ok(response),
                Err(error) if idempotent && attempt < RETRIES => {
                    attempt += 1;
                    tracing::debug!(%error, attempt, "retrying an idempotent request");
                    tokio::time::sleep(Duration::from_millis(20 * u64::from(attempt))).await;
                }
                Err(error) => return Err(Error::transport(&self.base, &error)),
            }
        }
    }

    fn build(
        &self,
        method: Method,
        path: &str,
        body: Option<Bytes>,
        headers: &[(&str, String)],
    ) -> Result<Request<RequestBody>> {
        let has_body = body.is_some();
        let full = Full::new(body.unwrap_or_default()).map_err(|never| match never {});
        self.builder(method, path, has_body, headers)
            .body(UnsyncBoxBody::new(full))
            .map_err(|e| Error::request(&self.base, &e))
    }

    /// A request with the headers every request carries, and `headers`.
    fn builder(
        &self,
        method: Method,
        path: &str,
        has_body: bool,
        headers: &[(&str, String)],
    ) -> hyper::http::request::Builder {
        let mut builder = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header(ACCEPT, self.format.media_type());
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case(CONTENT_TYPE.as_str()));
        if has_body && !typed {
            builder = builder.header(CONTENT_TYPE, self.format.media_type());
        }
        if let Some(token) = &self.token {
            let value = Zeroizing::new(format!("Bearer {}", token.expose_secret()));
            builder = builder.header(AUTHORIZATION, value.as_str());
        }
        for value in &self.access_headers {
            builder = builder.header(ACCESS_KEYS_HEADER, value.expose_secret());
        }
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        builder
    }
}

/// The path of an attachment's stream.
fn attachment_path(entity: EntityId, attachment: AttachmentId) -> String {
    format!("/v1/entities/{entity}/attachments/{attachment}")
}

/// The `Range` header asking for bytes `range` (none for the whole).
fn range_header(range: Option<Range<u64>>) -> Vec<(&'static str, String)> {
    range
        .map(|r| {
            (
                RANGE.as_str(),
                format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
            )
        })
        .into_iter()
        .collect()
}
