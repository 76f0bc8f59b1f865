//! Segment snapshots (`report_segments`): an answer counts under the contact property value
//! its customer had when they answered, from rollups kept with each answer; a changed answer
//! moves its counts; a property that is not snapshotted falls back to the contacts' current
//! properties (`segment_source: "current"`); adding one backfills the earlier answers; erasing
//! a contact clears their values. Every check is against hand-computed numbers, the live
//! join on the same data, or a rebuild of the rollups.

use chrono::{NaiveDateTime, TimeDelta, Utc};
use closeloop::domain::Role;
use closeloop::store::reports::{segment_counts, segment_counts_snapshot, Scope};
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{answer, eventually, tokens, with_db, TestApp};
use crate::reports::{answers_at, report};

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

/// `from=…&to=…` of today's whole UTC day (read from the daily rollups only).
fn today() -> String {
    let d = Utc::now().date_naive();
    format!("from={d}T00:00:00Z&to={}T00:00:00Z", d + TimeDelta::days(1))
}

/// `from=…&to=…` from an hour ago to in an hour (partial days: read from the snapshots).
fn around_now() -> String {
    let n = Utc::now();
    let f = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    format!(
        "from={}&to={}",
        f(n - TimeDelta::hours(1)),
        f(n + TimeDelta::hours(1))
    )
}

