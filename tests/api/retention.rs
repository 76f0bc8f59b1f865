//! Retention (`RETENTION_DAYS`): the daily housekeeping job prunes sent emails' bodies,
//! delivered webhook deliveries and their attempts, expired sign-in links and sessions,
//! idempotency records and old `job_runs` keys, once across replicas, in batches; answers,
//! follow-ups and their activity stay, and `0` keeps everything. Each prune query reads an
//! index whose leading column is its age condition.

use chrono::TimeDelta;
use closeloop::domain::{now, Role};
use diesel::prelude::*;
use serde_json::json;

use crate::each_engine;
use crate::helpers::{answer, eventually, spawn_app_with, spawn_replica, tokens, Engine, TestApp};

/// What the job may touch, and what it must not, as counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counts {
    email_rows: i64,
    email_bodies: i64,
    deliveries: i64,
    attempts: i64,
    sign_in_tokens: i64,
    sessions: i64,
    idempotency: i64,
    once_keys: i64,
    responses: i64,
    followups: i64,
    activities: i64,
}

async fn counts(app: &TestApp) -> Counts {
    crate::helpers::with_db(app, |conn| {
        use closeloop::store::schema::*;
        let n = |r: QueryResult<i64>| r.unwrap();
        Counts {
            email_rows: n(emails::table.count().get_result(conn)),
            email_bodies: n(emails::table
                .filter(emails::body_text.ne(""))
                .count()
                .get_result(conn)),
            deliveries: n(webhook_deliveries::table.count().get_result(conn)),
            attempts: n(webhook_attempts::table.count().get_result(conn)),
            sign_in_tokens: n(sign_in_tokens::table.count().get_result(conn)),
            sessions: n(sessions::table.count().get_result(conn)),
            idempotency: n(idempotency_keys::table.count().get_result(conn)),
            once_keys: n(job_runs::table
                .filter(job_runs::job.eq("invite_batch"))
                .count()
                .get_result(conn)),
            responses: n(responses::table.count().get_result(conn)),
            followups: n(followups::table.count().get_result(conn)),
            activities: n(followup_activities::table.count().get_result(conn)),
        }
    })
    .await
}

/// What the scenario made: the old detractor's task and the members' cookies.
struct Seeded {
    task: String,
    contact: String,
    old_member: String,
    recent_member: crate::helpers::Member,
}

