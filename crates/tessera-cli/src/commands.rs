//! The everyday commands: thin wrappers over the SDK that print JSON.

use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde_json::{Map, Value, json};
use tessera::{
    Client, EncryptionManifest, EntityRef, NewRecord, Permission, Query, Record, Session, Share,
};
use tessera_server::serve::{ADMIN_TOKEN_ENV, ServeOptions};
use tokio::io::AsyncWriteExt;

use crate::cli::{
    AttachmentCommand, CompactArgs, Connection, EntityCommand, OwnerCommand, OwnerCreateArgs,
    ServeArgs, Target, WhoamiArgs,
};
use crate::keys;
use crate::trust::KnownOwners;
use crate::ui;

/// `tessera serve`: runs until Ctrl-C or SIGTERM, then shuts down gracefully.
pub(crate) async fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    // Checked before anything starts (the server checks it again), so that a missing or short token is the only
    // thing said.
    tessera_server::serve::admin_token_from_env()?;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // The log goes to standard output: colours only for a terminal, never into a file or a pipe.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal())
        .init();
    let options = ServeOptions {
        listen: args.listen,
        data_dir: args.data_dir,
        database: args.database,
        public_urls: args.public_urls,
    };
    let server = tessera_server::serve::start(&options).await?;
    // The PostgreSQL URL may hold a password: it is not printed.
    let database = match options.database {
        Some(_) => "database: PostgreSQL".to_owned(),
        None => format!("database in {}", options.data_dir.display()),
    };
    println!(
        "tessera server listening on http://{} ({database})",
        server.local_addr()
    );
    shutdown_signal().await?;
    println!("shutting down");
    server.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(unix)]
async fn shutdown_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        _ = terminate.recv() => {}
    }
    Ok(())
}

#[cfg(not(unix))]
async fn shutdown_signal() -> anyhow::Result<()> {
    tokio::signal::ctrl_c().await?;
    Ok(())
}

