//! The storage port behaves the same on every backend: the same script of operations runs on
//! redb and on PostgreSQL, through `authd::store::Store` only.

use authd::{
    config::StorageConfig,
    error::Error,
    model::{AuditEvent, OneTimeSecret, OutboxMessage, RefreshRecord, Revocation, Session, User},
    store::{AuditQuery, LoginName, Store, StoreError, UserQuery},
};
use serde_json::json;
use uuid::Uuid;

use crate::support::{postgres_db, private_dir};

fn user(email: &str, username: Option<&str>) -> User {
    serde_json::from_value(json!({
        "id": Uuid::now_v7(), "email": email, "username": username, "roles": ["user"], "created_at": 1
    }))
    .unwrap()
}

fn session(user: Uuid, expires_at: u64) -> Session {
    serde_json::from_value(json!({
        "id": Uuid::now_v7(), "user_id": user, "created_at": 1, "last_used_at": 1,
        "expires_at": expires_at, "absolute_expires_at": expires_at, "generation": 0
    }))
    .unwrap()
}

fn event(n: u64, subject: Uuid) -> AuditEvent {
    serde_json::from_value(json!({
        "id": Uuid::now_v7(), "time_ms": 1_000 + n, "event": "user.logged_in", "outcome": "success",
        "actor": "test", "subject": subject, "details": {"n": n}
    }))
    .unwrap()
}

fn about(subject: Uuid) -> AuditQuery<'static> {
    AuditQuery { subject: Some(subject), ..Default::default() }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64
}

/// An event named `name`, made now, as services make them.
fn named(name: &str) -> AuditEvent {
    serde_json::from_value(json!({
        "id": Uuid::now_v7(), "time_ms": now_ms(), "event": name, "outcome": "success", "actor": "test",
        "details": {}
    }))
    .unwrap()
}

/// Runs the script on a blocking thread, as services do.
async fn script(cfg: StorageConfig) {
    tokio::task::spawn_blocking(move || run_script(&Store::open(&cfg).expect("store opens")))
        .await
        .expect("the script ran to its end");
}

