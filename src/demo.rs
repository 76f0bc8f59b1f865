//! `closeloop demo`: fills a fresh database with believable, deterministic data (a fixed
//! seed), so a newcomer sees a living inbox and dashboard at once.
//!
//! Three surveys (NPS in English with a 14-day re-survey, CSAT in German, NPS with a public
//! link), 300 contacts with plans, companies and values, 90 days of email invitations and
//! about 2,000 answers with comments, follow-ups in every status assigned among two demo
//! members, and resolved detractors who were re-surveyed (most answered better).
//!
//! Everything goes through the same use cases and store functions as live traffic
//! (`invitations::invite_contact`, `answers::record_in_tx`, the task log), then is moved back
//! to its day. Back-dated email invitations are recorded as sent without sending (no queued
//! mail; alerts are off for the run), and the daily rollups are rebuilt at the end, so the
//! reports count every answer on its day. A database with data is refused unless `force`.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::Connection;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map};

use crate::answers::{record_in_tx, Answer, CommentChange};
use crate::config::Settings;
use crate::domain::{hash_key, new_id, new_secret, now, Email, IdPrefix, Role, Score, SurveyKind};
use crate::error::AppError;
use crate::followups::{due_at, Rules, TaskEvent};
use crate::invitations::{invite_contact, Origin};
use crate::store::contacts::ContactInput;
use crate::store::followups::{self as tasks, FollowupChanges};
use crate::store::invitations::{self as invitations, Channel};
use crate::store::models::{ContactRow, FollowupRow, InvitationRow, SurveyRow};
use crate::store::rollups::Tally;
use crate::store::DbConnection;

/// The seed: the same data on every run.
pub const SEED: u64 = 11;
/// How far back the data goes.
const DAYS: i64 = 90;
const CONTACTS: usize = 300;
/// Anonymous answers on the public link.
const PUBLIC_ANSWERS: usize = 820;
/// Contacts (by number) who unsubscribed along the way.
const UNSUBSCRIBED: [usize; 4] = [7, 61, 148, 230];
/// Days after a resolved task before the NPS survey asks again.
const RESURVEY_DAYS: i32 = 14;

/// What `fill` made.
#[derive(Debug, Default)]
pub struct Summary {
    pub surveys: usize,
    pub contacts: usize,
    pub invitations: usize,
    pub responses: usize,
    pub followups: usize,
    pub resurveys: usize,
    /// A one-time sign-in link for the demo admin.
    pub sign_in_link: String,
}

/// Whether the database already has surveys, contacts, answers, tasks or members.
pub fn has_data(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(crate::store::surveys::any(conn)?
        || crate::store::contacts::any(conn)?
        || crate::store::responses::any(conn)?
        || tasks::any(conn)?
        || crate::store::users::any(conn)?)
}

/// Fills the database (see the module). Refused with 409 `database_not_empty` when it has
/// data, unless `force`.
pub fn fill(
    conn: &mut DbConnection,
    settings: &Settings,
    force: bool,
) -> Result<Summary, AppError> {
    if !force && has_data(conn)? {
        return Err(AppError::conflict(
            "database_not_empty",
            "the database already has data; `closeloop demo` fills a fresh one (use --force to add the demo data anyway)",
        ));
    }
    let rules = Rules {
        // No alerts for demo tasks: nothing is mailed or posted for back-dated data.
        team_email: None,
        slack_webhook_url: None,
        ..Rules::from_settings(settings)
    };
    let mut outcomes = settings.followup_outcomes.clone();
    if outcomes.is_empty() {
        outcomes.push("resolved_issue".into());
    }
    let mut summary = conn.transaction(|conn| {
        let mut demo = Demo {
            rng: StdRng::seed_from_u64(SEED),
            end: now(),
            rules,
            outcomes,
            members: Vec::new(),
            summary: Summary::default(),
        };
        demo.run(conn, settings)?;
        Ok::<_, AppError>(demo.summary)
    })?;
    crate::store::rollups::rebuild(conn)?;
    summary.surveys = 3;
    Ok(summary)
}