/// Real data through the API and the pages (an app with its workers off), then half of it
/// made 200 days old: the first answer, its task and activity, the reply email, the first
/// webhook delivery, one member's sign-in link and session, one idempotency record and one
/// confirmation key. The other half is from today (and the second delivery is delivered
/// today).
async fn seed(app: &TestApp) -> Seeded {
    let (hook, _) =
        crate::webhooks::subscribe(app, "http://127.0.0.1:9/hook", &["response.created"]).await;
    let s = app.nps_survey().await;
    let t = tokens(
        app,
        &s,
        json!([{"email": "old@x.co"}, {"email": "new@x.co"}]),
    )
    .await;
    answer(app, &t[0], 2, "too slow").await;
    answer(app, &t[1], 3, "still slow").await;
    // Keyed batch requests leave idempotency records.
    for key in ["old-batch", "new-batch"] {
        let res = app
            .client
            .post(app.url(&format!(
                "/api/v1/surveys/{}/invitations",
                s["id"].as_str().unwrap()
            )))
            .bearer_auth(&app.key)
            .header("Idempotency-Key", key)
            .json(&json!({"channel": "link", "contacts": [{"email": format!("{key}@x.co")}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let tasks = app.get("/api/v1/followups?sort=created_at").await;
    assert_eq!(tasks.status, 200, "{}", tasks.text);
    let old_task = tasks.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["score"] == 2)
        .expect("the old detractor's task")
        .clone();
    let task = old_task["id"].as_str().unwrap().to_string();
    let contact = old_task["contact_id"].as_str().unwrap().to_string();
    let a = app
        .post(
            &format!("/api/v1/followups/{task}/reply"),
            json!({"body": "Sorry, we fixed it."}),
        )
        .await;
    assert_eq!(a.status, 202, "{}", a.text);
    let old = app.sign_in("old@acme.test", "Old", Role::Admin).await;
    let recent_member = app.sign_in("new@acme.test", "New", Role::Admin).await;

    let (task2, hook2) = (task.clone(), hook.clone());
    crate::helpers::with_db(app, move |conn| {
        use closeloop::store::schema::*;
        let long_ago = now() - TimeDelta::days(200);
        let today = now() - TimeDelta::minutes(5);
        // The old answer, its task and the task's activity.
        let response_id: String = followups::table
            .find(&task2)
            .select(followups::response_id)
            .first(conn)
            .unwrap();
        diesel::update(responses::table.find(&response_id))
            .set((
                responses::created_at.eq(long_ago),
                responses::updated_at.eq(long_ago),
            ))
            .execute(conn)
            .unwrap();
        diesel::update(followups::table.find(&task2))
            .set(followups::created_at.eq(long_ago))
            .execute(conn)
            .unwrap();
        diesel::update(
            followup_activities::table.filter(followup_activities::followup_id.eq(&task2)),
        )
        .set(followup_activities::created_at.eq(long_ago))
        .execute(conn)
        .unwrap();
        // The reply went out long ago; another email went out today.
        diesel::update(emails::table.filter(emails::kind.eq("followup_reply")))
            .set((
                emails::status.eq("sent"),
                emails::sent_at.eq(Some(long_ago)),
                emails::message_id.eq(Some("reply@acme.test")),
            ))
            .execute(conn)
            .unwrap();
        let recent = closeloop::store::emails::enqueue(
            conn,
            closeloop::store::emails::NewEmail {
                kind: "followup_alert",
                to: "team@acme.test",
                subject: "New detractor",
                body_text: "A customer answered 3.",
                in_reply_to: None,
                followup_id: None,
                from_name: None,
                reply_to: None,
                body_html: Some("<p>A customer answered 3.</p>"),
                send_at: None,
            },
        )
        .unwrap();
        diesel::update(emails::table.find(&recent.id))
            .set((emails::status.eq("sent"), emails::sent_at.eq(Some(today))))
            .execute(conn)
            .unwrap();
        // Deliveries: the first delivered long ago (two attempts), the second today.
        let ids: Vec<String> = webhook_deliveries::table
            .filter(webhook_deliveries::webhook_id.eq(&hook2))
            .order(webhook_deliveries::created_at)
            .select(webhook_deliveries::id)
            .load(conn)
            .unwrap();
        assert_eq!(ids.len(), 2, "one delivery per answer");
        for (id, at) in [(&ids[0], long_ago), (&ids[1], today)] {
            diesel::update(webhook_deliveries::table.find(id))
                .set((
                    webhook_deliveries::status.eq("delivered"),
                    webhook_deliveries::delivered_at.eq(Some(at)),
                ))
                .execute(conn)
                .unwrap();
            for n in 0..2 {
                diesel::insert_into(webhook_attempts::table)
                    .values((
                        webhook_attempts::id.eq(format!("wha_{id}_{n}")),
                        webhook_attempts::delivery_id.eq(id),
                        webhook_attempts::attempted_at.eq(at),
                        webhook_attempts::status_code.eq(Some(if n == 0 { 500 } else { 200 })),
                        webhook_attempts::duration_ms.eq(12),
                    ))
                    .execute(conn)
                    .unwrap();
            }
        }
        // The old member's sign-in link and session expired long ago.
        let old_user: String = users::table
            .filter(users::email.eq("old@acme.test"))
            .select(users::id)
            .first(conn)
            .unwrap();
        diesel::update(sign_in_tokens::table.filter(sign_in_tokens::user_id.eq(&old_user)))
            .set(sign_in_tokens::expires_at.eq(long_ago))
            .execute(conn)
            .unwrap();
        diesel::update(sessions::table.filter(sessions::user_id.eq(&old_user)))
            .set(sessions::expires_at.eq(long_ago))
            .execute(conn)
            .unwrap();
        diesel::update(
            idempotency_keys::table.filter(idempotency_keys::idempotency_key.eq("old-batch")),
        )
        .set(idempotency_keys::created_at.eq(long_ago))
        .execute(conn)
        .unwrap();
        for (key, at) in [("old-key", long_ago), ("new-key", today)] {
            diesel::insert_into(job_runs::table)
                .values((
                    job_runs::job.eq("invite_batch"),
                    job_runs::period.eq(key),
                    job_runs::created_at.eq(at),
                ))
                .execute(conn)
                .unwrap();
        }
    })
    .await;
    Seeded {
        task,
        contact,
        old_member: old.cookie,
        recent_member,
    }
}

/// The base app: no workers, so nothing runs before the data is in place.
async fn quiet_app(engine: Engine) -> TestApp {
    spawn_app_with(
        engine,
        &[
            ("DISPATCHER", "off"),
            ("WEBHOOKS", "off"),
            ("WEBHOOK_ALLOW_PRIVATE", "true"),
        ],
    )
    .await
}

async fn old_rows_go_and_recent_rows_answers_and_followups_stay_and_two_replicas_prune_once(
    engine: Engine,
) {
    let app = quiet_app(engine).await;
    let seeded = seed(&app).await;
    let before = counts(&app).await;
    assert_eq!(
        (before.deliveries, before.attempts, before.email_bodies),
        (2, 4, 2),
        "{before:?}"
    );
    // Two replicas start their dispatchers on the same database.
    let settings = [
        ("RETENTION_DAYS", "30"),
        ("DISPATCH_INTERVAL_MS", "50"),
        ("WEBHOOKS", "off"),
    ];
    let (a, _oa) = spawn_replica(&app, &settings).await;
    let (b, _ob) = spawn_replica(&app, &settings).await;
    let (ma, mb) = (a.state.metrics.clone(), b.state.metrics.clone());
    let (ha, hb) = (a.handle.clone(), b.handle.clone());
    tokio::spawn(a.run_until_stopped());
    tokio::spawn(b.run_until_stopped());
    let tables = [
        "email_bodies",
        "webhook_deliveries",
        "webhook_attempts",
        "sign_in_tokens",
        "sessions",
        "idempotency_records",
        "job_runs",
    ];
    let pruned = |m: &closeloop::telemetry::Metrics| -> Vec<u64> {
        tables.iter().map(|t| m.pruned_of(t)).collect()
    };
    // email body, delivery, its 2 attempts, sign-in link, session, idempotency record, key.
    let want = vec![1, 1, 2, 1, 1, 1, 1];
    eventually(10, "one replica to prune the old rows", || async {
        let (pa, pb) = (pruned(&ma), pruned(&mb));
        (pa == want || pb == want).then_some(())
    })
    .await;
    // Both replicas have looked at today by now; give the other a few rounds anyway.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (pa, pb) = (pruned(&ma), pruned(&mb));
    assert!(
        (pa == want && pb.iter().all(|n| *n == 0)) || (pb == want && pa.iter().all(|n| *n == 0)),
        "exactly one replica pruned: {pa:?} / {pb:?}"
    );
    let runs: i64 = crate::helpers::with_db(&app, |conn| {
        use closeloop::store::schema::job_runs;
        job_runs::table
            .filter(job_runs::job.eq(closeloop::housekeeping::JOB))
            .count()
            .get_result(conn)
            .unwrap()
    })
    .await;
    assert_eq!(runs, 1, "one run recorded for today");

    let after = counts(&app).await;
    assert_eq!(
        after,
        Counts {
            email_bodies: before.email_bodies - 1,
            deliveries: before.deliveries - 1,
            attempts: before.attempts - 2,
            sign_in_tokens: before.sign_in_tokens - 1,
            sessions: before.sessions - 1,
            idempotency: before.idempotency - 1,
            once_keys: before.once_keys - 1,
            ..before
        },
        "answers, tasks, their activity and every email row stay"
    );
    // The reply's row keeps its delivery state; only the body went.
    let reply = crate::helpers::with_db(&app, |conn| {
        use closeloop::store::schema::emails;
        emails::table
            .filter(emails::kind.eq("followup_reply"))
            .select((
                emails::status,
                emails::body_text,
                emails::body_html,
                emails::message_id,
                emails::pruned_at.is_not_null(),
            ))
            .first::<(String, String, Option<String>, Option<String>, bool)>(conn)
            .unwrap()
    })
    .await;
    assert_eq!(
        reply,
        (
            "sent".into(),
            String::new(),
            None,
            Some("reply@acme.test".into()),
            true
        )
    );
    // The pages that show those rows still render: the task with its reply marked sent, the
    // contact's activity, the answer in the API.
    let m = &seeded.recent_member;
    let (status, page) = app
        .get_page(&format!("/app/followups/{}", seeded.task), &m.cookie)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Sorry, we fixed it.") && page.contains("Sent"),
        "the reply and its delivery state: {page}"
    );
    let (status, page) = app
        .get_page(&format!("/app/contacts/{}", seeded.contact), &m.cookie)
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("too slow"), "{page}");
    let answers = app.get("/api/v1/responses").await;
    assert_eq!(answers.body["items"].as_array().unwrap().len(), 2);
    // The expired session is gone (it was expired anyway); the recent one still works.
    let (status, _) = app.get_page("/app/profile", &seeded.old_member).await;
    assert_ne!(status, 200);
    let metrics = app
        .send(reqwest::Method::GET, "/metrics", None, None)
        .await
        .text;
    assert!(
        metrics.contains("# TYPE closeloop_pruned_rows counter"),
        "{metrics}"
    );
    drop(ha.stop(false));
    drop(hb.stop(false));
}

async fn retention_days_zero_keeps_everything(engine: Engine) {
    let app = quiet_app(engine).await;
    seed(&app).await;
    let before = counts(&app).await;
    let (r, _o) = spawn_replica(
        &app,
        &[
            ("RETENTION_DAYS", "0"),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("WEBHOOKS", "off"),
        ],
    )
    .await;
    let handle = r.handle.clone();
    let metrics = r.state.metrics.clone();
    tokio::spawn(r.run_until_stopped());
    // Let its dispatcher go round several times (it sends the queued reply).
    tokio::time::sleep(std::time::Duration::from_millis(600)).await;
    let after = counts(&app).await;
    assert_eq!(after, before);
    assert_eq!(metrics.pruned_of("email_bodies"), 0);
    let runs: i64 = crate::helpers::with_db(&app, |conn| {
        use closeloop::store::schema::job_runs;
        job_runs::table
            .filter(job_runs::job.eq(closeloop::housekeeping::JOB))
            .count()
            .get_result(conn)
            .unwrap()
    })
    .await;
    assert_eq!(runs, 0, "the job does not run at all");
    drop(handle.stop(false));
}

/// Many old rows go in batches of 1000 (more than one batch per table), and a second run the
/// same day does nothing.
async fn a_backlog_is_pruned_in_batches(engine: Engine) {
    let app = quiet_app(engine).await;
    let n = 2500;
    crate::helpers::with_db(&app, move |conn| {
        use closeloop::store::schema::{api_keys, idempotency_keys};
        let long_ago = now() - TimeDelta::days(400);
        let key: String = api_keys::table.select(api_keys::id).first(conn).unwrap();
        let rows: Vec<_> = (0..n)
            .map(|i| {
                (
                    idempotency_keys::api_key_id.eq(key.clone()),
                    idempotency_keys::idempotency_key.eq(format!("k{i}")),
                    idempotency_keys::request_hash.eq("h"),
                    idempotency_keys::response_status.eq(200),
                    idempotency_keys::response_body.eq("{}"),
                    idempotency_keys::created_at.eq(long_ago + TimeDelta::seconds(i as i64)),
                )
            })
            .collect();
        conn.transaction(|conn| {
            for row in rows {
                diesel::insert_into(idempotency_keys::table)
                    .values(row)
                    .execute(conn)?;
            }
            diesel::QueryResult::Ok(())
        })
        .unwrap();
    })
    .await;
    let db = app.app_state.db.clone();
    let t = now();
    let p = closeloop::housekeeping::prune(&db, t - TimeDelta::days(90), t)
        .await
        .unwrap();
    assert_eq!(p.idempotency_records, n);
    assert_eq!(counts(&app).await.idempotency, 0);
    let metrics = closeloop::telemetry::Metrics::default();
    let first = closeloop::housekeeping::run_daily(&db, 90, &metrics)
        .await
        .unwrap();
    assert_eq!(first.map(|p| p.total()), Some(0));
    let again = closeloop::housekeeping::run_daily(&db, 90, &metrics)
        .await
        .unwrap();
    assert_eq!(again, None, "once a day");
}

/// The prune queries as the store runs them, each read through its retention index (the
/// plan names the index): a run reads only what it prunes, however large the tables are.
async fn each_prune_query_reads_its_retention_index(engine: Engine) {
    let app = quiet_app(engine).await;
    let queries = [
        ("emails_retention", "SELECT id FROM emails WHERE pruned_at IS NULL AND sent_at < '2026-01-01 00:00:00' ORDER BY sent_at LIMIT 1000"),
        ("webhook_deliveries_retention", "SELECT id FROM webhook_deliveries WHERE delivered_at < '2026-01-01 00:00:00' ORDER BY delivered_at LIMIT 1000"),
        ("sign_in_tokens_retention", "SELECT token_hash FROM sign_in_tokens WHERE expires_at < '2026-01-01 00:00:00' ORDER BY expires_at LIMIT 1000"),
        ("sessions_retention", "SELECT id_hash FROM sessions WHERE expires_at < '2026-01-01 00:00:00' ORDER BY expires_at LIMIT 1000"),
        ("idempotency_keys_retention", "SELECT created_at FROM idempotency_keys WHERE created_at < '2026-01-01 00:00:00' ORDER BY created_at LIMIT 1 OFFSET 999"),
        ("idempotency_keys_retention", "DELETE FROM idempotency_keys WHERE created_at < '2026-01-01 00:00:00' AND created_at <= '2025-06-01 00:00:00'"),
        ("job_runs_retention", "SELECT created_at FROM job_runs WHERE created_at < '2026-01-01 00:00:00' ORDER BY created_at LIMIT 1 OFFSET 999"),
        ("job_runs_retention", "DELETE FROM job_runs WHERE created_at < '2026-01-01 00:00:00' AND created_at <= '2025-06-01 00:00:00'"),
    ];
    let plans = crate::helpers::with_db(&app, move |conn| {
        use diesel::sql_types::Text;
        #[derive(QueryableByName)]
        struct SqlitePlan {
            #[diesel(sql_type = Text)]
            detail: String,
        }
        #[derive(QueryableByName)]
        struct PgPlan {
            #[diesel(sql_type = Text, column_name = "QUERY PLAN")]
            line: String,
        }
        let mut out = Vec::new();
        for (index, q) in queries {
            let plan = match conn {
                closeloop::store::DbConnection::Sqlite(c) => {
                    diesel::sql_query(format!("EXPLAIN QUERY PLAN {q}"))
                        .load::<SqlitePlan>(c)
                        .unwrap()
                        .into_iter()
                        .map(|p| p.detail)
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                closeloop::store::DbConnection::Postgres(c) => c
                    .transaction(|c| {
                        // Tiny test tables: make the planner choose as it would on big ones.
                        diesel::sql_query("SET LOCAL enable_seqscan = off").execute(c)?;
                        diesel::sql_query(format!("EXPLAIN {q}"))
                            .load::<PgPlan>(c)
                            .map(|rows| {
                                rows.into_iter()
                                    .map(|p| p.line)
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                    })
                    .unwrap(),
            };
            out.push((index, q, plan));
        }
        out
    })
    .await;
    for (index, q, plan) in plans {
        assert!(plan.contains(index), "{q}\nshould read {index}:\n{plan}");
    }
}

each_engine!(
    old_rows_go_and_recent_rows_answers_and_followups_stay_and_two_replicas_prune_once,
    retention_days_zero_keeps_everything,
    a_backlog_is_pruned_in_batches,
    each_prune_query_reads_its_retention_index,
);
