//! The workspace inbox `/app/followups`: views and their counts, filters, sorts, saved views,
//! bulk changes, the live poll, and its refusals.

use closeloop::domain::Role;
use diesel::prelude::*;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{answer, tokens, Member, TestApp};

/// Three tasks: Ada (NPS 2, enterprise, 120,000), Bob (NPS 5, starter, 500), Carol (CSAT 1,
/// no properties); Dan's NPS 9 makes none. Returns the two surveys.
async fn seed(app: &TestApp) -> (Value, Value) {
    let nps = app
        .create_survey(
            json!({"kind": "nps", "name": "Onboarding NPS", "brand": "Acme", "throttle_days": 0}),
        )
        .await;
    let csat = app
        .create_survey(
            json!({"kind": "csat", "name": "Support CSAT", "topic": "support", "throttle_days": 0}),
        )
        .await;
    let t = tokens(
        app,
        &nps,
        json!([
            {"email": "ada@analytical.test", "name": "Ada Lovelace", "properties": {"company": "Analytical Engines", "plan": "enterprise", "value": 120000}},
            {"email": "bob@builders.test", "name": "Bob Builder", "properties": {"company": "Builders", "plan": "starter", "value": 500}},
            {"email": "dan@x.test", "name": "Dan Happy"}
        ]),
    )
    .await;
    answer(app, &t[0], 2, "The export is broken\nand nobody answers").await;
    answer(app, &t[1], 5, "Too slow").await;
    answer(app, &t[2], 9, "Great").await;
    let t = tokens(
        app,
        &csat,
        json!([{"email": "carol@x.test", "name": "Carol Cross"}]),
    )
    .await;
    answer(app, &t[0], 1, "Rude support").await;
    (nps, csat)
}

/// The rows of an inbox page: (task id, the row's HTML).
fn rows(page: &str) -> Vec<(String, String)> {
    page.split("<tr class=\"task\" id=\"task-")
        .skip(1)
        .map(|chunk| {
            let id = chunk[..chunk.find('"').unwrap()].to_string();
            let html = chunk[..chunk.find("</tr>").unwrap()].to_string();
            (id, html)
        })
        .collect()
}

/// The customers' names of an inbox page, in order.
fn names(page: &str) -> Vec<String> {
    rows(page)
        .into_iter()
        .map(|(_, html)| {
            let at = html.find("class=\"row-link\"").unwrap();
            let rest = &html[at..];
            let start = rest.find('>').unwrap() + 1;
            let end = rest.find("</a>").unwrap();
            rest[start..end].to_string()
        })
        .collect()
}

fn id_of(page: &str, name: &str) -> String {
    rows(page)
        .into_iter()
        .find(|(_, h)| h.contains(name))
        .unwrap_or_else(|| panic!("{name} is not in the page"))
        .0
}

/// The count on a view's tab.
fn count(page: &str, label: &str) -> i64 {
    let nav = &page[page.find("id=\"inbox-views\"").unwrap()..];
    let at = nav
        .find(&format!("{label} <span class=\"count\">"))
        .unwrap_or_else(|| panic!("no tab {label}"));
    let rest = &nav[at + label.len() + " <span class=\"count\">".len()..];
    rest[..rest.find('<').unwrap()].parse().unwrap()
}

async fn inbox(app: &TestApp, m: &Member, query: &str) -> String {
    let (status, page) = app
        .get_page(&format!("/app/followups{query}"), &m.cookie)
        .await;
    assert_eq!(status, 200, "{query}: {page}");
    page
}

async fn shown(app: &TestApp, m: &Member, query: &str) -> Vec<String> {
    names(&inbox(app, m, query).await)
}