struct Demo {
    rng: StdRng,
    /// Now: nothing happens after it.
    end: NaiveDateTime,
    rules: Rules,
    outcomes: Vec<String>,
    /// The members' emails (tasks are assigned among them).
    members: Vec<String>,
    summary: Summary,
}

/// A resolved NPS task waiting for its re-survey.
struct Pending {
    task: String,
    due: NaiveDateTime,
    score: i32,
}

impl Demo {
    fn run(&mut self, conn: &mut DbConnection, settings: &Settings) -> Result<(), AppError> {
        self.summary.sign_in_link = member(
            conn,
            settings,
            "dana@demo.closeloop.test",
            "Dana Demo",
            Role::Admin,
        )?;
        for (email, name) in [
            ("lea@demo.closeloop.test", "Lea Berger"),
            ("max@demo.closeloop.test", "Max Okafor"),
        ] {
            member(conn, settings, email, name, Role::Agent)?;
            self.members.push(email.into());
        }
        let start = self.end - TimeDelta::days(DAYS);
        let nps = survey(conn, start, SurveyKind::Nps, "Product NPS", "en", false)?;
        let csat = survey(
            conn,
            start,
            SurveyKind::Csat,
            "Support-Zufriedenheit",
            "de",
            false,
        )?;
        let public = survey(conn, start, SurveyKind::Nps, "Website NPS", "en", true)?;
        for i in 0..CONTACTS {
            let contact = self.contact(conn, i)?;
            let id = contact.0.id.clone();
            self.timeline(conn, contact, &nps, &csat)?;
            // A few customers have unsubscribed since.
            if UNSUBSCRIBED.contains(&i) {
                crate::store::contacts::unsubscribe(conn, &id)?;
            }
        }
        for _ in 0..PUBLIC_ANSWERS {
            let t = start + TimeDelta::minutes(self.rng.random_range(0..DAYS * 24 * 60));
            let mood = self.trend(t);
            self.answer(conn, &public, None, t, mood)?;
        }
        Ok(())
    }

    /// Contact number `i`: name, company, plan, value, and a mood (segments differ).
    fn contact(
        &mut self,
        conn: &mut DbConnection,
        i: usize,
    ) -> Result<(ContactRow, f64), AppError> {
        let (first, last) = person(i);
        let (company, _, country) = COMPANIES[i % COMPANIES.len()];
        let roll: f64 = self.rng.random();
        let (plan, value, mood) = match roll {
            r if r < 0.30 => ("free", 0.0, -0.12),
            r if r < 0.65 => ("starter", self.hundreds(600, 2_400), 0.0),
            r if r < 0.90 => ("pro", self.hundreds(3_000, 12_000), 0.05),
            _ => ("enterprise", self.hundreds(20_000, 120_000), 0.1),
        };
        let mut props = Map::new();
        props.insert("plan".into(), json!(plan));
        props.insert("company".into(), json!(company));
        props.insert("country".into(), json!(country));
        props.insert("value".into(), json!(value));
        let input = ContactInput {
            email: Some(Email::parse(&contact_email(i)).map_err(|m| AppError::field("email", m))?),
            name: Some(format!("{first} {last}")),
            external_id: Some(format!("cus_{:04}", i + 1)),
            properties: Some(props),
        };
        let (row, _) = crate::store::contacts::upsert(conn, &input)?;
        self.summary.contacts += 1;
        Ok((row, mood + self.rng.random_range(-0.08..0.08)))
    }

    fn hundreds(&mut self, lo: i64, hi: i64) -> f64 {
        (self.rng.random_range(lo / 100..=hi / 100) * 100) as f64
    }

