//! The ceiling for the answer benchmark: a trivial actix-web handler on the same route shape,
//! same worker count, answering a form POST with the same 303 as `POST /s/{token}`, but with
//! no storage. `cargo run --release --example ceiling -- 127.0.0.1:18091`
//! It also answers `POST /hook` with 204: the benchmarks' webhook receiver.
use actix_web::{web, App, HttpResponse, HttpServer};

#[derive(serde::Deserialize)]
struct Form {
    #[allow(dead_code)]
    score: Option<String>,
    #[allow(dead_code)]
    comment: Option<String>,
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18091".into());
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    HttpServer::new(|| {
        App::new()
            .route(
                "/hook",
                web::post().to(|| async { HttpResponse::NoContent().finish() }),
            )
            .route(
                "/s/{token}",
                web::post().to(
                    |token: web::Path<String>, _form: web::Form<Form>| async move {
                        HttpResponse::SeeOther()
                            .insert_header(("Location", format!("/s/{token}/thanks")))
                            .finish()
                    },
                ),
            )
    })
    .workers(workers)
    .bind(addr)?
    .run()
    .await
}
