//! The `ClientRepository` and `AdminRepository` contract.

use std::collections::BTreeSet;

use chrono::Duration;
use outcall_domain::admin::{AdminAccount, AdminUsername};
use outcall_domain::ports::{RepositoryError, UniqueField};
use outcall_domain::queries::{CallListQuery, ClientCounts, ClientListQuery, SearchTerm};
use outcall_domain::{CallStatus, Client, ClientPatch, ClientStatus, MetaPatch};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::Repos;
use crate::fixtures::{
    agent, at_ms, call, client, client_id, conversation, email, full_client, hash, insert_call,
    insert_client, phone, sid, text,
};

fn query(
    status: Option<ClientStatus>,
    search: Option<&str>,
    limit: u32,
    offset: u64,
) -> ClientListQuery {
    ClientListQuery {
        status,
        search: search.map(|raw| {
            SearchTerm::parse(raw)
                .expect("valid search")
                .expect("non-blank search")
        }),
        limit,
        offset,
    }
}

fn ids(clients: &[Client]) -> Vec<String> {
    clients.iter().map(|c| c.id.to_string()).collect()
}

/// A client with every field set, and one with every optional field unset, read back exactly;
/// `find_with_secret` returns the stored hash; unknown ids are `None`.
pub async fn a_client_reads_back_exactly_as_inserted(repos: Repos) {
    let full = full_client("full1");
    let bare = client("bare1");
    repos
        .clients
        .insert(&full, &hash("$argon2id$full"))
        .await
        .expect("insert full");
    repos
        .clients
        .insert(&bare, &hash("$argon2id$bare"))
        .await
        .expect("insert bare");

    assert_eq!(
        repos.clients.find(&full.id).await.expect("find"),
        Some(full.clone())
    );
    assert_eq!(
        repos.clients.find(&bare.id).await.expect("find"),
        Some(bare.clone())
    );

    let (found, secret) = repos
        .clients
        .find_with_secret(&full.id)
        .await
        .expect("find_with_secret")
        .expect("exists");
    assert_eq!(found, full);
    assert_eq!(secret.as_phc(), "$argon2id$full");
    let (_, secret) = repos
        .clients
        .find_with_secret(&bare.id)
        .await
        .expect("find_with_secret")
        .expect("exists");
    assert_eq!(secret.as_phc(), "$argon2id$bare");

    let unknown = client_id("nobody");
    assert_eq!(repos.clients.find(&unknown).await.expect("find"), None);
    assert!(
        repos
            .clients
            .find_with_secret(&unknown)
            .await
            .expect("find")
            .is_none()
    );
}

/// A second client with an existing id is `Duplicate(ClientId)` and changes nothing.
pub async fn inserting_a_client_with_a_taken_id_is_a_duplicate_client_id(repos: Repos) {
    let first = client("dupid");
    repos
        .clients
        .insert(&first, &hash("first"))
        .await
        .expect("insert");
    let mut second = full_client("dupid");
    second.meta.email = email("someone.else@example.com");

    let err = repos
        .clients
        .insert(&second, &hash("second"))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, RepositoryError::Duplicate(UniqueField::ClientId)),
        "{err:?}"
    );
    let (stored, secret) = repos
        .clients
        .find_with_secret(&first.id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored, first);
    assert_eq!(secret.as_phc(), "first");
}

/// Emails are unique ignoring case (including non-ASCII letters): the second insert is
/// `Duplicate(Email)` and stores nothing; a different email is accepted.
pub async fn inserting_a_client_whose_email_differs_only_by_case_is_a_duplicate_email(
    repos: Repos,
) {
    let mut first = client("mail1");
    first.meta.email = email("Mixed.Case@Example.com");
    insert_client(&repos, &first).await;
    let mut zoe = client("mail2");
    zoe.meta.email = email("zoë@exämple.de");
    insert_client(&repos, &zoe).await;

    for (n, taken) in [
        "mixed.case@EXAMPLE.COM",
        "MIXED.CASE@example.com",
        "ZOË@EXÄMPLE.DE",
    ]
    .into_iter()
    .enumerate()
    {
        let mut second = client(&format!("mailx{n}"));
        second.meta.email = email(taken);
        let err = repos
            .clients
            .insert(&second, &hash("h"))
            .await
            .expect_err(taken);
        assert!(
            matches!(err, RepositoryError::Duplicate(UniqueField::Email)),
            "{taken}: {err:?}"
        );
        assert_eq!(
            repos.clients.find(&second.id).await.expect("find"),
            None,
            "{taken}"
        );
    }

    let mut other = client("mail3");
    other.meta.email = email("mixed.case@example.org");
    insert_client(&repos, &other).await;
    assert_eq!(
        repos.clients.find(&other.id).await.expect("find"),
        Some(other)
    );
}