    /// A contact's 90 days: an invitation every 9 to 18 days (NPS or CSAT), most answered,
    /// and the re-survey of a resolved NPS task when its day comes.
    fn timeline(
        &mut self,
        conn: &mut DbConnection,
        (mut contact, mood): (ContactRow, f64),
        nps: &SurveyRow,
        csat: &SurveyRow,
    ) -> Result<(), AppError> {
        let start = self.end - TimeDelta::days(DAYS);
        let mut day = self.rng.random_range(0..12);
        // Resolved NPS tasks waiting for their re-survey, in order.
        let mut pending: Vec<Pending> = Vec::new();
        while day < DAYS {
            let t = start
                + TimeDelta::days(day)
                + TimeDelta::minutes(self.rng.random_range(8 * 60..18 * 60));
            if t >= self.end {
                break;
            }
            while pending.first().is_some_and(|p| p.due <= t) {
                let p = pending.remove(0);
                contact = self.resurvey(conn, contact, nps, p, &mut pending)?;
            }
            // Regular surveys wait for a re-survey that is close (it would be throttled).
            if pending
                .first()
                .is_some_and(|p| t + TimeDelta::days(nps.throttle_days as i64) > p.due)
            {
                day += self.rng.random_range(3..=6);
                continue;
            }
            let s = if self.rng.random_bool(0.6) { nps } else { csat };
            let (inv, row) = self.invite(conn, s, contact, t, Origin::Api)?;
            contact = row;
            if inv.status == "sent" && self.rng.random_bool(0.62) {
                let at = t + TimeDelta::minutes(self.rng.random_range(5..3 * 24 * 60));
                let task = self.answer(conn, s, Some(inv), at, mood + self.trend(at))?;
                if s.id == nps.id {
                    wait_for_resurvey(&mut pending, task);
                }
            }
            day += self.rng.random_range(9..=18);
        }
        // The rest when their day has come; later ones are left to the live re-survey job.
        while pending.first().is_some_and(|p| p.due < self.end) {
            let p = pending.remove(0);
            contact = self.resurvey(conn, contact, nps, p, &mut pending)?;
        }
        Ok(())
    }

    /// An email invitation made at `t` by the invitation rules, and recorded as sent then
    /// (nothing is mailed) unless the rules suppressed it.
    fn invite(
        &mut self,
        conn: &mut DbConnection,
        s: &SurveyRow,
        contact: ContactRow,
        t: NaiveDateTime,
        origin: Origin,
    ) -> Result<(InvitationRow, ContactRow), AppError> {
        let mut tally = Tally::default();
        let (mut inv, mut contact) =
            invite_contact(conn, s, contact, Channel::Email, t, origin, t, &mut tally)?;
        self.summary.invitations += 1;
        if inv.status == "scheduled" {
            invitations::mark_delivered(conn, &inv.id, t)?;
            crate::store::contacts::set_last_surveyed(conn, &contact.id, t)?;
            contact.last_surveyed_at = Some(t);
            inv.status = "sent".into();
            inv.sent_at = Some(t);
        }
        Ok((inv, contact))
    }

    /// The re-survey of a resolved task: one invitation (origin `resurvey`) linked to it, most
    /// often answered, and better than the first time (an answer that makes a task again
    /// joins `pending`).
    fn resurvey(
        &mut self,
        conn: &mut DbConnection,
        contact: ContactRow,
        nps: &SurveyRow,
        p: Pending,
        pending: &mut Vec<Pending>,
    ) -> Result<ContactRow, AppError> {
        let (inv, contact) = self.invite(conn, nps, contact, p.due, Origin::Resurvey)?;
        tasks::link_resurvey(conn, &p.task, &inv.id)?;
        tasks::log_at(
            conn,
            &p.task,
            "resurveyed",
            "system",
            None,
            Some(json!({"invitation_id": inv.id, "status": inv.status, "reason": inv.reason})),
            p.due,
        )?;
        if inv.status != "sent" {
            return Ok(contact);
        }
        self.summary.resurveys += 1;
        if self.rng.random_bool(0.7) {
            let at = p.due + TimeDelta::minutes(self.rng.random_range(30..2 * 24 * 60));
            if at < self.end {
                let better = if self.rng.random_bool(0.7) {
                    self.rng.random_range(7..=10)
                } else {
                    self.rng.random_range(p.score..=6)
                };
                let task = self.record(conn, nps, Some(inv), at, better)?;
                wait_for_resurvey(pending, task);
            }
        }
        Ok(contact)
    }

