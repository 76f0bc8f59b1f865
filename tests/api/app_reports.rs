//! The dashboards (`/app/reports`, `/app/surveys/{id}`) over HTTP: their numbers against the
//! report API for the same period, the trend's buckets and gaps, close-the-loop metrics
//! against hand-computed fixtures, the comments feed's filters, the session CSV download and
//! the 422 page for bad parameters.

use chrono::NaiveDateTime;
use closeloop::domain::Role;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{answer, tokens, TestApp};
use crate::reports::{answers_at, report};

fn t(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S").unwrap()
}

/// The value of attribute `attr` on the element with `id` (the first tag holding it).
fn attr(page: &str, id: &str, attr: &str) -> String {
    let at = page
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} on the page"));
    let start = page[..at].rfind('<').unwrap();
    let end = at + page[at..].find('>').unwrap();
    let tag = &page[start..end];
    let key = format!(" {attr}=\"");
    let v = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {attr} on #{id}: {tag}"))
        + key.len();
    // As askama escapes it.
    tag[v..v + tag[v..].find('"').unwrap()]
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// An attribute as the API's JSON number (empty: null).
fn num(page: &str, id: &str, a: &str) -> Value {
    let v = attr(page, id, a);
    if v.is_empty() {
        Value::Null
    } else {
        json!(v.parse::<f64>().unwrap())
    }
}

fn same_number(shown: &Value, api: &Value, what: &str) {
    match (shown.as_f64(), api.as_f64()) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-9, "{what}: page {a}, API {b}"),
        _ => assert_eq!(shown, api, "{what}"),
    }
}

/// The `<tr>` of the loop table for `who`, as text between its tags.
fn loop_row<'a>(page: &'a str, who: &str) -> &'a str {
    let at = page
        .find(&format!("data-who=\"{who}\""))
        .unwrap_or_else(|| panic!("no loop row for {who}"));
    &page[at..at + page[at..].find("</tr>").unwrap()]
}

fn cell<'a>(row: &'a str, label: &str) -> &'a str {
    let key = format!("data-label=\"{label}\"");
    let at = row.find(&key).unwrap() + row[row.find(&key).unwrap()..].find('>').unwrap() + 1;
    &row[at..at + row[at..].find('<').unwrap()]
}

