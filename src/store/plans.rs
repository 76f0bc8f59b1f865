//! The query plans of the queues' due-row polls, as the database would run them.
//!
//! Every queue poll must cost O(due rows), not O(table) (issue 12): each reads an index whose
//! leading column is its due condition and stops after one batch. [`due_query_plans`] runs
//! `EXPLAIN QUERY PLAN` (SQLite) or `EXPLAIN` (PostgreSQL) over the very query builders the
//! workers run (the same macros, the same bind values), so a test can check the plans and
//! cannot drift from the code.

use chrono::{NaiveDateTime, TimeDelta};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::sql_types::{Integer, Text};
use diesel::sqlite::Sqlite;

use super::DbConnection;
use crate::error::AppError;

/// `EXPLAIN …` (PostgreSQL) or `EXPLAIN QUERY PLAN …` (SQLite) in front of a query, with the
/// query's own bind values.
struct Explain<Q> {
    prefix: &'static str,
    query: Q,
}

impl<Q> QueryId for Explain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for Explain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out.reborrow())
    }
}

impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for Explain<Q> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql(self.prefix);
        self.query.walk_ast(out.reborrow())
    }
}

/// SQLite's rows: id, parent, unused, detail.
struct SqliteExplain<Q>(Explain<Q>);
/// PostgreSQL's rows: one line of text each.
struct PgExplain<Q>(Explain<Q>);

impl<Q> QueryId for SqliteExplain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}
impl<Q> QueryId for PgExplain<Q> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}
impl<Q: QueryFragment<Sqlite>> QueryFragment<Sqlite> for SqliteExplain<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Sqlite>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}
impl<Q: QueryFragment<Pg>> QueryFragment<Pg> for PgExplain<Q> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.0.walk_ast(out)
    }
}
impl<Q> Query for SqliteExplain<Q> {
    type SqlType = (Integer, Integer, Integer, Text);
}
impl<Q> Query for PgExplain<Q> {
    type SqlType = Text;
}
impl<Q, C> RunQueryDsl<C> for SqliteExplain<Q> {}
impl<Q, C> RunQueryDsl<C> for PgExplain<Q> {}

/// SQLite's plan of `query`, one line per step (`SEARCH invitations USING INDEX …`).
fn explain_sqlite<Q: QueryFragment<Sqlite>>(
    conn: &mut SqliteConnection,
    query: Q,
) -> QueryResult<String> {
    let rows: Vec<(i32, i32, i32, String)> = SqliteExplain(Explain {
        prefix: "EXPLAIN QUERY PLAN ",
        query,
    })
    .load(conn)?;
    Ok(rows.into_iter().map(|r| r.3).collect::<Vec<_>>().join("\n"))
}

/// PostgreSQL's plan of `query` (`EXPLAIN`, not run).
fn explain_pg<Q: QueryFragment<Pg>>(conn: &mut PgConnection, query: Q) -> QueryResult<String> {
    let rows: Vec<String> = PgExplain(Explain {
        prefix: "EXPLAIN ",
        query,
    })
    .load(conn)?;
    Ok(rows.join("\n"))
}

/// Plans `$query` (an expression built anew for each engine) on `$conn`.
macro_rules! explain {
    ($conn:expr, $query:expr) => {
        match $conn {
            DbConnection::Sqlite(c) => explain_sqlite(c, $query)?,
            DbConnection::Postgres(c) => explain_pg(c, $query)?,
        }
    };
}

/// One due-row poll and the index it must start at.
#[derive(Debug, Clone)]
pub struct DuePlan {
    /// What the poll is for (`invitations due`, `reminders due`, …).
    pub name: &'static str,
    /// The index whose leading column is the due condition.
    pub index: &'static str,
    /// The engine's plan, one line per step.
    pub plan: String,
}

/// The plans, at time `t`, of every periodic due-row query of the workers: invitations due
/// (and their expired claims), reminders due, the email outbox, webhook deliveries, the
/// re-survey window of one survey (`survey_id`), and the metrics' queue gauges.
pub fn due_query_plans(
    conn: &mut DbConnection,
    t: NaiveDateTime,
    survey_id: &str,
) -> Result<Vec<DuePlan>, AppError> {
    let limit = 500_i64;
    let mut out = Vec::new();
    macro_rules! queue {
        ($name:expr, $index:expr, $query:ident, $table:ident, $status:expr) => {{
            let plan = match &mut *conn {
                DbConnection::Postgres(c) => explain_pg(
                    c,
                    crate::store::$query!($table, $status, limit, t)
                        .for_update()
                        .skip_locked(),
                )?,
                DbConnection::Sqlite(c) => {
                    explain_sqlite(c, crate::store::$query!($table, $status, limit, t))?
                }
            };
            out.push(DuePlan {
                name: $name,
                index: $index,
                plan,
            });
        }};
    }
    queue!(
        "invitations due",
        "invitations_queue",
        due_queue_query,
        invitations,
        "scheduled"
    );
    queue!(
        "invitation claims expired",
        "invitations_queue",
        expired_claims_query,
        invitations,
        "sending"
    );
    queue!(
        "emails due",
        "emails_queue",
        due_queue_query,
        emails,
        "pending"
    );
    queue!(
        "email claims expired",
        "emails_queue",
        expired_claims_query,
        emails,
        "sending"
    );
    queue!(
        "webhook deliveries due",
        "webhook_deliveries_queue",
        due_queue_query,
        webhook_deliveries,
        "pending"
    );
    queue!(
        "webhook delivery claims expired",
        "webhook_deliveries_queue",
        expired_claims_query,
        webhook_deliveries,
        "delivering"
    );
    out.push(DuePlan {
        name: "reminders due",
        index: "invitations_remind",
        plan: explain!(
            &mut *conn,
            crate::store::invitations::reminders_due!(t, limit)
        ),
    });
    let latest = t - TimeDelta::days(30);
    out.push(DuePlan {
        name: "re-surveys due",
        index: "followups_resolved_at",
        plan: explain!(
            &mut *conn,
            crate::store::followups::resurveys_due_of!(
                survey_id,
                latest,
                TimeDelta::days(7),
                limit
            )
        ),
    });
    Ok(out)
}
