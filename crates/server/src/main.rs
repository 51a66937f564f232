//! `missive-server`: initialise a data directory, create invites, serve.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use missive_server::config::Config;
use missive_server::{auth, now_secs, open_store, AppState};

#[derive(Parser)]
#[command(
    name = "missive-server",
    version,
    about = "The Missive delivery server"
)]
struct Cli {
    /// Data directory: configuration, database.
    #[arg(long, env = "MISSIVE_DATA", default_value = "./missive-data")]
    data: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the configuration for DOMAIN and create the database (idempotent).
    Init {
        /// The domain whose addresses this server serves (name@DOMAIN).
        #[arg(long)]
        domain: String,
    },
    /// Create a one-time invite code for ADDRESS; prints the code alone on its last line.
    Invite {
        /// The address the invite is for, name@domain.
        address: String,
    },
    /// Serve the API. With --domain, initialises the data directory first if needed.
    Serve {
        /// Address and port to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
        /// Domain to initialise the data directory with on first start.
        #[arg(long)]
        domain: Option<String>,
        /// Serve the web app built in DIR (`cargo xtask web` builds it into web/dist) at `/`,
        /// rather than the one a release binary carries.
        #[arg(long, env = "MISSIVE_WEB", value_name = "DIR")]
        web: Option<PathBuf>,
    },
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    match cli.command {
        Command::Init { domain } => {
            let config = Config::init(&cli.data, &domain)?;
            rt.block_on(open_store(&config, &cli.data))
                .with_context(|| format!("opening the database of {}", cli.data.display()))?;
            println!(
                "initialised {} for domain {}",
                cli.data.display(),
                config.domain
            );
        }
        Command::Invite { address } => {
            let address = address.trim().to_lowercase();
            let config = Config::load(&cli.data)?;
            if !config.allows(&address) {
                anyhow::bail!(
                    "{address} is not an address of an allowed domain ({})",
                    config.allowed_domains.join(", ")
                );
            }
            let store = rt
                .block_on(open_store(&config, &cli.data))
                .with_context(|| format!("opening the database of {}", cli.data.display()))?;
            let code = auth::new_invite_code();
            let expires = now_secs() + config.invite_ttl_hours * 3600;
            rt.block_on(store.create_invite(&address, auth::hash_secret(&code), expires))?;
            println!(
                "invite for {address}, valid {} hours:",
                config.invite_ttl_hours
            );
            println!("{code}");
        }
        Command::Serve {
            listen,
            domain,
            web,
        } => {
            init_tracing();
            let mut config = match domain {
                Some(domain) => Config::init(&cli.data, &domain)?,
                None => Config::load(&cli.data)?,
            };
            if let Some(dir) = web {
                if !dir.join("index.html").is_file() {
                    anyhow::bail!(
                        "{} holds no web app (no index.html): build it with `cargo xtask web`",
                        dir.display()
                    );
                }
                config.web_dir = Some(dir);
            }
            let data = cli.data.clone();
            rt.block_on(async move {
                let store = open_store(&config, &data)
                    .await
                    .with_context(|| format!("opening the database of {}", data.display()))?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("listening on {listen}"))?;
                let addr = listener.local_addr()?;
                tracing::info!(%addr, domain = %config.domain, "serving");
                println!("missive-server listening on http://{addr}");
                if config.web_dir.is_some() || missive_server::web::embedded() {
                    println!("web app: open http://{addr}/ in a browser");
                }
                let blobs = missive_server::open_blobs(&data)
                    .with_context(|| format!("opening the blob store of {}", data.display()))?;
                let transparency =
                    missive_server::transparency::Transparency::open(&data, &config.domain)
                        .with_context(|| {
                            format!("opening the transparency log key in {}", data.display())
                        })?;
                let state =
                    AppState::new(config, store, blobs, transparency).with_context(|| {
                        "starting the call media relay (media_listen in missive.toml)"
                    })?;
                missive_server::serve(listener, state, shutdown_signal()).await?;
                anyhow::Ok(())
            })?;
        }
    }
    Ok(())
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MISSIVE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only for a person watching: a log file or journal gets plain text.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