/// Changing a client's email to another client's (in any case) is `Duplicate(Email)` and
/// changes nothing; changing the case of one's own email is fine; the old email is then free.
pub async fn updating_a_client_to_another_clients_email_is_a_duplicate_email(repos: Repos) {
    let mut a = client("ema");
    a.meta.email = email("owner.a@example.com");
    let mut b = client("emb");
    b.meta.email = email("owner.b@example.com");
    insert_client(&repos, &a).await;
    insert_client(&repos, &b).await;

    let steal = ClientPatch {
        status: Some(ClientStatus::Inactive),
        meta: MetaPatch {
            email: Some(email("OWNER.A@example.com")),
            ..MetaPatch::default()
        },
        ..ClientPatch::default()
    };
    let err = repos
        .clients
        .update(&b.id, &steal, at_ms(1_000))
        .await
        .expect_err("duplicate");
    assert!(
        matches!(err, RepositoryError::Duplicate(UniqueField::Email)),
        "{err:?}"
    );
    assert_eq!(
        repos.clients.find(&b.id).await.expect("find"),
        Some(b.clone())
    );

    let recase = ClientPatch {
        meta: MetaPatch {
            email: Some(email("Owner.A@Example.com")),
            ..MetaPatch::default()
        },
        ..ClientPatch::default()
    };
    let updated = repos
        .clients
        .update(&a.id, &recase, at_ms(2_000))
        .await
        .expect("own email in another case")
        .expect("exists");
    assert_eq!(updated.meta.email.as_str(), "Owner.A@Example.com");

    let moved = ClientPatch {
        meta: MetaPatch {
            email: Some(email("owner.b.new@example.com")),
            ..MetaPatch::default()
        },
        ..ClientPatch::default()
    };
    repos
        .clients
        .update(&b.id, &moved, at_ms(3_000))
        .await
        .expect("fresh email")
        .expect("exists");
    // The old address is free again, the new one is taken.
    let mut c = client("emc");
    c.meta.email = email("Owner.B@example.com");
    insert_client(&repos, &c).await;
    let mut d = client("emd");
    d.meta.email = email("OWNER.B.NEW@example.com");
    let err = repos
        .clients
        .insert(&d, &hash("h"))
        .await
        .expect_err("taken");
    assert!(
        matches!(err, RepositoryError::Duplicate(UniqueField::Email)),
        "{err:?}"
    );
}

