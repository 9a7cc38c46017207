//! The `authbridge` command: parses the CLI and calls the library.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use authbridge::config::AuthApiSettings;
use authbridge::schema::ApiVersion;
use authbridge::{Application, Settings, telemetry, tools};

/// mimalloc instead of glibc's malloc: per-thread free lists without arena
/// locks; the load benchmark measured the difference (README, Performance).
/// Built with `no_thp`: it never asks for transparent huge pages, whose 2 MiB
/// first-touch zeroing stalled a worker while the cache grew (p99 at 5,000
/// misses/s 2.3–2.6 ms with them, 0.7–1.4 ms without); see also
/// [`no_huge_pages`].
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Validate mapping files, or the whole configuration.
    ///
    /// With --mapping: check those mapping files against the Auth API schema
    /// (no CRM or config needed). Without: check the configuration (every
    /// value, the secrets it names, its mapping file), the users-API mapping
    /// files it names, and the other files in the Auth API mapping's folder
    /// that are mappings (a mapping top-level table such as `[client]`,
    /// `[[step]]` or `[meta]`, and no config section such as `[server]`: a
    /// config kept beside its mapping is skipped). Prints `ok: FILE` or one `file:line:column:
    /// field: problem` line per mistake; exits 1 if anything is wrong.
    Check {
        /// A config file layered over config/default.toml (env vars still win).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// A mapping file to check (repeatable); skips the configuration.
        #[arg(long, value_name = "FILE")]
        mapping: Vec<PathBuf>,
        /// The Auth API version to check --mapping files for.
        #[arg(long, value_name = "VERSION", default_value = "1.2")]
        api_version: String,
    },
    /// Dry-run a mapping: print the card it makes from a CRM payload.
    ///
    /// The integrator's test of a mapping before deployment: no CRM, no server.
    /// Prints the card as the chat server would receive it, or every mistake
    /// (load errors, or each field that cannot be filled) as
    /// `file:line:column: field: problem (value: ..., expected: ...)`, and
    /// exits 1 on any. With --explain, prints each card field with the source
    /// and transforms its value came through instead of the card.
    ///
    /// Example: authbridge map --mapping mappings/amocrm.toml --input tests/fixtures/amocrm/petrova-full.input.json
    Map {
        /// The mapping file.
        #[arg(long, value_name = "FILE")]
        mapping: PathBuf,
        /// A CRM answer as JSON; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
        /// The Auth API version of the chat server ("1.0", "1.1", "1.2").
        #[arg(long, value_name = "VERSION", default_value = "1.2")]
        api_version: String,
        /// Also derive the deprecated `fields` map from `fieldList`.
        #[arg(long)]
        derive_fields: bool,
        /// Print each card field with its source chain
        /// (`client.surname: $.lastName | trim (value: "Petrova")`).
        #[arg(long)]
        explain: bool,
    },
    /// Edit a mapping and a CRM sample side by side in the browser.
    ///
    /// Serves one page on loopback (its assets embedded: no network needed)
    /// and prints its URL. As you type it shows the card for the chosen API
    /// version, where each field came from, every load error at its line and
    /// every apply error with its value; it downloads the mapping and saves
    /// the pair as golden fixture files.
    ///
    /// Example: authbridge playground --mapping mappings/amocrm.toml --input tests/fixtures/amocrm/petrova-full.input.json
    Playground {
        /// Where the page is served: a loopback address (port 0 picks one).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// A mapping file to start with.
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// A CRM sample (JSON) to start with.
        #[arg(long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// The Auth API version preselected ("1.0", "1.1", "1.2").
        #[arg(long, value_name = "VERSION", default_value = "1.2")]
        api_version: String,
    },
    /// Print a draft mapping for a CRM sample: for each card field the sample
    /// path that fits it best by name and value shape, other candidates as
    /// comments, TODOs where nothing fits. The draft passes `check` as is.
    ///
    /// Example: authbridge scaffold --input crm-sample.json > mappings/my-crm.toml
    Scaffold {
        /// A CRM answer as JSON; `-` reads standard input.
        #[arg(long, value_name = "FILE")]
        input: PathBuf,
    },
    /// Print the card field reference (every object of the Auth API card and
    /// the users API: field, JSON type, required, since-version) as markdown.
    ///
    /// With --write FILE, replaces the generated section of FILE (between its
    /// `card-reference` marker comments) instead: `authbridge reference
    /// --write docs/mapping.md` after changing the schema.
    Reference {
        /// A markdown file whose generated section to rewrite.
        #[arg(long, value_name = "FILE")]
        write: Option<PathBuf>,
    },
    /// Print the OpenAPI 3.1 document of this configuration: the Auth API
    /// (the card of its api_version, every error code), the users API when
    /// enabled, the probes, /metrics and the admin API when on. The server
    /// serves the same bytes at GET /openapi.json.
    ///
    /// Describing the API needs no CRM or secret: the configuration's values
    /// are read but not checked (`authbridge check` does that).
    ///
    /// Example: authbridge openapi --config /etc/authbridge/prod.toml > openapi.json
    Openapi {
        /// A config file layered over config/default.toml (env vars still win).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Document this Auth API version instead of auth_api.api_version
        /// ("1.0", "1.1", "1.2").
        #[arg(long, value_name = "VERSION")]
        api_version: Option<String>,
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

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`),
/// whatever the host's THP mode: the allocator never asks for them, but on a
/// host in mode "always" the kernel would still back the cache's growing
/// memory with 2 MiB pages, each zeroed (or compacted) on first touch while a
/// worker waits. Called first in `main` (pages touched before keep their
/// size); a failure only leaves the host's setting in force.
fn no_huge_pages() -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    rustix::thread::disable_transparent_huge_pages(true)?;
    Ok(())
}

fn main() -> ExitCode {
    // Before the runtime exists, so that its memory is covered too.
    let huge_pages = no_huge_pages();
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(run(huge_pages)),
        Err(e) => fail(&format_args!("cannot start the async runtime: {e}")),
    }
}

async fn run(huge_pages: std::io::Result<()>) -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            let settings = match Settings::load(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let telemetry = match telemetry::init(&settings.telemetry) {
                Ok(t) => t,
                Err(e) => return fail(&e),
            };
            if let Err(e) = huge_pages {
                tracing::warn!(error = %e, "transparent huge pages stay as the host sets them");
            }
            let code = match Application::build_with_config_file(settings, config).await {
                Ok(app) => match app.run_until_stopped().await {
                    Ok(()) => ExitCode::SUCCESS,
                    Err(e) => fail(&e),
                },
                Err(e) => fail(&e),
            };
            // The spans of the last requests are still buffered: export them
            // (a blocking call, so off the async workers).
            let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
            code
        }
        Command::Check {
            config,
            mapping,
            api_version,
        } => {
            let report = if mapping.is_empty() {
                match Settings::load(config.as_deref()) {
                    Ok(settings) => tools::check_config(&settings),
                    Err(e) => return fail(&e),
                }
            } else {
                match api_settings(&api_version, false) {
                    Ok(settings) => tools::check_mappings(&mapping, &settings, &Default::default()),
                    Err(e) => return fail(&e),
                }
            };
            for line in &report.lines {
                if line.starts_with("ok: ") {
                    out(&mut std::io::stdout(), line);
                } else {
                    out(&mut std::io::stderr(), line);
                }
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Map {
            mapping,
            input,
            api_version,
            derive_fields,
            explain,
        } => {
            let settings = match api_settings(&api_version, derive_fields) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&input)
            };
            let text = match text {
                Ok(t) => t,
                Err(e) => return fail(&format!("cannot read {}: {e}", input.display())),
            };
            let (file, rules) = match authbridge::mapping::read_file(&mapping) {
                Ok(read) => read,
                Err(e) => return fail(&e),
            };
            let trial = tools::trial(&file, &rules, &settings, &text);
            let stdout = &mut std::io::stdout();
            if explain {
                for s in &trial.sources {
                    out(
                        stdout,
                        &format!("{}: {} (value: {})", s.field, s.source, s.value),
                    );
                }
            } else if let Some(card) = &trial.card {
                out(
                    stdout,
                    &serde_json::to_string_pretty(card).unwrap_or_default(),
                );
            }
            for p in trial.problems() {
                out(&mut std::io::stderr(), &p);
            }
            if trial.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Playground {
            listen,
            mapping,
            input,
            api_version,
        } => {
            let version = match api_settings(&api_version, false) {
                Ok(s) => s.api_version,
                Err(e) => return fail(&e),
            };
            let mapping = match mapping
                .map(|m| authbridge::mapping::read_file(&m))
                .transpose()
            {
                Ok(m) => m,
                Err(e) => return fail(&e),
            };
            let input = match input.map(|i| {
                std::fs::read_to_string(&i).map_err(|e| format!("cannot read {}: {e}", i.display()))
            }) {
                Some(Err(e)) => return fail(&e),
                other => other.and_then(Result::ok),
            };
            let options = authbridge::playground::Options {
                listen,
                version,
                mapping,
                input,
            };
            let playground = match authbridge::playground::Playground::bind(options).await {
                Ok(p) => p,
                Err(e) => return fail(&e),
            };
            out(
                &mut std::io::stdout(),
                &format!("playground: {}", playground.url()),
            );
            match playground.run().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e),
            }
        }
        Command::Scaffold { input } => {
            let text = if input.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&input)
            };
            let crm: serde_json::Value = match text.map(|t| serde_json::from_str(&t)) {
                Ok(Ok(v)) => v,
                Ok(Err(e)) => return fail(&format!("{} is not valid JSON: {e}", input.display())),
                Err(e) => return fail(&format!("cannot read {}: {e}", input.display())),
            };
            out(&mut std::io::stdout(), &authbridge::scaffold::draft(&crm));
            ExitCode::SUCCESS
        }
        Command::Reference { write } => {
            let generated = authbridge::schema::reference::markdown();
            let Some(file) = write else {
                out(&mut std::io::stdout(), &generated);
                return ExitCode::SUCCESS;
            };
            let doc = match std::fs::read_to_string(&file) {
                Ok(d) => d,
                Err(e) => return fail(&format!("cannot read {}: {e}", file.display())),
            };
            let Some(updated) = authbridge::schema::reference::splice(&doc, &generated) else {
                return fail(&format!(
                    "{} has no card-reference marker comments",
                    file.display()
                ));
            };
            match std::fs::write(&file, updated) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("cannot write {}: {e}", file.display())),
            }
        }
        Command::Openapi {
            config,
            api_version,
        } => {
            let mut settings = match Settings::layered(config.as_deref()) {
                Ok(s) => s,
                Err(e) => return fail(&e),
            };
            if let Some(version) = api_version {
                match api_settings(&version, false) {
                    Ok(api) => settings.auth_api.api_version = api.api_version,
                    Err(e) => return fail(&e),
                }
            }
            let document = authbridge::openapi::to_bytes(&settings);
            let _ = std::io::stdout().write_all(&document);
            ExitCode::SUCCESS
        }
        Command::Demo { listen } => {
            // The default settings have traces off: nothing to flush.
            let _telemetry = telemetry::init(&Default::default());
            match authbridge::app::demo::run(&listen).await {
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

/// Auth API settings for the mapping tools, from their flags.
fn api_settings(version: &str, derive_fields: bool) -> Result<AuthApiSettings, String> {
    let api_version: ApiVersion =
        serde_json::from_value(serde_json::Value::String(version.to_owned()))
            .map_err(|_| format!("--api-version must be 1.0, 1.1 or 1.2, got {version}"))?;
    Ok(AuthApiSettings {
        api_version,
        derive_fields,
        ..Default::default()
    })
}

/// Writes a line, ignoring a closed pipe (`authbridge map ... | head` must not
/// panic the way `println!` does).
fn out(w: &mut dyn Write, line: &str) {
    let _ = writeln!(w, "{line}");
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("authbridge: {e}");
    ExitCode::FAILURE
}