/// A report's segments as (value, answers, nps), by value.
fn segs(r: &Value) -> Vec<(Option<String>, i64, Option<f64>)> {
    let mut out: Vec<_> = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["value"].as_str().map(str::to_string),
                g["responses"].as_i64().unwrap(),
                g["nps"].as_f64(),
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

async fn set_properties(app: &TestApp, email: &str, props: Value) {
    let a = app
        .post(
            "/api/v1/contacts",
            json!({"email": email, "properties": props}),
        )
        .await;
    assert!(a.status == 200 || a.status == 201, "{}", a.text);
}

async fn rebuild_rollups(app: &TestApp) {
    with_db(app, |conn| {
        closeloop::store::rollups::rebuild(conn).unwrap()
    })
    .await;
}

async fn answers_count_under_the_plan_the_customer_had_when_they_answered(app: TestApp) {
    let sv = app
        .create_survey(
            json!({"kind": "nps", "name": "x", "throttle_days": 0, "report_segments": ["plan"]}),
        )
        .await;
    assert_eq!(sv["report_segments"], json!(["plan"]));
    let tk = tokens(
        &app,
        &sv,
        json!([
            {"email": "a@x.co", "properties": {"plan": "pro"}},
            {"email": "b@x.co", "properties": {"plan": "pro"}},
            {"email": "c@x.co", "properties": {"plan": "free"}},
            {"email": "d@x.co"},
        ]),
    )
    .await;
    for (token, score) in tk.iter().zip([10, 9, 2, 7]) {
        answer(&app, token, score, "").await;
    }
    let anon = app
        .post(
            "/api/v1/responses",
            json!({"survey_id": sv["id"], "score": 0}),
        )
        .await;
    assert_eq!(anon.status, 201, "{}", anon.text);
    // After answering, a moves to free and d gets a plan.
    set_properties(&app, "a@x.co", json!({"plan": "free"})).await;
    set_properties(&app, "d@x.co", json!({"plan": "team"})).await;
    // By hand: pro = {10, 9} → NPS 100; free = {2} → −100; no value = {7, anonymous 0} → −50.
    let expected = vec![
        (None, 2, Some(-50.0)),
        (s("free"), 1, Some(-100.0)),
        (s("pro"), 2, Some(100.0)),
    ];
    for range in [today(), around_now()] {
        let r = report(&app, &sv, &format!("{range}&segment=plan")).await;
        assert_eq!(r["segment_source"], "answer_time", "{range}");
        assert_eq!(segs(&r), expected, "{range}");
        assert_eq!(r["responses"], 5);
    }
    // The report across NPS surveys reads the same snapshots.
    let a = app
        .get(&format!(
            "/api/v1/reports?kind=nps&{}&segment=plan",
            today()
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["segment_source"], "answer_time");
    assert_eq!(segs(&a.body), expected);
    // The live counters equal a rebuild from the snapshots.
    rebuild_rollups(&app).await;
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(segs(&r), expected);
    // Without the setting the same answers count under today's properties.
    let live = with_db(&app, {
        let id = sv["id"].as_str().unwrap().to_string();
        move |conn| {
            let now = Utc::now().naive_utc();
            segment_counts(
                conn,
                &Scope::Survey(id),
                now - TimeDelta::hours(1),
                now + TimeDelta::hours(1),
                "plan",
            )
            .unwrap()
        }
    })
    .await;
    let live: Vec<(Option<String>, i64)> = live.into_iter().map(|(v, c)| (v, c.total())).collect();
    assert_eq!(
        live,
        vec![(None, 1), (s("free"), 2), (s("pro"), 1), (s("team"), 1)]
    );
}

async fn a_changed_answer_moves_its_counts_under_the_plan_it_was_given_with(app: TestApp) {
    let sv = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0, "report_segments": ["plan", "region"]}))
        .await;
    let tk = tokens(
        &app,
        &sv,
        json!([
            {"email": "a@x.co", "properties": {"plan": "pro", "region": "eu"}},
            {"email": "b@x.co", "properties": {"plan": "free"}},
        ]),
    )
    .await;
    answer(&app, &tk[0], 3, "").await;
    answer(&app, &tk[1], 8, "").await;
    set_properties(&app, "a@x.co", json!({"plan": "team", "region": "us"})).await;
    // a changes their mind: 3 → 10, still counted as pro and eu.
    answer(&app, &tk[0], 10, "changed my mind").await;
    for range in [today(), around_now()] {
        let r = report(&app, &sv, &format!("{range}&segment=plan")).await;
        assert_eq!(r["segment_source"], "answer_time");
        assert_eq!(
            segs(&r),
            vec![(s("free"), 1, Some(0.0)), (s("pro"), 1, Some(100.0))],
            "{range}"
        );
        let pro = &r["segments"]
            .as_array()
            .unwrap()
            .iter()
            .find(|g| g["value"] == "pro")
            .unwrap()
            .clone();
        assert_eq!(pro["detractors"], 0, "the 3 moved away: {pro}");
        assert_eq!(pro["promoters"], 1);
        let r = report(&app, &sv, &format!("{range}&segment=region")).await;
        assert_eq!(
            segs(&r),
            vec![(None, 1, Some(0.0)), (s("eu"), 1, Some(100.0))],
            "{range}"
        );
    }
    rebuild_rollups(&app).await;
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(
        segs(&r),
        vec![(s("free"), 1, Some(0.0)), (s("pro"), 1, Some(100.0))]
    );
}