    /// Customers grow a little happier over the 90 days (the work shows).
    fn trend(&self, t: NaiveDateTime) -> f64 {
        let age = (self.end - t).num_hours() as f64 / (DAYS * 24) as f64;
        0.08 * (1.0 - age)
    }

    /// An answer at `at` drawn from `mood`; returns its task, if it made one.
    fn answer(
        &mut self,
        conn: &mut DbConnection,
        s: &SurveyRow,
        inv: Option<InvitationRow>,
        at: NaiveDateTime,
        mood: f64,
    ) -> Result<Option<FollowupRow>, AppError> {
        if at >= self.end {
            return Ok(None);
        }
        let kind = SurveyKind::parse(&s.kind).unwrap_or(SurveyKind::Nps);
        let r: f64 = self.rng.random();
        let score = match kind {
            SurveyKind::Nps if r < 0.50 + mood => self.rng.random_range(9..=10),
            SurveyKind::Nps if r < 0.78 + mood / 2.0 => self.rng.random_range(7..=8),
            SurveyKind::Nps => self.rng.random_range(0..=6),
            SurveyKind::Csat if r < 0.66 + mood => self.rng.random_range(4..=5),
            SurveyKind::Csat if r < 0.84 + mood / 2.0 => 3,
            SurveyKind::Csat => self.rng.random_range(1..=2),
        };
        self.record(conn, s, inv, at, score)
    }

    /// Records an answer through the answer use case, moves it to `at`, and works its task.
    fn record(
        &mut self,
        conn: &mut DbConnection,
        s: &SurveyRow,
        inv: Option<InvitationRow>,
        at: NaiveDateTime,
        score: i32,
    ) -> Result<Option<FollowupRow>, AppError> {
        let kind = SurveyKind::parse(&s.kind).unwrap_or(SurveyKind::Nps);
        let score = Score::parse(kind, score as i64).map_err(|m| AppError::field("score", m))?;
        let comment = self
            .rng
            .random_bool(0.68)
            .then(|| self.comment(score, &s.locale));
        let answer = Answer {
            survey: s.clone(),
            channel: if inv.is_some() { "email" } else { "public" }.into(),
            submission_id: inv.is_none().then(|| new_secret("")),
            invitation: inv.clone(),
            score,
            comment: CommentChange::Set(comment),
            locale: Some(s.locale.clone()),
            contact: None,
        };
        let mut tally = Tally::default();
        let outcome = record_in_tx(conn, &answer, &self.rules, &mut tally)?;
        tally.flush(conn)?;
        let response = outcome.recorded.response().clone();
        crate::store::responses::backdate(conn, &response.id, at)?;
        if let Some(inv) = &inv {
            crate::store::responses::mark_responded(conn, &inv.id, &inv.contact_id, at)?;
        }
        self.summary.responses += 1;
        let mut made = None;
        for event in outcome.tasks {
            if let TaskEvent::Created(task) = event {
                let due = due_at(at, self.rules.sla_hours, self.rules.business_days);
                tasks::backdate(conn, &task.id, at, due)?;
                self.summary.followups += 1;
                made = Some(self.work(conn, &task.id, at)?);
            }
        }
        Ok(made)
    }