/// `tessera owner …`.
pub(crate) async fn owner(command: OwnerCommand) -> anyhow::Result<ExitCode> {
    match command {
        OwnerCommand::Create(args) => create_owner(args).await,
        OwnerCommand::Fingerprint(args) => {
            let keys = keys::read_key_file(&args.key)?;
            let Some(partner) = args.of else {
                let fingerprint = keys.fingerprint();
                ui::print_json(&json!({
                    "owner": keys.owner().to_string(),
                    "fingerprint": fingerprint.to_string(),
                    "short_code": fingerprint.short_code(),
                }))?;
                return Ok(ExitCode::SUCCESS);
            };
            let mut client = tessera_client::Client::new(&args.server);
            client.login(&keys).await.context("cannot log in")?;
            let record = client
                .owner(partner)
                .await
                .with_context(|| format!("cannot fetch owner {partner}"))?
                .value;
            let bundles: Vec<Value> = record
                .bundles
                .iter()
                .map(|bundle| {
                    let fingerprint = bundle.fingerprint();
                    json!({
                        "fingerprint": fingerprint.to_string(),
                        "short_code": fingerprint.short_code(),
                        "created": bundle.created(),
                    })
                })
                .collect();
            ui::print_json(&json!({
                "owner": record.id.to_string(),
                "kind": format!("{:?}", record.kind).to_lowercase(),
                "bundles": bundles,
            }))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn create_owner(args: OwnerCreateArgs) -> anyhow::Result<ExitCode> {
    if args.out.exists() && !args.force {
        bail!(
            "{} exists; pass --force to overwrite it (its owner's key would be lost)",
            args.out.display()
        );
    }
    // The key file is written (beside --out, so that a directory that cannot be written to fails now) before the
    // owner is registered, and put in place only once it is: no owner is ever registered whose key was not saved.
    let passphrase = if args.protect {
        let prompt = format!("passphrase of the new key file {}: ", args.out.display());
        Some(keys::passphrase(&prompt, true)?)
    } else {
        None
    };
    let generating = ui::spinner("generating the owner's RSA key and registering it");
    let parent = match &args.parent_key {
        Some(parent) => Some(login(&args.server, parent, None).await?),
        None => None,
    };
    let parent_id = parent.as_ref().map(|(session, _)| session.owner());
    let (keys, record) =
        tessera::generate_owner(args.kind.into(), parent_id, args.rsa_bits.into())?;
    let text = match &passphrase {
        Some(passphrase) => keys::protected_text(&keys, passphrase, &args.out, &args.kdf)?,
        None => tessera::encode_key_file(&keys)?,
    };
    let pending = keys::write_pending(&args.out, &text)?;
    match &parent {
        None => {
            let token = std::env::var(ADMIN_TOKEN_ENV)
                .ok()
                .filter(|t| !t.is_empty())
                .with_context(|| {
                    format!(
                        "set {ADMIN_TOKEN_ENV} to register a top-level owner, or pass --parent-key"
                    )
                })?;
            tessera::register_generated(&Client::new(&args.server), &token, &record).await?;
        }
        Some((session, known)) => {
            session.register_generated(&record).await?;
            known.save()?;
        }
    }
    generating.finish_and_clear();
    keys::persist(pending, &args.out, args.force)?;
    let fingerprint = keys.fingerprint();
    ui::print_json(&json!({
        "owner": keys.owner().to_string(),
        "fingerprint": fingerprint.to_string(),
        "short_code": fingerprint.short_code(),
        "key_file": args.out.display().to_string(),
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `tessera entity …`.
pub(crate) async fn entity(command: EntityCommand) -> anyhow::Result<ExitCode> {
    match command {
        EntityCommand::Put(args) => {
            let content = read_content(&args.content)?;
            let (session, known) = connect(&args.connection).await?;
            if !args.encrypt.is_empty() {
                let manifest = EncryptionManifest::new(args.encrypt.iter().map(String::as_str))?;
                session.set_manifest(args.entity_type.clone(), manifest);
            }
            let saved = match (args.update, args.rev) {
                (Some(id), Some(rev)) => {
                    let entity = EntityRef::new(args.entity_type.clone(), id);
                    let rev = session.update_json(&entity, rev, content).await?;
                    tessera::Saved { entity, rev }
                }
                _ => {
                    let mut new = NewRecord::new(args.entity_type.clone(), content);
                    if let (Some(parent), Some(parent_type)) = (args.parent, args.parent_type) {
                        new = new.child_of(EntityRef::new(parent_type, parent));
                    }
                    for delegate in args.share_with {
                        new = new.share_with(Share::read(delegate));
                    }
                    session.create_record(new).await?
                }
            };
            known.save()?;
            ui::print_json(&json!({
                "type": saved.entity.entity_type.to_string(),
                "id": saved.entity.id.to_string(),
                "rev": saved.rev,
            }))?;
        }
        EntityCommand::Get(args) => {
            let (session, known) = connect(&args.connection).await?;
            let record = session.get_json(&reference(&args.target)).await?;
            known.save()?;
            ui::print_json(&record_json(record))?;
        }
        EntityCommand::Share(args) => {
            let (session, known) = connect(&args.connection).await?;
            let shares: Vec<Share> = args
                .with
                .iter()
                .map(|delegate| {
                    let share = if args.write {
                        Share::write(*delegate)
                    } else {
                        Share::read(*delegate)
                    };
                    share.with_visibility(args.show.into())
                })
                .collect();
            let rev = session.share(&reference(&args.target), &shares).await?;
            known.save()?;
            ui::print_json(&json!({"id": args.target.id.to_string(), "rev": rev}))?;
        }
        EntityCommand::Revoke(args) => {
            let (session, known) = connect(&args.connection).await?;
            let entity = reference(&args.target);
            let result = if args.rotate {
                let rotated = session.revoke_and_rotate(&entity, &args.from).await?;
                json!({
                    "id": entity.id.to_string(),
                    "rev": rotated.rev,
                    "removed_delegations": rotated.removed,
                    "reencrypted_attachments": rotated.attachments,
                })
            } else {
                let rev = session.revoke(&entity, &args.from).await?;
                json!({"id": entity.id.to_string(), "rev": rev})
            };
            known.save()?;
            ui::print_json(&result)?;
        }
        EntityCommand::Query(args) => {
            let (session, known) = connect(&args.connection).await?;
            let found = match (
                args.parent,
                args.parent_type,
                args.shared_with,
                args.shared_by,
            ) {
                (Some(parent), Some(parent_type), _, _) => {
                    let parent = EntityRef::new(parent_type, parent);
                    session.children_json(&parent, &args.entity_type).await?
                }
                (_, _, Some(partner), _) => {
                    let query = Query::SharedWith(partner);
                    session.query_json(&args.entity_type, query).await?
                }
                (_, _, _, Some(partner)) => {
                    let query = Query::SharedBy(partner);
                    session.query_json(&args.entity_type, query).await?
                }
                _ => {
                    session
                        .query_json(&args.entity_type, Query::Created)
                        .await?
                }
            };
            known.save()?;
            ui::print_json(&Value::Array(found.into_iter().map(record_json).collect()))?;
        }
        EntityCommand::Delete(args) => {
            let (session, known) = connect(&args.connection).await?;
            session.delete(&reference(&args.target), args.rev).await?;
            known.save()?;
            ui::print_json(&json!({"id": args.target.id.to_string(), "deleted": true}))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tessera attachment …`.
pub(crate) async fn attachment(command: AttachmentCommand) -> anyhow::Result<ExitCode> {
    match command {
        AttachmentCommand::Upload(args) => {
            let cannot_read = || format!("cannot read {}", args.file.display());
            let file = tokio::fs::File::open(&args.file)
                .await
                .with_context(cannot_read)?;
            let len = file.metadata().await.with_context(cannot_read)?.len();
            let (session, known) = connect(&args.connection).await?;
            let entity = reference(&args.target);
            let record = session.get_json(&entity).await?;
            // The file is read, sealed and sent one segment at a time; the bar counts the bytes read from it.
            let bar = ui::bytes("encrypting and uploading", len);
            let (attachment, rev) = session
                .add_attachment_stream(&entity, record.rev, bar.wrap_async_read(file), len)
                .await
                .with_context(|| format!("cannot upload {}", args.file.display()))?;
            bar.finish_and_clear();
            known.save()?;
            ui::print_json(&json!({
                "attachment": attachment.to_string(),
                "rev": rev,
                "bytes": len,
            }))?;
        }
        AttachmentCommand::List(args) => {
            let (session, known) = connect(&args.connection).await?;
            let record = session.get_json(&reference(&args.target)).await?;
            known.save()?;
            ui::print_json(&attachments_json(&record))?;
        }
        AttachmentCommand::Download(args) => {
            if args.out.as_os_str() != "-" && args.out.exists() && !args.force {
                bail!(
                    "{} exists; pass --force to overwrite it, or choose another --out",
                    args.out.display()
                );
            }
            let (session, known) = connect(&args.connection).await?;
            let entity = reference(&args.target);
            let stream = session.attachment_stream(&entity, args.attachment).await?;
            let len = stream.len();
            // Opened segment by segment as it arrives; the bar counts the decrypted bytes.
            let bar = ui::bytes("downloading and decrypting", len);
            let mut content = bar.wrap_async_read(stream);
            let cannot_download = || format!("cannot download attachment {}", args.attachment);
            if args.out.as_os_str() == "-" {
                let mut stdout = tokio::io::stdout();
                tokio::io::copy(&mut content, &mut stdout)
                    .await
                    .with_context(cannot_download)?;
                stdout.flush().await?;
                bar.finish_and_clear();
            } else {
                download_to(&mut content, &args.out)
                    .await
                    .with_context(cannot_download)?;
                bar.finish_and_clear();
                eprintln!("wrote {len} bytes to {}", args.out.display());
            }
            known.save()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `content` to a temporary file beside `out`, renamed to `out` only once all of it was read: a download that
/// fails half way (a stream that does not open, a lost connection) leaves no partial file behind. The file is
/// readable by its owner only, as the temporary file was created: it holds decrypted content.
async fn download_to(
    content: &mut (impl tokio::io::AsyncRead + Unpin),
    out: &Path,
) -> anyhow::Result<()> {
    let dir = out
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temporary = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a file in {}", dir.display()))?;
    let mut file = tokio::fs::File::from_std(temporary.reopen()?);
    tokio::io::copy(content, &mut file).await?;
    file.flush().await?;
    drop(file);
    temporary
        .persist(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(())
}

// ---- helpers ----

fn reference(target: &Target) -> EntityRef {
    EntityRef::new(target.entity_type.clone(), target.id)
}

async fn connect(connection: &Connection) -> anyhow::Result<(Session, KnownOwners)> {
    login(
        &connection.server,
        &connection.key,
        connection.known_owners.as_deref(),
    )
    .await
}

/// Logs in as the owner of `key`, trusting partners through the pins beside the key file.
async fn login(
    server: &str,
    key: &Path,
    known_owners: Option<&Path>,
) -> anyhow::Result<(Session, KnownOwners)> {
    let keys = keys::read_key_file(key)?;
    let known_path = known_owners.map_or_else(
        || {
            let mut path = key.as_os_str().to_owned();
            path.push(".known");
            PathBuf::from(path)
        },
        Path::to_path_buf,
    );
    let known = KnownOwners::load(&known_path)?;
    let session = Session::login(Client::new(server), keys, known.policy())
        .await
        .with_context(|| format!("cannot log in to {server}"))?;
    Ok((session, known))
}

/// Reads a JSON object given inline, as `@FILE`, or as `-` (standard input).
fn read_content(argument: &str) -> anyhow::Result<Map<String, Value>> {
    let text = if argument == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text)?;
        text
    } else if let Some(path) = argument.strip_prefix('@') {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
    } else {
        argument.to_owned()
    };
    match serde_json::from_str(&text).context("the content is not valid JSON")? {
        Value::Object(map) => Ok(map),
        _ => bail!("the content must be a JSON object"),
    }
}

fn record_json(record: Record<Map<String, Value>>) -> Value {
    json!({
        "type": record.entity.entity_type.to_string(),
        "id": record.entity.id.to_string(),
        "rev": record.rev,
        "permission": match record.permission {
            Permission::Read => "read",
            Permission::Write => "write",
        },
        "parents": record.parents.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "attachments": attachments_json(&record),
        "content": Value::Object(record.content),
    })
}

fn attachments_json(record: &Record<Map<String, Value>>) -> Value {
    record
        .attachments
        .iter()
        .map(|a| json!({"id": a.id.to_string(), "bytes": a.len}))
        .collect()
}

/// `tessera whoami`.
pub(crate) async fn whoami(args: WhoamiArgs) -> anyhow::Result<ExitCode> {
    let (session, known) = connect(&args.connection).await?;
    known.save()?;
    let fingerprint = session.fingerprint();
    ui::print_json(&json!({
        "owner": session.owner().to_string(),
        "fingerprint": fingerprint.to_string(),
        "short_code": fingerprint.short_code(),
        "server": args.connection.server,
        "key_file": args.connection.key.display().to_string(),
    }))?;
    Ok(ExitCode::SUCCESS)
}

/// `tessera admin compact`: compacts the server's database in place, with the server stopped.
pub(crate) fn compact(args: &CompactArgs) -> anyhow::Result<ExitCode> {
    let path = args.data_dir.join(tessera_server::serve::DATABASE_FILE);
    if !path.exists() {
        bail!(
            "there is no database at {}; give the directory `tessera serve` uses with --data-dir",
            path.display()
        );
    }
    let mut store = tessera_store::RedbStore::open(&path).with_context(|| {
        format!(
            "cannot open the database at {} (stop the server that uses it, then compact)",
            path.display()
        )
    })?;
    let done = store
        .compact()
        .with_context(|| format!("cannot compact the database at {}", path.display()))?;
    ui::print_json(&json!({
        "database": path.display().to_string(),
        "before_bytes": done.before_bytes,
        "after_bytes": done.after_bytes,
    }))?;
    Ok(ExitCode::SUCCESS)
}