async fn a_property_not_snapshotted_falls_back_to_current_values_until_a_backfill(app: TestApp) {
    let sv = app
        .create_survey(json!({"kind": "nps", "name": "x", "throttle_days": 0}))
        .await;
    assert_eq!(sv["report_segments"], json!([]));
    let tk = tokens(
        &app,
        &sv,
        json!([
            {"email": "a@x.co", "properties": {"plan": "pro"}},
            {"email": "b@x.co", "properties": {"plan": "free"}},
        ]),
    )
    .await;
    answer(&app, &tk[0], 10, "").await;
    answer(&app, &tk[1], 2, "").await;
    set_properties(&app, "a@x.co", json!({"plan": "free"})).await;
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(r["segment_source"], "current");
    assert_eq!(segs(&r), vec![(s("free"), 2, Some(0.0))]);
    let plain = report(&app, &sv, &today()).await;
    assert!(
        plain.get("segment_source").is_none(),
        "no segment, no source: {plain}"
    );
    // Adding the property: earlier answers get today's values, in the background.
    let path = format!("/api/v1/surveys/{}", sv["id"].as_str().unwrap());
    let a = app.patch(&path, json!({"report_segments": ["plan"]})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["report_segments"], json!(["plan"]));
    let r = eventually(10, "the backfill", || async {
        let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
        (r["segment_source"] == "answer_time").then_some(r)
    })
    .await;
    assert_eq!(segs(&r), vec![(s("free"), 2, Some(0.0))]);
    // From now on the snapshot holds: b's later change does not move b's answer.
    set_properties(&app, "b@x.co", json!({"plan": "pro"})).await;
    for range in [today(), around_now()] {
        let r = report(&app, &sv, &format!("{range}&segment=plan")).await;
        assert_eq!(segs(&r), vec![(s("free"), 2, Some(0.0))], "{range}");
    }
    // A new answer is snapshotted when recorded; the backfill does not count it twice.
    let more = tokens(
        &app,
        &sv,
        json!([{"email": "c@x.co", "properties": {"plan": "pro"}}]),
    )
    .await;
    answer(&app, &more[0], 9, "").await;
    let a = app
        .patch(&path, json!({"report_segments": ["plan", "tier"]}))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let r = eventually(10, "the second backfill", || async {
        let r = report(&app, &sv, &format!("{}&segment=tier", today())).await;
        (r["segment_source"] == "answer_time").then_some(r)
    })
    .await;
    assert_eq!(segs(&r), vec![(None, 3, Some(33.33))]);
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(
        segs(&r),
        vec![(s("free"), 2, Some(0.0)), (s("pro"), 1, Some(100.0))]
    );
    rebuild_rollups(&app).await;
    let again = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(segs(&again), segs(&r));
}

async fn the_snapshots_agree_with_the_live_join_on_unchanged_data(app: TestApp) {
    let sv = app
        .create_survey(
            json!({"kind": "nps", "name": "x", "throttle_days": 0, "report_segments": ["plan"]}),
        )
        .await;
    let plans = [
        json!({"plan": "pro"}),
        json!({"plan": "free"}),
        json!({"plan": "team"}),
        json!({}),
        json!({"plan": ""}),
        json!({"plan": 3}),
    ];
    let days = [
        "2026-10-10T08:00:00",
        "2026-10-10T23:59:00",
        "2026-10-11T00:00:00",
        "2026-10-11T12:30:00",
        "2026-10-12T09:00:00",
        "2026-10-13T18:00:00",
    ];
    let answers: Vec<(i32, &str, Value)> = (0..30)
        .map(|i| {
            (
                (i * 7 % 11) as i32,
                days[i % days.len()],
                plans[(i * 5 + i / 6) % plans.len()].clone(),
            )
        })
        .collect();
    answers_at(&app, &sv, &answers).await;
    let id = sv["id"].as_str().unwrap().to_string();
    let ranges = [
        (t("2026-10-01T00:00:00"), t("2026-11-01T00:00:00")),
        (t("2026-10-10T12:00:00"), t("2026-10-12T10:00:00")),
        (t("2026-10-11T00:00:00"), t("2026-10-11T12:30:00")),
        (t("2026-10-12T00:00:00"), t("2026-10-14T00:00:00")),
    ];
    for (from, to) in ranges {
        let scope = Scope::Survey(id.clone());
        let (live, snap) = with_db(&app, move |conn| {
            (
                segment_counts(conn, &scope, from, to, "plan").unwrap(),
                segment_counts_snapshot(conn, &scope, from, to, "plan").unwrap(),
            )
        })
        .await;
        assert!(!live.is_empty());
        assert_eq!(snap, live, "{from} – {to}");
    }
    let r = report(
        &app,
        &sv,
        "from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&segment=plan",
    )
    .await;
    assert_eq!(r["segment_source"], "answer_time");
    let total: i64 = segs(&r).iter().map(|g| g.1).sum();
    assert_eq!(total, 30);
    let values: Vec<Option<String>> = segs(&r).into_iter().map(|g| g.0).collect();
    assert_eq!(
        values,
        vec![None, s(""), s("3"), s("free"), s("pro"), s("team")],
        "an empty string is a value, a missing property is none"
    );
}

