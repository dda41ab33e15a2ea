//! The command line: every command, option and help text.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_LONG_HELP: &str = "\
Quick start:
  tessera demo                                    # every principle, end to end, in a few seconds
  export TESSERA_ADMIN_TOKEN=change-me
  tessera serve --data-dir ./tessera-data &       # a server on 127.0.0.1:8080
  tessera owner create --kind hcp --out alice.key
  tessera owner create --kind hcp --out bob.key
  tessera entity put -k alice.key --type Note '{\"text\": \"allergic to penicillin\"}'
  tessera entity share -k alice.key --type Note <NOTE_ID> --with <BOB_ID>
  tessera entity get -k bob.key --type Note <NOTE_ID>

Results are printed as JSON on stdout; messages and progress go to stderr.
Exit codes: 0 success, 1 failure, 2 usage error.";

/// End-to-end encrypted storage and sharing of health records.
///
/// The server stores only ciphertext and enforces who may fetch what; clients encrypt, share and decrypt with
/// their owner's private key, which never leaves them. Start with `tessera demo`.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true)]
#[command(after_help = "Exit codes: 0 success, 1 failure, 2 usage error.")]
#[command(after_long_help = AFTER_LONG_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a Tessera server on a redb database, or on PostgreSQL with --database (administrator token, of at least
    /// 16 characters, from TESSERA_ADMIN_TOKEN).
    Serve(ServeArgs),
    /// Show every principle end to end: an in-process server, two doctors and a patient, and what the server stores.
    Demo(DemoArgs),
    /// Create data owners and show their key fingerprints.
    #[command(subcommand)]
    Owner(OwnerCommand),
    /// Create, read, share, revoke and query records.
    #[command(subcommand)]
    Entity(EntityCommand),
    /// Upload, list and download encrypted attachments of records.
    #[command(subcommand)]
    Attachment(AttachmentCommand),
    /// Protect owner key files with a passphrase.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Log in with a key file and print who it is: the owner id, its key fingerprint and short code, the server.
    Whoami(WhoamiArgs),
    /// Maintain a server's database, on the machine that holds it.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AdminCommand {
    /// Give the space of deleted and replaced data back to the file system; prints the database's size before and
    /// after as JSON. Stop the server first: the database is opened exclusively.
    Compact(CompactArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CompactArgs {
    /// Directory of the database (as given to `tessera serve`).
    #[arg(long, default_value = tessera_server::serve::DEFAULT_DATA_DIR)]
    pub(crate) data_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Seal a key file's private key under a passphrase (Argon2id and AES-256-GCM), in place.
    ///
    /// The passphrase is read from TESSERA_PASSPHRASE, or asked twice on the terminal. Every command then asks for
    /// it (or reads TESSERA_PASSPHRASE) to open the key file.
    Protect(ProtectArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ProtectArgs {
    /// The key file to protect.
    #[arg(long, short = 'k', env = "TESSERA_KEY")]
    pub(crate) key: PathBuf,
    #[command(flatten)]
    pub(crate) kdf: KdfArgs,
}

/// The Argon2id costs of a protected key file (hidden: the defaults are the ones to use; tests lower them).
#[derive(Debug, Args)]
pub(crate) struct KdfArgs {
    /// Argon2id memory, in KiB (64 MiB by default).
    #[arg(long, default_value_t = 65536, hide = true)]
    pub(crate) memory_kib: u32,
    /// Argon2id passes.
    #[arg(long, default_value_t = 3, hide = true)]
    pub(crate) iterations: u32,
}

#[derive(Debug, Args)]
pub(crate) struct WhoamiArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
}

#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Directory of the redb database (created if missing); unused with --database.
    #[arg(long, default_value = tessera_server::serve::DEFAULT_DATA_DIR)]
    pub(crate) data_dir: PathBuf,
    /// A PostgreSQL database to use instead of redb: postgres://user:password@host:port/database (its schema is
    /// migrated at start; several servers may share it).
    #[arg(long, value_name = "URL", env = tessera_server::serve::DATABASE_ENV, hide_env_values = true)]
    pub(crate) database: Option<String>,
    /// URL clients reach the server at (e.g. https://records.example); repeat for several. Logins signed for
    /// another name are refused. Needed when listening on 0.0.0.0 or ::, where the Host header is trusted otherwise.
    #[arg(
        long = "public-url",
        value_name = "URL",
        env = tessera_server::serve::PUBLIC_URL_ENV,
        value_delimiter = ','
    )]
    pub(crate) public_urls: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Keep the demonstration's database in this directory instead of a temporary one.
    #[arg(long)]
    pub(crate) data_dir: Option<PathBuf>,
}