/// Only the fields a patch names change; `Some(None)` clears an optional field; `updated_at`
/// becomes `at`; the search text follows the new values; an unknown id gives `None`.
pub async fn a_partial_client_update_changes_only_the_given_fields(repos: Repos) {
    let original = full_client("patch1");
    repos
        .clients
        .insert(&original, &hash("kept-hash"))
        .await
        .expect("insert");
    let bystander = full_client("patch2");
    insert_client(&repos, &bystander).await;

    let at = at_ms(300_000);
    let patch = ClientPatch {
        status: Some(ClientStatus::Active),
        agent_id: Some(agent("agent_new")),
        twilio_phone_number: None,
        meta: MetaPatch {
            full_name: Some(text("Renamed Person")),
            email: None,
            phone: Some(phone("+33612345678")),
            business_name: Some(Some(text("New Business"))),
            city: Some(None),
            job_title: None,
            notes: Some(None),
        },
    };
    let updated = repos
        .clients
        .update(&original.id, &patch, at)
        .await
        .expect("update")
        .expect("exists");

    let mut expected = original.clone();
    expected.status = ClientStatus::Active;
    expected.agent_id = agent("agent_new");
    expected.meta.full_name = text("Renamed Person");
    expected.meta.phone = phone("+33612345678");
    expected.meta.business_name = Some(text("New Business"));
    expected.meta.city = None;
    expected.meta.notes = None;
    expected.updated_at = at;
    assert_eq!(updated, expected);
    let (stored, secret) = repos
        .clients
        .find_with_secret(&original.id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored, expected);
    assert_eq!(secret.as_phc(), "kept-hash");
    assert_eq!(
        repos.clients.find(&bystander.id).await.expect("find"),
        Some(bystander.clone())
    );

    // The search text was recomputed from the new name and business name.
    let found = repos
        .clients
        .list(&query(None, Some("renamed PERSON"), 10, 0))
        .await
        .expect("list");
    assert_eq!(ids(&found.clients), vec!["patch1".to_owned()]);
    let found = repos
        .clients
        .list(&query(None, Some("new business"), 10, 0))
        .await
        .expect("list");
    assert_eq!(ids(&found.clients), vec!["patch1".to_owned()]);
    let found = repos
        .clients
        .list(&query(None, Some("Zoë O'Connor"), 10, 0))
        .await
        .expect("list");
    assert_eq!(ids(&found.clients), vec!["patch2".to_owned()]);

    // An empty patch only touches `updated_at`.
    let later = at + Duration::milliseconds(1);
    let touched = repos
        .clients
        .update(&original.id, &ClientPatch::default(), later)
        .await
        .expect("update")
        .expect("exists");
    expected.updated_at = later;
    assert_eq!(touched, expected);

    let unknown = repos
        .clients
        .update(&client_id("ghost"), &patch, at)
        .await
        .expect("update of nobody");
    assert_eq!(unknown, None);
    assert_eq!(
        repos.clients.find(&client_id("ghost")).await.expect("find"),
        None
    );
}

/// `replace_secret` stores the new hash, bumps `token_version` by one each time and returns
/// the updated client; an unknown id gives `None`.
pub async fn replacing_a_secret_bumps_the_token_version_and_returns_the_updated_client(
    repos: Repos,
) {
    let original = full_client("sec1");
    repos
        .clients
        .insert(&original, &hash("old"))
        .await
        .expect("insert");

    let at = at_ms(60_000);
    let updated = repos
        .clients
        .replace_secret(&original.id, &hash("new"), at)
        .await
        .expect("replace")
        .expect("exists");
    let mut expected = original.clone();
    expected.token_version = original.token_version + 1;
    expected.updated_at = at;
    assert_eq!(updated, expected);
    let (stored, secret) = repos
        .clients
        .find_with_secret(&original.id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored, expected);
    assert_eq!(secret.as_phc(), "new");

    let again = repos
        .clients
        .replace_secret(&original.id, &hash("newer"), at_ms(61_000))
        .await
        .expect("replace")
        .expect("exists");
    assert_eq!(again.token_version, original.token_version + 2);

    let unknown = repos
        .clients
        .replace_secret(&client_id("ghost"), &hash("x"), at)
        .await
        .expect("replace of nobody");
    assert_eq!(unknown, None);
}

/// Leaving Active bumps `token_version` (so old tokens stay dead after re-activation), and the
/// bump is stored; other updates leave it alone.
pub async fn suspending_a_client_stores_its_bumped_token_version(repos: Repos) {
    let mut original = full_client("susp");
    original.status = ClientStatus::Active;
    repos
        .clients
        .insert(&original, &hash("h"))
        .await
        .expect("insert");
    let suspend = ClientPatch {
        status: Some(ClientStatus::Suspended),
        ..ClientPatch::default()
    };
    let updated = repos
        .clients
        .update(&original.id, &suspend, at_ms(70_000))
        .await
        .expect("update")
        .expect("exists");
    assert_eq!(updated.token_version, original.token_version + 1);
    let reactivate = ClientPatch {
        status: Some(ClientStatus::Active),
        ..ClientPatch::default()
    };
    repos
        .clients
        .update(&original.id, &reactivate, at_ms(71_000))
        .await
        .expect("update");
    let stored = repos
        .clients
        .find(&original.id)
        .await
        .expect("find")
        .expect("exists");
    assert_eq!(stored.status, ClientStatus::Active);
    assert_eq!(
        stored.token_version,
        original.token_version + 1,
        "the bump is stored"
    );
}