async fn erasing_a_contact_clears_the_values_snapshotted_onto_their_answers(app: TestApp) {
    let sv = app
        .create_survey(
            json!({"kind": "nps", "name": "x", "throttle_days": 0, "report_segments": ["plan"]}),
        )
        .await;
    let tk = tokens(
        &app,
        &sv,
        json!([
            {"email": "a@x.co", "properties": {"plan": "pro"}},
            {"email": "b@x.co", "properties": {"plan": "pro"}},
        ]),
    )
    .await;
    answer(&app, &tk[0], 10, "").await;
    answer(&app, &tk[1], 0, "").await;
    let a = app.get("/api/v1/contacts?email=a@x.co").await;
    let contact = a.body["items"][0]["id"].as_str().unwrap().to_string();
    let a = app.delete(&format!("/api/v1/contacts/{contact}")).await;
    assert!(a.status == 204 || a.status == 200, "{}", a.text);
    let expected = vec![(None, 1, Some(100.0)), (s("pro"), 1, Some(-100.0))];
    for range in [today(), around_now()] {
        let r = report(&app, &sv, &format!("{range}&segment=plan")).await;
        assert_eq!(segs(&r), expected, "{range}");
        assert_eq!(r["responses"], 2, "the score still counts");
    }
    let kept: Vec<Option<String>> = with_db(&app, move |conn| {
        use closeloop::store::schema::{response_segments, responses};
        use diesel::prelude::*;
        response_segments::table
            .inner_join(responses::table)
            .filter(responses::contact_id.eq(contact))
            .select(response_segments::value)
            .load(conn)
            .unwrap()
    })
    .await;
    assert_eq!(kept, vec![None], "no value is left with the erased answer");
    rebuild_rollups(&app).await;
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(segs(&r), expected);
}

async fn report_segments_is_checked_set_and_cleared(app: TestApp) {
    let eleven: Vec<String> = (0..11).map(|i| format!("p{i}")).collect();
    for bad in [
        json!(["no spaces"]),
        json!([""]),
        json!(["plan", "plan"]),
        json!(eleven),
        json!("plan"),
        json!([1]),
    ] {
        let a = app
            .post(
                "/api/v1/surveys",
                json!({"kind": "nps", "name": "x", "report_segments": bad}),
            )
            .await;
        assert_eq!(a.status, 422, "{bad}: {}", a.text);
        let fields = a.body["error"]["fields"].as_object().unwrap();
        assert!(
            fields.keys().any(|k| k.starts_with("report_segments")),
            "{bad}: {}",
            a.text
        );
    }
    let sv = app
        .create_survey(json!({"kind": "nps", "name": "x", "report_segments": ["plan", "region-1"]}))
        .await;
    let path = format!("/api/v1/surveys/{}", sv["id"].as_str().unwrap());
    assert_eq!(
        app.get(&path).await.body["report_segments"],
        json!(["plan", "region-1"])
    );
    let a = app.patch(&path, json!({"report_segments": null})).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(!a.field("report_segments").is_empty(), "{}", a.text);
    let a = app.patch(&path, json!({"report_segments": ["a b"]})).await;
    assert_eq!(a.status, 422, "{}", a.text);
    assert!(!a.field("report_segments").is_empty(), "{}", a.text);
    let a = app.patch(&path, json!({"name": "y"})).await;
    assert_eq!(
        a.body["report_segments"],
        json!(["plan", "region-1"]),
        "absent: unchanged"
    );
    let a = app.patch(&path, json!({"report_segments": []})).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.body["report_segments"], json!([]));
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    assert_eq!(r["segment_source"], "current");
}

