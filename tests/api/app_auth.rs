//! The workspace's sign-in rules, over HTTP: emailed one-time links (received by a real SMTP
//! server), link reuse and expiry, no member enumeration, sessions (idle and absolute expiry,
//! sign-out, deactivation), passwords, CSRF, rate limits, the team page and the CLI.

use closeloop::domain::Role;

use crate::each_engine;
use crate::helpers::{csrf_of, spawn_app_with, with_db, Engine, TestApp};
use crate::smtp::TestSmtp;

async fn app_with_mail(engine: Engine, smtp: &TestSmtp) -> TestApp {
    let url = smtp.url();
    spawn_app_with(
        engine,
        &[
            ("SMTP_URL", url.as_str()),
            ("SMTP_FROM", "Surveys <surveys@acme.test>"),
            ("PUBLIC_URL", "https://feedback.acme.test"),
            ("DISPATCH_INTERVAL_MS", "50"),
        ],
    )
    .await
}

/// The `/app/login/…` path in an email's text.
fn link_in(text: &str) -> String {
    let at = text
        .find("/app/login/")
        .expect("a sign-in link in the email");
    text[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .trim_end_matches(['.', ')'])
        .to_string()
}

fn session_cookie_of(res: &reqwest::Response) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("closeloop_session=") && !v.starts_with("closeloop_session=;"))
        .map(str::to_string)
}

fn location(res: &reqwest::Response) -> String {
    res.headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string()
}