async fn the_dashboard_shows_the_api_report_for_the_same_period(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Dash", "throttle_days": 0}))
        .await;
    // October 2026: answers on the 3rd (3), the 4th (2) and the 20th (1); every other day
    // is empty. The previous period (September) has two answers.
    answers_at(
        &app,
        &s,
        &[
            (10, "2026-10-03T09:00:00", json!({"plan": "pro"})),
            (9, "2026-10-03T10:00:00", json!({"plan": "pro"})),
            (3, "2026-10-03T11:00:00", json!({"plan": "free"})),
            (8, "2026-10-04T12:00:00", json!({"plan": "free"})),
            (10, "2026-10-04T13:00:00", json!({"plan": "pro"})),
            (0, "2026-10-20T08:00:00", json!({})),
            (10, "2026-09-10T08:00:00", json!({})),
            (2, "2026-09-11T08:00:00", json!({})),
        ],
    )
    .await;
    let reader = app.sign_in("rey@x.co", "Rey Reader", Role::Reader).await;
    let id = s["id"].as_str().unwrap();
    let (status, page) = app
        .get_page(
            &format!("/app/surveys/{id}?period=custom&from=2026-10-01&to=2026-10-31&segment=plan"),
            &reader.cookie,
        )
        .await;
    assert_eq!(status, 200, "a reader can view: {page}");
    assert_eq!(attr(&page, "dashboard", "data-from"), "2026-10-01");
    assert_eq!(attr(&page, "dashboard", "data-to"), "2026-11-01");
    let interval = attr(&page, "dashboard", "data-interval");
    assert_eq!(interval, "day");
    let r = report(
        &app,
        &s,
        &format!("from=2026-10-01&to=2026-11-01&interval={interval}&segment=plan"),
    )
    .await;
    assert_eq!(r["responses"], 6);
    same_number(
        &num(&page, "headline-score", "data-value"),
        &r["nps"],
        "nps",
    );
    same_number(
        &num(&page, "headline-ci", "data-lo"),
        &r["nps_ci95"][0],
        "ci low",
    );
    same_number(
        &num(&page, "headline-ci", "data-hi"),
        &r["nps_ci95"][1],
        "ci high",
    );
    same_number(
        &num(&page, "headline-responses", "data-value"),
        &r["responses"],
        "responses",
    );
    same_number(
        &num(&page, "headline-rate", "data-value"),
        &r["response_rate"],
        "response rate",
    );
    same_number(
        &num(&page, "headline-change", "data-value"),
        &r["change"]["nps"],
        "change",
    );
    let significant = attr(&page, "headline-significance", "data-significant");
    assert_eq!(
        significant,
        match r["change"]["nps_significant"].as_bool() {
            Some(b) => b.to_string(),
            None => String::new(),
        }
    );
    // The trend: one bucket per day of October, a point for the three days with answers,
    // the other days gaps; the line is broken by the gaps (one polyline over the 3rd–4th).
    let series = r["series"].as_array().unwrap();
    assert_eq!(series.len(), 31);
    assert_eq!(page.matches(" data-start=\"").count(), 31);
    assert_eq!(page.matches("<circle class=\"pt\"").count(), 3);
    assert_eq!(page.matches("<g class=\"bucket empty\"").count(), 28);
    assert!(page.contains("<g class=\"bucket empty\" data-start=\"2026-10-05\" data-n=\"0\""));
    assert_eq!(page.matches("<polyline class=\"line\"").count(), 1);
    assert_eq!(
        page.matches("<polygon class=\"band\"").count(),
        2,
        "one band per run of days with answers"
    );
    // Per bucket: response rate and median time to answer (answers came 30 min after
    // sending; the histogram is within about 3 %).
    let oct3 = &series[2];
    assert_eq!(oct3["start"], "2026-10-03");
    assert_eq!(oct3["invitations_delivered"], 3);
    assert_eq!(oct3["response_rate"], 100.0);
    let m = oct3["median_seconds_to_answer"].as_f64().unwrap();
    assert!((m - 1800.0).abs() < 1800.0 * 0.05, "{m}");
    assert!(
        series[4]["response_rate"].is_null(),
        "nothing delivered on the 5th"
    );
    // The segment comparison: every value with its n (all small samples here).
    assert_eq!(
        page.matches("<g class=\"seg-row small\"").count(),
        r["segments"].as_array().unwrap().len()
    );
    assert!(page.contains("small sample"));
}

async fn the_reports_page_shows_the_kind_report(app: TestApp) {
    let a = app
        .create_survey(json!({"kind": "csat", "name": "A", "throttle_days": 0}))
        .await;
    let b = app
        .create_survey(json!({"kind": "csat", "name": "B", "throttle_days": 0}))
        .await;
    answers_at(
        &app,
        &a,
        &[
            (5, "2026-10-03T09:00:00", json!({})),
            (2, "2026-10-09T09:00:00", json!({})),
        ],
    )
    .await;
    answers_at(&app, &b, &[(4, "2026-10-03T09:00:00", json!({}))]).await;
    let lead = app.sign_in("lea@x.co", "Lea", Role::Agent).await;
    let (status, page) = app
        .get_page(
            "/app/reports?kind=csat&period=custom&from=2026-10-01&to=2026-10-14&interval=week",
            &lead.cookie,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("CSAT across surveys"));
    let r = app
        .get("/api/v1/reports?kind=csat&from=2026-10-01&to=2026-10-15&interval=week")
        .await
        .body;
    assert_eq!(r["responses"], 3);
    same_number(
        &num(&page, "headline-score", "data-value"),
        &r["csat"],
        "csat",
    );
    same_number(
        &num(&page, "headline-ci", "data-lo"),
        &r["csat_ci95"][0],
        "ci low",
    );
    same_number(
        &num(&page, "headline-ci", "data-hi"),
        &r["csat_ci95"][1],
        "ci high",
    );
    assert_eq!(
        page.matches(" data-start=\"").count(),
        r["series"].as_array().unwrap().len()
    );
    assert!(
        page.contains("aria-current=\"page\">Reports</a>"),
        "Reports is the current section"
    );
}

