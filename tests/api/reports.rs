//! Reports against hand-computed fixtures, and the CSV export.

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::TestApp;

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").unwrap()
}

/// Records answers through the API (link invitations, one contact each), then moves each
/// answer (and its invitation's send time) to the given time. Returns response ids.
pub async fn answers_at(
    app: &TestApp,
    survey: &Value,
    answers: &[(i32, &str, Value)],
) -> Vec<String> {
    let contacts: Vec<Value> = answers
        .iter()
        .enumerate()
        .map(|(i, (_, _, props))| json!({"email": format!("c{i}-{}@x.co", ulid::Ulid::new()), "properties": props}))
        .collect();
    let a = app
        .post(
            &format!(
                "/api/v1/surveys/{}/invitations",
                survey["id"].as_str().unwrap()
            ),
            json!({"channel": "link", "contacts": contacts}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let mut ids = Vec::new();
    for (item, (score, at, _)) in a.body["items"].as_array().unwrap().iter().zip(answers) {
        let token = item["url"].as_str().unwrap().rsplit('/').next().unwrap();
        let r = app
            .post(
                "/api/v1/responses",
                json!({"invitation_token": token, "score": score}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        let id = r.body["id"].as_str().unwrap().to_string();
        let inv = item["invitation_id"].as_str().unwrap().to_string();
        let (state, rid, when) = (app.app_state.clone(), id.clone(), t(at));
        tokio::task::spawn_blocking(move || {
            use closeloop::store::schema::{invitations, responses};
            use diesel::prelude::*;
            let mut conn = state.db.get().unwrap();
            diesel::update(responses::table.find(&rid))
                .set(responses::created_at.eq(when))
                .execute(&mut conn)
                .unwrap();
            diesel::update(invitations::table.find(&inv))
                .set(invitations::sent_at.eq(Some(when - TimeDelta::minutes(30))))
                .execute(&mut conn)
                .unwrap();
        })
        .await
        .unwrap();
        ids.push(id);
    }
    rebuild_rollups(app).await;
    ids
}

/// Times were moved by hand, under the daily rollups: recompute them (as
/// `closeloop rebuild-rollups` does after loading data by hand).
async fn rebuild_rollups(app: &TestApp) {
    let state = app.app_state.clone();
    tokio::task::spawn_blocking(move || {
        closeloop::store::rollups::rebuild(&mut state.db.get().unwrap()).unwrap()
    })
    .await
    .unwrap();
}

pub async fn report(app: &TestApp, survey: &Value, query: &str) -> Value {
    let a = app
        .get(&format!(
            "/api/v1/surveys/{}/report?{query}",
            survey["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

/// The `n` of one score in a summary's `counts` (an array of `{score, n}` in score order).
fn count(summary: &Value, score: i64) -> i64 {
    summary["counts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["score"] == score)
        .map(|c| c["n"].as_i64().unwrap())
        .unwrap_or_else(|| panic!("no count for {score}: {}", summary["counts"]))
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 0.011
}

async fn nps_and_its_interval_match_a_hand_computation(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    // 10×6, 9×4, 8×3, 7×2, 6, 5, 3, 0×2: n = 20, promoters 10, passives 5, detractors 5.
    let scores = [
        10, 10, 10, 10, 10, 10, 9, 9, 9, 9, 8, 8, 8, 7, 7, 6, 5, 3, 0, 0,
    ];
    let answers: Vec<(i32, &str, Value)> = scores
        .iter()
        .map(|s| (*s, "2026-10-10T12:00:00", json!({})))
        .collect();
    answers_at(&app, &s, &answers).await;
    let r = report(
        &app,
        &s,
        "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z",
    )
    .await;
    assert_eq!(r["responses"], 20);
    assert_eq!(
        (
            r["promoters"].as_i64(),
            r["passives"].as_i64(),
            r["detractors"].as_i64()
        ),
        (Some(10), Some(5), Some(5))
    );
    assert_eq!((count(&r, 10), count(&r, 0)), (6, 2));
    let scores: Vec<i64> = r["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["score"].as_i64().unwrap())
        .collect();
    assert_eq!(
        scores,
        (0..=10).collect::<Vec<_>>(),
        "every score, in order"
    );
    // NPS = 100·(0.5 − 0.25) = 25. Adjusted Wald: p̃ = 11/23, d̃ = 6/23, centre 21.74,
    // Var = 17/23 − (5/23)² = 0.6919, MOE = 196·sqrt(0.6919/23) = 33.99.
    assert!(close(&r["nps"], 25.0), "{}", r["nps"]);
    assert!(
        close(&r["nps_ci95"][0], -12.25) && close(&r["nps_ci95"][1], 55.73),
        "{}",
        r["nps_ci95"]
    );
    assert!(close(&r["average_score"], 7.4), "148 / 20");
    assert!(r.get("csat").is_none(), "no CSAT fields on an NPS report");
    assert_eq!(r["interval"], "day");
    assert_eq!(r["series"].as_array().unwrap().len(), 31);
    // Delivery: all 20 links made (sent) in the period, all answered, 30 minutes each.
    assert_eq!(
        (
            r["invitations_delivered"].as_i64(),
            r["invitations_answered"].as_i64()
        ),
        (Some(20), Some(20))
    );
    assert!(close(&r["response_rate"], 100.0), "a percentage");
    // From the delay histogram (buckets about 5 % wide): within 3 % of 30 minutes.
    let median = r["median_seconds_to_answer"].as_f64().unwrap();
    assert!((median - 1800.0).abs() / 1800.0 < 0.03, "{median}");
}

async fn csat_uses_a_wilson_interval(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "csat", "name": "x", "throttle_days": 0}))
        .await;
    let scores = [5, 5, 5, 4, 4, 3, 3, 2, 1, 1];
    let answers: Vec<(i32, &str, Value)> = scores
        .iter()
        .map(|s| (*s, "2026-10-10T12:00:00", json!({})))
        .collect();
    answers_at(&app, &s, &answers).await;
    let r = report(
        &app,
        &s,
        "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&interval=month",
    )
    .await;
    assert_eq!(
        (
            r["satisfied"].as_i64(),
            r["neutral"].as_i64(),
            r["unsatisfied"].as_i64()
        ),
        (Some(5), Some(2), Some(3))
    );
    assert!(close(&r["csat"], 50.0));
    // Wilson, p = 0.5, n = 10: 0.5 ± 1.96·sqrt(0.025 + 3.8415/400)/1.38415 = [23.66, 76.34].
    assert!(
        close(&r["csat_ci95"][0], 23.66) && close(&r["csat_ci95"][1], 76.34),
        "{}",
        r["csat_ci95"]
    );
    assert_eq!(
        r["counts"],
        json!([{"score": 1, "n": 2}, {"score": 2, "n": 1}, {"score": 3, "n": 2}, {"score": 4, "n": 2}, {"score": 5, "n": 3}])
    );
    assert!(r.get("nps").is_none());
    assert_eq!(r["series"].as_array().unwrap().len(), 1);
}

async fn buckets_split_exactly_at_utc_day_week_and_month_edges(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    answers_at(
        &app,
        &s,
        &[
            (10, "2026-10-31T23:59:59.999999", json!({})),
            (0, "2026-11-01T00:00:00", json!({})),
            (9, "2026-11-01T23:59:59", json!({})),
            (8, "2026-11-02T00:00:00", json!({})),
        ],
    )
    .await;
    let q = "from=2026-10-31T00:00:00Z&to=2026-11-03T00:00:00Z";
    let days = report(&app, &s, &format!("{q}&interval=day")).await;
    let per_day: Vec<(String, i64)> = days["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().to_string(),
                b["responses"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_day,
        vec![
            ("2026-10-31".into(), 1),
            ("2026-11-01".into(), 2),
            ("2026-11-02".into(), 1)
        ]
    );
    assert_eq!(
        days["series"][1]["nps"], 0.0,
        "one promoter and one detractor"
    );
    let weeks = report(&app, &s, &format!("{q}&interval=week")).await;
    let per_week: Vec<(String, String, i64)> = weeks["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["start"].as_str().unwrap().into(),
                b["end"].as_str().unwrap().into(),
                b["responses"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_week,
        vec![
            ("2026-10-26".into(), "2026-11-02".into(), 3),
            ("2026-11-02".into(), "2026-11-09".into(), 1)
        ]
    );
    let months = report(&app, &s, &format!("{q}&interval=month")).await;
    let per_month: Vec<i64> = months["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["responses"].as_i64().unwrap())
        .collect();
    assert_eq!(per_month, vec![1, 3]);
    // The range itself is half-open: [from, to).
    let r = report(
        &app,
        &s,
        "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z",
    )
    .await;
    assert_eq!(r["responses"], 2);
}

async fn segments_break_answers_down_by_a_contact_property(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    answers_at(
        &app,
        &s,
        &[
            (10, "2026-10-10T10:00:00", json!({"plan": "pro"})),
            (9, "2026-10-10T10:00:00", json!({"plan": "pro"})),
            (2, "2026-10-10T10:00:00", json!({"plan": "free"})),
            (7, "2026-10-10T10:00:00", json!({})),
        ],
    )
    .await;
    let anon = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": s["id"], "score": 0}),
        )
        .await;
    let (state, rid) = (
        app.app_state.clone(),
        anon.body["id"].as_str().unwrap().to_string(),
    );
    tokio::task::spawn_blocking(move || {
        use closeloop::store::schema::responses;
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(responses::table.find(rid))
            .set(responses::created_at.eq(t("2026-10-11T00:00:00")))
            .execute(&mut conn)
            .unwrap();
    })
    .await
    .unwrap();
    rebuild_rollups(&app).await;
    let r = report(
        &app,
        &s,
        "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&segment=plan",
    )
    .await;
    assert_eq!(r["segment"], "plan");
    let mut segs: Vec<(Option<String>, i64, f64)> = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["value"].as_str().map(str::to_string),
                g["responses"].as_i64().unwrap(),
                g["nps"].as_f64().unwrap(),
            )
        })
        .collect();
    segs.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        segs,
        vec![
            (None, 2, -50.0),
            (Some("free".into()), 1, -100.0),
            (Some("pro".into()), 2, 100.0)
        ]
    );
    assert_eq!(r["responses"], 5);
    assert_eq!(r["followups"]["open"], 2, "the 2 and the anonymous 0");
}

async fn an_empty_survey_reports_nulls_not_zeros(app: TestApp) {
    let s = app.create_survey(json!({"kind": "nps", "name": "x"})).await;
    let r = report(
        &app,
        &s,
        "from=2026-10-01T00:00:00Z&to=2026-10-08T00:00:00Z",
    )
    .await;
    assert_eq!(r["responses"], 0);
    for k in [
        "nps",
        "nps_ci95",
        "response_rate",
        "median_seconds_to_answer",
        "average_score",
    ] {
        assert!(r[k].is_null(), "{k}: {}", r[k]);
    }
    assert_eq!(r["promoters"], 0);
    assert_eq!(r["series"].as_array().unwrap().len(), 7);
    assert!(r["series"][0]["nps"].is_null());
    assert!(r["change"]["nps"].is_null() && r["change"]["nps_significant"].is_null());
    assert_eq!(r["change"]["responses"], 0);
    let c = app
        .create_survey(json!({"kind": "csat", "name": "y"}))
        .await;
    let r = report(&app, &c, "").await;
    assert!(r["csat"].is_null() && r["csat_ci95"].is_null());
    assert_eq!(
        r["interval"], "day",
        "the default range is the last 30 days"
    );
}

async fn the_change_against_the_previous_period_is_reported(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    let mut answers: Vec<(i32, &str, Value)> = Vec::new();
    for _ in 0..30 {
        answers.push((0, "2026-09-15T00:00:00", json!({})));
    }
    for _ in 0..30 {
        answers.push((10, "2026-10-15T00:00:00", json!({})));
    }
    answers_at(&app, &s, &answers).await;
    let r = report(
        &app,
        &s,
        "from=2026-10-01T00:00:00Z&to=2026-10-31T00:00:00Z",
    )
    .await;
    assert_eq!(r["previous"]["from"], "2026-09-01T00:00:00Z");
    assert_eq!(r["previous"]["responses"], 30);
    assert_eq!(r["previous"]["nps"], -100.0);
    assert_eq!(r["nps"], 100.0);
    assert_eq!(r["change"]["nps"], 200.0);
    assert_eq!(r["change"]["responses"], 0);
    assert_eq!(r["change"]["nps_significant"], true);
}

async fn a_report_across_surveys_of_a_kind(app: TestApp) {
    let a = app
        .create_survey(json!({"kind": "nps", "name": "a", "throttle_days": 0}))
        .await;
    let b = app
        .create_survey(json!({"kind": "nps", "name": "b", "throttle_days": 0}))
        .await;
    let c = app
        .create_survey(json!({"kind": "csat", "name": "c", "throttle_days": 0}))
        .await;
    answers_at(&app, &a, &[(10, "2026-10-10T00:00:00", json!({}))]).await;
    answers_at(
        &app,
        &b,
        &[
            (0, "2026-10-11T00:00:00", json!({})),
            (9, "2026-10-11T00:00:00", json!({})),
        ],
    )
    .await;
    answers_at(&app, &c, &[(5, "2026-10-11T00:00:00", json!({}))]).await;
    let r = app.get("/api/v1/reports?kind=nps&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&interval=week").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["responses"], 3);
    assert!(r.body["survey_id"].is_null());
    assert!(close(&r.body["nps"], 33.33));
    let r = app
        .get("/api/v1/reports?kind=csat&from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z")
        .await;
    assert_eq!(r.body["responses"], 1);
}

async fn bad_report_queries_are_4xx(app: TestApp) {
    let s = app.nps_survey().await;
    let id = s["id"].as_str().unwrap();
    for q in [
        "from=2026-10-02T00:00:00Z&to=2026-10-01T00:00:00Z",
        "interval=hour",
        "segment=plan'--",
        "segment=",
        "from=2000-01-01T00:00:00Z&to=2026-01-01T00:00:00Z&interval=day",
        "from=yesterday",
    ] {
        let a = app.get(&format!("/api/v1/surveys/{id}/report?{q}")).await;
        assert!(a.status == 400 || a.status == 422, "{q}: {}", a.text);
    }
    assert_eq!(
        app.get("/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/report")
            .await
            .status,
        404
    );
    // Query errors name the parameter (422 with `fields`).
    let a = app.get("/api/v1/reports").await;
    assert_eq!(
        (a.status, a.field("kind")),
        (422, vec!["is required".to_string()])
    );
    let a = app.get("/api/v1/reports?kind=stars").await;
    assert_eq!(a.status, 422);
    assert!(a.field("kind")[0].contains("nps"), "{}", a.text);
}

async fn the_csv_export_quotes_and_neutralises_cells(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/invitations", s["id"].as_str().unwrap()),
            json!({"channel": "link", "contacts": [
                {"email": "ada@x.co", "name": "=HYPERLINK(\"http://evil\")"},
                {"email": "bob@x.co", "name": "Bob, \"the builder\""}
            ]}),
        )
        .await;
    let tokens: Vec<String> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    let comments = ["line one\nline \"two\", with comma", "@SUM(A1:A9) ünïcødé"];
    for (token, comment) in tokens.iter().zip(comments) {
        app.post(
            "/api/v1/responses",
            json!({"invitation_token": token, "score": 3, "comment": comment}),
        )
        .await;
    }
    app.post(
        "/api/v1/responses",
        json!({"survey_id": s["id"], "score": 10, "comment": "-1+1"}),
    )
    .await;
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/surveys/{}/responses.csv",
            s["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    assert!(res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains("attachment"));
    let bytes = res.bytes().await.unwrap();
    assert!(
        bytes.starts_with("\u{feff}".as_bytes()),
        "UTF-8 byte-order mark"
    );
    let mut reader = csv::Reader::from_reader(&bytes[3..]);
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header[..3], ["id", "survey_id", "invitation_id"]);
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 3);
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    assert_eq!(&rows[0][col("name")], "'=HYPERLINK(\"http://evil\")");
    assert_eq!(
        &rows[0][col("comment")],
        "line one\nline \"two\", with comma"
    );
    assert_eq!(&rows[1][col("name")], "Bob, \"the builder\"");
    assert_eq!(&rows[1][col("comment")], "'@SUM(A1:A9) ünïcødé");
    assert_eq!(&rows[2][col("comment")], "'-1+1");
    assert_eq!(&rows[2][col("email")], "");
    assert_eq!(&rows[0][col("score")], "3");
    assert_eq!(&rows[0][col("category")], "detractor");
    // RFC 4180 quoting on the wire.
    let text = String::from_utf8(bytes[3..].to_vec()).unwrap();
    assert!(
        text.contains("\"line one\nline \"\"two\"\", with comma\""),
        "{text}"
    );
    // Filters as in the list.
    let res = app
        .client
        .get(app.url(&format!(
            "/api/v1/surveys/{}/responses.csv?category=promoter",
            s["id"].as_str().unwrap()
        )))
        .bearer_auth(&app.key)
        .send()
        .await
        .unwrap();
    let text = res.text().await.unwrap();
    assert_eq!(text.lines().count(), 2, "header and one promoter");
    let a = app
        .get("/api/v1/surveys/srv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/responses.csv")
        .await;
    assert_eq!(a.status, 404);
    let a = app
        .send(
            reqwest::Method::GET,
            &format!(
                "/api/v1/surveys/{}/responses.csv",
                s["id"].as_str().unwrap()
            ),
            None,
            None,
        )
        .await;
    assert_eq!(a.status, 401);
}

/// The rollups kept answer by answer equal the ones rebuilt from the source tables, and a
/// range cut inside days (partial edge days read from the answers) agrees with whole days.
async fn rollups_kept_live_match_a_rebuild(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    let sid = s["id"].as_str().unwrap();
    let a = app
        .post(&format!("/api/v1/surveys/{sid}/invitations"), json!({"channel": "link", "contacts": (0..12).map(|i| json!({"email": format!("r{i}@x.co")})).collect::<Vec<_>>()}))
        .await;
    let tokens: Vec<String> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            i["url"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    for (i, token) in tokens.iter().enumerate().take(9) {
        app.post(
            "/api/v1/responses",
            json!({"invitation_token": token, "score": i}),
        )
        .await;
    }
    // Changed answers move between scores; comment-only changes do not count twice.
    app.post(
        "/api/v1/responses",
        json!({"invitation_token": tokens[0], "score": 10}),
    )
    .await;
    app.post(
        "/api/v1/responses",
        json!({"invitation_token": tokens[1], "score": 1, "comment": "same score"}),
    )
    .await;
    app.post("/api/v1/responses", json!({"survey_id": sid, "score": 7}))
        .await;
    let whole = "from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&interval=month";
    let live = report(&app, &s, whole).await;
    assert_eq!(live["responses"], 10);
    assert_eq!((count(&live, 10), count(&live, 0)), (1, 0));
    assert_eq!(
        (
            live["invitations_delivered"].as_i64(),
            live["invitations_answered"].as_i64()
        ),
        (Some(12), Some(9))
    );
    let now = chrono::Utc::now();
    let cut = format!(
        "from={}&to={}&interval=day",
        (now - chrono::TimeDelta::hours(30)).format("%Y-%m-%dT%H:%M:%S%.6fZ"),
        (now + chrono::TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%S%.6fZ")
    );
    let partial = report(&app, &s, &cut).await;
    rebuild_rollups(&app).await;
    let rebuilt = report(&app, &s, whole).await;
    for k in [
        "responses",
        "counts",
        "nps",
        "nps_ci95",
        "invitations_delivered",
        "invitations_answered",
        "response_rate",
        "median_seconds_to_answer",
    ] {
        assert_eq!(live[k], rebuilt[k], "{k}");
        assert_eq!(partial[k], rebuilt[k], "{k} over a range cut inside days");
    }
}

both_engines!(
    rollups_kept_live_match_a_rebuild,
    nps_and_its_interval_match_a_hand_computation,
    csat_uses_a_wilson_interval,
    buckets_split_exactly_at_utc_day_week_and_month_edges,
    segments_break_answers_down_by_a_contact_property,
    an_empty_survey_reports_nulls_not_zeros,
    the_change_against_the_previous_period_is_reported,
    a_report_across_surveys_of_a_kind,
    bad_report_queries_are_4xx,
    the_csv_export_quotes_and_neutralises_cells,
);