async fn bulk(app: &TestApp, m: &Member, ids: &[&str], fields: &[(&str, &str)]) -> String {
    let mut form: Vec<(&str, &str)> = vec![("csrf_token", &m.csrf), ("return", "view=all")];
    form.extend(ids.iter().map(|i| ("id", *i)));
    form.extend_from_slice(fields);
    let res = app
        .post_form("/app/followups/bulk", Some(&m.cookie), &form)
        .await;
    assert_eq!(res.status().as_u16(), 303, "{}", res.text().await.unwrap());
    let to = res.headers()["location"].to_str().unwrap().to_string();
    assert!(to.starts_with("/app/followups?view=all&notice="), "{to}");
    let (status, page) = app.get_page(&to, &m.cookie).await;
    assert_eq!(status, 200);
    let at = page.find("<p class=\"notice\" role=\"status\">").unwrap();
    let rest = &page[at + "<p class=\"notice\" role=\"status\">".len()..];
    rest[..rest.find("</p>").unwrap()].to_string()
}

/// Moves a task's due time into the past (test setup: waiting 48 hours is not an option).
async fn make_overdue(app: &TestApp, id: &str) {
    use closeloop::store::schema::followups;
    let (state, id) = (app.app_state.clone(), id.to_string());
    tokio::task::spawn_blocking(move || {
        let mut conn = state.db.get().unwrap();
        let past = chrono::Utc::now().naive_utc() - chrono::TimeDelta::hours(3);
        diesel::update(followups::table.find(id))
            .set(followups::due_at.eq(past))
            .execute(&mut *conn)
            .unwrap();
    })
    .await
    .unwrap();
}

async fn a_detractor_appears_with_its_customer_survey_and_comment(app: TestApp) {
    seed(&app).await;
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    let page = inbox(&app, &lena, "").await;
    assert_eq!(
        names(&page),
        vec!["Ada Lovelace", "Bob Builder", "Carol Cross"],
        "the most valuable customer first; no task for a promoter"
    );
    let ada = rows(&page)
        .into_iter()
        .find(|(_, h)| h.contains("Ada"))
        .unwrap()
        .1;
    for part in [
        "ada@analytical.test",
        "Analytical Engines",
        "120,000",
        "enterprise",
        "Onboarding NPS",
        "The export is broken",
        "tone-bad\">2</span>",
        "detractor",
        "Unassigned",
        "Open",
        "Due in",
    ] {
        assert!(ada.contains(part), "{part} missing in {ada}");
    }
    assert!(
        !ada.contains("nobody answers"),
        "only the comment's first line"
    );
    let carol = rows(&page)
        .into_iter()
        .find(|(_, h)| h.contains("Carol"))
        .unwrap()
        .1;
    assert!(
        carol.contains("Support CSAT") && carol.contains("unsatisfied"),
        "{carol}"
    );
    // Rows link to the task page with the inbox's query (for next/previous there).
    let page = inbox(&app, &lena, "?q=ada&sort=due_at").await;
    let id = id_of(&page, "Ada");
    assert!(
        page.contains(&format!(
            "href=\"/app/followups/{id}?q=ada&#38;sort=due_at\""
        )),
        "{page}"
    );
    // Agents get the bulk form and checkboxes; the CSP allows no inline script or style.
    assert!(page.contains("action=\"/app/followups/bulk\""));
    assert!(page.contains(&format!("name=\"id\" value=\"{id}\"")));
    assert!(!page.contains("style=") && !page.contains("<script>"));
}