/// Deleting a client removes its calls and revoked tokens (no orphans), leaves other clients
/// alone, answers `false` the second time, and frees its id and email.
pub async fn deleting_a_client_removes_it_with_its_calls_and_revoked_tokens(repos: Repos) {
    let doomed = full_client("doomed");
    let keeper = client("keeper");
    insert_client(&repos, &doomed).await;
    insert_client(&repos, &keeper).await;

    let mut with_sid = call(&doomed.id, "dcall1", at_ms(0), CallStatus::Completed);
    with_sid.data.call_sid = Some(sid(1));
    let mut with_conversation = call(&doomed.id, "dcall2", at_ms(1), CallStatus::Ringing);
    with_conversation.data.conversation_id = Some(conversation("conv_doomed"));
    let plain = call(&doomed.id, "dcall3", at_ms(2), CallStatus::Queued);
    let mut kept = call(&keeper.id, "kcall1", at_ms(3), CallStatus::Busy);
    kept.data.call_sid = Some(sid(2));
    for c in [&with_sid, &with_conversation, &plain, &kept] {
        insert_call(&repos, c).await;
    }
    repos
        .clients
        .revoke_token(&doomed.id, "doomed-token", Some(at_ms(86_400_000 * 365)))
        .await
        .expect("revoke");
    repos
        .clients
        .revoke_token(&keeper.id, "keeper-token", None)
        .await
        .expect("revoke");

    assert!(repos.clients.delete(&doomed.id).await.expect("delete"));

    assert_eq!(repos.clients.find(&doomed.id).await.expect("find"), None);
    for c in [&with_sid, &with_conversation, &plain] {
        assert_eq!(
            repos.calls.find_by_id(&c.id).await.expect("find"),
            None,
            "{}",
            c.id
        );
    }
    assert_eq!(repos.calls.find_by_sid(&sid(1)).await.expect("find"), None);
    assert_eq!(
        repos
            .calls
            .find_by_conversation(&conversation("conv_doomed"))
            .await
            .expect("find"),
        None
    );
    assert!(
        !repos
            .clients
            .is_token_revoked("doomed-token")
            .await
            .expect("revoked?")
    );
    let dashboard = repos
        .calls
        .dashboard(at_ms(-1_000_000))
        .await
        .expect("dashboard");
    assert_eq!(dashboard.total, 1, "only the keeper's call is left");

    assert_eq!(
        repos.clients.find(&keeper.id).await.expect("find"),
        Some(keeper.clone())
    );
    assert_eq!(
        repos.calls.find_by_id(&kept.id).await.expect("find"),
        Some(kept)
    );
    assert!(
        repos
            .clients
            .is_token_revoked("keeper-token")
            .await
            .expect("revoked?")
    );

    assert!(
        !repos
            .clients
            .delete(&doomed.id)
            .await
            .expect("second delete")
    );

    // Nothing of the old client lingers under a re-created one with the same id and email.
    insert_client(&repos, &doomed).await;
    let page = repos
        .calls
        .list_for_client(
            &doomed.id,
            &CallListQuery {
                status: None,
                limit: 10,
                offset: 0,
            },
        )
        .await
        .expect("list");
    assert_eq!((page.total, page.filtered, page.calls.len()), (0, 0, 0));
    assert!(
        !repos
            .clients
            .is_token_revoked("doomed-token")
            .await
            .expect("revoked?")
    );
}

