//! The `closeloop` command: `serve` (the default), `migrate`, `rebuild-rollups`, `openapi`,
//! `api-key create`, `user create`, `demo`, `config` and `healthcheck`.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use closeloop::config::{self, Settings};
use closeloop::domain::Role;

/// Closeloop: self-hosted NPS and CSAT surveys with a closed feedback loop.
/// Configuration comes from environment variables (see the README).
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP (the default): applies migrations, then listens on BIND_ADDR.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage API keys.
    #[command(name = "api-key", subcommand)]
    ApiKey(ApiKeyCommand),
    /// Manage members of the /app workspace.
    #[command(subcommand)]
    User(UserCommand),
    /// Print the OpenAPI document (JSON).
    Openapi,
    /// Exit 0 when the server on BIND_ADDR answers /healthz (for container health checks).
    Healthcheck,
    /// Check the configuration and print every setting's effective value (secrets masked).
    Config,
    /// Fill a fresh database with believable demo data (3 surveys, 300 contacts, 90 days of
    /// invitations, ~2,000 answers, follow-ups in every status); a one-time sign-in link for
    /// the demo admin is printed alone on the last line. Refuses a database with data.
    Demo {
        /// Add the demo data even though the database already has data.
        #[arg(long)]
        force: bool,
    },
    /// Recompute the daily report rollups from the answers and invitations (after loading
    /// data into the database by hand).
    RebuildRollups,
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key; the key is printed alone on the last line of stdout.
    Create {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a member; a one-time sign-in link (valid 24 hours) is printed alone on the last
    /// line of stdout.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: Role,
    },
}

fn main() -> ExitCode {
    // `--help` ends with every environment variable and its default (`-h` stays short).
    let matches = Cli::command()
        .after_long_help(config::env_help())
        .get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let command = cli.command.unwrap_or(Command::Serve);
    if let Command::Openapi = command {
        match serde_json::to_string_pretty(&closeloop::web::api::openapi()) {
            Ok(json) => {
                println!("{json}");
                return ExitCode::SUCCESS;
            }
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };

    closeloop::telemetry::init(&settings.log_level, settings.log_format);
    closeloop::store::set_sqlite_synchronous(settings.sqlite_synchronous_full);
    let result = match command {
        Command::Serve => serve(settings),
        Command::Migrate => closeloop::store::migrate(
            &settings.database_url,
            settings.database_prepared_statements,
        )
        .map(|applied| {
            if applied.is_empty() {
                println!("database is up to date");
            } else {
                for m in applied {
                    println!("applied {m}");
                }
            }
        }),
        Command::ApiKey(ApiKeyCommand::Create { name, role }) => create_key(&settings, &name, role),
        Command::User(UserCommand::Create { email, name, role }) => {
            create_user(&settings, &email, &name, role)
        }
        Command::Healthcheck => healthcheck(&settings),
        Command::Config => {
            // Settings::from_env above has checked every value; print what is in effect.
            for (name, value, from_default) in
                config::effective(&settings, |n| std::env::var(n).ok())
            {
                let note = if from_default { "  # default" } else { "" };
                println!("{name}={value}{note}");
            }
            Ok(())
        }
        Command::Demo { force } => demo(&settings, force),
        Command::RebuildRollups => (|| {
            let db = closeloop::store::Db::connect(
                &settings.database_url,
                1,
                std::time::Duration::from_secs(30),
                settings.database_prepared_statements,
            )?;
            let mut conn = db.get().map_err(|e| anyhow::anyhow!("{e}"))?;
            closeloop::store::rollups::rebuild(&mut conn).map_err(|e| anyhow::anyhow!("{e:?}"))?;
            println!("report rollups rebuilt");
            Ok(())
        })(),
        Command::Openapi => unreachable!("handled above"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(async move {
        let engine = settings.database_url.engine_name();
        let public_url = settings.public_url.to_string();
        let mut addr = settings.bind_addr;
        let app = closeloop::startup::Application::build(settings).await?;
        addr.set_port(app.port());
        tracing::info!(
            url = %format!("http://{addr}/"),
            public_url = %public_url,
            engine,
            "closeloop is serving; API docs at /docs/"
        );
        app.run_until_stopped().await?;
        tracing::info!("closeloop stopped");
        Ok(())
    })
}

fn create_key(settings: &Settings, name: &str, role: Role) -> anyhow::Result<()> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        anyhow::bail!("--name must be 1 to 100 characters long");
    }
    let db = closeloop::store::Db::connect(
        &settings.database_url,
        1,
        std::time::Duration::from_secs(30),
        settings.database_prepared_statements,
    )?;
    let mut conn = db.get().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (row, key) = closeloop::store::api_keys::create(&mut conn, name, role)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "created API key {} ({}, role {})",
        row.id, row.name, row.role
    );
    println!("store it now; it is not shown again:");
    println!("{key}");
    Ok(())
}

fn create_user(settings: &Settings, email: &str, name: &str, role: Role) -> anyhow::Result<()> {
    closeloop::store::migrate(
        &settings.database_url,
        settings.database_prepared_statements,
    )?;
    let db = closeloop::store::Db::connect(
        &settings.database_url,
        1,
        std::time::Duration::from_secs(30),
        settings.database_prepared_statements,
    )?;
    let mut conn = db.get().map_err(|e| anyhow::anyhow!("{e}"))?;
    let (row, link) = closeloop::members::create_in(&mut conn, settings, email, name, role)
        .map_err(|e| match e {
            closeloop::error::AppError::Validation { fields, .. } => anyhow::anyhow!(
                "{}",
                fields
                    .iter()
                    .map(|(k, v)| format!("--{k} {}", v.join("; ")))
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            other => anyhow::anyhow!("{other}"),
        })?;
    println!(
        "created member {} <{}> ({}, role {})",
        row.name, row.email, row.id, row.role
    );
    println!(
        "one-time sign-in link, valid {} hours:",
        closeloop::members::FIRST_LINK_HOURS
    );
    println!("{link}");
    Ok(())
}

fn demo(settings: &Settings, force: bool) -> anyhow::Result<()> {
    closeloop::store::migrate(
        &settings.database_url,
        settings.database_prepared_statements,
    )?;
    let db = closeloop::store::Db::connect(
        &settings.database_url,
        1,
        std::time::Duration::from_secs(30),
        settings.database_prepared_statements,
    )?;
    let mut conn = db.get().map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = std::time::Instant::now();
    let s =
        closeloop::demo::fill(&mut conn, settings, force).map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "demo data: {} surveys, {} contacts, {} invitations, {} answers, {} follow-ups ({} re-surveyed) in {:.1}s",
        s.surveys,
        s.contacts,
        s.invitations,
        s.responses,
        s.followups,
        s.resurveys,
        started.elapsed().as_secs_f64()
    );
    println!(
        "start the server (closeloop serve) and open this one-time sign-in link for the demo admin, valid {} hours:",
        closeloop::members::FIRST_LINK_HOURS
    );
    println!("{}", s.sign_in_link);
    Ok(())
}

fn healthcheck(settings: &Settings) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    let mut addr = settings.bind_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let timeout = std::time::Duration::from_secs(3);
    let mut stream = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        anyhow::bail!("unhealthy: {}", String::from_utf8_lossy(&head))
    }
}