async fn views_count_and_bulk_changes_say_what_happened(app: TestApp) {
    seed(&app).await;
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    app.sign_in("max@acme.test", "Max Agent", Role::Agent).await;
    let page = inbox(&app, &lena, "").await;
    let (ada, bob, carol) = (
        id_of(&page, "Ada"),
        id_of(&page, "Bob"),
        id_of(&page, "Carol"),
    );
    for (label, n) in [
        ("Open", 3),
        ("Mine", 0),
        ("Unassigned", 3),
        ("Overdue", 0),
        ("Closed", 0),
        ("All", 3),
    ] {
        assert_eq!(count(&page, label), n, "{label}");
    }
    // Assign two to me and start one, in one submit.
    let notice = bulk(
        &app,
        &lena,
        &[&ada, &bob],
        &[("assignee", "me"), ("status", "in_progress")],
    )
    .await;
    assert_eq!(notice, "2 changed.");
    // Carol to Max; Ada overdue.
    assert_eq!(
        bulk(&app, &lena, &[&carol], &[("assignee", "max@acme.test")]).await,
        "1 changed."
    );
    make_overdue(&app, &ada).await;
    let page = inbox(&app, &lena, "").await;
    for (label, n) in [
        ("Open", 3),
        ("Mine", 2),
        ("Unassigned", 0),
        ("Overdue", 1),
        ("Closed", 0),
        ("All", 3),
    ] {
        assert_eq!(count(&page, label), n, "{label}");
    }
    let ada_row = rows(&page).into_iter().find(|(i, _)| *i == ada).unwrap().1;
    assert!(ada_row.contains(&lena.name) && ada_row.contains("In progress"));
    assert!(ada_row.contains("badge overdue\">Overdue"), "{ada_row}");
    let carol_row = rows(&page)
        .into_iter()
        .find(|(i, _)| *i == carol)
        .unwrap()
        .1;
    assert!(carol_row.contains("Max Agent"), "assignees show by name");
    assert_eq!(
        shown(&app, &lena, "?view=mine").await,
        vec!["Ada Lovelace", "Bob Builder"]
    );
    assert_eq!(
        shown(&app, &lena, "?view=overdue").await,
        vec!["Ada Lovelace"]
    );
    assert!(shown(&app, &lena, "?view=unassigned").await.is_empty());
    // Resolve Ada; then ask to start Ada (resolved) and Bob (in progress already) and Carol.
    assert_eq!(
        bulk(
            &app,
            &lena,
            &[&ada],
            &[("status", "resolved"), ("outcome", "resolved_issue")]
        )
        .await,
        "1 changed."
    );
    let notice = bulk(
        &app,
        &lena,
        &[&ada, &bob, &carol],
        &[("status", "in_progress")],
    )
    .await;
    assert!(
        notice.starts_with(&format!(
            "1 changed, 1 already so; 1 not: {ada} a resolved task must be reopened"
        )),
        "{notice}"
    );
    let page = inbox(&app, &lena, "?view=closed").await;
    assert_eq!(names(&page), vec!["Ada Lovelace"]);
    assert_eq!(count(&page, "Closed"), 1);
    assert_eq!(count(&page, "Open"), 2);
    // Nothing selected, or nothing chosen: nothing changes, and the page says so.
    assert!(bulk(&app, &lena, &[], &[("assignee", "me")])
        .await
        .starts_with("Nothing changed"));
    assert!(bulk(&app, &lena, &[&bob], &[])
        .await
        .starts_with("Nothing changed"));
    // Unknown ids are reported; a stranger as assignee or a bad status is a 400 page.
    let notice = bulk(&app, &lena, &["fup_nope"], &[("assignee", "none")]).await;
    assert_eq!(notice, "0 changed; 1 not: fup_nope no such follow-up.");
    for (k, v) in [
        ("assignee", "stranger@x.test"),
        ("status", "done"),
        ("outcome", "magic"),
    ] {
        let mut form = vec![
            ("csrf_token", lena.csrf.as_str()),
            ("id", bob.as_str()),
            (k, v),
        ];
        if k == "outcome" {
            form.push(("status", "resolved"));
        }
        let res = app
            .post_form("/app/followups/bulk", Some(&lena.cookie), &form)
            .await;
        assert_eq!(res.status().as_u16(), 400, "{k}");
        assert!(res.text().await.unwrap().contains(k));
    }
}