/// Clients are listed newest `created_at` first; clients created at the same instant come in
/// descending `client_id` order (byte order). `total` counts every match on every page; an
/// offset past the end gives an empty page with the same total.
pub async fn listing_clients_pages_newest_first_ties_by_id_descending_with_the_total_of_all_matches(
    repos: Repos,
) {
    let mut all: Vec<Client> = (0..25)
        .map(|n| {
            let mut c = client(&format!("lc{n:02}"));
            // Seven distinct instants, so most clients share theirs with others.
            c.created_at = at_ms((n % 7) * 60_000 + 1);
            c.updated_at = c.created_at;
            c.status = ClientStatus::ALL[(n % 3) as usize];
            c
        })
        .collect();
    let mut shuffled = all.clone();
    shuffled.shuffle(&mut StdRng::seed_from_u64(25));
    for c in &shuffled {
        insert_client(&repos, c).await;
    }
    all.sort_by(|a, b| {
        b.created_at
            .cmp(&a.created_at)
            .then_with(|| b.id.cmp(&a.id))
    });

    let mut paged = Vec::new();
    for (offset, size) in [(0, 7), (7, 7), (14, 7), (21, 4)] {
        let page = repos
            .clients
            .list(&query(None, None, 7, offset))
            .await
            .expect("list");
        assert_eq!(page.total, 25, "offset {offset}");
        assert_eq!(page.clients.len(), size, "offset {offset}");
        paged.extend(page.clients);
    }
    assert_eq!(paged, all);

    for offset in [25, 1_000] {
        let page = repos
            .clients
            .list(&query(None, None, 7, offset))
            .await
            .expect("list");
        assert_eq!((page.total, page.clients.len()), (25, 0), "offset {offset}");
    }
    let first = repos
        .clients
        .list(&query(None, None, 1, 0))
        .await
        .expect("list");
    assert_eq!((first.total, first.clients), (25, vec![all[0].clone()]));
    let last = repos
        .clients
        .list(&query(None, None, 1, 24))
        .await
        .expect("list");
    assert_eq!(last.clients, vec![all[24].clone()]);
}

/// A status filter keeps only that status, in the same order, and `total` counts only the
/// matches; it combines with search and pagination.
pub async fn listing_clients_filters_by_status_and_counts_only_the_matches(repos: Repos) {
    let mut all = Vec::new();
    for n in 0..12i64 {
        let mut c = client(&format!("st{n:02}"));
        c.status = match n % 4 {
            0 | 1 => ClientStatus::Active,
            2 => ClientStatus::Inactive,
            _ => ClientStatus::Suspended,
        };
        c.created_at = at_ms(n * 1_000);
        if n % 2 == 0 {
            c.meta.business_name = Some(text(&format!("Even Shop {n}")));
        }
        insert_client(&repos, &c).await;
        all.push(c);
    }
    all.reverse(); // newest first

    for status in ClientStatus::ALL {
        let expected: Vec<Client> = all.iter().filter(|c| c.status == status).cloned().collect();
        let page = repos
            .clients
            .list(&query(Some(status), None, 100, 0))
            .await
            .expect("list");
        assert_eq!(page.total, expected.len() as u64, "{status}");
        assert_eq!(page.clients, expected, "{status}");
    }

    // Active and "even shop": st00, st04, st08 (newest first: st08, st04, st00).
    let page = repos
        .clients
        .list(&query(Some(ClientStatus::Active), Some("EVEN shop"), 2, 1))
        .await
        .expect("list");
    assert_eq!(page.total, 3);
    assert_eq!(
        ids(&page.clients),
        vec!["st04".to_owned(), "st00".to_owned()]
    );
    let none = repos
        .clients
        .list(&query(
            Some(ClientStatus::Inactive),
            Some("nothing like this"),
            10,
            0,
        ))
        .await
        .expect("list");
    assert_eq!((none.total, none.clients.len()), (0, 0));
}