fn run_script(store: &Store) {
    // Users: login names are unique, whoever holds them; a refused change stores nothing.
    let alice = user("alice@example.com", Some("alice"));
    store.write(|tx| tx.insert_user(&alice)).unwrap();
    let copycat = user("alice@example.com", None);
    let dup = store.write(|tx| tx.insert_user(&copycat)).err();
    assert!(matches!(dup, Some(StoreError::Duplicate("email"))), "{dup:?}");
    assert!(store.read(|tx| tx.user(copycat.id)).unwrap().is_none());
    let found = store.read(|tx| tx.user_by_login(LoginName::Username("alice"))).unwrap();
    assert_eq!(found.map(|u| u.id), Some(alice.id));

    // A closure that fails rolls back everything it wrote.
    let bob = user("bob@example.com", None);
    let failed: Result<(), Error> = store.write(|tx| {
        tx.insert_user(&bob)?;
        Err(Error::Internal("changed my mind".into()))
    });
    assert!(failed.is_err());
    assert!(store.read(|tx| tx.user_by_login(LoginName::Email("bob@example.com"))).unwrap().is_none());

    // Renaming frees the old name and claims the new one.
    let mut renamed = alice.clone();
    renamed.email = Some("alice@new.example".into());
    store.write(|tx| tx.update_user(&renamed)).unwrap();
    assert!(store.read(|tx| tx.user_by_login(LoginName::Email("alice@example.com"))).unwrap().is_none());
    store.write(|tx| tx.insert_user(&copycat)).unwrap();
    let mut clash = renamed.clone();
    clash.username = None;
    clash.email = Some("alice@example.com".into());
    assert!(matches!(store.write(|tx| tx.update_user(&clash)), Err(StoreError::Duplicate("email"))));
    let users: Vec<Uuid> = store.read(|tx| tx.users()).unwrap().iter().map(|u| u.id).collect();
    assert_eq!(users, vec![alice.id, copycat.id], "oldest first");

    // Sessions and refresh records.
    let live = session(alice.id, u64::MAX / 4);
    let stale = session(alice.id, 10);
    store
        .write(|tx| {
            tx.put_session(&live)?;
            tx.put_session(&stale)?;
            let rec: RefreshRecord =
                serde_json::from_value(json!({"session_id": live.id, "used": false, "expires_at": u64::MAX / 4}))
                    .unwrap();
            tx.put_refresh(b"hash-1", &rec)?;
            let old: RefreshRecord =
                serde_json::from_value(json!({"session_id": stale.id, "used": true, "expires_at": 10})).unwrap();
            tx.put_refresh(b"hash-0", &old)
        })
        .unwrap();
    assert_eq!(store.read(|tx| tx.session_ids_of(alice.id)).unwrap().len(), 2);
    let rec = store.read(|tx| tx.refresh(b"hash-1")).unwrap().expect("refresh record");
    assert_eq!((rec.session_id, rec.used), (live.id, false));

    // Revocations, roles, clients, keys round-trip.
    let rev: Revocation = serde_json::from_value(
        json!({"kind": "session", "id": live.id, "since_ms": 0, "min_gen": 0, "expires_at": u64::MAX / 4}),
    )
    .unwrap();
    let gone: Revocation = serde_json::from_value(
        json!({"kind": "session", "id": stale.id, "since_ms": 0, "min_gen": 0, "expires_at": 10}),
    )
    .unwrap();
    store
        .write(|tx| {
            tx.put_revocation(&rev)?;
            tx.put_revocation(&gone)?;
            tx.put_role(&serde_json::from_value(json!({"name": "billing", "permissions": ["billing:*"]})).unwrap())?;
            tx.put_role(&serde_json::from_value(json!({"name": "temp", "permissions": []})).unwrap())?;
            tx.delete_role("temp")
        })
        .unwrap();
    assert_eq!(store.read(|tx| tx.revocations()).unwrap().len(), 2);
    let roles: Vec<String> = store.read(|tx| tx.roles()).unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(roles, vec!["billing"]);

    // Pruning drops what has expired, and only that.
    let pruned = store.write(|tx| tx.prune(1_000)).unwrap();
    assert_eq!(pruned, 3, "one refresh record, one revocation, one session");
    assert!(store.read(|tx| tx.session(stale.id)).unwrap().is_none());
    assert!(store.read(|tx| tx.session(live.id)).unwrap().is_some());

    // Audit: newest first, filtered, paged by cursor, across more than one backend page.
    let other = Uuid::now_v7();
    store
        .write(|tx| {
            for n in 0..1_200 {
                tx.insert_audit(&event(n, if n % 3 == 0 { alice.id } else { other }))?;
            }
            Ok::<_, StoreError>(())
        })
        .unwrap();
    let mine = |e: &AuditEvent| e.subject == Some(alice.id);
    let page = store.read(|tx| tx.audit_events(&AuditQuery::default(), 5, &mine)).unwrap();
    let ns: Vec<u64> = page.iter().map(|e| e.details["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, vec![1_197, 1_194, 1_191, 1_188, 1_185]);
    let cursor = page.last().map(|e| e.id);
    let all_mine =
        store.read(|tx| tx.audit_events(&AuditQuery { before: cursor, ..Default::default() }, 1_000, &mine)).unwrap();
    assert_eq!(all_mine.len(), 400 - 5);
    // The same through the subject index: the same events, the same pages.
    let indexed = store.read(|tx| tx.audit_events(&about(alice.id), 5, &|_| true)).unwrap();
    assert_eq!(indexed.iter().map(|e| e.id).collect::<Vec<_>>(), page.iter().map(|e| e.id).collect::<Vec<_>>());
    let rest =
        store.read(|tx| tx.audit_events(&AuditQuery { before: cursor, ..about(alice.id) }, 1_000, &|_| true)).unwrap();
    assert_eq!(rest.len(), 400 - 5);
    let nobody = store.read(|tx| tx.audit_events(&about(Uuid::now_v7()), 10, &|_| true)).unwrap();
    assert!(nobody.is_empty());
    assert_eq!(store.write(|tx| tx.prune_audit(1_000 + 600)).unwrap(), 600);
    // Pruned events leave the index too.
    let left = store.read(|tx| tx.audit_events(&about(alice.id), 1_000, &|_| true)).unwrap();
    assert_eq!(left.len(), 200);
    assert!(left.iter().all(|e| e.details["n"].as_u64().unwrap() >= 600));

    // By name, or by family (`role` finds `role.created`, never `roles.x` nor `rol`), and by time.
    let t0 = now_ms();
    let early = named("role.created");
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    let t1 = now_ms();
    let later = [named("role.deleted"), named("roles.other"), named("user.created")];
    store
        .write(|tx| {
            tx.insert_audit(&early)?;
            later.iter().try_for_each(|e| tx.insert_audit(e))
        })
        .unwrap();
    let names = |q: AuditQuery<'_>| -> Vec<String> {
        let keep =
            |e: &AuditEvent| q.since_ms.is_none_or(|s| e.time_ms >= s) && q.until_ms.is_none_or(|u| e.time_ms < u);
        store.read(|tx| tx.audit_events(&q, 100, &keep)).unwrap().into_iter().map(|e| e.event).collect()
    };
    assert_eq!(names(AuditQuery { event: Some("role"), ..Default::default() }), ["role.deleted", "role.created"]);
    assert_eq!(names(AuditQuery { event: Some("role.created"), ..Default::default() }), ["role.created"]);
    assert!(names(AuditQuery { event: Some("rol"), ..Default::default() }).is_empty());
    assert_eq!(
        names(AuditQuery { since_ms: Some(t1), ..Default::default() }),
        ["user.created", "roles.other", "role.deleted"]
    );
    assert_eq!(names(AuditQuery { since_ms: Some(t0), until_ms: Some(t1), ..Default::default() }), ["role.created"]);
    assert_eq!(names(AuditQuery { event: Some("role"), since_ms: Some(t1), ..Default::default() }), ["role.deleted"]);

    // Users by status, by role and by login-name prefix, oldest first, paged by id.
    let mut carol = user("carol@example.com", Some("carla"));
    carol.roles = vec!["user".into(), "billing".into()];
    let mut dave = user("dave@example.com", Some("cardiff"));
    dave.status = authd::model::UserStatus::Disabled;
    store.write(|tx| tx.insert_user(&carol)).unwrap();
    store.write(|tx| tx.insert_user(&dave)).unwrap();
    let ids = |q: UserQuery<'_>, limit: usize| -> Vec<Uuid> {
        store.read(|tx| tx.users_page(&q, limit)).unwrap().into_iter().map(|u| u.id).collect()
    };
    assert_eq!(ids(UserQuery::default(), 100), [alice.id, copycat.id, carol.id, dave.id]);
    assert_eq!(ids(UserQuery { after: Some(copycat.id), ..Default::default() }, 1), [carol.id]);
    let disabled = Some(authd::model::UserStatus::Disabled);
    assert_eq!(ids(UserQuery { status: disabled, ..Default::default() }, 100), [dave.id]);
    assert_eq!(ids(UserQuery { role: Some("billing"), ..Default::default() }, 100), [carol.id]);
    // "car" starts carol's email and username, and dave's username: each user once.
    assert_eq!(ids(UserQuery { prefix: Some("car"), ..Default::default() }, 100), [carol.id, dave.id]);
    assert_eq!(ids(UserQuery { prefix: Some("car"), after: Some(carol.id), ..Default::default() }, 100), [dave.id]);
    assert_eq!(ids(UserQuery { prefix: Some("car"), status: disabled, ..Default::default() }, 100), [dave.id]);
    assert!(ids(UserQuery { prefix: Some("car%"), ..Default::default() }, 100).is_empty());
    // A change moves a user between lists; a deleted one leaves them.
    let mut back = dave.clone();
    back.status = authd::model::UserStatus::Active;
    back.roles.push("billing".into());
    store.write(|tx| tx.update_user(&back)).unwrap();
    assert!(ids(UserQuery { status: disabled, ..Default::default() }, 100).is_empty());
    assert_eq!(ids(UserQuery { role: Some("billing"), ..Default::default() }, 100), [carol.id, dave.id]);
    store.write(|tx| tx.delete_user(carol.id)).unwrap();
    assert_eq!(ids(UserQuery { role: Some("billing"), ..Default::default() }, 100), [dave.id]);
    assert_eq!(ids(UserQuery { prefix: Some("car"), ..Default::default() }, 100), [dave.id]);
    store.write(|tx| tx.delete_user(dave.id)).unwrap();

    // Webhook outbox: due until delivered, then pruned.
    let mut d: OutboxMessage = serde_json::from_value(json!({
        "id": Uuid::now_v7(), "url": "https://hooks.example/x", "event": "user.logged_in", "payload": "{}",
        "created_ms": 5, "next_attempt_ms": 5, "attempts": 0, "state": "pending"
    }))
    .unwrap();
    store.write(|tx| tx.put_delivery(&d)).unwrap();
    assert_eq!(store.read(|tx| tx.due_deliveries(10, 10)).unwrap().len(), 1);
    assert!(store.read(|tx| tx.due_deliveries(4, 10)).unwrap().is_empty());
    d.state = serde_json::from_value(json!("delivered")).unwrap();
    store.write(|tx| tx.put_delivery(&d)).unwrap();
    assert!(store.read(|tx| tx.due_deliveries(10, 10)).unwrap().is_empty());
    assert_eq!(store.write(|tx| tx.prune_deliveries(6)).unwrap(), 1);

    // One-time secrets: by id and by token hash; a replacement drops the old token's index;
    // expired ones are pruned.
    let secret = |id: &str, token: &[u8], expires_at: u64| -> OneTimeSecret {
        serde_json::from_value(json!({
            "id": id, "purpose": "verify_email", "user_id": alice.id, "token_hash": token,
            "target": "alice@example.com", "created_at": 1, "expires_at": expires_at, "attempts_left": 5
        }))
        .unwrap()
    };
    store.write(|tx| tx.put_one_time(&secret("verify_email:a", b"first", 5_000))).unwrap();
    store.write(|tx| tx.put_one_time(&secret("verify_email:a", b"second", 5_000))).unwrap();
    assert!(store.read(|tx| tx.one_time_by_token(b"first")).unwrap().is_none());
    let found = store.read(|tx| tx.one_time_by_token(b"second")).unwrap().unwrap();
    assert_eq!((found.id.as_str(), found.attempts_left), ("verify_email:a", 5));
    store.write(|tx| tx.put_one_time(&secret("password_reset:b", b"third", 10))).unwrap();
    assert_eq!(store.read(|tx| tx.one_time_secrets()).unwrap().len(), 2);
    assert_eq!(store.write(|tx| tx.prune_one_time(1_000)).unwrap(), 1);
    assert!(store.read(|tx| tx.one_time_by_token(b"third")).unwrap().is_none());
    assert!(store.write(|tx| tx.delete_one_time("verify_email:a")).unwrap());
    assert!(!store.write(|tx| tx.delete_one_time("verify_email:a")).unwrap());
    assert!(store.read(|tx| tx.one_time_by_token(b"second")).unwrap().is_none());

    // Deleting a user takes its sessions and login names along.
    let sids = store.write(|tx| tx.delete_user(alice.id)).unwrap();
    assert_eq!(sids, vec![live.id]);
    assert!(store.read(|tx| tx.user_by_login(LoginName::Username("alice"))).unwrap().is_none());
    assert!(store.read(|tx| tx.session(live.id)).unwrap().is_none());

    // Sign-ins and failures are counted per minute as they are written, other events are not,
    // an event written twice counts once, and pruning takes whole minutes along.
    let base = 7 * 86_400_000;
    let at = |name: &str, ms: u64| AuditEvent { time_ms: ms, ..named(name) };
    let events = [
        at("user.logged_in", base + 1),
        at("user.logged_in", base + 59_999),
        at("user.logged_in", base + 60_000),
        at("user.login_failed", base + 5),
        at("user.created", base + 6),
    ];
    store
        .write(|tx| {
            events.iter().try_for_each(|e| tx.insert_audit(e))?;
            tx.insert_audit(&events[0])
        })
        .unwrap();
    let counts = |event: &str, since: u64| store.read(|tx| tx.audit_counts(event, since)).unwrap();
    assert_eq!(counts("user.logged_in", base + 30_000), vec![(base, 2), (base + 60_000, 1)]);
    assert_eq!(counts("user.logged_in", base + 60_000), vec![(base + 60_000, 1)]);
    assert_eq!(counts("user.login_failed", base), vec![(base, 1)]);
    assert!(counts("user.created", 0).is_empty());
    store.write(|tx| tx.prune_audit(base + 60_001)).unwrap();
    assert_eq!(counts("user.logged_in", 0), vec![(base + 60_000, 1)]);
    assert!(counts("user.login_failed", 0).is_empty());
}

