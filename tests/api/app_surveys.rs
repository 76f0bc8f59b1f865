//! The surveys pages `/app/surveys…`: create and edit every field with the API's rules,
//! the preview by the real templates, archiving with a confirmation, the test email,
//! inviting by paste or CSV (a preview that makes nothing, a confirm that queues once, the
//! bounds), the send queue's retry, and who may do what.

use closeloop::domain::Role;
use serde_json::{json, Value};

use crate::helpers::{eventually, spawn_app_with, tokens, Engine, Member, TestApp};
use crate::smtp::TestSmtp;
use crate::{both_engines, each_engine};

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// A form POST with the member's cookie and CSRF token; (status, location, body).
async fn post(
    app: &TestApp,
    m: &Member,
    path: &str,
    form: &[(&str, &str)],
) -> (u16, String, String) {
    let mut all = vec![("csrf_token", m.csrf.as_str())];
    all.extend_from_slice(form);
    let res = app.post_form(path, Some(&m.cookie), &all).await;
    let status = res.status().as_u16();
    let to = location(&res);
    (status, to, res.text().await.unwrap_or_default())
}

/// The invite form posted as the browser does (multipart), with pasted addresses and
/// optionally a CSV file; (status, body).
async fn upload(
    app: &TestApp,
    m: &Member,
    survey_id: &str,
    csrf: Option<&str>,
    addresses: &str,
    csv: Option<Vec<u8>>,
) -> (u16, String) {
    let mut form = reqwest::multipart::Form::new();
    if let Some(c) = csrf {
        form = form.text("csrf_token", c.to_string());
    }
    form = form.text("addresses", addresses.to_string());
    if let Some(bytes) = csv {
        form = form.part(
            "csv",
            reqwest::multipart::Part::bytes(bytes)
                .file_name("customers.csv")
                .mime_str("text/csv")
                .unwrap(),
        );
    }
    let res = app
        .client
        .post(app.url(&format!("/app/surveys/{survey_id}/invite")))
        .header("Origin", &app.address)
        .header("Cookie", &m.cookie)
        .multipart(form)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap_or_default())
}