async fn filters_and_sorts_narrow_and_order_the_list(app: TestApp) {
    let (_, csat) = seed(&app).await;
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    let page = inbox(&app, &lena, "").await;
    let bob = id_of(&page, "Bob");
    bulk(&app, &lena, &[&bob], &[("assignee", "me")]).await;
    let csat_id = csat["id"].as_str().unwrap();
    let today = chrono::Utc::now().date_naive();
    let (yesterday, tomorrow) = (today.pred_opt().unwrap(), today.succ_opt().unwrap());
    for (query, want) in [
        (format!("?survey={csat_id}"), vec!["Carol Cross"]),
        ("?q=ANALYTICAL".into(), vec!["Ada Lovelace"]),
        ("?q=bob".into(), vec!["Bob Builder"]),
        ("?q=too+slow".into(), vec!["Bob Builder"]),
        ("?q=carol%40x".into(), vec!["Carol Cross"]),
        ("?q=100%25".into(), vec![]),
        ("?assignee=none".into(), vec!["Ada Lovelace", "Carol Cross"]),
        ("?assignee=me".into(), vec!["Bob Builder"]),
        (format!("?assignee={}", lena.email), vec!["Bob Builder"]),
        ("?view=unassigned&assignee=me".into(), vec![]),
        (
            "?prop_key=plan&prop_value=Enterprise".into(),
            vec!["Ada Lovelace"],
        ),
        ("?prop=plan:starter".into(), vec!["Bob Builder"]),
        ("?prop=company:builders".into(), vec!["Bob Builder"]),
        ("?prop_key=value&prop_value=500".into(), vec!["Bob Builder"]),
        (
            "?min_score=0&max_score=2".into(),
            vec!["Ada Lovelace", "Carol Cross"],
        ),
        ("?band=4-6".into(), vec!["Bob Builder"]),
        ("?min_score=3".into(), vec!["Bob Builder"]),
        (
            format!("?from={today}&to={today}"),
            vec!["Ada Lovelace", "Bob Builder", "Carol Cross"],
        ),
        (format!("?from={tomorrow}"), vec![]),
        (format!("?to={yesterday}"), vec![]),
        (
            "?sort=created_at".into(),
            vec!["Carol Cross", "Bob Builder", "Ada Lovelace"],
        ),
    ] {
        assert_eq!(shown(&app, &lena, &query).await, want, "{query}");
    }
    // Filters narrow the counts of every tab.
    let page = inbox(&app, &lena, "?assignee=none").await;
    assert_eq!(
        (
            count(&page, "Open"),
            count(&page, "Mine"),
            count(&page, "Unassigned")
        ),
        (2, 0, 2)
    );
    // Due soonest: Carol (answered last) is made overdue and comes first.
    let carol = id_of(&page, "Carol");
    make_overdue(&app, &carol).await;
    assert_eq!(
        shown(&app, &lena, "?sort=due_at").await,
        vec!["Carol Cross", "Ada Lovelace", "Bob Builder"]
    );
    // The filter form shows what is applied.
    let page = inbox(&app, &lena, "?q=slow&prop=plan:starter").await;
    assert!(page.contains("name=\"q\" type=\"search\" value=\"slow\""));
    assert!(page.contains("name=\"prop_value\" value=\"starter\""));
}

async fn pages_hold_fifty_with_a_next_link(app: TestApp) {
    let s = app
        .create_survey(json!({"kind": "nps", "name": "Many", "throttle_days": 0}))
        .await;
    let contacts: Vec<Value> = (0..52)
        .map(|i| json!({"email": format!("c{i:02}@x.test"), "name": format!("Customer {i:02}")}))
        .collect();
    let t = tokens(&app, &s, Value::Array(contacts)).await;
    for token in &t {
        answer(&app, token, 3, "meh").await;
    }
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    let page = inbox(&app, &lena, "?sort=created_at").await;
    assert_eq!(rows(&page).len(), 50);
    assert!(page.contains("href=\"/app/followups?sort=created_at&#38;page=2\" rel=\"next\""));
    let page2 = inbox(&app, &lena, "?sort=created_at&page=2").await;
    assert_eq!(names(&page2), vec!["Customer 01", "Customer 00"]);
    assert!(!page2.contains("rel=\"next\""));
    assert!(page2.contains("rel=\"prev\""));
    assert_eq!(count(&page2, "Open"), 52);
}