/// How to reach the server and as whom.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// URL of the server.
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
    /// Key file of the owner acting (written by `tessera owner create`).
    #[arg(long, short = 'k', env = "TESSERA_KEY")]
    pub(crate) key: PathBuf,
    /// File of partners' key fingerprints pinned on first use (by default `<KEY>.known`, beside the key file).
    #[arg(long, env = "TESSERA_KNOWN_OWNERS")]
    pub(crate) known_owners: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OwnerCommand {
    /// Generate a new owner's keys, register it, and write its key file (mode 0600).
    ///
    /// A top-level owner is registered with the administrator token (TESSERA_ADMIN_TOKEN); with --parent-key,
    /// the new owner is registered below that logged-in owner instead (an HCP creating a patient).
    /// Prints the new owner's id and its fingerprint's short code.
    Create(OwnerCreateArgs),
    /// Print an owner's key fingerprint: your own from the key file, or a partner's (--of) as the server has it.
    /// Compare short codes out of band before trusting a partner.
    Fingerprint(FingerprintArgs),
}

#[derive(Debug, Args)]
pub(crate) struct OwnerCreateArgs {
    /// Kind of owner.
    #[arg(long, value_enum)]
    pub(crate) kind: Kind,
    /// Where to write the new owner's key file.
    #[arg(long, short = 'o')]
    pub(crate) out: PathBuf,
    /// URL of the server.
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
    /// Register below the owner of this key file instead of with the administrator token.
    #[arg(long)]
    pub(crate) parent_key: Option<PathBuf>,
    /// Size of the RSA key, in bits.
    #[arg(long, value_enum, default_value_t = RsaBits::B2048)]
    pub(crate) rsa_bits: RsaBits,
    /// Overwrite the key file if it exists.
    #[arg(long)]
    pub(crate) force: bool,
    /// Protect the key file with a passphrase (from TESSERA_PASSPHRASE, or asked twice), so that the private key
    /// never lies on disk in clear.
    #[arg(long)]
    pub(crate) protect: bool,
    #[command(flatten)]
    pub(crate) kdf: KdfArgs,
}

/// Kind of data owner.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum Kind {
    /// A healthcare party (a doctor, a hospital).
    Hcp,
    /// A patient.
    Patient,
    /// A device acting for an owner.
    Device,
}

impl From<Kind> for tessera::OwnerKind {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Hcp => Self::Hcp,
            Kind::Patient => Self::Patient,
            Kind::Device => Self::Device,
        }
    }
}

/// RSA key size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum RsaBits {
    /// 2048 bits (the default).
    #[value(name = "2048")]
    B2048,
    /// 3072 bits.
    #[value(name = "3072")]
    B3072,
    /// 4096 bits.
    #[value(name = "4096")]
    B4096,
}

impl From<RsaBits> for tessera::RsaKeySize {
    fn from(bits: RsaBits) -> Self {
        match bits {
            RsaBits::B2048 => Self::Bits2048,
            RsaBits::B3072 => Self::Bits3072,
            RsaBits::B4096 => Self::Bits4096,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct FingerprintArgs {
    /// Key file of the owner whose fingerprint to print (or, with --of, of the owner asking the server).
    #[arg(long, short = 'k', env = "TESSERA_KEY")]
    pub(crate) key: PathBuf,
    /// Print this partner's fingerprints as the server has them instead.
    #[arg(long, value_name = "OWNER_ID")]
    pub(crate) of: Option<tessera::OwnerId>,
    /// URL of the server (for --of).
    #[arg(long, env = "TESSERA_SERVER", default_value = "http://127.0.0.1:8080")]
    pub(crate) server: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum EntityCommand {
    /// Create a record from a JSON object, or replace a record's content (--update with --rev).
    ///
    /// Prints {"type", "id", "rev"} as JSON.
    Put(PutArgs),
    /// Decrypt a record and print it as JSON: its content, revision, permission, parents and attachments.
    Get(GetArgs),
    /// Share a record with other owners.
    Share(ShareArgs),
    /// Revoke owners' access to a record (and what they shared onward); --rotate also re-encrypts it under a new key.
    Revoke(RevokeArgs),
    /// List records of a type as a JSON array: those linked to a parent record (a patient's contacts), or those this
    /// owner created, shared with an owner, or received from one.
    Query(QueryArgs),
    /// Delete a record.
    Delete(DeleteArgs),
}

/// Which record.
#[derive(Debug, Args)]
pub(crate) struct Target {
    /// Type of the record (`Note`, `Patient`, `Contact`, …): it selects the access keys that open it.
    #[arg(long = "type", short = 't', value_name = "TYPE", value_parser = entity_type)]
    pub(crate) entity_type: tessera::EntityType,
    /// Id of the record.
    pub(crate) id: tessera::EntityId,
}

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    /// Type of the record.
    #[arg(long = "type", short = 't', value_name = "TYPE", value_parser = entity_type)]
    pub(crate) entity_type: tessera::EntityType,
    /// The content: a JSON object, `@FILE` to read it from a file, or `-` for standard input.
    pub(crate) content: String,
    /// JSON paths of the fields to encrypt (`text`, `address.street`, `contacts[].phone`); repeatable. Every other
    /// field is stored in clear. Each path must name a field of the content, or nothing is written (a misspelt
    /// path would leave its field in clear). Without any, every field is encrypted.
    #[arg(long = "encrypt", value_name = "PATH")]
    pub(crate) encrypt: Vec<String>,
    /// Replace the content of this record instead of creating one.
    #[arg(long, value_name = "ID", requires = "rev")]
    pub(crate) update: Option<tessera::EntityId>,
    /// The revision being replaced (with --update).
    #[arg(long, requires = "update")]
    pub(crate) rev: Option<u64>,
    /// Link the new record to this parent record (with --parent-type).
    #[arg(
        long,
        value_name = "ID",
        requires = "parent_type",
        conflicts_with = "update"
    )]
    pub(crate) parent: Option<tessera::EntityId>,
    /// Type of the parent record.
    #[arg(long, value_name = "TYPE", requires = "parent", value_parser = entity_type)]
    pub(crate) parent_type: Option<tessera::EntityType>,
    /// Share the new record with this owner (read access, named in clear); repeatable.
    #[arg(long, value_name = "OWNER_ID", conflicts_with = "update")]
    pub(crate) share_with: Vec<tessera::OwnerId>,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, Args)]
