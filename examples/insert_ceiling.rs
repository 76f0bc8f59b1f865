//! The raw-insert ceiling for the answer benchmark: the same route shape and 303 as
//! `POST /s/{token}`, doing exactly one INSERT of the form's fields per request and nothing
//! else, so `benches/answers.sh` can show recorded answers as a share of what the engine and
//! actix-web allow on the same machine in the same run.
//! `cargo run --release --example insert_ceiling -- 127.0.0.1:18092 <DATABASE_URL>`
//! SQLite: one writer connection (WAL, `synchronous=NORMAL`, as the service), one commit per
//! request. PostgreSQL: a pool of 10 connections (the service's default `DB_POOL_SIZE`), one autocommit INSERT per request.
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{Integer, Text};

#[derive(serde::Deserialize)]
struct Form {
    score: Option<i32>,
    comment: Option<String>,
}

const INSERT: &str = "INSERT INTO ceiling_answers (token, score, comment, created_at) VALUES ";

#[derive(Clone)]
enum Store {
    Sqlite(Arc<Mutex<SqliteConnection>>),
    Pg(Pool<ConnectionManager<PgConnection>>),
}

impl Store {
    fn insert(&self, token: &str, score: i32, comment: &str) -> anyhow::Result<()> {
        match self {
            Store::Sqlite(c) => {
                let mut c = c.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                diesel::sql_query(format!("{INSERT}(?, ?, ?, datetime('now'))"))
                    .bind::<Text, _>(token)
                    .bind::<Integer, _>(score)
                    .bind::<Text, _>(comment)
                    .execute(&mut *c)?;
            }
            Store::Pg(p) => {
                diesel::sql_query(format!("{INSERT}($1, $2, $3, now())"))
                    .bind::<Text, _>(token)
                    .bind::<Integer, _>(score)
                    .bind::<Text, _>(comment)
                    .execute(&mut p.get()?)?;
            }
        }
        Ok(())
    }
}

const TABLE: &str = "DROP TABLE IF EXISTS ceiling_answers; CREATE TABLE ceiling_answers \
    (id BIGSERIAL PRIMARY KEY, token TEXT NOT NULL, score INTEGER NOT NULL, comment TEXT, \
    created_at TIMESTAMP NOT NULL);";

#[actix_web::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:18092".into());
    let url = args.next().unwrap_or_else(|| "ceiling.db".into());
    let store = if url.starts_with("postgres") {
        let pool = Pool::builder()
            .max_size(10)
            .build(ConnectionManager::<PgConnection>::new(url))?;
        pool.get()?.batch_execute(TABLE)?;
        Store::Pg(pool)
    } else {
        let path = url.trim_start_matches("sqlite://");
        let mut c = SqliteConnection::establish(path)?;
        c.batch_execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 10000;",
        )?;
        c.batch_execute(&TABLE.replace("BIGSERIAL", "INTEGER"))?;
        Store::Sqlite(Arc::new(Mutex::new(c)))
    };
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    HttpServer::new(move || {
        let store = store.clone();
        App::new().route(
            "/s/{token}",
            web::post().to(move |token: web::Path<String>, form: web::Form<Form>| {
                let store = store.clone();
                async move {
                    let token = token.into_inner();
                    let t = token.clone();
                    let f = form.into_inner();
                    let done = web::block(move || {
                        store.insert(&t, f.score.unwrap_or(0), f.comment.as_deref().unwrap_or(""))
                    })
                    .await;
                    match done {
                        Ok(Ok(())) => HttpResponse::SeeOther()
                            .insert_header(("Location", format!("/s/{token}/thanks")))
                            .finish(),
                        _ => HttpResponse::InternalServerError().finish(),
                    }
                }
            }),
        )
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await?;
    Ok(())
}
