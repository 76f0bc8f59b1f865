//! Parallel writes: simultaneous invitation batches (link and email, sharing contacts in
//! different orders) and answers, while the survey's emails are being dispatched. On
//! PostgreSQL these used to deadlock on the sharded report counters (about half the batches
//! answered 500); now the counters are taken in a fixed order and a transaction aborted by a
//! deadlock is retried, so no request may fail.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::each_engine;
use crate::helpers::{spawn_app_with, Engine, TestApp};
use crate::smtp::TestSmtp;

const ROUNDS: usize = 6;
const BATCHES: usize = 4;
const PER_BATCH: usize = 50;
const ANSWERS_PER_ROUND: usize = 12;

/// `PER_BATCH` contacts, drawn from a pool shared by all batches, in an order of their own.
fn contacts(round: usize, batch: usize) -> Vec<Value> {
    let mut ids: Vec<usize> = (0..PER_BATCH).map(|i| (i * 7 + batch * 13) % 80).collect();
    if batch % 2 == 1 {
        ids.reverse();
    }
    ids.rotate_left((round * 11 + batch * 5) % PER_BATCH);
    ids.into_iter()
        .map(|i| json!({"email": format!("p{i}@example.com"), "properties": {"plan": "pro", "value": i}}))
        .collect()
}

async fn invite(app: &TestApp, survey: &str, channel: &str, people: Vec<Value>) -> (u16, Value) {
    let a = app
        .post(
            &format!("/api/v1/surveys/{survey}/invitations"),
            json!({"channel": channel, "contacts": people}),
        )
        .await;
    (a.status, a.body)
}

async fn answer(app: &TestApp, token: &str, score: usize) -> u16 {
    app.client
        .post(app.url(&format!("/s/{token}")))
        .form(&[("score", score.to_string()), ("comment", "parallel".into())])
        .send()
        .await
        .expect("answer sent")
        .status()
        .as_u16()
}

fn tokens(batch: &Value) -> Vec<String> {
    batch["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["url"].as_str())
        .map(|u| u.rsplit('/').next().unwrap().to_string())
        .collect()
}

async fn parallel_batches_answers_and_dispatch_never_fail(engine: Engine) {
    let smtp = TestSmtp::start();
    let url = smtp.url();
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("DISPATCH_INTERVAL_MS", "20"),
            ("SMTP_POOL_SIZE", "4"),
            ("DB_POOL_SIZE", "10"),
            ("HTTP_WORKERS", "4"),
        ],
    )
    .await;
    let survey = app
        .create_survey(json!({"kind": "nps", "name": "parallel", "throttle_days": 0}))
        .await;
    let sid = survey["id"].as_str().unwrap().to_string();
    // Tokens to answer while the batches run.
    let (status, first) = invite(&app, &sid, "link", contacts(99, 0)).await;
    assert_eq!(status, 200, "{first}");
    let mut open = tokens(&first);

    let mut failures = Vec::new();
    let mut emails = 0;
    for round in 0..ROUNDS {
        let batches = (0..BATCHES).map(|b| {
            let channel = if b % 2 == 0 { "link" } else { "email" };
            invite(&app, &sid, channel, contacts(round, b))
        });
        let to_answer: Vec<String> = open.drain(..ANSWERS_PER_ROUND.min(open.len())).collect();
        let answers = to_answer
            .iter()
            .enumerate()
            .map(|(i, t)| answer(&app, t, (i * 3 + round) % 11));
        let (batches, answers) = tokio::join!(join_all(batches), join_all(answers));
        for (b, (status, body)) in batches.into_iter().enumerate() {
            if status != 200 {
                failures.push(format!("round {round} batch {b}: {status} {body}"));
                continue;
            }
            if b % 2 == 0 {
                open.extend(tokens(&body));
            } else {
                emails += body["items"].as_array().unwrap().len();
            }
        }
        for (i, status) in answers.into_iter().enumerate() {
            if status != 303 {
                failures.push(format!("round {round} answer {i}: {status}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} requests failed:\n{}",
        failures.len(),
        ROUNDS * (BATCHES + ANSWERS_PER_ROUND),
        failures.join("\n")
    );
    assert_eq!(emails, ROUNDS * BATCHES / 2 * PER_BATCH);
    // Every email goes out once, and the report counts every answer exactly once.
    smtp.wait_for(emails, 60).await;
    let report = app
        .get(&format!("/api/v1/surveys/{sid}/report?interval=day"))
        .await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(
        report.body["responses"].as_u64(),
        Some((ROUNDS * ANSWERS_PER_ROUND) as u64),
        "{}",
        report.text
    );
}

each_engine!(parallel_batches_answers_and_dispatch_never_fail);