/// The value of the hidden input `name` on a page, unescaped.
fn hidden(page: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let at = page.find(&marker).expect("the hidden field") + marker.len();
    let len = page[at..].find('"').unwrap();
    page[at..at + len]
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

async fn survey(app: &TestApp, id: &str) -> Value {
    let a = app.get(&format!("/api/v1/surveys/{id}")).await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body
}

async fn invitations_of(app: &TestApp, survey_id: &str) -> Vec<Value> {
    let a = app
        .get(&format!(
            "/api/v1/invitations?survey_id={survey_id}&limit=100"
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.body["items"].as_array().unwrap().clone()
}

fn id_of(location: &str) -> String {
    location
        .trim_start_matches("/app/surveys/")
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

const FULL: &[(&str, &str)] = &[
    ("kind", "csat"),
    ("name", "Support CSAT"),
    ("question", "How did {brand} do with {topic}?"),
    ("follow_up_question", "What should we do better?"),
    ("brand", "Acme"),
    ("brand_color", "#FF0000"),
    ("topic", "your ticket"),
    ("locale", "de"),
    ("throttle_days", "7"),
    ("reminder_after_days", "3"),
    ("edit_window_hours", "24"),
    ("followup_assignee", "Lead@Acme.test"),
    ("public_link", "on"),
];

async fn a_lead_creates_and_edits_every_field_with_errors_beside_the_fields(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea Lead", Role::Admin).await;
    let (status, page) = app.get_page("/app/surveys/new", &lead.cookie).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("name=\"followup_assignee\""), "{page}");

    // Errors: every bad field says what is wrong, and what was typed stays.
    let (status, _, page) = post(
        &app,
        &lead,
        "/app/surveys/new",
        &[
            ("kind", "nps"),
            ("name", "  "),
            ("brand", "Globex"),
            ("brand_color", "blue"),
            ("throttle_days", "400"),
            ("reminder_after_days", "soon"),
            ("question", "Rate {product}"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(
        page.contains("Nothing was saved: 5 fields to fix."),
        "{page}"
    );
    assert!(page.contains("id=\"e-name\""), "{page}");
    assert!(page.contains("must be a colour such as #1f6feb"), "{page}");
    assert!(
        page.contains("Throttle (days) must be from 0 to 365"),
        "{page}"
    );
    assert!(page.contains("must be a whole number"), "{page}");
    assert!(page.contains("unknown placeholder {product}"), "{page}");
    assert!(page.contains("value=\"Globex\""), "kept: {page}");
    assert!(page.contains("value=\"blue\""), "kept: {page}");
    let list = app.get("/api/v1/surveys").await;
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        0,
        "nothing saved"
    );

    // Every field, saved through the API's rules (colour and assignee normalised).
    let (status, to, body) = post(&app, &lead, "/app/surveys/new", FULL).await;
    assert_eq!(status, 303, "{body}");
    assert!(to.ends_with("/edit?notice=created"), "{to}");
    let id = id_of(&to);
    let s = survey(&app, &id).await;
    assert_eq!(s["kind"], "csat");
    assert_eq!(s["name"], "Support CSAT");
    assert_eq!(s["question"], "How did {brand} do with {topic}?");
    assert_eq!(s["follow_up_question"], "What should we do better?");
    assert_eq!(s["brand"], "Acme");
    assert_eq!(s["brand_color"], "#ff0000");
    assert_eq!(s["topic"], "your ticket");
    assert_eq!(s["locale"], "de");
    assert_eq!(s["throttle_days"], 7);
    assert_eq!(s["reminder_after_days"], 3);
    assert_eq!(s["edit_window_hours"], 24);
    assert_eq!(s["followup_assignee"], "lead@acme.test");
    let public_url = s["public_url"].as_str().expect("a public link").to_string();

    // The editor shows the saved values and the public link to copy.
    let (status, page) = app.get_page(&to, &lead.cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("Survey created."), "{page}");
    assert!(
        page.contains(&format!("readonly value=\"{public_url}\"")),
        "{page}"
    );
    assert!(page.contains("data-copy=\"f-public-url\""), "{page}");

    // Edit: a bad value is refused beside its field; then a good change is saved, and
    // blank optional fields go back to their defaults.
    let edit = format!("/app/surveys/{id}/edit");
    let (status, _, page) = post(
        &app,
        &lead,
        &edit,
        &[
            ("name", "Support CSAT"),
            ("followup_assignee", "not an address"),
        ],
    )
    .await;
    assert_eq!(status, 422, "{page}");
    assert!(page.contains("id=\"e-followup_assignee\""), "{page}");
    assert!(page.contains("value=\"not an address\""), "{page}");
    let (status, to, body) = post(
        &app,
        &lead,
        &edit,
        &[
            ("name", "Support CSAT 2027"),
            ("status", "paused"),
            ("locale", "fr"),
            ("throttle_days", "0"),
            ("edit_window_hours", "48"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{body}");
    assert!(to.ends_with("/edit?notice=saved"), "{to}");
    let s = survey(&app, &id).await;
    assert_eq!(s["name"], "Support CSAT 2027");
    assert_eq!(s["status"], "paused");
    assert_eq!(s["locale"], "fr");
    assert_eq!(s["throttle_days"], 0);
    assert_eq!(s["edit_window_hours"], 48);
    assert!(s["brand"].is_null() && s["reminder_after_days"].is_null());
    assert!(
        s["public_url"].is_null(),
        "the unticked box removes the link"
    );

    // The list shows it with its figures, and the nav marks the section.
    let (status, page) = app.get_page("/app/surveys", &lead.cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("Support CSAT 2027"), "{page}");
    assert!(
        page.contains(&format!("href=\"/app/surveys/{id}\"")),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"/app/surveys\" aria-current=\"page\">Surveys</a>"),
        "{page}"
    );
}

async fn the_list_shows_sent_answered_rate_score_and_open_tasks(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4 NPS", "throttle_days": 0}))
        .await;
    let t = tokens(
        &app,
        &s,
        json!([{"email": "a@x.test"}, {"email": "b@x.test"}, {"email": "c@x.test"}, {"email": "d@x.test"}]),
    )
    .await;
    crate::helpers::answer(&app, &t[0], 10, "").await;
    crate::helpers::answer(&app, &t[1], 3, "slow").await;
    let old = app
        .create_survey(json!({"kind": "csat", "name": "Old CSAT"}))
        .await;
    let a = app
        .post(
            &format!("/api/v1/surveys/{}/archive", old["id"].as_str().unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200);

    let (status, page) = app.get_page("/app/surveys", &lead.cookie).await;
    assert_eq!(status, 200);
    let row = page
        .split("<tr>")
        .find(|r| r.contains("Q4 NPS"))
        .expect("a row for the survey");
    // 4 sent, 2 answered, 50 %, NPS (1 - 1) / 2 = 0, 1 open task.
    for cell in [
        "data-label=\"Sent\" class=\"num\">4<",
        "data-label=\"Answered\" class=\"num\">2<",
        "data-label=\"Response rate\" class=\"num\">50 %<",
        "data-label=\"NPS\" class=\"num strong\">+0<",
        ">1</a>",
    ] {
        assert!(row.contains(cell), "{cell} in {row}");
    }
    assert!(
        !page.contains("Old CSAT"),
        "archived surveys are on their own tab"
    );
    let (_, page) = app
        .get_page("/app/surveys?show=archived", &lead.cookie)
        .await;
    assert!(
        page.contains("Old CSAT") && !page.contains("Q4 NPS"),
        "{page}"
    );
}

async fn the_preview_renders_the_real_templates_with_the_forms_values(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4", "brand": "Acme"}))
        .await;
    let id = s["id"].as_str().unwrap();
    let res = app
        .client
        .get(app.url(&format!(
            "/app/surveys/{id}/preview/email?brand=Globex&question=Would+you+recommend+%7Bbrand%7D%3F&brand_color=%23aa0000"
        )))
        .header("Cookie", &lead.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'self'") && csp.contains("sandbox"),
        "{csp}"
    );
    assert!(!csp.contains("script-src"), "no script: {csp}");
    assert_eq!(res.headers()["x-frame-options"], "SAMEORIGIN");
    let email = res.text().await.unwrap();
    assert!(email.contains("Would you recommend Globex?"), "{email}");
    assert!(email.contains("#aa0000"), "the colour: {email}");
    assert!(email.contains("Ada"), "a sample contact: {email}");

    let res = app
        .client
        .get(app.url(&format!(
            "/app/surveys/{id}/preview/page?brand=Globex&locale=de"
        )))
        .header("Cookie", &lead.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("frame-ancestors 'self'") && csp.contains("sandbox"),
        "{csp}"
    );
    let page = res.text().await.unwrap();
    assert!(page.contains("lang=\"de\""), "{page}");
    assert!(page.contains("Globex"), "{page}");
    assert_eq!(page.matches("name=\"score\"").count(), 11, "0 to 10");

    // A new survey's preview: the kind and topic of the form.
    let (status, page) = app
        .get_page(
            "/app/surveys/new/preview/page?kind=csat&topic=your+order",
            &lead.cookie,
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        page.contains("How satisfied were you with your order?"),
        "{page}"
    );
    assert_eq!(page.matches("name=\"score\"").count(), 5, "1 to 5");

    // Nothing was saved; the editor frames the preview.
    assert_eq!(survey(&app, id).await["brand"], "Acme");
    let (_, editor) = app
        .get_page(&format!("/app/surveys/{id}/edit"), &lead.cookie)
        .await;
    assert!(
        editor.contains(&format!(
            "sandbox=\"\" data-preview-kind=\"email\" src=\"/app/surveys/{id}/preview/email?"
        )),
        "{editor}"
    );
    // Without JavaScript, the Preview button shows the posted values without saving.
    let (status, _, page) = post(
        &app,
        &lead,
        &format!("/app/surveys/{id}/edit"),
        &[("action", "preview"), ("name", "Q4"), ("brand", "Initech")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(page.contains("brand=Initech"), "{page}");
    assert_eq!(survey(&app, id).await["brand"], "Acme");
}

async fn archiving_needs_the_confirmation(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4"}))
        .await;
    let id = s["id"].as_str().unwrap();
    let path = format!("/app/surveys/{id}/archive");
    let (status, to, _) = post(&app, &lead, &path, &[]).await;
    assert_eq!(status, 303);
    assert_eq!(to, path, "back to the confirmation");
    assert_eq!(survey(&app, id).await["status"], "active");
    let (status, page) = app.get_page(&path, &lead.cookie).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("This cannot be undone.")
            && page.contains("name=\"confirm\" value=\"archive\""),
        "{page}"
    );
    let (status, to, _) = post(&app, &lead, &path, &[("confirm", "archive")]).await;
    assert_eq!(status, 303);
    assert_eq!(to, "/app/surveys?show=archived&notice=archived");
    assert_eq!(survey(&app, id).await["status"], "archived");
    let (_, page) = app.get_page(&to, &lead.cookie).await;
    assert!(
        page.contains("Survey archived.") && page.contains("Q4"),
        "{page}"
    );
}

async fn a_test_email_reaches_the_member_and_invites_nobody(engine: Engine) {
    let smtp = TestSmtp::start();
    let url = smtp.url();
    let app = spawn_app_with(
        engine,
        &[("SMTP_URL", url.as_str()), ("DISPATCH_INTERVAL_MS", "50")],
    )
    .await;
    let lead = app.sign_in("lead@acme.test", "Lea Lead", Role::Admin).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4", "brand": "Acme"}))
        .await;
    let id = s["id"].as_str().unwrap();
    let (status, to, _) = post(&app, &lead, &format!("/app/surveys/{id}/test-email"), &[]).await;
    assert_eq!(status, 303);
    assert_eq!(to, format!("/app/surveys/{id}/edit?notice=test_sent"));
    let mail = eventually(10, "the test email", || async {
        smtp.received()
            .into_iter()
            .find(|m| m.to == vec!["lead@acme.test".to_string()])
    })
    .await;
    let parsed = mail.parsed();
    assert!(
        parsed.subject().unwrap().starts_with("[Test] "),
        "{:?}",
        parsed.subject()
    );
    let html = parsed.body_html(0).unwrap().to_string();
    assert!(
        html.contains("How likely are you to recommend Acme"),
        "{html}"
    );
    assert!(invitations_of(&app, id).await.is_empty(), "no invitation");
    let report = app.get(&format!("/api/v1/surveys/{id}/report")).await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.body["responses"], 0);
    let (_, page) = app.get_page(&to, &lead.cookie).await;
    assert!(
        page.contains("Test email queued to your address."),
        "{page}"
    );
}

/// A survey, and in another survey a contact who unsubscribed (`gone@example.com`).
async fn survey_with_an_unsubscribed_contact(app: &TestApp) -> String {
    let other = app
        .create_survey(json!({"kind": "nps", "name": "Old"}))
        .await;
    let t = tokens(app, &other, json!([{"email": "gone@example.com"}])).await;
    let res = app
        .client
        .post(app.url(&format!("/u/{}", t[0])))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4", "throttle_days": 0}))
        .await;
    s["id"].as_str().unwrap().to_string()
}

const PASTE: &str = "Ada Lovelace <ada@example.com>\nnot-an-email\n\ngone@example.com\n";
const CSV: &str = "email,name,external_id,plan,value\nbob@example.com,Bob,cus_1,pro,1200\nada@example.com,Ada again,,,\n";

async fn paste_and_csv_preview_each_outcome_and_queue_nothing(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let id = survey_with_an_unsubscribed_contact(&app).await;
    let (status, page) = app
        .get_page(&format!("/app/surveys/{id}/invite"), &lead.cookie)
        .await;
    assert_eq!(status, 200);
    assert!(page.contains("enctype=\"multipart/form-data\""), "{page}");
    let (status, page) = upload(
        &app,
        &lead,
        &id,
        Some(&lead.csrf),
        PASTE,
        Some(CSV.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let rows: Vec<&str> = page.split("<tr class=\"outcome-").skip(1).collect();
    assert_eq!(rows.len(), 5, "{page}");
    assert!(
        rows[0].starts_with("scheduled") && rows[0].contains("ada@example.com"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].starts_with("rejected") && rows[1].contains("invalid: email"),
        "{}",
        rows[1]
    );
    assert!(
        rows[2].starts_with("suppressed") && rows[2].contains("unsubscribed"),
        "{}",
        rows[2]
    );
    assert!(
        rows[3].starts_with("scheduled") && rows[3].contains("bob@example.com"),
        "{}",
        rows[3]
    );
    assert!(
        rows[4].starts_with("rejected") && rows[4].contains("duplicate"),
        "{}",
        rows[4]
    );
    assert!(page.contains("Queue 2 invitations"), "{page}");
    // Nothing was made: no invitation, no contact.
    assert!(invitations_of(&app, &id).await.is_empty());
    let c = app.get("/api/v1/contacts?email=bob@example.com").await;
    assert_eq!(
        c.body["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        c.text
    );
}

async fn confirming_queues_once_even_when_submitted_twice(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let id = survey_with_an_unsubscribed_contact(&app).await;
    let (status, page) = upload(
        &app,
        &lead,
        &id,
        Some(&lead.csrf),
        PASTE,
        Some(CSV.as_bytes().to_vec()),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let key = hidden(&page, "key");
    let batch = hidden(&page, "batch");
    let confirm = format!("/app/surveys/{id}/invite/confirm");
    let form = [("key", key.as_str()), ("batch", batch.as_str())];
    let (status, to, body) = post(&app, &lead, &confirm, &form).await;
    assert_eq!(status, 303, "{body}");
    assert_eq!(to, format!("/app/surveys/{id}/queue?notice=invited"));
    let made = invitations_of(&app, &id).await;
    assert_eq!(made.len(), 3, "2 to send and 1 suppressed: {made:?}");
    let bob = app.get("/api/v1/contacts?email=bob@example.com").await;
    assert_eq!(
        bob.body["items"][0]["properties"],
        json!({"plan": "pro", "value": 1200})
    );
    assert_eq!(bob.body["items"][0]["external_id"], "cus_1");

    let (status, to, _) = post(&app, &lead, &confirm, &form).await;
    assert_eq!(status, 303);
    assert_eq!(to, format!("/app/surveys/{id}/queue?notice=already"));
    assert_eq!(invitations_of(&app, &id).await.len(), 3, "not doubled");
    let (status, page) = app.get_page(&to, &lead.cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("nothing was invited twice"), "{page}");
    assert!(page.contains("<dt>suppressed</dt><dd>1</dd>"), "{page}");
}

async fn more_than_ten_thousand_rows_or_five_megabytes_are_refused(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4"}))
        .await;
    let id = s["id"].as_str().unwrap();
    let mut csv = String::from("email,name\n");
    for i in 0..10_001 {
        csv.push_str(&format!("c{i}@example.com,C {i}\n"));
    }
    let (status, page) = upload(
        &app,
        &lead,
        id,
        Some(&lead.csrf),
        "",
        Some(csv.into_bytes()),
    )
    .await;
    assert_eq!(status, 413, "{page}");
    assert!(
        page.contains("at most 10,000 can be invited at once"),
        "{page}"
    );

    let mut big = String::from("email,note\n");
    let filler = "x".repeat(1000);
    while big.len() <= 5 * 1024 * 1024 {
        big.push_str(&format!("a@example.com,{filler}\n"));
    }
    let (status, page) = upload(
        &app,
        &lead,
        id,
        Some(&lead.csrf),
        "",
        Some(big.into_bytes()),
    )
    .await;
    assert_eq!(status, 413, "{page}");
    assert!(page.contains("The upload is larger than 5 MB"), "{page}");
    assert!(invitations_of(&app, id).await.is_empty());
}

async fn a_failed_send_is_shown_with_its_error_and_retried(engine: Engine) {
    let smtp = TestSmtp::start();
    smtp.always(550);
    let url = smtp.url();
    let app = spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("DISPATCH_INTERVAL_MS", "50"),
            ("EMAIL_RETRY_BASE_SECONDS", "1"),
        ],
    )
    .await;
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4"}))
        .await;
    let id = s["id"].as_str().unwrap();
    let a = app
        .post(
            &format!("/api/v1/surveys/{id}/invitations"),
            json!({"channel": "email", "contacts": [{"email": "ada@example.com"}]}),
        )
        .await;
    let inv = a.body["items"][0]["invitation_id"]
        .as_str()
        .unwrap()
        .to_string();
    eventually(10, "the send to fail", || async {
        let v = app.get(&format!("/api/v1/invitations/{inv}")).await;
        (v.body["status"] == "failed").then_some(())
    })
    .await;
    let queue = format!("/app/surveys/{id}/queue");
    let (status, page) = app.get_page(&queue, &lead.cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("<dt>failed</dt><dd>1</dd>"), "{page}");
    assert!(
        page.contains("ada@example.com") && page.contains("550"),
        "{page}"
    );
    assert!(
        page.contains(&format!("action=\"/app/invitations/{inv}/retry\"")),
        "{page}"
    );

    smtp.accept_all();
    let (status, to, _) = post(&app, &lead, &format!("/app/invitations/{inv}/retry"), &[]).await;
    assert_eq!(status, 303);
    assert_eq!(to, format!("{queue}?notice=retried"));
    eventually(10, "the retried send to arrive", || async {
        smtp.received()
            .into_iter()
            .find(|m| m.to == vec!["ada@example.com".to_string()])
    })
    .await;
    eventually(10, "the retried send to be sent", || async {
        let v = app.get(&format!("/api/v1/invitations/{inv}")).await;
        (v.body["status"] == "sent").then_some(())
    })
    .await;
    // Retrying what is not failed is refused with a page.
    let (status, _, page) = post(&app, &lead, &format!("/app/invitations/{inv}/retry"), &[]).await;
    assert_eq!(status, 409, "{page}");
}

async fn readers_and_agents_see_no_action_forms_and_are_refused(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4"}))
        .await;
    let id = s["id"].as_str().unwrap();
    for (email, role) in [
        ("reader@acme.test", Role::Reader),
        ("agent@acme.test", Role::Agent),
    ] {
        let m = app.sign_in(email, "Someone", role).await;
        let (status, page) = app.get_page("/app/surveys", &m.cookie).await;
        assert_eq!(status, 200);
        assert!(page.contains("Q4"), "{page}");
        assert!(
            !page.contains("/app/surveys/new")
                && !page.contains("/invite")
                && !page.contains("/edit"),
            "{page}"
        );
        let (status, page) = app
            .get_page(&format!("/app/surveys/{id}/queue"), &m.cookie)
            .await;
        assert_eq!(status, 200);
        assert!(!page.contains("/invite\""), "{page}");
        for path in [
            "/app/surveys/new".to_string(),
            format!("/app/surveys/{id}/edit"),
            format!("/app/surveys/{id}/invite"),
            format!("/app/surveys/{id}/archive"),
        ] {
            let (status, _) = app.get_page(&path, &m.cookie).await;
            assert_eq!(status, 403, "GET {path}");
        }
        for path in [
            "/app/surveys/new".to_string(),
            format!("/app/surveys/{id}/edit"),
            format!("/app/surveys/{id}/archive"),
            format!("/app/surveys/{id}/test-email"),
            format!("/app/surveys/{id}/invite/confirm"),
            "/app/invitations/inv_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2/retry".to_string(),
        ] {
            let (status, _, _) = post(
                &app,
                &m,
                &path,
                &[("name", "Hacked"), ("kind", "nps"), ("confirm", "archive")],
            )
            .await;
            assert_eq!(status, 403, "POST {path}");
        }
        let (status, _) = upload(&app, &m, id, Some(&m.csrf), "a@example.com", None).await;
        assert_eq!(status, 403);
    }
    let s = survey(&app, id).await;
    assert_eq!(
        (s["name"].as_str(), s["status"].as_str()),
        (Some("Q4"), Some("active"))
    );
    assert_eq!(
        app.get("/api/v1/surveys").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert!(invitations_of(&app, id).await.is_empty());
}

async fn a_missing_csrf_token_is_refused(app: TestApp) {
    let lead = app.sign_in("lead@acme.test", "Lea", Role::Admin).await;
    let res = app
        .post_form(
            "/app/surveys/new",
            Some(&lead.cookie),
            &[("kind", "nps"), ("name", "Q4")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(
        app.get("/api/v1/surveys").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Q4"}))
        .await;
    let id = s["id"].as_str().unwrap();
    let (status, _) = upload(&app, &lead, id, None, "a@example.com", None).await;
    assert_eq!(status, 403);
    let (status, _) = upload(&app, &lead, id, Some("wrong"), "a@example.com", None).await;
    assert_eq!(status, 403);
    let res = app
        .post_form(
            &format!("/app/surveys/{id}/archive"),
            Some(&lead.cookie),
            &[("confirm", "archive")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(survey(&app, id).await["status"], "active");
}

both_engines!(
    a_lead_creates_and_edits_every_field_with_errors_beside_the_fields,
    the_list_shows_sent_answered_rate_score_and_open_tasks,
    the_preview_renders_the_real_templates_with_the_forms_values,
    archiving_needs_the_confirmation,
    paste_and_csv_preview_each_outcome_and_queue_nothing,
    confirming_queues_once_even_when_submitted_twice,
    more_than_ten_thousand_rows_or_five_megabytes_are_refused,
    readers_and_agents_see_no_action_forms_and_are_refused,
    a_missing_csrf_token_is_refused,
);

each_engine!(
    a_test_email_reaches_the_member_and_invites_nobody,
    a_failed_send_is_shown_with_its_error_and_retried,
);