/// Search is a case-insensitive substring match over full name, email and business name,
/// and every character of the term is literal: `%`, `_`, `.*`, quotes, backslashes and
/// non-ASCII letters match exactly the clients that contain them, nothing more.
pub async fn searching_clients_is_a_case_insensitive_literal_substring_match(repos: Repos) {
    let people: [(&str, &str, &str, Option<&str>); 9] = [
        ("pct", "Percent 100% Club", "pct@example.com", None),
        ("ctl", "Percent 100 Club", "ctl@example.com", None),
        ("und", "Under_score Ltd", "und@example.com", None),
        ("rgx", "Regex .* Fan", "rgx@example.com", None),
        (
            "quo",
            "Quote Person",
            "quo@example.com",
            Some("O'Brien \"Best\" Back\\slash"),
        ),
        ("zoe", "Zoë Ångström", "zz@example.com", None),
        ("biz", "Plain Name", "biz@example.com", Some("ACME Widgets")),
        ("eml", "Anna Example", "Anna.X@Example.ORG", None),
        (
            "inc",
            "Nobody Special",
            "inc@example.com",
            Some("Percent Inc"),
        ),
    ];
    for (id, name, mail, business) in people {
        let mut c = client(id);
        c.meta.full_name = text(name);
        c.meta.email = email(mail);
        c.meta.business_name = business.map(text);
        c.meta.city = Some(text("Searchville")); // city is not searched
        insert_client(&repos, &c).await;
    }

    let everyone_but_eml = ["pct", "ctl", "und", "rgx", "quo", "zoe", "biz", "inc"];
    let cases: &[(&str, &[&str])] = &[
        ("%", &["pct"]),
        ("100%", &["pct"]),
        ("100", &["pct", "ctl"]),
        ("_", &["und"]),
        ("r_s", &["und"]),
        ("1_0", &[]),
        ("%100", &[]),
        (".*", &["rgx"]),
        ("x .", &["rgx"]),
        ("'", &["quo"]),
        ("o'brien", &["quo"]),
        ("\"", &["quo"]),
        ("\"best\"", &["quo"]),
        ("\\", &["quo"]),
        ("back\\slash", &["quo"]),
        ("ZOË", &["zoe"]),
        ("zoë ångström", &["zoe"]),
        ("zoe", &[]),
        ("acme", &["biz"]),
        ("anna.x@example.org", &["eml"]),
        ("EXAMPLE.ORG", &["eml"]),
        ("example.com", &everyone_but_eml),
        ("percent", &["pct", "ctl", "inc"]),
        ("searchville", &[]),
        ("nobody at all", &[]),
    ];
    for (term, expected) in cases {
        let page = repos
            .clients
            .list(&query(None, Some(term), 100, 0))
            .await
            .expect("list");
        let found: BTreeSet<String> = ids(&page.clients).into_iter().collect();
        let expected: BTreeSet<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(found, expected, "search {term:?}");
        assert_eq!(page.total, expected.len() as u64, "total for {term:?}");
    }
}

/// `count_by_status` counts every client under its current status.
pub async fn clients_are_counted_by_status(repos: Repos) {
    assert_eq!(
        repos.clients.count_by_status().await.expect("count"),
        ClientCounts::default()
    );
    let statuses = [
        ClientStatus::Active,
        ClientStatus::Active,
        ClientStatus::Active,
        ClientStatus::Inactive,
        ClientStatus::Inactive,
        ClientStatus::Suspended,
    ];
    for (n, status) in statuses.into_iter().enumerate() {
        let mut c = client(&format!("cnt{n}"));
        c.status = status;
        insert_client(&repos, &c).await;
    }
    let expected = ClientCounts {
        active: 3,
        inactive: 2,
        suspended: 1,
    };
    assert_eq!(
        repos.clients.count_by_status().await.expect("count"),
        expected
    );

    let suspend = ClientPatch {
        status: Some(ClientStatus::Suspended),
        ..ClientPatch::default()
    };
    repos
        .clients
        .update(&client_id("cnt0"), &suspend, at_ms(5))
        .await
        .expect("update")
        .expect("exists");
    assert!(
        repos
            .clients
            .delete(&client_id("cnt3"))
            .await
            .expect("delete")
    );
    let expected = ClientCounts {
        active: 2,
        inactive: 1,
        suspended: 2,
    };
    assert_eq!(
        repos.clients.count_by_status().await.expect("count"),
        expected
    );
}

/// Revoking a token makes exactly that token id revoked; repeating it is harmless.
pub async fn revoking_a_token_is_idempotent_and_affects_only_that_token(repos: Repos) {
    let owner = client("revoker");
    insert_client(&repos, &owner).await;
    let expires = Some(at_ms(86_400_000 * 3650));

    assert!(
        !repos
            .clients
            .is_token_revoked("tok-1")
            .await
            .expect("check")
    );
    repos
        .clients
        .revoke_token(&owner.id, "tok-1", expires)
        .await
        .expect("revoke");
    assert!(
        repos
            .clients
            .is_token_revoked("tok-1")
            .await
            .expect("check")
    );
    repos
        .clients
        .revoke_token(&owner.id, "tok-1", expires)
        .await
        .expect("revoke again");
    assert!(
        repos
            .clients
            .is_token_revoked("tok-1")
            .await
            .expect("check")
    );

    assert!(
        !repos
            .clients
            .is_token_revoked("tok-2")
            .await
            .expect("check")
    );
    assert!(
        !repos
            .clients
            .is_token_revoked("TOK-1")
            .await
            .expect("check")
    );
    repos
        .clients
        .revoke_token(&owner.id, "tok-3", None)
        .await
        .expect("revoke forever");
    assert!(
        repos
            .clients
            .is_token_revoked("tok-3")
            .await
            .expect("check")
    );
    assert!(
        !repos
            .clients
            .is_token_revoked("tok-2")
            .await
            .expect("check")
    );
}

