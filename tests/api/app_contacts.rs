//! The contact pages `/app/contacts` and `/app/contacts/{id}`: search, what a contact's page
//! shows, re-subscribe and erase, with the role and CSRF checks of every POST.

use closeloop::domain::Role;
use serde_json::{json, Value};

use crate::both_engines;
use crate::helpers::{answer, tokens, with_db, TestApp};

/// Ada (answered 3 with a comment: a task), Bob (invited, no answer) and Cleo (a property
/// only). Returns Ada's contact id and task id.
async fn customers(app: &TestApp) -> (String, String) {
    let survey = app
        .create_survey(
            json!({"kind": "nps", "name": "Q4 NPS", "brand": "Acme", "throttle_days": 0}),
        )
        .await;
    let t = tokens(
        app,
        &survey,
        json!([
            {"email": "ada@example.com", "name": "Ada Lovelace", "external_id": "cus_42",
             "properties": {"plan": "enterprise", "value": 120000}},
            {"email": "bob@other.test", "name": "Bob Babbage", "external_id": "cus_7",
             "properties": {"plan": "starter"}}
        ]),
    )
    .await;
    answer(app, &t[0], 3, "Exports are <b>slow</b>").await;
    let c = app
        .post(
            "/api/v1/contacts",
            json!({"email": "cleo@example.org", "properties": {"plan": "Enterprise", "company": "Initech"}}),
        )
        .await;
    assert_eq!(c.status, 201, "{}", c.text);
    let ada = app.get("/api/v1/contacts?email=ada@example.com").await;
    let ada = ada.body["items"][0]["id"].as_str().unwrap().to_string();
    let tasks = app.get("/api/v1/followups").await;
    let task = tasks.body["items"][0]["id"].as_str().unwrap().to_string();
    (ada, task)
}

