//! The narration: sections, checks, the two columns, the summary, and the formatting helpers.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Map, Value};
use tessera::stored::EncryptedEntity;
use tessera::{Client, EntityId, OwnerId, OwnerKeys, Permission, Session, Tofu};
use tessera_store::Store;

use super::{Demo, LEFT, PRINCIPLES};

impl Demo {
    pub(super) fn section(&mut self, principle: usize) {
        println!();
        println!(
            "== P{principle}  {}",
            PRINCIPLES.get(principle - 1).copied().unwrap_or_default()
        );
        self.results.entry(principle).or_default();
        self.current = principle;
    }

    pub(super) fn check(&mut self, principle: usize, what: &str, ok: bool) {
        let mark = if ok { "[ok]  " } else { "[FAIL]" };
        println!("  {mark} P{principle}: {what}");
        self.results.entry(principle).or_default().push(ok);
    }

    /// After an error, every principle not fully shown fails.
    pub(super) fn fail_rest(&mut self, message: &str) {
        println!();
        println!("  [FAIL] {message}");
        let current = self.current;
        for principle in 1..=PRINCIPLES.len() {
            let results = self.results.entry(principle).or_default();
            if results.is_empty() || principle == current {
                results.push(false);
            }
        }
    }

    pub(super) fn summary(&self) -> ExitCode {
        println!();
        println!("Summary");
        let mut all = true;
        for (index, text) in PRINCIPLES.iter().enumerate() {
            let principle = index + 1;
            let pass = self
                .results
                .get(&principle)
                .is_some_and(|results| !results.is_empty() && results.iter().all(|ok| *ok));
            all &= pass;
            println!(
                "P{principle} {}  {text}",
                if pass { "PASS" } else { "FAIL" }
            );
        }
        if all {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }
    }

    /// Prints what a party sees (left) beside what the server stores (right).
    pub(super) fn columns(&self, left: &[String], right: &[String]) {
        println!("  {}+{}", "-".repeat(LEFT + 1), "-".repeat(58));
        for index in 0..left.len().max(right.len()) {
            let left = fit(left.get(index).map_or("", String::as_str), LEFT);
            let right = right.get(index).map_or("", String::as_str);
            println!("  {left:<LEFT$} | {right}");
        }
    }

    pub(super) async fn login(&self, keys: OwnerKeys) -> anyhow::Result<Session> {
        Ok(Session::login(Client::new(&self.url), keys, Tofu::new()).await?)
    }

    pub(super) fn entity(&self, id: EntityId) -> anyhow::Result<EncryptedEntity> {
        self.store
            .get_entity(id)?
            .with_context(|| format!("entity {id} is not stored"))
    }

    pub(super) fn database(&self) -> anyhow::Result<Vec<u8>> {
        std::fs::read(&self.db_path)
            .with_context(|| format!("cannot read {}", self.db_path.display()))
    }

    pub(super) fn party(&self, id: Option<OwnerId>) -> String {
        match id {
            None => "hidden".into(),
            Some(id) => {
                let text = short(&id.to_string());
                match self.names.get(&id) {
                    Some(name) => format!("{text}({})", name.trim_start_matches("Dr ")),
                    None => text,
                }
            }
        }
    }

    /// The stored form of an entity, line by line.
    pub(super) fn entity_lines(&self, entity: &EncryptedEntity) -> Vec<String> {
        let mut lines = vec![
            format!(
                "{} {}…, revision {}",
                entity.entity_type,
                short(&entity.id.to_string()),
                entity.rev
            ),
            format!("  public: {}", Value::Object(entity.public.clone())),
            format!(
                "  encrypted_self: {} B of AES-256-GCM",
                entity.encrypted_self.0.len()
            ),
            format!(
                "  {} delegation(s) under opaque keys:",
                entity.security_metadata.delegations.len()
            ),
        ];
        for (key, delegation) in &entity.security_metadata.delegations {
            lines.push(format!(
                "    {}… {} -> {}, {}{}",
                short(&key.to_string()),
                self.party(delegation.delegator),
                self.party(delegation.delegate),
                permission(delegation.permission),
                if delegation.parents.is_empty() {
                    ", root"
                } else {
                    ""
                }
            ));
        }
        for attachment in &entity.attachments {
            lines.push(format!(
                "  attachment: {} B encrypted, sealed key {} B",
                attachment.encrypted_len,
                attachment.sealed_key.0.len()
            ));
        }
        lines
    }

    /// One line per stored entity: type, tag, who its delegations name.
    pub(super) fn summary_line(&self, entity: &EncryptedEntity) -> String {
        let tag = entity.secret_foreign_keys.iter().next().map_or_else(
            || "no tag".into(),
            |tag| format!("tag {}…", short(&tag.to_string())),
        );
        let parties: Vec<String> = entity
            .security_metadata
            .delegations
            .values()
            .map(|d| {
                let name = |id: Option<OwnerId>| {
                    id.and_then(|id| self.names.get(&id).copied())
                        .map_or("hidden", |name| name.trim_start_matches("Dr "))
                };
                format!("{}->{}", name(d.delegator), name(d.delegate))
            })
            .collect();
        format!(
            "{:<12}{}… {:<14} {}",
            entity.entity_type.to_string(),
            short(&entity.id.to_string()),
            tag,
            parties.join(", ")
        )
    }
}

pub(super) fn object(value: Value) -> anyhow::Result<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map),
        _ => anyhow::bail!("not a JSON object"),
    }
}

/// Field `name` of a record's content, or `null`.
pub(super) fn field<'a>(content: &'a Map<String, Value>, name: &str) -> &'a Value {
    content.get(name).unwrap_or(&Value::Null)
}

/// A JSON value as text, strings without their quotes.
pub(super) fn plain(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

pub(super) fn outcome(result: &tessera::Result<tessera::Record<Map<String, Value>>>) -> String {
    match result {
        Ok(_) => "read it (!)".into(),
        Err(error) => error.to_string(),
    }
}

pub(super) fn outcome_of<T>(result: &tessera::Result<T>) -> String {
    match result {
        Ok(_) => "decrypted (!)".into(),
        Err(error) => error.to_string(),
    }
}

pub(super) fn permission(permission: Permission) -> &'static str {
    match permission {
        Permission::Read => "read",
        Permission::Write => "write",
    }
}

pub(super) fn yes(value: bool) -> &'static str {
    if value { "yes" } else { "no" }
}

/// The first 8 characters of an id.
pub(super) fn short(text: &str) -> String {
    text.chars().take(8).collect()
}

/// `text` cut to `width` characters.
pub(super) fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_owned()
    } else {
        let mut cut: String = text.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && haystack
            .windows(needle.len())
            .any(|window| window == needle)
}

/// Deterministic bytes without long runs (xorshift64*), standing in for an X-ray.
pub(super) fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}
