//! Group commit of entity creations: create requests that arrive while a commit is running share the next one,
//! so that concurrent clients are not limited to one durable commit each.
//!
//! Each request stays all-or-none: if a shared commit fails (one request names an existing id, say), every request
//! of the group is committed again on its own and gets its own answer.

use std::sync::Arc;
use std::sync::mpsc;

use tessera_sharing::EncryptedEntity;
use tessera_store::{Revision, Store};
use tokio::sync::oneshot;

/// Most entities one shared commit takes.
const MAX_GROUP: usize = 1024;

type Reply = oneshot::Sender<tessera_store::Result<Vec<Revision>>>;

struct Job {
    entities: Vec<EncryptedEntity>,
    reply: Reply,
}

/// The writer thread's queue.
pub(crate) struct Committer {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for Committer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Committer")
    }
}

impl Committer {
    /// Starts the writer thread; it ends when the committer is dropped.
    pub(crate) fn start(store: Arc<dyn Store>) -> std::io::Result<Self> {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("tessera-commit".into())
            .spawn(move || writer(store.as_ref(), &queue))?;
        Ok(Self { jobs })
    }

    /// Creates `entities` (all or none), possibly in one commit with other requests'.
    pub(crate) async fn create(
        &self,
        entities: Vec<EncryptedEntity>,
    ) -> Option<tessera_store::Result<Vec<Revision>>> {
        let (reply, answer) = oneshot::channel();
        self.jobs.send(Job { entities, reply }).ok()?;
        answer.await.ok()
    }
}

fn writer(store: &dyn Store, queue: &mpsc::Receiver<Job>) {
    while let Ok(first) = queue.recv() {
        let mut count = first.entities.len();
        let mut jobs = vec![first];
        while count < MAX_GROUP {
            let Ok(job) = queue.try_recv() else { break };
            count += job.entities.len();
            jobs.push(job);
        }
        if jobs.len() == 1 {
            for job in jobs {
                let result = store.create_entities(&job.entities);
                let _ = job.reply.send(result);
            }
            continue;
        }
        let lengths: Vec<usize> = jobs.iter().map(|job| job.entities.len()).collect();
        let mut replies = Vec::with_capacity(jobs.len());
        let mut all = Vec::with_capacity(count);
        for job in jobs {
            all.extend(job.entities);
            replies.push(job.reply);
        }
        match store.create_entities(&all) {
            Ok(revisions) => {
                let mut revisions = revisions.into_iter();
                for (reply, length) in replies.into_iter().zip(lengths) {
                    let _ = reply.send(Ok(revisions.by_ref().take(length).collect()));
                }
            }
            Err(_) => {
                // One request spoiled the group: give every request its own commit and its own answer.
                let mut entities = all.into_iter();
                for (reply, length) in replies.into_iter().zip(lengths) {
                    let own: Vec<EncryptedEntity> = entities.by_ref().take(length).collect();
                    let _ = reply.send(store.create_entities(&own));
                }
            }
        }
    }
}
