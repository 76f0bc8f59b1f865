//! Every queue poll costs O(due rows), not O(table) (issue 12): the plan of each due-row query,
//! built by the same code the workers run, starts at an index whose leading column is the due
//! condition; and the reminder's due time (`remind_at`) follows the survey's settings.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app_with, with_db, Engine, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

/// The plans of the due-row queries at now, on the app's database.
async fn plans(app: &TestApp, survey_id: &str) -> Vec<closeloop::store::plans::DuePlan> {
    let survey_id = survey_id.to_string();
    with_db(app, move |conn| {
        conn.transaction(|conn| {
            if let closeloop::store::DbConnection::Sqlite(_) = conn {
                // SQLite plans by its statistics (ANALYZE, `PRAGMA optimize`): give it those
                // of a large database, where nearly every row is done (`sent`, `delivered`),
                // so a query that only fits an empty table (an `OR` of the due and the
                // expired-claim conditions did) shows its table scan here.
                large_table_statistics(conn);
            }
            if let closeloop::store::DbConnection::Postgres(_) = conn {
                // The test's tables hold a handful of rows, and on so few PostgreSQL rightly
                // reads the whole table. The point is that an index exists that fits the due
                // condition: forbid sequential scans for this transaction only (SET LOCAL), so
                // the planner shows the index it would use on a large table.
                diesel::sql_query("SET LOCAL enable_seqscan = off").execute(conn)?;
            }
            closeloop::store::plans::due_query_plans(conn, closeloop::domain::now(), &survey_id)
                .map_err(|e| diesel::result::Error::QueryBuilderError(e.to_string().into()))
        })
        .unwrap()
    })
    .await
}

/// Statistics as `ANALYZE` wrote them for 1,000,000 invitations (half answered, half sent)
/// and as many emails, webhook deliveries and follow-ups, nearly all done; loaded into this
/// connection's planner (`ANALYZE sqlite_schema`).
fn large_table_statistics(conn: &mut closeloop::store::DbConnection) {
    let stats = [
        ("invitations", "invitations_queue", "1000000 500000 2"),
        ("invitations", "invitations_remind", "500000 6"),
        ("invitations", "invitations_survey", "1000000 1000000 1"),
        (
            "invitations",
            "invitations_survey_sent",
            "1000000 1000000 2",
        ),
        ("invitations", "invitations_contact", "1000000 100 1"),
        ("invitations", "sqlite_autoindex_invitations_1", "1000000 1"),
        ("invitations", "sqlite_autoindex_invitations_2", "1000000 1"),
        ("emails", "emails_queue", "1000000 500000 2"),
        ("emails", "emails_followup", "1000000 10"),
        ("emails", "sqlite_autoindex_emails_1", "1000000 1"),
        (
            "webhook_deliveries",
            "webhook_deliveries_queue",
            "1000000 500000 2",
        ),
        (
            "webhook_deliveries",
            "webhook_deliveries_webhook",
            "1000000 1000000 1",
        ),
        (
            "webhook_deliveries",
            "sqlite_autoindex_webhook_deliveries_1",
            "1000000 1",
        ),
        ("followups", "followups_resolved_at", "100000 50000 2"),
        ("followups", "followups_status_due", "100000 50000 2"),
        ("followups", "followups_queue", "100000 50000 100 10 1"),
        ("followups", "followups_survey", "100000 100000 50000"),
        ("followups", "followups_assignee", "100000 50000 25000"),
        ("followups", "followups_contact", "100000 10"),
        ("followups", "followups_resurvey_invitation", "100000 1"),
        ("followups", "sqlite_autoindex_followups_1", "100000 1"),
        ("followups", "sqlite_autoindex_followups_2", "100000 1"),
    ];
    diesel::sql_query("ANALYZE").execute(conn).unwrap();
    diesel::sql_query(
        "DELETE FROM sqlite_stat1 WHERE tbl IN \
         ('invitations', 'emails', 'webhook_deliveries', 'followups')",
    )
    .execute(conn)
    .unwrap();
    for (tbl, idx, stat) in stats {
        diesel::sql_query(format!(
            "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES ('{tbl}', '{idx}', '{stat}')"
        ))
        .execute(conn)
        .unwrap();
    }
    diesel::sql_query("ANALYZE sqlite_schema")
        .execute(conn)
        .unwrap();
}