/// Runs SQL-free changes on the test database (moving times into the past).
async fn sign_in_by_emailed_link(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp).await;
    app.new_member("ann@acme.test", "Ann Lead", Role::Agent)
        .await;

    // A task link opened without a session goes through sign-in and comes back.
    let res = app
        .client
        .get(app.url("/app/team?tab=inbox"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let to_login = location(&res);
    assert!(
        to_login == "/app/login?next=%2Fapp%2Fteam%3Ftab%3Dinbox",
        "{to_login}"
    );
    let (status, page) = app.get_page(&to_login, "").await;
    assert_eq!(status, 200);
    assert!(page.contains("value=\"/app/team?tab=inbox\""), "{page}");

    let res = app
        .post_form(
            "/app/login",
            None,
            &[
                ("email", " Ann@ACME.test "),
                ("next", "/app/team?tab=inbox"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 200);
    assert!(res.text().await.unwrap().contains("Check your email"));

    let mail = smtp.wait_for(1, 10).await;
    assert_eq!(mail[0].to, vec!["ann@acme.test".to_string()]);
    let parsed = mail[0].parsed();
    let text = parsed.body_text(0).unwrap().to_string();
    assert!(
        parsed.body_html(0).is_some(),
        "the sign-in email has an HTML part"
    );
    assert!(
        text.contains("https://feedback.acme.test/app/login/"),
        "the link is under PUBLIC_URL: {text}"
    );
    let link = link_in(&text);
    assert!(link.contains("?next=%2Fapp%2Fteam%3Ftab%3Dinbox"), "{link}");

    // Opening the link (as a mail scanner does) consumes nothing.
    for _ in 0..2 {
        let (status, page) = app.get_page(&link, "").await;
        assert_eq!(status, 200);
        assert!(page.contains("ann@acme.test") && page.contains(">Sign in</button>"));
    }
    let (_, page) = app.get_page(&link, "").await;
    let next = "/app/team?tab=inbox";
    assert!(page.contains(&format!("value=\"{next}\"")), "{page}");
    let path = link.split('?').next().unwrap().to_string();
    let res = app.post_form(&path, None, &[("next", next)]).await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(location(&res), next);
    let set = session_cookie_of(&res).expect("a session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/app", "Secure"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let (status, page) = app.get_page("/app/profile", &cookie).await;
    assert_eq!(status, 200);
    assert!(page.contains("Ann Lead"));

    // The link signs in once.
    let res = app.post_form(&path, None, &[]).await;
    assert_eq!(res.status().as_u16(), 410);
    assert!(session_cookie_of(&res).is_none());
    assert!(res.text().await.unwrap().contains("already used"));
    let (status, _) = app.get_page(&path, "").await;
    assert_eq!(status, 410);
}

async fn nobody_learns_who_is_a_member(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp).await;
    app.new_member("ann@acme.test", "Ann", Role::Agent).await;
    let gone = app.sign_in("gone@acme.test", "Gone", Role::Agent).await;
    let admin = app.sign_in("boss@acme.test", "Boss", Role::Admin).await;
    let (_, team) = app.get_page("/app/team", &admin.cookie).await;
    let gone_id = team
        .split("action=\"/app/team/")
        .skip(1)
        .map(|s| s.split('"').next().unwrap().to_string())
        .find(|id| team.contains(&format!("role-{id}\">Role of Gone")))
        .expect("Gone's row");
    let res = app
        .post_form(
            &format!("/app/team/{gone_id}"),
            Some(&admin.cookie),
            &[("csrf_token", &admin.csrf), ("active", "false")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let _ = gone;

    let mut pages = Vec::new();
    for email in ["ann@acme.test", "stranger@acme.test", "gone@acme.test"] {
        let res = app.post_form("/app/login", None, &[("email", email)]).await;
        let status = res.status().as_u16();
        let body = res.text().await.unwrap().replace(email, "EMAIL");
        pages.push((status, body));
    }
    assert_eq!(
        pages[0], pages[1],
        "a member and a stranger get the same page"
    );
    assert_eq!(
        pages[0], pages[2],
        "a deactivated member gets the same page"
    );
    // Only the active member gets an email.
    smtp.wait_for(1, 10).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mail = smtp.received();
    assert_eq!(mail.len(), 1, "only the member is emailed");
    assert_eq!(mail[0].to, vec!["ann@acme.test".to_string()]);

    // Password sign-in answers alike for a wrong password and an unknown address.
    let a = app
        .post_form(
            "/app/login",
            None,
            &[("email", "ann@acme.test"), ("password", "wrong password!")],
        )
        .await;
    let b = app
        .post_form(
            "/app/login",
            None,
            &[
                ("email", "nobody@acme.test"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(a.status().as_u16(), 401);
    assert_eq!(b.status().as_u16(), 401);
    assert_eq!(
        a.text().await.unwrap().replace("ann@acme.test", "E"),
        b.text().await.unwrap().replace("nobody@acme.test", "E")
    );
}

async fn expired_and_malformed_links_sign_nobody_in(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    let link = app.new_member("ann@acme.test", "Ann", Role::Agent).await;
    with_db(&app, |conn| {
        use closeloop::store::schema::sign_in_tokens;
        use diesel::prelude::*;
        diesel::update(sign_in_tokens::table)
            .set(
                sign_in_tokens::expires_at
                    .eq(closeloop::domain::now() - chrono::TimeDelta::seconds(1)),
            )
            .execute(conn)
            .unwrap();
    })
    .await;
    let (status, page) = app.get_page(&link, "").await;
    assert_eq!(status, 410);
    assert!(page.contains("expired"), "{page}");
    let res = app.post_form(&link, None, &[]).await;
    assert_eq!(res.status().as_u16(), 410);
    assert!(session_cookie_of(&res).is_none());

    for bad in [
        "/app/login/nope",
        "/app/login/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "/app/login/%27%3B--",
    ] {
        let (status, page) = app.get_page(bad, "").await;
        assert_eq!(status, 404, "{bad}: {page}");
        let res = app.post_form(bad, None, &[]).await;
        assert_eq!(res.status().as_u16(), 404, "{bad}");
    }
}

async fn sessions_end_when_idle_or_too_old(engine: Engine) {
    let app = spawn_app_with(
        engine,
        &[("SESSION_IDLE_HOURS", "2"), ("SESSION_MAX_DAYS", "3")],
    )
    .await;
    let ann = app.sign_in("ann@acme.test", "Ann", Role::Agent).await;
    // Idle for longer than SESSION_IDLE_HOURS.
    with_db(&app, |conn| {
        use closeloop::store::schema::sessions;
        use diesel::prelude::*;
        diesel::update(sessions::table)
            .set(
                sessions::last_seen_at
                    .eq(closeloop::domain::now() - chrono::TimeDelta::minutes(121)),
            )
            .execute(conn)
            .unwrap();
    })
    .await;
    let (status, _) = app.get_page("/app/profile", &ann.cookie).await;
    assert_eq!(status, 303, "an idle session has ended");

    // Active, but older than SESSION_MAX_DAYS.
    let bob = app.sign_in("bob@acme.test", "Bob", Role::Agent).await;
    let (status, _) = app.get_page("/app/profile", &bob.cookie).await;
    assert_eq!(status, 200);
    with_db(&app, |conn| {
        use closeloop::store::schema::sessions;
        use diesel::prelude::*;
        diesel::update(sessions::table)
            .set(sessions::expires_at.eq(closeloop::domain::now() - chrono::TimeDelta::seconds(1)))
            .execute(conn)
            .unwrap();
    })
    .await;
    let (status, _) = app.get_page("/app/profile", &bob.cookie).await;
    assert_eq!(status, 303, "a session past its absolute expiry has ended");
    // A POST without a live session changes nothing and says so.
    let res = app
        .post_form(
            "/app/profile",
            Some(&bob.cookie),
            &[("csrf_token", &bob.csrf), ("name", "Mallory")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    assert!(res.text().await.unwrap().contains("session has ended"));
}

async fn sign_out_and_deactivation_end_sessions(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    let admin = app.sign_in("boss@acme.test", "Boss", Role::Admin).await;
    let ann = app.sign_in("ann@acme.test", "Ann", Role::Agent).await;
    let ann_elsewhere = app.sign_in_again("ann@acme.test").await;

    // Sign-out ends this session only.
    let res = app
        .post_form(
            "/app/logout",
            Some(&ann.cookie),
            &[("csrf_token", &ann.csrf)],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    assert!(location(&res).starts_with("/app/login"));
    let (status, _) = app.get_page("/app/profile", &ann.cookie).await;
    assert_eq!(status, 303, "signed out");
    let (status, _) = app.get_page("/app/profile", &ann_elsewhere).await;
    assert_eq!(status, 200, "the other session lives on");

    // Deactivation ends every session at once.
    let (_, team) = app.get_page("/app/team", &admin.cookie).await;
    assert!(team.contains("ann@acme.test") && team.contains("Last sign-in"));
    let ann_id = member_id(&team, "Ann");
    let res = app
        .post_form(
            &format!("/app/team/{ann_id}"),
            Some(&admin.cookie),
            &[("csrf_token", &admin.csrf), ("active", "false")],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let (status, _) = app.get_page("/app/profile", &ann_elsewhere).await;
    assert_eq!(status, 303, "deactivated: signed out everywhere");
    let (_, team) = app.get_page("/app/team", &admin.cookie).await;
    assert!(team.contains("deactivated"));

    // The last active admin cannot deactivate or demote themselves.
    let boss_id = member_id(&team, "Boss");
    for form in [[("active", "false")], [("role", "agent")]] {
        let mut fields = vec![("csrf_token", admin.csrf.as_str())];
        fields.extend(form);
        let res = app
            .post_form(
                &format!("/app/team/{boss_id}"),
                Some(&admin.cookie),
                &fields,
            )
            .await;
        assert_eq!(res.status().as_u16(), 409);
        assert!(res.text().await.unwrap().contains("active admin"));
    }
    let (status, _) = app.get_page("/app/profile", &admin.cookie).await;
    assert_eq!(status, 200);
}

/// A member's id from the team page (the form of their role select).
fn member_id(team: &str, name: &str) -> String {
    let marker = format!("\">Role of {name}</label>");
    let end = team
        .find(&marker)
        .unwrap_or_else(|| panic!("{name} on the team page"));
    let start = team[..end].rfind("for=\"role-").unwrap() + "for=\"role-".len();
    team[start..end].to_string()
}

async fn unsafe_requests_need_the_csrf_token_and_our_origin(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    let ann = app.sign_in("ann@acme.test", "Ann", Role::Admin).await;
    let rename = |name: &'static str| vec![("name", name)];

    // No token.
    let res = app
        .post_form("/app/profile", Some(&ann.cookie), &rename("Mallory"))
        .await;
    assert_eq!(res.status().as_u16(), 403);
    // A wrong token.
    let mut wrong = rename("Mallory");
    wrong.push(("csrf_token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    let res = app
        .post_form("/app/profile", Some(&ann.cookie), &wrong)
        .await;
    assert_eq!(res.status().as_u16(), 403);
    // The right token from another site, or with no Origin or Referer at all.
    let mut right = rename("Mallory");
    right.push(("csrf_token", &ann.csrf));
    for origin in [Some("https://evil.example"), None] {
        let mut req = app
            .client
            .post(app.url("/app/profile"))
            .header("Cookie", &ann.cookie)
            .form(&right);
        if let Some(o) = origin {
            req = req.header("Origin", o);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403, "origin {origin:?}");
        assert!(res.text().await.unwrap().contains("Nothing was changed"));
    }
    // The invitation form of the team page is protected alike.
    let res = app
        .post_form(
            "/app/team",
            Some(&ann.cookie),
            &[
                ("email", "eve@acme.test"),
                ("name", "Eve"),
                ("role", "admin"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 403);
    let (_, page) = app.get_page("/app/profile", &ann.cookie).await;
    assert!(page.contains("value=\"Ann\""), "nothing changed");
    let (_, team) = app.get_page("/app/team", &ann.cookie).await;
    assert!(!team.contains("eve@acme.test"));

    // A Referer of this site is enough without Origin; the header token works too.
    let res = app
        .client
        .post(app.url("/app/profile"))
        .header("Cookie", &ann.cookie)
        .header("Referer", app.url("/app/profile"))
        .header("X-CSRF-Token", &ann.csrf)
        .form(&rename("Ann Lead"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    let (_, page) = app.get_page("/app/profile", &ann.cookie).await;
    assert!(page.contains("value=\"Ann Lead\""));
    assert_eq!(csrf_of(&page).as_deref(), Some(ann.csrf.as_str()));
}

async fn sign_in_is_rate_limited(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    // Per email address: a burst of 5.
    for i in 0..5 {
        let res = app
            .post_form("/app/login", None, &[("email", "ann@acme.test")])
            .await;
        assert_eq!(res.status().as_u16(), 200, "attempt {i}");
    }
    let res = app
        .post_form("/app/login", None, &[("email", "ANN@acme.test")])
        .await;
    assert_eq!(res.status().as_u16(), 429);
    assert!(res.headers().get("retry-after").is_some());
    // Per client address: a burst of 10 whatever the address typed.
    let mut limited = false;
    for i in 0..6 {
        let email = format!("someone{i}@acme.test");
        let res = app
            .post_form("/app/login", None, &[("email", &email)])
            .await;
        limited |= res.status().as_u16() == 429;
    }
    assert!(limited, "the client address is limited too");
}

async fn passwords(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    let ann = app.sign_in("ann@acme.test", "Ann", Role::Agent).await;
    let set = |p: &'static str, q: &'static str| {
        vec![("name", "Ann"), ("password", p), ("password_again", q)]
    };
    for (p, q, why) in [
        (
            "correct horse battery",
            "correct horse batter",
            "not the same",
        ),
        ("short", "short", "at least"),
    ] {
        let mut form = set(p, q);
        form.push(("csrf_token", &ann.csrf));
        let res = app
            .post_form("/app/profile", Some(&ann.cookie), &form)
            .await;
        assert_eq!(res.status().as_u16(), 422);
        let body = res.text().await.unwrap();
        assert!(
            body.contains(why) || body.contains("10 to 256"),
            "{why}: {body}"
        );
    }
    let mut form = set("correct horse battery", "correct horse battery");
    form.push(("csrf_token", &ann.csrf));
    let res = app
        .post_form("/app/profile", Some(&ann.cookie), &form)
        .await;
    assert_eq!(res.status().as_u16(), 303);

    let res = app
        .post_form(
            "/app/login",
            None,
            &[
                ("email", "Ann@acme.test"),
                ("password", "correct horse battery"),
                ("next", "/app/team"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    assert_eq!(location(&res), "/app/team");
    let cookie = session_cookie_of(&res)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let (status, _) = app.get_page("/app/team", &cookie).await;
    assert_eq!(status, 200);

    // Never a redirect to another site.
    for next in [
        "https://evil.example/",
        "//evil.example/app",
        "/app/../evil",
        "/\\evil.example",
    ] {
        let res = app
            .post_form(
                "/app/login",
                None,
                &[
                    ("email", "ann@acme.test"),
                    ("password", "correct horse battery"),
                    ("next", next),
                ],
            )
            .await;
        let to = location(&res);
        assert!(
            to.starts_with("/app/") && !to.contains("evil"),
            "{next} → {to}"
        );
    }
}

async fn readers_and_agents_cannot_manage_the_team(engine: Engine) {
    let smtp = TestSmtp::start();
    let app = app_with_mail(engine, &smtp).await;
    let admin = app.sign_in("boss@acme.test", "Boss", Role::Admin).await;
    for role in [Role::Reader, Role::Agent] {
        let m = app
            .sign_in(&format!("{}@acme.test", role.as_str()), role.as_str(), role)
            .await;
        let (status, team) = app.get_page("/app/team", &m.cookie).await;
        assert_eq!(status, 200);
        assert!(!team.contains("Invite a member") && !team.contains("Deactivate"));
        assert!(
            team.contains(&m.email) && team.contains(&m.name),
            "everyone sees the team"
        );
        let res = app
            .post_form(
                "/app/team",
                Some(&m.cookie),
                &[
                    ("csrf_token", &m.csrf),
                    ("email", "eve@acme.test"),
                    ("name", "Eve"),
                    ("role", "admin"),
                ],
            )
            .await;
        assert_eq!(res.status().as_u16(), 403, "{role:?}");
    }

    // The admin invites a member, who receives a sign-in email that works.
    let res = app
        .post_form(
            "/app/team",
            Some(&admin.cookie),
            &[
                ("csrf_token", &admin.csrf),
                ("email", "Eve@Acme.test"),
                ("name", "Eve"),
                ("role", "agent"),
            ],
        )
        .await;
    assert_eq!(res.status().as_u16(), 303);
    let mail = smtp.wait_for(1, 10).await;
    assert_eq!(mail[0].to, vec!["eve@acme.test".to_string()]);
    let text = mail[0].parsed().body_text(0).unwrap().to_string();
    assert!(text.contains("Boss invited you"), "{text}");
    let res = app.post_form(&link_in(&text), None, &[]).await;
    assert_eq!(res.status().as_u16(), 303);

    // Bad invitations are explained on the page.
    for (email, name, role, why) in [
        ("eve@acme.test", "Eve", "agent", "already exists"),
        ("not an address", "X", "agent", "not a valid email"),
        ("x@acme.test", "", "agent", "name"),
        ("y@acme.test", "Y", "owner", "Choose a role"),
    ] {
        let res = app
            .post_form(
                "/app/team",
                Some(&admin.cookie),
                &[
                    ("csrf_token", &admin.csrf),
                    ("email", email),
                    ("name", name),
                    ("role", role),
                ],
            )
            .await;
        assert_eq!(res.status().as_u16(), 422, "{email}");
        let body = res.text().await.unwrap();
        assert!(body.contains(why), "{why}: {body}");
    }
    // Unknown or malformed member ids.
    for id in ["usr_01JDQ7Z3M4X5Y6Z7A8B9C0D1E2", "nope"] {
        let res = app
            .post_form(
                &format!("/app/team/{id}"),
                Some(&admin.cookie),
                &[("csrf_token", &admin.csrf), ("active", "false")],
            )
            .await;
        assert_eq!(res.status().as_u16(), 404, "{id}");
    }
}

each_engine!(
    sign_in_by_emailed_link,
    nobody_learns_who_is_a_member,
    expired_and_malformed_links_sign_nobody_in,
    sessions_end_when_idle_or_too_old,
    sign_out_and_deactivation_end_sessions,
    unsafe_requests_need_the_csrf_token_and_our_origin,
    sign_in_is_rate_limited,
    passwords,
    readers_and_agents_cannot_manage_the_team,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_creates_a_member_and_prints_a_link_last() {
    let db = crate::helpers::TestDb::new(Engine::Sqlite);
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_closeloop"))
            .args(args)
            .env("DATABASE_URL", &db.url)
            .env("PUBLIC_URL", "https://feedback.acme.test")
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&[
        "user",
        "create",
        "--email",
        "Ann@Acme.test",
        "--name",
        "Ann",
        "--role",
        "admin",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let link = stdout.lines().last().unwrap();
    assert!(
        link.starts_with("https://feedback.acme.test/app/login/"),
        "{stdout}"
    );
    assert_eq!(
        link.len(),
        "https://feedback.acme.test/app/login/".len() + 43
    );

    let out = run(&[
        "user",
        "create",
        "--email",
        "ann@acme.test",
        "--name",
        "Ann",
        "--role",
        "admin",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    let out = run(&[
        "user", "create", "--email", "nope", "--name", "Ann", "--role", "admin",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email"));

    // The link signs in on a server over that database.
    let outbox = tempfile::tempdir().unwrap();
    let app = closeloop::startup::Application::build(crate::helpers::test_settings(
        &db.url,
        outbox.path(),
        &[],
    ))
    .await
    .unwrap();
    let port = app.port();
    tokio::spawn(app.run_until_stopped());
    let path = &link["https://feedback.acme.test".len()..];
    let res = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("http://127.0.0.1:{port}{path}"))
        .header("Origin", format!("http://127.0.0.1:{port}"))
        .form(&[("next", "/app/team")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    assert!(session_cookie_of(&res).is_some());
}

/// Hostile input on every workspace form: NUL, CR/LF, other control characters, very long
/// values and unreadable bodies get a 4xx page (never a 500), and nothing is stored.
async fn hostile_form_input_is_refused_cleanly(engine: Engine) {
    let app = spawn_app_with(engine, &[]).await;
    let admin = app.sign_in("boss@acme.test", "Boss", Role::Admin).await;
    let long = "x".repeat(70_000);
    let nasty = ["a\0b", "a\r\nBcc: eve@evil.example", "\u{7}", long.as_str()];
    let mut problems = Vec::new();
    for v in nasty {
        let attempts: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("/app/login", vec![("email", v)]),
            (
                "/app/login",
                vec![("email", "boss@acme.test"), ("password", v)],
            ),
            ("/app/login", vec![("email", "boss@acme.test"), ("next", v)]),
            (
                "/app/team",
                vec![
                    ("csrf_token", &admin.csrf),
                    ("email", v),
                    ("name", "X"),
                    ("role", "agent"),
                ],
            ),
            (
                "/app/team",
                vec![
                    ("csrf_token", &admin.csrf),
                    ("email", "x@acme.test"),
                    ("name", v),
                    ("role", "agent"),
                ],
            ),
            (
                "/app/team",
                vec![
                    ("csrf_token", &admin.csrf),
                    ("email", "y@acme.test"),
                    ("name", "Y"),
                    ("role", v),
                ],
            ),
            (
                "/app/profile",
                vec![("csrf_token", &admin.csrf), ("name", v)],
            ),
            ("/app/profile", vec![("csrf_token", v), ("name", "Boss")]),
        ];
        for (path, form) in attempts {
            let res = app.post_form(path, Some(&admin.cookie), &form).await;
            let status = res.status().as_u16();
            // Sign-in answers the "check your email" page (200) or signs in (303) whatever
            // `next` holds: an unsafe `next` falls back to the inbox.
            let ok = matches!(status, 200 | 303) && path == "/app/login";
            if status >= 500 || !(400..500).contains(&status) && !ok {
                let fields: Vec<&str> = form.iter().map(|(k, _)| *k).collect();
                problems.push(format!(
                    "POST {path} {fields:?} with {:?}…: {status}",
                    &v[..v.len().min(12)]
                ));
            }
        }
    }
    // A password login with a long or odd password simply fails (401), a `next` with control
    // characters falls back to the inbox: both are 4xx/303 above. Nothing was stored:
    let (_, team) = app.get_page("/app/team", &admin.cookie).await;
    assert!(!team.contains("x@acme.test") && !team.contains("y@acme.test"));
    let (_, page) = app.get_page("/app/profile", &admin.cookie).await;
    assert!(page.contains("value=\"Boss\""));
    // Bodies that are not forms, and a NUL in the query of a page.
    let res = app
        .client
        .post(app.url("/app/profile"))
        .header("Cookie", &admin.cookie)
        .header("Origin", &app.address)
        .header("Content-Type", "application/json")
        .body("{\"name\": \"X\"}")
        .send()
        .await
        .unwrap();
    if res.status().as_u16() >= 500 || res.status().as_u16() < 400 {
        problems.push(format!("JSON body: {}", res.status()));
    }
    let (status, _) = app.get_page("/app/login?next=%00", "").await;
    if status != 400 {
        problems.push(format!("NUL in the query: {status}"));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

each_engine!(hostile_form_input_is_refused_cleanly);
