//! The session's cache of opened exchange secrets is bounded: with a single secret kept opened, every partner's
//! records are still found, read, shared, revoked and rotated, the others re-opened from the key bag without RSA.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "a test fails loudly on the first broken expectation"
)]

mod common;

use common::Fixture;
use serde_json::json;
use tessera::{
    DEFAULT_EXCHANGE_CACHE_CAPACITY, EntityRef, EntityType, NewRecord, OwnerKind, Session, Share,
};

const PARTNERS: usize = 4;

fn note() -> EntityType {
    EntityType::new("Note").unwrap()
}

/// A doctor who shared one note with each partner and received one note from each; the doctor's third login,
/// whose key bag holds every exchange secret, and the records.
struct World {
    fixture: Fixture,
    doctor: Session,
    partners: Vec<Session>,
    /// The doctor's note shared with partner `i`.
    mine: Vec<EntityRef>,
    /// Partner `i`'s note shared with the doctor.
    theirs: Vec<EntityRef>,
}

async fn world() -> World {
    let fixture = Fixture::start().await;
    let (doctor_keys, doctor) = fixture.session(OwnerKind::Hcp).await;
    let mut partners = Vec::new();
    for _ in 0..PARTNERS {
        partners.push(fixture.session(OwnerKind::Hcp).await.1);
    }
    let mut mine = Vec::new();
    for (i, partner) in partners.iter().enumerate() {
        let saved = doctor
            .create_record(
                NewRecord::from_value(note(), &json!({"text": format!("for partner {i}")}))
                    .unwrap()
                    .share_with(Share::read(partner.owner())),
            )
            .await
            .unwrap();
        mine.push(saved.entity);
    }
    let mut theirs = Vec::new();
    for (i, partner) in partners.iter().enumerate() {
        let saved = partner
            .create(&note(), &json!({"text": format!("from partner {i}")}))
            .await
            .unwrap();
        partner
            .share(&saved.entity, &[Share::write(doctor.owner())])
            .await
            .unwrap();
        theirs.push(saved.entity);
    }
    // The second login opens the partners' exchange data with RSA and seals it into the key bag; the third needs
    // no RSA at all.
    drop(fixture.login(&doctor_keys).await);
    let doctor = fixture.login(&doctor_keys).await;
    World {
        fixture,
        doctor,
        partners,
        mine,
        theirs,
    }
}

#[tokio::test]
async fn with_one_secret_opened_every_partner_is_still_served_and_nothing_needs_rsa() {
    let world = world().await;
    let doctor = &world.doctor;
    let at_login = doctor.stats();
    // One exchange with itself, one to and one from each partner.
    assert_eq!(at_login.exchange_secrets, 1 + 2 * PARTNERS);
    assert_eq!(at_login.opened_with_rsa, 0);
    doctor.set_exchange_cache_capacity(1);
    assert_eq!(doctor.stats().opened_exchange_secrets, 1);

    for (i, entity) in world.theirs.iter().enumerate() {
        let record = doctor.get_json(entity).await.unwrap();
        assert_eq!(record.content["text"], json!(format!("from partner {i}")));
        assert!(doctor.stats().opened_exchange_secrets <= 1);
    }
    for (i, entity) in world.mine.iter().enumerate() {
        let record = doctor.get_json(entity).await.unwrap();
        assert_eq!(record.content["text"], json!(format!("for partner {i}")));
    }
    // A write delegate updates a partner's note through a re-opened secret.
    let rev = doctor.get_json(&world.theirs[0]).await.unwrap().rev;
    doctor
        .update(
            &world.theirs[0],
            rev,
            &json!({"text": "updated by the doctor"}),
        )
        .await
        .unwrap();
    assert_eq!(
        world.partners[0]
            .get_json(&world.theirs[0])
            .await
            .unwrap()
            .content["text"],
        json!("updated by the doctor")
    );

    // Sharing with a known partner reuses its evicted exchange data instead of making new exchange data.
    doctor
        .share(&world.mine[0], &[Share::read(world.partners[1].owner())])
        .await
        .unwrap();
    assert_eq!(
        world.partners[1]
            .get_json(&world.mine[0])
            .await
            .unwrap()
            .content["text"],
        json!("for partner 0")
    );

    // Revoke-and-rotate finds the delegation through the partner's (evicted) exchange secret.
    let rotated = doctor
        .revoke_and_rotate(&world.mine[2], &[world.partners[2].owner()])
        .await
        .unwrap();
    assert_eq!(rotated.removed, 1);
    assert!(world.partners[2].get_json(&world.mine[2]).await.is_err());
    assert_eq!(
        doctor.get_json(&world.mine[2]).await.unwrap().content["text"],
        json!("for partner 2")
    );

    let end = doctor.stats();
    assert_eq!(
        end.opened_with_rsa, 0,
        "an evicted secret is never re-opened with RSA"
    );
    assert_eq!(end.created_exchange_data, 0);
    assert_eq!(end.exchange_secrets, 1 + 2 * PARTNERS);
    assert!(end.opened_exchange_secrets <= 1);
    assert!(
        end.reopened_from_key_bag >= PARTNERS,
        "secrets were re-opened from their sealed entries: {end:?}"
    );
    world.fixture.server.shutdown().await;
}

#[tokio::test]
async fn the_default_cache_holds_every_secret_of_a_small_bag_and_a_zero_capacity_keeps_one() {
    let world = world().await;
    let doctor = &world.doctor;
    const { assert!(2 * PARTNERS < DEFAULT_EXCHANGE_CACHE_CAPACITY) };
    for entity in world.theirs.iter().chain(&world.mine) {
        doctor.get_json(entity).await.unwrap();
    }
    let stats = doctor.stats();
    assert_eq!(stats.opened_exchange_secrets, stats.exchange_secrets);
    assert_eq!(stats.reopened_from_key_bag, 0);

    doctor.set_exchange_cache_capacity(0);
    assert_eq!(doctor.stats().opened_exchange_secrets, 1);
    for entity in world.theirs.iter().chain(&world.mine) {
        doctor.get_json(entity).await.unwrap();
    }
    world.fixture.server.shutdown().await;
}