/// Moves a task's times, status, assignee and outcome by hand, and adds a person's action
/// at `action` (if any).
#[allow(clippy::too_many_arguments)]
async fn set_task(
    app: &TestApp,
    id: &str,
    assignee: Option<&str>,
    status: &str,
    outcome: Option<&str>,
    created: &str,
    due: &str,
    resolved: Option<&str>,
    action: Option<&str>,
) {
    let state = app.app_state.clone();
    let (id, assignee, status, outcome) = (
        id.to_string(),
        assignee.map(str::to_string),
        status.to_string(),
        outcome.map(str::to_string),
    );
    let (created, due, resolved, action) = (t(created), t(due), resolved.map(t), action.map(t));
    tokio::task::spawn_blocking(move || {
        use closeloop::store::schema::{followup_activities, followups};
        use diesel::prelude::*;
        let mut conn = state.db.get().unwrap();
        diesel::update(followups::table.find(&id))
            .set((
                followups::assignee.eq(assignee),
                followups::status.eq(status),
                followups::outcome.eq(outcome),
                followups::created_at.eq(created),
                followups::due_at.eq(due),
                followups::resolved_at.eq(resolved),
            ))
            .execute(&mut conn)
            .unwrap();
        if let Some(at) = action {
            let row = closeloop::store::followups::log(
                &mut conn,
                &id,
                "note",
                "user:ann@x.co",
                Some("called"),
                None,
            )
            .unwrap();
            diesel::update(followup_activities::table.find(&row.id))
                .set(followup_activities::created_at.eq(at))
                .execute(&mut conn)
                .unwrap();
        }
    })
    .await
    .unwrap();
}

async fn close_the_loop_metrics_match_a_hand_computed_fixture(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Loop", "throttle_days": 0}))
        .await;
    let toks = tokens(
        &app,
        &s,
        json!([{"email": "a@x.co"}, {"email": "b@x.co"}, {"email": "c@x.co"}, {"email": "d@x.co"}]),
    )
    .await;
    for tok in &toks {
        answer(&app, tok, 2, "bad").await;
    }
    let list = app
        .get(&format!(
            "/api/v1/followups?survey_id={}&limit=10",
            s["id"].as_str().unwrap()
        ))
        .await;
    let ids: Vec<String> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 4);
    // Ann: closed in time (first action after 1 h, closed after 4 h) and late (3 h, 72 h).
    set_task(
        &app,
        &ids[0],
        Some("ann@x.co"),
        "resolved",
        Some("explained"),
        "2026-10-05T10:00:00",
        "2026-10-07T10:00:00",
        Some("2026-10-05T14:00:00"),
        Some("2026-10-05T11:00:00"),
    )
    .await;
    set_task(
        &app,
        &ids[1],
        Some("ann@x.co"),
        "resolved",
        Some("compensated"),
        "2026-10-10T10:00:00",
        "2026-10-12T10:00:00",
        Some("2026-10-13T10:00:00"),
        Some("2026-10-10T13:00:00"),
    )
    .await;
    // Unassigned, still open (not overdue), nobody acted.
    set_task(
        &app,
        &ids[2],
        None,
        "open",
        None,
        "2026-10-20T00:00:00",
        "2099-01-01T00:00:00",
        None,
        None,
    )
    .await;
    // Opened in September, dismissed on Oct 2 (late), no outcome: 31 days to close.
    set_task(
        &app,
        &ids[3],
        None,
        "dismissed",
        None,
        "2026-09-01T00:00:00",
        "2026-09-03T00:00:00",
        Some("2026-10-02T00:00:00"),
        None,
    )
    .await;
    let lead = app.sign_in("lea@x.co", "Lea", Role::Admin).await;
    let (status, page) = app
        .get_page(
            &format!(
                "/app/surveys/{}?period=custom&from=2026-10-01&to=2026-10-31",
                s["id"].as_str().unwrap()
            ),
            &lead.cookie,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let all = loop_row(&page, "all");
    assert_eq!(
        (
            cell(all, "Opened"),
            cell(all, "Closed"),
            cell(all, "Within SLA")
        ),
        ("3", "3", "33.33 %")
    );
    assert_eq!(cell(all, "Median to first action"), "2 h", "1 h and 3 h");
    assert_eq!(cell(all, "Median to close"), "3 d", "4 h, 72 h, 31 d");
    assert_eq!((cell(all, "Backlog"), cell(all, "Overdue")), ("1", "0"));
    let ann = loop_row(&page, "ann@x.co");
    assert_eq!(
        (
            cell(ann, "Opened"),
            cell(ann, "Closed"),
            cell(ann, "Within SLA")
        ),
        ("2", "2", "50 %")
    );
    assert_eq!(cell(ann, "Median to close"), "38 h");
    let none = loop_row(&page, "Unassigned");
    assert_eq!(
        (
            cell(none, "Opened"),
            cell(none, "Closed"),
            cell(none, "Backlog")
        ),
        ("1", "1", "1")
    );
    assert_eq!(cell(none, "Median to first action"), "–");
    for (o, n) in [
        ("explained", 1),
        ("compensated", 1),
        ("resolved_issue", 0),
        ("none", 1),
    ] {
        assert!(
            page.contains(&format!("data-outcome=\"{o}\" data-n=\"{n}\"")),
            "outcome {o} = {n}"
        );
    }
}