async fn contacts_are_searched_by_email_name_external_id_and_property(app: TestApp) {
    customers(&app).await;
    let lead = app.sign_in("lead@acme.test", "Lena", Role::Reader).await;
    let (status, page) = app.get_page("/app/contacts", &lead.cookie).await;
    assert_eq!(status, 200, "{page}");
    for who in ["Ada Lovelace", "Bob Babbage", "cleo@example.org"] {
        assert!(page.contains(who), "{who} is listed");
    }
    assert!(
        page.contains("aria-current=\"page\">Contacts"),
        "the nav marks the section"
    );
    for (q, found, not) in [
        ("ada%40example", "Ada Lovelace", "Bob Babbage"),
        ("babbage", "Bob Babbage", "Ada Lovelace"),
        ("CUS_7", "Bob Babbage", "Ada Lovelace"),
        ("plan%3Denterprise", "cleo@example.org", "Bob Babbage"),
        ("plan%3Aenterprise", "Ada Lovelace", "Bob Babbage"),
        ("company%3Dinitech", "cleo@example.org", "Ada Lovelace"),
    ] {
        let (status, page) = app
            .get_page(&format!("/app/contacts?q={q}"), &lead.cookie)
            .await;
        assert_eq!(status, 200, "{q}: {page}");
        assert!(page.contains(found), "{q} finds {found}");
        assert!(!page.contains(not), "{q} does not find {not}");
    }
    let (_, page) = app.get_page("/app/contacts?q=zzz", &lead.cookie).await;
    assert!(page.contains("No contact matches."));
    // Bad input is a friendly page, never a 500.
    for q in [
        "/app/contacts?cursor=nope",
        &format!("/app/contacts?q={}", "x".repeat(201)),
    ] {
        let (status, page) = app.get_page(q, &lead.cookie).await;
        assert_eq!(status, 400, "{q}");
        assert!(page.contains("That did not work"), "{page}");
    }
    // Without a session: sign in first.
    let res = app
        .client
        .get(app.url("/app/contacts"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
}

async fn the_contact_page_shows_invitations_answers_and_tasks(app: TestApp) {
    let (ada, task) = customers(&app).await;
    // A second invitation of Ada's that failed to send.
    let other = app
        .create_survey(json!({"kind": "csat", "name": "Support CSAT", "throttle_days": 0}))
        .await;
    tokens(&app, &other, json!([{"email": "ada@example.com"}])).await;
    let id = ada.clone();
    with_db(&app, move |conn| {
        use closeloop::store::schema::invitations;
        use diesel::prelude::*;
        diesel::update(
            invitations::table
                .filter(invitations::contact_id.eq(id))
                .filter(invitations::status.eq("sent")),
        )
        .set((
            invitations::status.eq("failed"),
            invitations::last_error.eq(Some("550 mailbox unavailable")),
        ))
        .execute(conn)
        .unwrap();
    })
    .await;
    let lead = app.sign_in("lead@acme.test", "Lena", Role::Agent).await;
    let (status, page) = app
        .get_page(&format!("/app/contacts/{ada}"), &lead.cookie)
        .await;
    assert_eq!(status, 200, "{page}");
    for s in [
        "<h1>Ada Lovelace</h1>",
        "ada@example.com",
        "cus_42",
        "enterprise",
        "120,000",
        "Q4 NPS",
        "Support CSAT",
        "responded",
        "failed",
        "550 mailbox unavailable",
        "3/10 detractor",
        "Exports are &#60;b&#62;slow&#60;/b&#62;",
        &format!("href=\"/app/followups/{task}\""),
        "Subscribed",
    ] {
        assert!(page.contains(s), "{s} missing:\n{page}");
    }
    assert!(!page.contains("<b>slow</b>"), "comments are escaped");
    // The task page's customer card links here.
    let (_, task_page) = app
        .get_page(&format!("/app/followups/{task}"), &lead.cookie)
        .await;
    assert!(task_page.contains(&format!("href=\"/app/contacts/{ada}\"")));
    // An agent sees no admin actions.
    assert!(!page.contains("/erase"));
    assert!(!page.contains("Re-subscribe"));
    // Unknown or malformed ids: 404 pages.
    for p in [
        "/app/contacts/con_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2",
        "/app/contacts/nope",
    ] {
        let (status, page) = app.get_page(p, &lead.cookie).await;
        assert_eq!(status, 404, "{p}");
        assert!(page.contains("Not found"));
    }
}

async fn an_admin_resubscribes_a_contact_and_others_may_not(app: TestApp) {
    let (ada, _) = customers(&app).await;
    let a = app
        .patch(
            &format!("/api/v1/contacts/{ada}"),
            json!({"unsubscribed": true}),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let agent = app
        .sign_in("agent@acme.test", "Al Agent", Role::Agent)
        .await;
    let path = format!("/app/contacts/{ada}");
    let (_, page) = app.get_page(&path, &agent.cookie).await;
    assert!(page.contains("Unsubscribed"));
    assert!(!page.contains("Re-subscribe"), "agents get no button");
    let (_, page) = app.get_page(&path, &admin.cookie).await;
    assert!(page.contains("Re-subscribe"));

    let action = format!("{path}/resubscribe");
    let (status, _, page) = app.post_as(&agent, &action, &[]).await;
    assert_eq!(status, 403, "{page}");
    // Without the CSRF token, or from another site: refused.
    let res = app
        .post_form(&action, Some(&admin.cookie), &[("csrf_token", "wrong")])
        .await;
    assert_eq!(res.status(), 403);
    let res = app
        .client
        .post(app.url(&action))
        .header("Origin", "https://evil.example")
        .header("Cookie", &admin.cookie)
        .form(&[("csrf_token", admin.csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let still = app.get(&format!("/api/v1/contacts/{ada}")).await;
    assert!(
        still.body["unsubscribed_at"].is_string(),
        "nothing changed yet"
    );

    let (status, to, _) = app.post_as(&admin, &action, &[]).await;
    assert_eq!(status, 303);
    assert_eq!(to, format!("{path}?notice=resubscribed"));
    let after = app.get(&format!("/api/v1/contacts/{ada}")).await;
    assert_eq!(after.body["unsubscribed_at"], Value::Null);
    let (_, page) = app.get_page(&to, &admin.cookie).await;
    assert!(page.contains("Re-subscribed: this contact can be surveyed again."));
    assert!(!page.contains("Unsubscribed</span>"));
    // Who did what is recorded and shown, newest first; repeating changes nothing.
    app.post_as(&admin, &action, &[]).await;
    let (_, page) = app.get_page(&to, &admin.cookie).await;
    let resub = page
        .find("Re-subscribed by Bea Boss")
        .expect("the admin's change");
    let unsub = page
        .find("Unsubscribed by API key test admin")
        .expect("the key's change");
    assert!(resub < unsub, "newest first");
    assert_eq!(
        page.matches("Re-subscribed by").count(),
        1,
        "a repeat records nothing"
    );
}

async fn a_customers_own_unsubscribe_is_recorded(app: TestApp) {
    let survey = app.nps_survey().await;
    let t = tokens(
        &app,
        &survey,
        json!([{"email": "ada@example.com", "name": "Ada"}]),
    )
    .await;
    let res = app
        .client
        .post(app.url(&format!("/u/{}", t[0])))
        .form(&[("List-Unsubscribe", "One-Click")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ada = app.get("/api/v1/contacts?email=ada@example.com").await;
    let ada = &ada.body["items"][0];
    assert!(ada["unsubscribed_at"].is_string(), "{ada}");
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let (_, page) = app
        .get_page(
            &format!("/app/contacts/{}", ada["id"].as_str().unwrap()),
            &admin.cookie,
        )
        .await;
    assert!(page.contains("Unsubscribed by Customer"), "{page}");
}

async fn erasing_asks_first_then_no_personal_data_is_shown(app: TestApp) {
    let (ada, task) = customers(&app).await;
    let admin = app.sign_in("boss@acme.test", "Bea Boss", Role::Admin).await;
    let agent = app
        .sign_in("agent@acme.test", "Al Agent", Role::Agent)
        .await;
    let confirm = format!("/app/contacts/{ada}/erase");
    let (status, _) = app.get_page(&confirm, &agent.cookie).await;
    assert_eq!(status, 403);
    let (status, page) = app.get_page(&confirm, &admin.cookie).await;
    assert_eq!(status, 200, "{page}");
    for s in [
        "Erase Ada Lovelace?",
        "Deleted for good",
        "The comments of 1 answer(s)",
        "Kept, anonymous",
        "The scores of 1 answer(s)",
        "1 follow-up task(s) and 1 invitation(s)",
        "cannot be undone",
    ] {
        assert!(page.contains(s), "{s} missing:\n{page}");
    }
    let (status, _, _) = app.post_as(&agent, &confirm, &[]).await;
    assert_eq!(status, 403);
    assert_eq!(
        app.get(&format!("/api/v1/contacts/{ada}")).await.status,
        200
    );

    let (status, to, _) = app.post_as(&admin, &confirm, &[]).await;
    assert_eq!(status, 303);
    assert_eq!(to, "/app/contacts?notice=erased");
    let (_, page) = app.get_page(&to, &admin.cookie).await;
    assert!(page.contains("The contact was erased."));
    let personal = [
        "Ada",
        "Lovelace",
        "ada@example.com",
        "cus_42",
        "120,000",
        "slow",
    ];
    let (status, page) = app
        .get_page(&format!("/app/contacts/{ada}"), &admin.cookie)
        .await;
    assert_eq!(status, 410, "{page}");
    assert!(page.contains("This contact was erased"));
    let (_, task_page) = app
        .get_page(&format!("/app/followups/{task}"), &admin.cookie)
        .await;
    for p in [&page, &task_page] {
        for s in personal {
            assert!(!p.contains(s), "{s} still shown");
        }
    }
    let (_, list) = app.get_page("/app/contacts?q=ada", &admin.cookie).await;
    assert!(list.contains("No contact matches."));
    // Erasing again: 404, not a 500.
    let (status, _, _) = app.post_as(&admin, &confirm, &[]).await;
    assert_eq!(status, 404);
}

both_engines!(
    contacts_are_searched_by_email_name_external_id_and_property,
    the_contact_page_shows_invitations_answers_and_tasks,
    an_admin_resubscribes_a_contact_and_others_may_not,
    a_customers_own_unsubscribe_is_recorded,
    erasing_asks_first_then_no_personal_data_is_shown,
);