/// The table a due-row query polls, as its index is named (`invitations_remind` → `invitations`).
fn polled_table(index: &str) -> &'static str {
    ["webhook_deliveries", "invitations", "emails", "followups"]
        .into_iter()
        .find(|t| index.starts_with(t))
        .expect("a known queue table")
}

fn uses_index(pg: bool, plan: &str, table: &str, index: &str) -> bool {
    if pg {
        [
            format!("Index Scan using {index} on {table}"),
            format!("Index Only Scan using {index} on {table}"),
            format!("Bitmap Index Scan on {index}"),
        ]
        .iter()
        .any(|p| plan.contains(p.as_str()))
            && !plan.contains(&format!("Seq Scan on {table}"))
    } else {
        plan.lines().any(|l| {
            l.contains(&format!("SEARCH {table} USING INDEX {index} ("))
                || l.contains(&format!("SEARCH {table} USING COVERING INDEX {index} ("))
        }) && !plan
            .lines()
            .any(|l| l.trim_start().starts_with(&format!("SCAN {table}")))
    }
}

async fn every_due_row_query_starts_at_an_index_on_its_due_condition(app: TestApp) {
    let pg = app.db.url.starts_with("postgres");
    let s = app.nps_survey().await;
    let plans = plans(&app, s["id"].as_str().unwrap()).await;
    let names: Vec<&str> = plans.iter().map(|p| p.name).collect();
    assert_eq!(
        names,
        [
            "invitations due",
            "invitation claims expired",
            "emails due",
            "email claims expired",
            "webhook deliveries due",
            "webhook delivery claims expired",
            "reminders due",
            "re-surveys due"
        ]
    );
    for p in &plans {
        let table = polled_table(p.index);
        assert!(
            uses_index(pg, &p.plan, table, p.index),
            "{}: expected a search of {table} through {}, got:\n{}",
            p.name,
            p.index,
            p.plan
        );
    }
}

async fn without_its_index_a_due_query_is_caught_scanning(app: TestApp) {
    let pg = app.db.url.starts_with("postgres");
    let s = app.nps_survey().await;
    let survey_id = s["id"].as_str().unwrap().to_string();
    for index in [
        "invitations_queue",
        "emails_queue",
        "webhook_deliveries_queue",
        "invitations_remind",
        "followups_resolved_at",
    ] {
        with_db(&app, move |conn| {
            diesel::sql_query(format!("DROP INDEX {index}"))
                .execute(conn)
                .unwrap();
        })
        .await;
        let plans = plans(&app, &survey_id).await;
        for p in plans.iter().filter(|p| p.index == index) {
            assert!(
                !uses_index(pg, &p.plan, polled_table(index), index),
                "{} still passes without {index}:\n{}",
                p.name,
                p.plan
            );
        }
    }
}

/// `remind_at` and `sent_at` of an invitation.
async fn reminder_clock(app: &TestApp, id: &str) -> (Option<NaiveDateTime>, Option<NaiveDateTime>) {
    let id = id.to_string();
    with_db(app, move |conn| {
        use closeloop::store::schema::invitations;
        invitations::table
            .find(id)
            .select((invitations::remind_at, invitations::sent_at))
            .first(conn)
            .unwrap()
    })
    .await
}

/// Asserts `remind_at` is `sent_at` plus `days` (to the millisecond SQLite keeps), or unset.
async fn assert_remind_after(app: &TestApp, id: &str, days: Option<i64>, why: &str) {
    let (remind_at, sent_at) = reminder_clock(app, id).await;
    match days {
        None => assert_eq!(remind_at, None, "{why}"),
        Some(d) => {
            let want = sent_at.unwrap() + TimeDelta::days(d);
            let got = remind_at.unwrap_or_else(|| panic!("{why}: no remind_at"));
            assert!(
                (got - want).num_milliseconds().abs() <= 1,
                "{why}: remind_at {got}, want {want}"
            );
        }
    }
}