    /// What the team did with a task answered at `at`: older ones are mostly closed, recent
    /// ones open or in progress; some are overdue.
    fn work(
        &mut self,
        conn: &mut DbConnection,
        id: &str,
        at: NaiveDateTime,
    ) -> Result<FollowupRow, AppError> {
        let age_days = (self.end - at).num_days();
        let r: f64 = self.rng.random();
        let status = match age_days {
            d if d > 10 => match r {
                r if r < 0.74 => "resolved",
                r if r < 0.88 => "dismissed",
                r if r < 0.94 => "in_progress",
                _ => "open",
            },
            d if d > 3 => match r {
                r if r < 0.40 => "resolved",
                r if r < 0.50 => "dismissed",
                r if r < 0.80 => "in_progress",
                _ => "open",
            },
            _ => match r {
                r if r < 0.12 => "resolved",
                r if r < 0.45 => "in_progress",
                _ => "open",
            },
        };
        let assigned = status != "open" || self.rng.random_bool(0.4);
        let mut changes = FollowupChanges::default();
        let mut t = at;
        if assigned {
            let who = self.members[self.rng.random_range(0..self.members.len())].clone();
            t = self.later(t, 1, 6 * 60);
            tasks::log_at(
                conn,
                id,
                "assigned",
                "user:dana@demo.closeloop.test",
                None,
                Some(json!({"from": null, "to": who})),
                t,
            )?;
            changes.assignee = Some(Some(who));
        }
        let actor = changes
            .assignee
            .clone()
            .flatten()
            .map(|a| format!("user:{a}"))
            .unwrap_or_else(|| "user:dana@demo.closeloop.test".into());
        if status != "open" {
            t = self.later(t, 10, 20 * 60);
            tasks::log_at(
                conn,
                id,
                "status_changed",
                &actor,
                None,
                Some(json!({"from": "open", "to": "in_progress"})),
                t,
            )?;
            if self.rng.random_bool(0.5) {
                t = self.later(t, 10, 8 * 60);
                let note = NOTES[self.rng.random_range(0..NOTES.len())];
                tasks::log_at(conn, id, "note", &actor, Some(note), None, t)?;
            }
        }
        if status == "resolved" || status == "dismissed" {
            t = self.later(t, 60, 3 * 24 * 60);
            let outcome = (status == "resolved")
                .then(|| self.outcomes[self.rng.random_range(0..self.outcomes.len())].clone());
            tasks::log_at(
                conn,
                id,
                "status_changed",
                &actor,
                None,
                Some(json!({"from": "in_progress", "to": status, "outcome": outcome})),
                t,
            )?;
            changes.outcome = Some(outcome);
            changes.resolved_at = Some(Some(t));
        }
        changes.status = Some(status.into());
        changes.updated_at = Some(t);
        tasks::update(conn, id, &changes)
    }

    /// A time `lo..hi` minutes after `t`, not after now.
    fn later(&mut self, t: NaiveDateTime, lo: i64, hi: i64) -> NaiveDateTime {
        (t + TimeDelta::minutes(self.rng.random_range(lo..hi)))
            .min(self.end - TimeDelta::minutes(1))
    }

    /// A comment that fits the score and the language, varied from parts.
    fn comment(&mut self, score: Score, locale: &str) -> String {
        let de = locale == "de";
        let pool: &[&str] = match (
            score.category().needs_followup(),
            score.category().as_str(),
            de,
        ) {
            (true, _, false) => &UNHAPPY_EN,
            (true, _, true) => &UNHAPPY_DE,
            (false, "promoter" | "satisfied", false) => &HAPPY_EN,
            (false, "promoter" | "satisfied", true) => &HAPPY_DE,
            (false, _, false) => &MIXED_EN,
            (false, _, true) => &MIXED_DE,
        };
        let first = pool[self.rng.random_range(0..pool.len())];
        if self.rng.random_bool(0.35) {
            let second = pool[self.rng.random_range(0..pool.len())];
            if second != first {
                return format!("{first} {second}");
            }
        }
        first.to_string()
    }
}

/// Queues a resolved task with a contact for its re-survey, in order of due time.
fn wait_for_resurvey(pending: &mut Vec<Pending>, task: Option<FollowupRow>) {
    let Some(task) = task else { return };
    if let (Some(resolved), Some(_), "resolved") =
        (task.resolved_at, &task.contact_id, task.status.as_str())
    {
        pending.push(Pending {
            task: task.id,
            due: resolved + TimeDelta::days(RESURVEY_DAYS as i64),
            score: task.score,
        });
        pending.sort_by_key(|p| p.due);
    }
}

/// A member: created with a one-time sign-in link, or (when `--force` runs on a database
/// that has them) a fresh link for the existing one.
fn member(
    conn: &mut DbConnection,
    settings: &Settings,
    email: &str,
    name: &str,
    role: Role,
) -> Result<String, AppError> {
    if let Some(user) = crate::store::users::by_email(conn, email)? {
        let token = new_secret("");
        let t = now();
        crate::store::users::insert_token(
            conn,
            &hash_key(&token),
            &user.id,
            t + TimeDelta::hours(crate::members::FIRST_LINK_HOURS),
            t,
        )?;
        return Ok(crate::members::sign_in_link(settings, &token, None));
    }
    Ok(crate::members::create_in(conn, settings, email, name, role)?.1)
}

