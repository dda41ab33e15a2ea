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
        println!(
            "  Not hidden yet: exchange data records name their two parties (the server can tell that two owners"
        );
        println!(
            "  exchange keys), and the server sees counts, sizes and timing; DESIGN.md §10 plans to hide them."
        );
        Ok(())
    }
}
