//! The `authbridge` command: parses the CLI and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use authbridge::startup::AppState;
use authbridge::{Application, Settings, telemetry};

/// authbridge: serves the chat Auth API from a bank's CRM.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// A config file layered over config/default.toml (env vars still win).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Validate the configuration, its secrets and its mapping file, then exit
    /// (status 1 with every problem listed if anything is wrong).
    Check {
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Start a built-in demo CRM on loopback and authbridge in front of it.
    Demo {
        /// Where authbridge listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Exit 0 when the server at URL answers its health check (for Docker's
    /// HEALTHCHECK, where no curl is installed).
    Healthcheck {
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            telemetry::init(&settings.telemetry);
            match Application::build(settings).await {
                Ok(app) => match app.run_until_stopped().await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e),
                },
                Err(e) => fail(&e),
            }
        }
        Command::Check { config } => {
            let result = Settings::load(config.as_deref())
                .map_err(|e| e.to_string())
                .and_then(|s| {
                    AppState::from_settings(&s)
                        .map(|_| s)
                        .map_err(|e| e.to_string())
                });
            match result {
                Ok(s) => {
                    println!(
                        "ok: configuration and mapping {} are valid",
                        s.auth_api.mapping.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Demo { listen } => {
            telemetry::init(&Default::default());
            match authbridge::demo::run(&listen).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Healthcheck { url } => {
            let ok = reqwest::Client::new()
                .get(&url)
                .timeout(std::time::Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("authbridge: {e}");
    ExitCode::FAILURE
}