fn survey(
    conn: &mut DbConnection,
    t: NaiveDateTime,
    kind: SurveyKind,
    name: &str,
    locale: &str,
    public_link: bool,
) -> Result<SurveyRow, AppError> {
    let row = SurveyRow {
        id: new_id(IdPrefix::Survey),
        kind: kind.as_str().into(),
        name: name.into(),
        question: None,
        follow_up_question: None,
        brand: Some("Northwind".into()),
        brand_color: Some("#2f6fdf".into()),
        topic: None,
        locale: locale.into(),
        status: "active".into(),
        public_slug: public_link.then(|| new_secret("").chars().take(12).collect()),
        throttle_days: 7,
        reminder_after_days: None,
        edit_window_hours: 168,
        created_at: t - TimeDelta::days(1),
        updated_at: t - TimeDelta::days(1),
        archived_at: None,
        followup_assignee: None,
        resurvey_after_days: (kind == SurveyKind::Nps && !public_link).then_some(RESURVEY_DAYS),
        slack_webhook_url: None,
        report_segments: "[]".into(),
    };
    crate::store::surveys::insert(conn, &row)?;
    Ok(row)
}

fn person(i: usize) -> (&'static str, &'static str) {
    (
        FIRST[i % FIRST.len()],
        LAST[(i / FIRST.len() + i * 7) % LAST.len()],
    )
}

fn contact_email(i: usize) -> String {
    let (first, last) = person(i);
    let (_, domain, _) = COMPANIES[i % COMPANIES.len()];
    format!(
        "{}.{}{}@{domain}",
        first.to_lowercase(),
        last.to_lowercase(),
        i + 1
    )
}

const FIRST: [&str; 24] = [
    "Ada", "Ben", "Chloe", "David", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas", "Kemi",
    "Lars", "Mara", "Nils", "Olga", "Pavel", "Quinn", "Rosa", "Sami", "Tara", "Uwe", "Vera", "Wen",
    "Yusuf",
];
const LAST: [&str; 20] = [
    "Adams",
    "Becker",
    "Costa",
    "Dubois",
    "Evans",
    "Fischer",
    "Garcia",
    "Hoffmann",
    "Ivanova",
    "Jensen",
    "Kowalski",
    "Lindqvist",
    "Meyer",
    "Nakamura",
    "Okafor",
    "Petrov",
    "Rossi",
    "Schmidt",
    "Tanaka",
    "Weber",
];
/// Name, email domain (reserved `.example`: nothing can reach anyone), country.
const COMPANIES: [(&str, &str, &str); 16] = [
    ("Acme Logistics", "acme-logistics.example", "US"),
    ("Brightline Health", "brightline.example", "US"),
    ("Bergmann Maschinenbau", "bergmann.example", "DE"),
    ("Cobalt Studios", "cobalt.example", "GB"),
    ("Delta Freight", "deltafreight.example", "NL"),
    ("Elbe Software", "elbe-software.example", "DE"),
    ("Fjord Analytics", "fjord.example", "NO"),
    ("Gemini Retail", "gemini-retail.example", "US"),
    ("Harbor Bank", "harborbank.example", "GB"),
    ("Isar Energie", "isar-energie.example", "DE"),
    ("Juniper Schools", "juniper.example", "CA"),
    ("Kite Travel", "kitetravel.example", "AU"),
    ("Lumen Labs", "lumenlabs.example", "US"),
    ("Mosaic Media", "mosaic.example", "FR"),
    ("Nordwind Versicherung", "nordwind.example", "DE"),
    ("Orbit Foods", "orbitfoods.example", "US"),
];