/// Comment texts of the feed, in order.
fn feed(page: &str) -> Vec<String> {
    page.split("<p class=\"c-text\">")
        .skip(1)
        .map(|p| p[..p.find("</p>").unwrap()].to_string())
        .collect()
}

async fn the_comments_feed_filters_by_category_survey_property_and_text(app: TestApp) {
    let one = app
        .create_survey(json!({"kind": "nps", "name": "One", "throttle_days": 0}))
        .await;
    let two = app
        .create_survey(json!({"kind": "nps", "name": "Two", "throttle_days": 0}))
        .await;
    let contacts = |prefix: &str, n: usize| {
        json!((0..n)
            .map(|i| json!({"email": format!("{prefix}{i}@x.co"), "properties": {"plan": if i % 2 == 0 { "pro" } else { "free" }}}))
            .collect::<Vec<_>>())
    };
    let toks = tokens(&app, &one, contacts("one", 22)).await;
    for (i, tok) in toks.iter().enumerate() {
        let score = if i < 4 { 3 } else { 9 };
        let text = if i < 4 {
            format!("export is slow {i}")
        } else {
            format!("fine {i}")
        };
        answer(&app, tok, score, &text).await;
    }
    let toks = tokens(&app, &two, contacts("two", 3)).await;
    for (i, tok) in toks.iter().enumerate() {
        answer(&app, tok, 7, &format!("second survey {i}")).await;
    }
    let lead = app.sign_in("lea@x.co", "Lea", Role::Reader).await;
    let get = |q: &str| {
        let (app, cookie) = (&app, lead.cookie.clone());
        let q = q.to_string();
        async move {
            let (status, page) = app.get_page(&format!("/app/reports?{q}"), &cookie).await;
            assert_eq!(status, 200, "{q}: {page}");
            page
        }
    };
    let page = get("").await;
    assert_eq!(feed(&page).len(), 20, "20 per page");
    assert!(page.contains("id=\"more-comments\""));
    let more = attr(&page, "more-comments", "href");
    assert!(more.contains("page=2"), "{more}");
    let (_, page2) = app.get_page(&more, &lead.cookie).await;
    assert_eq!(feed(&page2).len(), 5, "25 comments in all");

    let page = get("category=detractor").await;
    let texts = feed(&page);
    assert_eq!(texts.len(), 4);
    assert!(texts.iter().all(|t| t.starts_with("export is slow")));
    assert!(
        page.contains("href=\"/app/followups/fup_"),
        "a detractor links to its task"
    );

    let page = get(&format!("survey={}", two["id"].as_str().unwrap())).await;
    let texts = feed(&page);
    assert_eq!(texts.len(), 3);
    assert!(texts.iter().all(|t| t.starts_with("second survey")));
    assert!(
        page.contains("href=\"/app/contacts/con_"),
        "without a task: the answer"
    );

    let page = get("prop_key=plan&prop_value=PRO").await;
    assert_eq!(
        feed(&page).len(),
        11 + 2,
        "pro: 11 of One, 2 of Two (case ignored)"
    );

    let page = get("q=SLOW&category=detractor").await;
    assert_eq!(feed(&page).len(), 4);
    let page = get("q=nothing-like-this").await;
    assert!(page.contains("id=\"no-comments\""));
}