async fn saved_views_are_saved_listed_and_deleted(app: TestApp) {
    seed(&app).await;
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    let res = app
        .post_form(
            "/app/views",
            Some(&lena.cookie),
            &[
                ("csrf_token", &lena.csrf),
                ("name", "Enterprise detractors"),
                ("query", "prop=plan:enterprise&max_score=6&page=3"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let to = res.headers()["location"].to_str().unwrap().to_string();
    assert!(
        to.starts_with("/app/followups?max_score=6&prop_key=plan&prop_value=enterprise&notice="),
        "{to}"
    );
    let page = inbox(&app, &lena, "").await;
    let link = "href=\"/app/followups?max_score=6&#38;prop_key=plan&#38;prop_value=enterprise\">Enterprise detractors</a>";
    assert!(page.contains(link), "{page}");
    let page = inbox(
        &app,
        &lena,
        "?max_score=6&prop_key=plan&prop_value=enterprise",
    )
    .await;
    assert!(page.contains(&link.replace("\">", "\" aria-current=\"page\">")));
    assert_eq!(names(&page), vec!["Ada Lovelace"]);
    // Another member does not see it; a nameless or broken view is not saved.
    let max = app.sign_in("max@acme.test", "Max", Role::Reader).await;
    assert!(!inbox(&app, &max, "")
        .await
        .contains(">Enterprise detractors</a>"));
    let res = app
        .post_form(
            "/app/views",
            Some(&lena.cookie),
            &[("csrf_token", &lena.csrf), ("name", " "), ("query", "")],
        )
        .await;
    assert!(res.headers()["location"]
        .to_str()
        .unwrap()
        .contains("not+saved"));
    let res = app
        .post_form(
            "/app/views",
            Some(&lena.cookie),
            &[
                ("csrf_token", &lena.csrf),
                ("name", "x"),
                ("query", "view=bogus"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 400);
    // Delete it (another member cannot).
    let at = page.find("action=\"/app/views/").unwrap() + "action=\"/app/views/".len();
    let id = page[at..at + page[at..].find('/').unwrap()].to_string();
    assert!(id.starts_with("viw_"), "{id}");
    let res = app
        .post_form(
            &format!("/app/views/{id}/delete"),
            Some(&max.cookie),
            &[("csrf_token", &max.csrf)],
        )
        .await;
    assert_eq!(res.status().as_u16(), 404);
    let res = app
        .post_form(
            &format!("/app/views/{id}/delete"),
            Some(&lena.cookie),
            &[("csrf_token", &lena.csrf)],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    assert!(!inbox(&app, &lena, "")
        .await
        .contains(">Enterprise detractors</a>"));
}

async fn readers_cannot_act_and_csrf_is_checked_first(app: TestApp) {
    seed(&app).await;
    let rita = app
        .sign_in("rita@acme.test", "Rita Reader", Role::Reader)
        .await;
    let page = inbox(&app, &rita, "").await;
    assert_eq!(names(&page).len(), 3, "readers see the inbox");
    assert!(!page.contains("/app/followups/bulk") && !page.contains("name=\"id\""));
    let id = id_of(&page, "Ada");
    let res = app
        .post_form(
            "/app/followups/bulk",
            Some(&rita.cookie),
            &[("csrf_token", &rita.csrf), ("id", &id), ("assignee", "me")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    // An agent's POST without the token (or from another site) is refused; nothing changes.
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    let res = app
        .post_form(
            "/app/followups/bulk",
            Some(&lena.cookie),
            &[("id", &id), ("assignee", "me")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap().contains("This form has expired"));
    let res = app
        .client
        .post(app.url("/app/followups/bulk"))
        .header("Origin", "https://evil.test")
        .header("Cookie", &lena.cookie)
        .form(&[
            ("csrf_token", lena.csrf.as_str()),
            ("id", &id),
            ("assignee", "me"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = app
        .post_form(
            "/app/views",
            Some(&lena.cookie),
            &[("name", "x"), ("query", "")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    assert_eq!(count(&inbox(&app, &lena, "").await, "Mine"), 0);
    // Without a session: sign in first, and come back here.
    let res = app
        .client
        .get(app.url("/app/followups?view=mine"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(
        res.headers()["location"],
        "/app/login?next=%2Fapp%2Ffollowups%3Fview%3Dmine"
    );
}

async fn the_live_poll_reports_new_tasks(app: TestApp) {
    let (nps, _) = seed(&app).await;
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    let page = inbox(&app, &lena, "?min_score=0&max_score=6").await;
    let at = page.find("data-live=\"").unwrap() + "data-live=\"".len();
    let live = page[at..at + page[at..].find('"').unwrap()].replace("&#38;", "&");
    assert!(
        live.starts_with("/app/followups/live?min_score=0&max_score=6&since="),
        "{live}"
    );
    let poll = |path: String| {
        let (app, cookie) = (&app, lena.cookie.clone());
        async move {
            let res = app
                .client
                .get(app.url(&path))
                .header("Cookie", cookie)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = poll(live.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["new"], 0);
    let t = tokens(
        &app,
        &nps,
        json!([{"email": "eve@x.test", "name": "Eve New"}, {"email": "fay@x.test"}]),
    )
    .await;
    answer(&app, &t[0], 0, "Cancel my account").await;
    answer(&app, &t[1], 8, "").await;
    let (_, body) = poll(live.clone()).await;
    assert_eq!(body["new"], 1, "a passive makes no task: {body}");
    let since = body["since"].as_str().unwrap().to_string();
    // A filter that excludes Eve counts none; a later `since` counts none.
    let (_, body) = poll(live.replace("min_score=0", "min_score=1")).await;
    assert_eq!(body["new"], 0);
    let (_, body) = poll(format!("/app/followups/live?since={since}")).await;
    assert_eq!(body["new"], 0);
    // The reload shows her first among the newest.
    assert_eq!(shown(&app, &lena, "?sort=created_at").await[0], "Eve New");
    for bad in [
        "/app/followups/live",
        "/app/followups/live?since=yesterday",
        "/app/followups/live?since=2026-01-01T00:00:00&view=x",
    ] {
        let (status, body) = poll(bad.to_string()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].as_str().unwrap().contains("“"), "{body}");
    }
}

async fn bad_parameters_get_a_400_page_naming_them(app: TestApp) {
    let lena = app
        .sign_in("lena@acme.test", "Lena Lead", Role::Agent)
        .await;
    for (query, param) in [
        ("view=everything", "view"),
        ("min_score=abc", "min_score"),
        ("max_score=11", "max_score"),
        ("min_score=8&max_score=2", "min_score"),
        ("from=2026-02-30", "from"),
        ("to=tomorrow", "to"),
        ("from=2026-03-01&to=2026-02-01", "from"),
        ("sort=score", "sort"),
        ("page=0", "page"),
        ("page=-3", "page"),
        ("prop=plan", "prop"),
        ("prop_key=plan", "prop_value"),
        ("prop_value=x", "prop_key"),
        ("prop_key=a%22%29+OR+1%3D1--&prop_value=x", "prop_key"),
        ("assignee=bob", "assignee"),
        ("band=high", "band"),
    ] {
        let (status, page) = app
            .get_page(&format!("/app/followups?{query}"), &lena.cookie)
            .await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(&format!("“{param}”")), "{query}: {page}");
        assert!(page.contains("Back to the inbox"));
    }
    // A NUL character (PostgreSQL cannot store it) is refused before the inbox, by name.
    for (query, param) in [
        ("q=a%00b", "`q`"),
        ("prop_key=plan&prop_value=%00", "`prop_value`"),
    ] {
        let (status, page) = app
            .get_page(&format!("/app/followups?{query}"), &lena.cookie)
            .await;
        assert_eq!(status, 400, "{query}");
        assert!(page.contains(param), "{query}: {page}");
    }
    // Unknown parameters are ignored; a long search is refused politely.
    let (status, _) = app
        .get_page("/app/followups?utm_source=mail", &lena.cookie)
        .await;
    assert_eq!(status, 200);
    let long = "x".repeat(201);
    let (status, _) = app
        .get_page(&format!("/app/followups?q={long}"), &lena.cookie)
        .await;
    assert_eq!(status, 400);
}

both_engines!(
    a_detractor_appears_with_its_customer_survey_and_comment,
    views_count_and_bulk_changes_say_what_happened,
    filters_and_sorts_narrow_and_order_the_list,
    pages_hold_fifty_with_a_next_link,
    saved_views_are_saved_listed_and_deleted,
    readers_cannot_act_and_csrf_is_checked_first,
    the_live_poll_reports_new_tasks,
    bad_parameters_get_a_400_page_naming_them,
);