const HAPPY_EN: [&str; 14] = [
    "Setup took ten minutes and everything just worked.",
    "Support answered within the hour and fixed it.",
    "The new dashboard saves me an hour every Monday.",
    "Reliable, fast, and the pricing is fair.",
    "Our whole team switched over without any training.",
    "Exports to our BI tool are finally painless.",
    "Love the keyboard shortcuts.",
    "Best onboarding call we've had with any vendor.",
    "The mobile app is great for approvals on the go.",
    "It replaced three tools for us.",
    "Fast and stable, even at month-end.",
    "Your team actually listens to feature requests.",
    "Documentation is clear and up to date.",
    "Would recommend to any ops team.",
];
const MIXED_EN: [&str; 12] = [
    "Good product, but the reports could be more flexible.",
    "Works well; the price went up a bit too much this year.",
    "Mostly fine. Search is slow on large accounts.",
    "Solid, but I miss a dark mode.",
    "The API is good, the webhooks docs less so.",
    "Does the job. Onboarding for new colleagues is confusing.",
    "Nice, but the invoice PDFs are hard to find.",
    "Okay overall; notifications are too noisy.",
    "Fine for us, would like SSO on the starter plan.",
    "Good, but the CSV import choked on our umlauts.",
    "Happy enough; the calendar sync lags sometimes.",
    "Decent, but support is slow on weekends.",
];
const UNHAPPY_EN: [&str; 16] = [
    "The export has been broken for a week and nobody answers.",
    "We were charged twice this month.",
    "Too expensive for what we actually use.",
    "The last update removed the feature we relied on.",
    "Login fails every other day with SSO.",
    "Support closed my ticket without fixing anything.",
    "Pages take ten seconds to load.",
    "Data sync lost a day of orders.",
    "I can't find how to cancel my plan.",
    "The mobile app crashes when I upload photos.",
    "Your sales rep promised features that don't exist.",
    "Permissions are a mess for larger teams.",
    "The integration with our CRM keeps disconnecting.",
    "Reports show different numbers than the export.",
    "Nobody told us about the price change.",
    "Onboarding was rushed and we're still lost.",
];
const HAPPY_DE: [&str; 10] = [
    "Schnelle und kompetente Hilfe, vielen Dank!",
    "Mein Problem war in zehn Minuten gelöst.",
    "Sehr freundlicher Kontakt am Telefon.",
    "Die Antwort kam noch am selben Tag.",
    "Klare Erklärung, jetzt verstehe ich die Einstellung.",
    "Top Service, gerne wieder.",
    "Unkompliziert und hilfsbereit.",
    "Man hat sich wirklich Zeit für mich genommen.",
    "Alles bestens, danke an das Team.",
    "Die Anleitung per E-Mail war perfekt.",
];
const MIXED_DE: [&str; 8] = [
    "Hat geklappt, aber ich musste zweimal nachfragen.",
    "Freundlich, aber die Wartezeit war lang.",
    "Lösung okay, die Erklärung etwas knapp.",
    "Im Chat gut, am Telefon schwer erreichbar.",
    "Grundsätzlich zufrieden, die Antwort kam spät.",
    "Es funktioniert jetzt, aber warum war es kaputt?",
    "Ganz okay, hätte mir mehr Details gewünscht.",
    "Passt, aber das Ticket-Formular ist umständlich.",
];
const UNHAPPY_DE: [&str; 10] = [
    "Drei Tage auf eine Antwort gewartet.",
    "Mein Problem ist immer noch nicht gelöst.",
    "Ich wurde dreimal weiterverbunden.",
    "Die Antwort passte gar nicht zu meiner Frage.",
    "Niemand hat zurückgerufen, obwohl es versprochen war.",
    "Das Ticket wurde einfach geschlossen.",
    "Unfreundlicher Ton am Telefon.",
    "Die Rechnung ist weiterhin falsch.",
    "Keine Hilfe, nur Textbausteine.",
    "Support nur auf Englisch, das war schwierig.",
];
const NOTES: [&str; 8] = [
    "Called the customer, waiting for logs.",
    "Escalated to engineering (linked the ticket).",
    "Offered a credit for the outage.",
    "Customer confirmed the fix works.",
    "Explained the new pricing; they are reviewing plans.",
    "Left a voicemail, will try again tomorrow.",
    "Feature request logged for the roadmap.",
    "Sent a walkthrough video of the setup.",
];