#[tokio::test]
async fn the_store_script_on_redb() {
    let dir = private_dir();
    script(StorageConfig { path: dir.path().join("authd.redb"), ..StorageConfig::default() }).await;
}

#[tokio::test]
async fn the_store_script_on_postgres() {
    let Some(url) = postgres_db().await else { return };
    let mut cfg = authd::config::Config::default();
    crate::support::use_postgres(&mut cfg, &url);
    script(cfg.storage.clone()).await;
    // Opening again (a second node, or a restart) finds the schema current and changes nothing.
    script_again(cfg.storage).await;
}

async fn script_again(cfg: StorageConfig) {
    tokio::task::spawn_blocking(move || {
        let store = Store::open(&cfg).expect("store opens again");
        assert!(store.read(|tx| tx.user_by_login(LoginName::Email("alice@example.com"))).unwrap().is_some());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn an_older_redb_file_gets_its_indexes_built_at_open() {
    let dir = private_dir();
    let path = dir.path().join("authd.redb");
    let subject = Uuid::now_v7();
    {
        let store = Store::open_redb(&path).unwrap();
        store
            .write(|tx| {
                for n in 0..10 {
                    tx.insert_audit(&event(n, subject))?;
                }
                tx.insert_user(&user("old@example.com", Some("oldtimer")))
            })
            .unwrap();
    }
    // Make it look like a file from before the index: version 1, no index entries.
    {
        use redb::{ReadableDatabase as _, ReadableTableMetadata as _};
        let db = redb::Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut meta = tx.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap();
            meta.insert("schema_version", 1).unwrap();
            let mut index = tx.open_table(redb::TableDefinition::<(Uuid, Uuid), ()>::new("audit_by_subject")).unwrap();
            index.retain(|_, _| false).unwrap();
            let mut by_event = tx.open_table(redb::TableDefinition::<(&str, Uuid), ()>::new("audit_by_event")).unwrap();
            by_event.retain(|_, _| false).unwrap();
            let mut facets = tx.open_table(redb::TableDefinition::<(&str, Uuid), ()>::new("user_facets")).unwrap();
            facets.retain(|_, _| false).unwrap();
            tx.delete_table(redb::TableDefinition::<(&str, u64), u64>::new("audit_counts")).unwrap();
        }
        tx.commit().unwrap();
        let r = db.begin_read().unwrap();
        assert!(
            r.open_table(redb::TableDefinition::<(Uuid, Uuid), ()>::new("audit_by_subject"))
                .unwrap()
                .is_empty()
                .unwrap()
        );
    }
    // A backup with the server down copies the old file as it is, tables it lacks included.
    let copy = dir.path().join("copy.redb");
    std::fs::File::create(&copy).unwrap();
    let taken = Store::snapshot_redb(&path, &copy).unwrap();
    assert_eq!(taken.schema_version, 1);
    assert!(!taken.tables.iter().any(|(t, _)| t == "audit_counts"));
    assert_eq!(Store::describe_redb(&copy).unwrap().tables.len(), taken.tables.len());
    let store = Store::open_redb(&path).unwrap();
    let found = store.read(|tx| tx.audit_events(&about(subject), 100, &|_| true)).unwrap();
    assert_eq!(found.len(), 10);
    let by_event = AuditQuery { event: Some("user"), ..Default::default() };
    assert_eq!(store.read(|tx| tx.audit_events(&by_event, 100, &|_| true)).unwrap().len(), 10);
    let users = store.read(|tx| tx.users_page(&UserQuery { role: Some("user"), ..Default::default() }, 10)).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(store.read(|tx| tx.audit_counts("user.logged_in", 0)).unwrap(), vec![(0, 10)]);
}
