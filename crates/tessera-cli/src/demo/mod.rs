//! `tessera demo`: every principle of DESIGN.md §1 shown end to end on an in-process server with a redb database,
//! with what each party sees beside what the server stores, real checks, and a PASS/FAIL line per principle.

mod access;
mod metadata;
mod owners;
mod recovery;
mod report;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use tessera::{EntityId, OwnerId, Session};
use tessera_server::serve::DATABASE_FILE;
use tessera_server::{Server, ServerConfig};
use tessera_store::RedbStore;

use crate::cli::DemoArgs;

/// The principles, as DESIGN.md §1 states them (shortened).
const PRINCIPLES: [&str; 6] = [
    "each owner has its own key pair; only the owner holds the private key",
    "an owner creates data, encrypts its sensitive content and shares it",
    "only owners granted access can retrieve a record from the server",
    "only granted owners can decrypt: not the server operator, not other owners",
    "the private key is the owner's only secret; everything else is derived",
    "stored entities show no patient link, no sharing graph, no visit pattern",
];

/// Width of the left column ("what a party sees").
const LEFT: usize = 48;

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let temporary;
    let dir = match args.data_dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            dir
        }
        None => {
            temporary = tempfile::tempdir().context("cannot create a temporary directory")?;
            temporary.path().to_owned()
        }
    };
    let db_path = dir.join(DATABASE_FILE);
    let store = Arc::new(RedbStore::open(&db_path).context("cannot open the demo database")?);
    let admin_token = EntityId::generate()?.to_string();
    let config = ServerConfig::new("127.0.0.1:0".parse()?, admin_token.clone());
    let server = Server::start(config, store.clone()).await?;
    let url = format!("http://{}", server.local_addr());

    println!("Tessera demonstration: end-to-end encrypted health records, seen from both sides");
    println!(
        "server: in-process at {url}, database {}",
        db_path.display()
    );
    println!("cast:   Dr Alice and Dr Bob (healthcare parties), Charlie (a patient)");
    println!("Left column: what a party sees. Right column: what the server stores.");
    println!(
        "Names in parentheses are the narrator's: the server knows owners by random ids only."
    );

    let mut demo = Demo {
        store,
        db_path,
        url,
        names: HashMap::new(),
        results: BTreeMap::new(),
        current: 0,
    };
    let outcome = demo.play(&admin_token).await;
    server.shutdown().await;
    if let Err(error) = outcome {
        demo.fail_rest(&format!("the demonstration stopped: {error:#}"));
    }
    Ok(demo.summary())
}

struct Demo {
    store: Arc<RedbStore>,
    db_path: PathBuf,
    url: String,
    names: HashMap<OwnerId, &'static str>,
    results: BTreeMap<usize, Vec<bool>>,
    /// The principle being shown.
    current: usize,
}

/// What the demonstration keeps between sections.
struct Cast {
    alice: Session,
    bob: Session,
    charlie: Session,
    charlie_key_file: tessera::SecretString,
}

impl Demo {
    async fn play(&mut self, admin_token: &str) -> anyhow::Result<()> {
        let cast = self.p1(admin_token).await?;
        let note = self.p2(&cast).await?;
        self.p3(&cast, &note).await?;
        self.p4(&cast, &note).await?;
        let file = self.p5(cast).await?;
        self.p6(&file)?;
        Ok(())
    }
}

/// Ids of the records of Charlie's file, for P6.
struct CharlieFile {
    charlie: OwnerId,
    patient: EntityId,
    contacts: Vec<EntityId>,
    lab_result: EntityId,
    reading: EntityId,
    dana_visit: EntityId,
}