async fn the_csv_download_needs_a_session_and_honours_the_filters(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Csv", "throttle_days": 0}))
        .await;
    let toks = tokens(
        &app,
        &s,
        json!([{"email": "a@x.co"}, {"email": "b@x.co"}, {"email": "c@x.co"}]),
    )
    .await;
    for (tok, score) in toks.iter().zip([1, 9, 10]) {
        answer(&app, tok, score, "text").await;
    }
    let id = s["id"].as_str().unwrap();
    let path = format!("/app/reports/responses.csv?survey={id}&category=promoter");
    let res = app.client.get(app.url(&path)).send().await.unwrap();
    assert_eq!(res.status(), 303, "no session: sign in first");
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .starts_with("/app/login"));
    let lead = app.sign_in("lea@x.co", "Lea", Role::Reader).await;
    let (_, page) = app
        .get_page(
            &format!("/app/surveys/{id}?category=promoter"),
            &lead.cookie,
        )
        .await;
    let href = attr(&page, "csv-link", "href");
    assert!(href.contains("category=promoter"), "{href}");
    let (status, csv) = app.get_page(&href, &lead.cookie).await;
    assert_eq!(status, 200);
    let rows: Vec<&str> = csv.trim().lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(rows.iter().all(|r| r.contains(",promoter,")));
    // Outside the period: nothing.
    let (_, csv) = app
        .get_page(
            &format!("/app/reports/responses.csv?survey={id}&from=2020-01-01&to=2020-01-31"),
            &lead.cookie,
        )
        .await;
    assert_eq!(csv.trim().lines().count(), 1, "only the header");
    let (_, csv) = app
        .get_page("/app/reports/responses.csv?kind=nps", &lead.cookie)
        .await;
    assert_eq!(csv.trim().lines().count(), 4);
}

async fn bad_dashboard_parameters_are_a_friendly_422_page(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Bad"}))
        .await;
    let lead = app.sign_in("lea@x.co", "Lea", Role::Reader).await;
    let id = s["id"].as_str().unwrap();
    for q in [
        "period=xyz",
        "period=custom&from=2026-10-31&to=2026-10-01",
        "period=custom&from=2026-10-01",
        "period=custom&from=01.10.2026&to=2026-10-31",
        "segment=no%20spaces",
        "interval=hour",
        "page=0",
        "category=angry",
        "prop_key=plan",
        "period=custom&from=2020-01-01&to=2026-01-01&interval=day",
    ] {
        for path in [
            format!("/app/reports?{q}"),
            format!("/app/surveys/{id}?{q}"),
        ] {
            let (status, page) = app.get_page(&path, &lead.cookie).await;
            assert_eq!(status, 422, "{path}: {page}");
            assert!(page.contains("Check the address"), "{path}");
        }
    }
    let (status, _) = app
        .get_page(
            "/app/reports/responses.csv?kind=nps&period=xyz",
            &lead.cookie,
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .get_page("/app/surveys/srv_01M8AQP6T9CXSVCV5YH7FH5Q99", &lead.cookie)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app.get_page("/app/surveys/nonsense", &lead.cookie).await;
    assert_eq!(status, 404);
}

both_engines!(
    the_dashboard_shows_the_api_report_for_the_same_period,
    the_reports_page_shows_the_kind_report,
    close_the_loop_metrics_match_a_hand_computed_fixture,
    the_comments_feed_filters_by_category_survey_property_and_text,
    the_csv_download_needs_a_session_and_honours_the_filters,
    bad_dashboard_parameters_are_a_friendly_422_page,
);