pub(crate) struct ShareArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Owner to share with; repeatable.
    #[arg(long = "with", value_name = "OWNER_ID", required = true)]
    pub(crate) with: Vec<tessera::OwnerId>,
    /// Grant write access (default: read).
    #[arg(long)]
    pub(crate) write: bool,
    /// Which parties the stored delegation names in clear.
    #[arg(long, value_enum, default_value_t = Shown::None)]
    pub(crate) show: Shown,
}

/// Which parties a delegation names in clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Shown {
    /// Both the sharer and the delegate.
    Both,
    /// Only the sharer (share with a patient without naming it).
    Sharer,
    /// Only the delegate (a patient sharing without being named).
    Delegate,
    /// Nobody.
    None,
}

impl From<Shown> for tessera::Visibility {
    fn from(shown: Shown) -> Self {
        match shown {
            Shown::Both => Self::Explicit,
            Shown::Sharer => Self::AnonymousDelegate,
            Shown::Delegate => Self::AnonymousDelegator,
            Shown::None => Self::Anonymous,
        }
    }
}

#[derive(Debug, Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Owner whose access to revoke; repeatable.
    #[arg(long = "from", value_name = "OWNER_ID", required = true)]
    pub(crate) from: Vec<tessera::OwnerId>,
    /// Also give the record a new key (re-encrypting its content and attachments); creator only.
    #[arg(long)]
    pub(crate) rotate: bool,
}

#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("selection")
        .required(true)
        .args(["parent", "created", "shared_with", "shared_by"]),
))]
pub(crate) struct QueryArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    /// Type of the records to list.
    #[arg(long = "type", short = 't', value_name = "TYPE", value_parser = entity_type)]
    pub(crate) entity_type: tessera::EntityType,
    /// The records linked to this parent record (give its type with --parent-type).
    #[arg(long, value_name = "ID", requires = "parent_type")]
    pub(crate) parent: Option<tessera::EntityId>,
    /// Type of the parent record.
    #[arg(long, value_name = "TYPE", value_parser = entity_type)]
    pub(crate) parent_type: Option<tessera::EntityType>,
    /// The records this owner created.
    #[arg(long)]
    pub(crate) created: bool,
    /// The records this owner shared with OWNER_ID.
    #[arg(long, value_name = "OWNER_ID")]
    pub(crate) shared_with: Option<tessera::OwnerId>,
    /// The records OWNER_ID shared with this owner.
    #[arg(long, value_name = "OWNER_ID")]
    pub(crate) shared_by: Option<tessera::OwnerId>,
}

#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
    /// The revision being deleted.
    #[arg(long)]
    pub(crate) rev: u64,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AttachmentCommand {
    /// Encrypt a file and attach it to a record; prints {"attachment", "rev"} as JSON.
    Upload(UploadArgs),
    /// Download and decrypt an attachment.
    Download(DownloadArgs),
    /// List a record's attachments as a JSON array of {"id", "bytes"}.
    List(ListAttachmentsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ListAttachmentsArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
}

#[derive(Debug, Args)]
pub(crate) struct UploadArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
    /// The file to attach.
    pub(crate) file: PathBuf,
}

#[derive(Debug, Args)]
pub(crate) struct DownloadArgs {
    #[command(flatten)]
    pub(crate) connection: Connection,
    #[command(flatten)]
    pub(crate) target: Target,
    /// Id of the attachment.
    pub(crate) attachment: tessera::AttachmentId,
    /// Where to write the content (`-` for standard output). An existing file is replaced only with --force.
    #[arg(long, short = 'o')]
    pub(crate) out: PathBuf,
    /// Replace the file at --out if there is one.
    #[arg(long)]
    pub(crate) force: bool,
}

/// Parses an entity type: 1 to 64 ASCII letters, digits, `.`, `_` or `-`.
fn entity_type(text: &str) -> Result<tessera::EntityType, String> {
    tessera::EntityType::new(text).map_err(|error| error.to_string())
}