/// `upsert` creates an admin, then replaces only its hash and `updated_at`; `count` counts
/// admins, not upserts.
pub async fn admins_are_created_replaced_found_and_counted(repos: Repos) {
    let root = AdminUsername::parse("root.admin@agency").expect("valid");
    let ops = AdminUsername::parse("ops").expect("valid");
    assert_eq!(repos.admins.count().await.expect("count"), 0);
    assert_eq!(repos.admins.find(&root).await.expect("find"), None);

    repos
        .admins
        .upsert(&root, &hash("h1"), at_ms(0))
        .await
        .expect("create");
    assert_eq!(
        repos.admins.find(&root).await.expect("find"),
        Some(AdminAccount {
            username: root.clone(),
            password_hash: hash("h1"),
            created_at: at_ms(0),
            updated_at: at_ms(0),
        })
    );
    assert_eq!(repos.admins.count().await.expect("count"), 1);

    repos
        .admins
        .upsert(&root, &hash("h2"), at_ms(9_999))
        .await
        .expect("replace");
    assert_eq!(
        repos.admins.find(&root).await.expect("find"),
        Some(AdminAccount {
            username: root.clone(),
            password_hash: hash("h2"),
            created_at: at_ms(0),
            updated_at: at_ms(9_999),
        })
    );
    assert_eq!(repos.admins.count().await.expect("count"), 1);

    repos
        .admins
        .upsert(&ops, &hash("h3"), at_ms(1))
        .await
        .expect("create");
    assert_eq!(repos.admins.count().await.expect("count"), 2);
    assert_eq!(
        repos
            .admins
            .find(&ops)
            .await
            .expect("find")
            .map(|a| a.password_hash),
        Some(hash("h3"))
    );
}

/// Concurrent partial updates of one client, each changing a different field, all apply:
/// an update is an atomic read-modify-write, so none overwrites another with stale values.
pub async fn concurrent_partial_updates_of_one_client_lose_nothing(repos: Repos) {
    let original = client("busy1");
    insert_client(&repos, &original).await;
    let patches: Vec<ClientPatch> = vec![
        ClientPatch {
            status: Some(ClientStatus::Suspended),
            ..ClientPatch::default()
        },
        ClientPatch {
            agent_id: Some(agent("agent_concurrent")),
            ..ClientPatch::default()
        },
        ClientPatch {
            twilio_phone_number: Some(phone("+18005550199")),
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                full_name: Some(text("Concurrent Name")),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                email: Some(email("Concurrent@example.com")),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                phone: Some(phone("+12125559999")),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                business_name: Some(Some(text("Concurrent Biz"))),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                city: Some(Some(text("Lisbon"))),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                job_title: Some(Some(text("CTO"))),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
        ClientPatch {
            meta: MetaPatch {
                notes: Some(Some(text("raced"))),
                ..MetaPatch::default()
            },
            ..ClientPatch::default()
        },
    ];
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(patches.len()));
    let tasks = patches.iter().cloned().enumerate().map(|(n, patch)| {
        let clients = repos.clients.clone();
        let id = original.id.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            clients
                .update(&id, &patch, at_ms(1_000 + n as i64))
                .await
                .expect("concurrent update")
                .expect("exists");
        })
    });
    for task in futures_util::future::join_all(tasks).await {
        task.expect("task finished");
    }

    let stored = repos
        .clients
        .find(&original.id)
        .await
        .expect("find")
        .expect("exists");
    assert!((at_ms(1_000)..=at_ms(1_009)).contains(&stored.updated_at));
    let mut expected = original.clone();
    for patch in &patches {
        expected.apply(patch, stored.updated_at);
    }
    assert_eq!(stored, expected);
    let found = repos
        .clients
        .list(&query(None, Some("concurrent biz"), 10, 0))
        .await
        .expect("list");
    assert_eq!(ids(&found.clients), vec!["busy1".to_owned()]);
}