async fn the_dashboard_compares_the_same_segments_as_the_api(app: TestApp) {
    let sv = app
        .create_survey(
            json!({"kind": "nps", "name": "Dash", "throttle_days": 0, "report_segments": ["plan"]}),
        )
        .await;
    let tk = tokens(
        &app,
        &sv,
        json!([
            {"email": "a@x.co", "properties": {"plan": "pro"}},
            {"email": "b@x.co", "properties": {"plan": "pro"}},
            {"email": "c@x.co", "properties": {"plan": "free"}},
        ]),
    )
    .await;
    for (token, score) in tk.iter().zip([10, 9, 3]) {
        answer(&app, token, score, "").await;
    }
    set_properties(&app, "a@x.co", json!({"plan": "free"})).await;
    let reader = app.sign_in("rey@x.co", "Rey Reader", Role::Reader).await;
    let d = Utc::now().date_naive();
    let (status, page) = app
        .get_page(
            &format!(
                "/app/surveys/{}?period=custom&from={d}&to={d}&segment=plan",
                sv["id"].as_str().unwrap()
            ),
            &reader.cookie,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("as each customer had it when they answered"),
        "the chart says where the values come from"
    );
    let r = report(&app, &sv, &format!("{}&segment=plan", today())).await;
    // Each bar: its label, its n and its value, as the API has them.
    let mut shown: Vec<(String, i64, String)> = page
        .split("<g class=\"seg-row")
        .skip(1)
        .map(|g| {
            let n = g.split("data-n=\"").nth(1).unwrap();
            let n: i64 = n[..n.find('"').unwrap()].parse().unwrap();
            let texts: Vec<&str> = g
                .split("</text>")
                .take(2)
                .map(|x| &x[x.rfind('>').unwrap() + 1..])
                .collect();
            (texts[0].to_string(), n, texts[1].to_string())
        })
        .collect();
    shown.sort();
    let mut api: Vec<(String, i64, String)> = r["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            let n = g["responses"].as_i64().unwrap();
            let nps = g["nps"].as_f64().unwrap();
            (
                g["value"].as_str().unwrap().to_string(),
                n,
                format!("{} (n = {n})", nps as i64),
            )
        })
        .collect();
    api.sort();
    assert_eq!(
        api,
        vec![
            ("free".into(), 1, "-100 (n = 1)".into()),
            ("pro".into(), 2, "100 (n = 2)".into())
        ],
        "pro = {{10, 9}} (a moved to free after answering), free = {{3}}"
    );
    assert_eq!(shown, api);
}

async fn the_survey_editor_sets_the_report_segments(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea Lead", Role::Admin).await;
    let (status, to, body) = app
        .post_as(
            &lead,
            "/app/surveys/new",
            &[
                ("kind", "nps"),
                ("name", "Editor"),
                ("report_segments", " plan, region ,"),
            ],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    let id = to
        .split("/app/surveys/")
        .nth(1)
        .unwrap()
        .split('/')
        .next()
        .unwrap();
    let path = format!("/api/v1/surveys/{id}");
    assert_eq!(
        app.get(&path).await.body["report_segments"],
        json!(["plan", "region"])
    );
    let edit = format!("/app/surveys/{id}/edit");
    let (status, page) = app.get_page(&edit, &lead.cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"plan, region\""), "{page}");
    let (status, _, page) = app
        .post_as(
            &lead,
            &edit,
            &[("name", "Editor"), ("report_segments", "plan, no spaces")],
        )
        .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"e-report_segments\""), "{page}");
    let (status, _, body) = app
        .post_as(
            &lead,
            &edit,
            &[("name", "Editor"), ("report_segments", "region")],
        )
        .await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(
        app.get(&path).await.body["report_segments"],
        json!(["region"])
    );
}

both_engines!(
    the_survey_editor_sets_the_report_segments,
    answers_count_under_the_plan_the_customer_had_when_they_answered,
    a_changed_answer_moves_its_counts_under_the_plan_it_was_given_with,
    a_property_not_snapshotted_falls_back_to_current_values_until_a_backfill,
    the_snapshots_agree_with_the_live_join_on_unchanged_data,
    erasing_a_contact_clears_the_values_snapshotted_onto_their_answers,
    report_segments_is_checked_set_and_cleared,
    the_dashboard_compares_the_same_segments_as_the_api,
);
