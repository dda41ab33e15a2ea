//! P6: stored entities show no patient link, no sharing graph, no visit pattern.

use anyhow::Context;
use tessera::stored::EncryptedEntity;
use tessera_store::Store;

use super::report::{contains, hex};
use super::{CharlieFile, Demo};

impl Demo {
    pub(super) fn p6(&mut self, file: &CharlieFile) -> anyhow::Result<()> {
        self.section(6);
        let patient = self.entity(file.patient)?;
        let contacts = file
            .contacts
            .iter()
            .map(|id| self.entity(*id))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let lab = self.entity(file.lab_result)?;
        let reading = self.entity(file.reading)?;
        let dana_visit = self.entity(file.dana_visit)?;

        let mut right = Vec::new();
        for entity in
            std::iter::once(&patient)
                .chain(&contacts)
                .chain([&lab, &reading, &dana_visit])
        {
            right.push(self.summary_line(entity));
        }
        self.columns(
            &[
                "The parties know: Charlie's record has 3".into(),
                "visits and a lab result; Charlie shared a".into(),
                "reading with Dr Bob.".into(),
                "The server sees (right): records of a few".into(),
                "types; 3 Contacts share one tag, which no".into(),
                "record of Charlie carries; the parent id is".into(),
                "sealed; Charlie is never named; the last".into(),
                "Contact is another patient's (Dana).".into(),
            ],
            &right,
        );

        let charlie_forms = [file.charlie.to_string(), hex(file.charlie.as_bytes())];
        let patient_forms = [file.patient.to_string(), hex(file.patient.as_bytes())];
        let mut charlie_named = false;
        for entity in std::iter::once(&patient)
            .chain(&contacts)
            .chain([&lab, &reading])
        {
            let text = serde_json::to_string(entity)?;
            charlie_named |= charlie_forms
                .iter()
                .any(|form| text.contains(form.as_str()));
        }
        let mut parent_named = false;
        for entity in contacts.iter().chain([&lab]) {
            let text = serde_json::to_string(entity)?;
            parent_named |= patient_forms
                .iter()
                .any(|form| text.contains(form.as_str()));
        }
        self.check(
            6,
            "no stored record of Charlie's file, nor the reading, contains Charlie's owner id",
            !charlie_named,
        );
        self.check(
            6,
            "no child record holds the patient record's id in clear (the link is sealed)",
            !parent_named,
        );

        let tags = |entity: &EncryptedEntity| entity.secret_foreign_keys.clone();
        let visit_tags = contacts.first().map(tags).unwrap_or_default();
        let same_visit_tag =
            contacts.iter().all(|c| tags(c) == visit_tags) && !visit_tags.is_empty();
        let per_type = visit_tags.is_disjoint(&tags(&lab)) && !tags(&lab).is_empty();
        let per_patient = visit_tags.is_disjoint(&tags(&dana_visit));
        self.check(
            6,
            "search tags differ per child type (visits, lab results) and per patient (Charlie, Dana)",
            same_visit_tag && per_type && per_patient,
        );
        let owner_record = serde_json::to_string(
            &self
                .store
                .get_owner(file.charlie)?
                .context("Charlie's owner record")?
                .value,
        )?;
        let patient_text = serde_json::to_string(&patient)?;
        let tag_exposed = visit_tags.iter().any(|tag| {
            let tag = tag.to_string();
            owner_record.contains(&tag) || patient_text.contains(&tag)
        });
        self.check(
            6,
            "the visits' tag appears on no record of Charlie: 3 visits of someone, not whose",
            !tag_exposed,
        );
        let database = self.database()?;
        let sensitive = [
            "Charlie Martin",
            "1984-02-29",
            "sprained ankle",
            "physiotherapy",
            "HbA1c",
            "glucose",
            "Dana Smith",
            "influenza",
        ];
        let found: Vec<&str> = sensitive
            .iter()
            .copied()
            .filter(|word| contains(&database, word.as_bytes()))
            .collect();
        self.check(
            6,
            "the database file holds no name, birth date, visit reason or result in clear",
            found.is_empty(),
        );
        // The sharing graph: every owner of the demonstration, looked for where a dump could name it.
        let mut named_in_records = 0;
        for entity in
            std::iter::once(&patient)
                .chain(&contacts)
                .chain([&lab, &reading, &dana_visit])
        {
            named_in_records += entity
                .security_metadata
                .delegations
                .values()
                .filter(|d| d.delegator.is_some() || d.delegate.is_some())
                .count();
        }
        let mut parents = 0;
        let mut waiting = 0;
        for owner in self.names.keys() {
            let record = self.store.get_owner(*owner)?.context("an owner record")?;
            parents += usize::from(record.value.parent.is_some());
            waiting += self.store.inbox(*owner)?.len();
        }
        println!(
            "  The sharing graph at rest: {named_in_records} delegations name an owner, {parents} owner records name a parent,"
        );
        println!(
            "  no exchange data is stored ({waiting} inbox messages wait, each naming only its recipient)."
        );
        self.check(
            6,
            "no stored delegation names an owner and no owner record names the doctor who registered it",
            named_in_records == 0 && parents == 0,
        );
        println!(
            "  Not hidden yet: records of one pair and type share a delegation key and one patient's children share a"
        );
        println!(
            "  search tag, so they group per patient (tests/tests/curious_operator.rs measures it); the server sees"
        );
        println!(
            "  counts, sizes up to a padding class, and timing. docs/threat-model.md lists what remains."
        );
        Ok(())
    }
}