async fn patch_survey(app: &TestApp, id: &str, body: Value) {
    let a = app.patch(&format!("/api/v1/surveys/{id}"), body).await;
    assert_eq!(a.status, 200, "{}", a.text);
}

async fn the_reminder_time_follows_the_survey_settings_and_ends_when_answered(engine: Engine) {
    let smtp = TestSmtp::start();
    let url = smtp.url();
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("SMTP_POOL_SIZE", "2"),
        ],
    )
    .await;
    let s = app
        .create_survey(
            json!({"kind": "nps", "name": "x", "brand": "Acme", "reminder_after_days": 3}),
        )
        .await;
    let sid = s["id"].as_str().unwrap().to_string();
    let a = app
        .post(
            &format!("/api/v1/surveys/{sid}/invitations"),
            json!({"channel": "email", "contacts": [{"email": "a@example.com"}, {"email": "b@example.com"}]}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let ids: Vec<String> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["invitation_id"].as_str().unwrap().to_string())
        .collect();
    for id in &ids {
        eventually(10, "the invitation to be sent", || async {
            let inv = app.get(&format!("/api/v1/invitations/{id}")).await;
            (inv.body["status"] == "sent").then_some(())
        })
        .await;
    }
    let (a_id, b_id) = (&ids[0], &ids[1]);
    assert_remind_after(&app, a_id, Some(3), "set when sent").await;

    patch_survey(&app, &sid, json!({"reminder_after_days": 5})).await;
    assert_remind_after(&app, a_id, Some(5), "moved with reminder_after_days").await;
    patch_survey(&app, &sid, json!({"reminder_after_days": null})).await;
    assert_remind_after(&app, a_id, None, "reminders turned off").await;
    patch_survey(&app, &sid, json!({"reminder_after_days": 2})).await;
    assert_remind_after(&app, a_id, Some(2), "reminders turned on again").await;
    patch_survey(&app, &sid, json!({"status": "paused"})).await;
    assert_remind_after(&app, a_id, None, "no reminder while paused").await;
    patch_survey(&app, &sid, json!({"status": "active"})).await;
    assert_remind_after(&app, a_id, Some(2), "resumed").await;

    // b answers: no reminder for them.
    let token = {
        let b_id = b_id.clone();
        with_db(&app, move |conn| {
            use closeloop::store::schema::invitations;
            invitations::table
                .find(b_id)
                .select(invitations::token)
                .first::<String>(conn)
                .unwrap()
        })
        .await
    };
    let res = app
        .post_form(&format!("/s/{token}"), None, &[("score", "9")])
        .await;
    assert_eq!(res.status(), 303);
    assert_remind_after(&app, b_id, None, "answered").await;
    assert_eq!(smtp.received().len(), 2, "no reminder yet");

    // a was sent 2 days ago; making the delay 1 day makes the reminder due now, and only a's.
    let a2 = a_id.clone();
    with_db(&app, move |conn| {
        use closeloop::store::schema::invitations;
        diesel::update(invitations::table.find(a2))
            .set(invitations::sent_at.eq(Some(closeloop::domain::now() - TimeDelta::days(2))))
            .execute(conn)
            .unwrap();
    })
    .await;
    patch_survey(&app, &sid, json!({"reminder_after_days": 1})).await;
    let got = smtp.wait_for(3, 10).await;
    assert_eq!(
        got[2].parsed().subject(),
        Some("Reminder: A quick question from Acme")
    );
    assert_remind_after(&app, a_id, None, "reminded once").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(smtp.received().len(), 3, "exactly one reminder");
}

both_engines!(
    every_due_row_query_starts_at_an_index_on_its_due_condition,
    without_its_index_a_due_query_is_caught_scanning,
);

each_engine!(the_reminder_time_follows_the_survey_settings_and_ends_when_answered);
