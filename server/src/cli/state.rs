//! The commands that read or change a server's state, each either through a running
//! server's API (`--server URL --token-file F`) or on the store directly (`--data-dir`),
//! with the same output: both sides render with the same functions (the API returns the
//! CLI's own text for plans, explanations and reports).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::client::ApiClient;
use super::{runtime, write_private, PlanFormat, ReportFormat, ReportKind};
use crate::audit::AuditVerdict;
use crate::catalogue::CatalogueService;
use crate::http::Page;
use crate::import::{ImportOptions, ImportSummary};
use crate::report::Window;
use crate::store::{Dimension, EntityKind, Revision, Role, SharedStore};

/// Where the state is.
#[derive(Debug)]
pub enum State {
    Store(SharedStore),
    Api(ApiClient),
}

/// What a plan or an explanation reads: a scenario directory, or the live state.
#[derive(Debug)]
pub enum Source {
    Scenario(PathBuf),
    State(State),
}

impl super::Target {
    /// The server's API, or the store: `--data-dir` wins; a read never creates a store.
    pub(super) fn resolve(&self) -> anyhow::Result<State> {
        self.resolve_with(crate::store::OpenMode::Existing)
    }

    /// As [`Target::resolve`], creating the store when there is none (`users add`,
    /// `import`).
    pub(super) fn resolve_creating(&self) -> anyhow::Result<State> {
        self.resolve_with(crate::store::OpenMode::Create)
    }

    pub(super) fn resolve_with(&self, mode: crate::store::OpenMode) -> anyhow::Result<State> {
        if let Some(dir) = &self.data_dir {
            return Ok(State::Store(crate::store::open_in(
                dir,
                self.store.as_deref(),
                mode,
            )?));
        }
        Ok(State::Api(self.api_only("this command")?))
    }

    /// The server's API; commands that act through the server alone (they send MQTT).
    pub(super) fn api_only(&self, what: &str) -> anyhow::Result<ApiClient> {
        let Some(server) = &self.server else {
            anyhow::bail!(
                "{what} needs --server URL --token-file FILE (or SIGNAGE_SERVER and SIGNAGE_TOKEN_FILE){}",
                if what == "this command" { ", or --data-dir DIR" } else { "" }
            );
        };
        ApiClient::new(server, self.token_file.as_deref(), self.ca_file.as_deref())
    }
}

/// Who changes a store directly: the machine's operator, as the bootstrap admin.
const LOCAL_AUTHOR: &str = "admin";

pub fn import(state: &State, dir: &Path, archive_missing: bool) -> anyhow::Result<ExitCode> {
    let summary: ImportSummary = match state {
        State::Store(store) => {
            let catalogue = CatalogueService::new(store.clone());
            let options = ImportOptions {
                archive_missing,
                ..ImportOptions::admin()
            };
            crate::import::import(&catalogue, dir, &options)?
        }
        State::Api(api) => {
            // The server refuses an upload it may not take before reading it, which the
            // client only sees as a closed connection: ask first.
            runtime()?.block_on(api.require(&[Role::Admin, Role::Staff]))?;
            let path = dir.join("scenario.json");
            let text = std::fs::read_to_string(&path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            let file = playlists::scenario::parse(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            // Part names are relative paths: sent as they are (`media/x.jpg`), not
            // percent-encoded into the `name*` form the server does not read.
            let mut form = reqwest::multipart::Form::new()
                .percent_encode_noop()
                .text("scenario", text);
            for (_, rel) in file.media_files() {
                let data = std::fs::read(dir.join(&rel)).map_err(|e| {
                    anyhow::anyhow!("cannot read {}: {e}", dir.join(&rel).display())
                })?;
                form = form.part(
                    rel.clone(),
                    reqwest::multipart::Part::bytes(data).file_name(rel),
                );
            }
            let query = [("archive_missing", archive_missing.to_string())];
            runtime()?.block_on(api.post_form(&["import"], &query, form))?
        }
    };
    println!("{}", summary.line());
    Ok(ExitCode::SUCCESS)
}

pub fn provision(
    state: &State,
    id: &str,
    out: &Path,
    mqtt_url: Option<String>,
    server_url: Option<String>,
    config: &crate::config::Config,
) -> anyhow::Result<ExitCode> {
    match state {
        State::Store(store) => {
            // What the server started with this config tells its agents.
            let mqtt_url = mqtt_url
                .or_else(|| config.mqtt_url.clone())
                .unwrap_or_else(|| format!("mqtt://{}", config.embedded_broker));
            let scheme = if config.tls == crate::tls::TlsMode::Off {
                "http"
            } else {
                "https"
            };
            let server_url = server_url.unwrap_or_else(|| format!("{scheme}://{}", config.http));
            let (mqtt_url, server_url) = (mqtt_url.as_str(), server_url.as_str());
            crate::provision::ensure_in_service(&*store.snapshot()?, id).map_err(|e| {
                anyhow::anyhow!("{e}: add it (or import a scenario that defines it) first")
            })?;
            let mut prepared = crate::provision::prepare(
                &**store,
                id,
                mqtt_url,
                server_url,
                &config.topic_prefix,
            )?;
            // A server with a generated certificate: its agents pin the generated CA.
            let ca = store.dir().join(crate::tls::DIR).join(crate::tls::CA_FILE);
            if (server_url.starts_with("https://") || crate::broker::is_tls_url(mqtt_url))
                && ca.exists()
            {
                let pem = std::fs::read_to_string(&ca)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", ca.display()))?;
                prepared.pin_ca(&pem);
            }
            // The key is registered only once the config holding it is safely written.
            write_private(out, &prepared.config)?;
            prepared.register(&**store, Utc::now())?;
        }
        State::Api(api) => {
            let mut query = Vec::new();
            if let Some(u) = mqtt_url {
                query.push(("mqtt_url", u));
            }
            if let Some(u) = server_url {
                query.push(("server_url", u));
            }
            // The server registers the new key when it hands out the config: make sure the
            // config can be written before asking for it, so an unwritable --out leaves the
            // current key as it is.
            super::commands::check_writable(out)?;
            let text =
                runtime()?.block_on(api.post_text(&["screens", id, "provision"], &query, None))?;
            write_private(out, &text)?;
        }
    }
    println!("wrote {} for screen {id}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn catalogue_of(source: &Source) -> anyhow::Result<Option<std::sync::Arc<playlists::Catalogue>>> {
    Ok(match source {
        Source::Scenario(dir) => Some(std::sync::Arc::new(
            crate::import::load(dir)?.scenario.catalogue,
        )),
        Source::State(State::Store(store)) => {
            Some(CatalogueService::new(store.clone()).catalogue()?)
        }
        Source::State(State::Api(_)) => None,
    })
}

fn sink(out: Option<&Path>) -> anyhow::Result<Box<dyn Write>> {
    Ok(match out {
        Some(p) => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::fs::File::create(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 20,
            std::io::stdout().lock(),
        )),
    })
}

pub fn plan(
    source: &Source,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    screens: &[String],
    format: PlanFormat,
    out: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let (plan_format, name) = match format {
        PlanFormat::Csv => (crate::plan::Format::Csv, "csv"),
        PlanFormat::Table => (crate::plan::Format::Table, "table"),
    };
    let mut sink = sink(out)?;
    match (source, catalogue_of(source)?) {
        (_, Some(catalogue)) => {
            let schedules = crate::plan::schedules(&catalogue, screens)?;
            crate::plan::write_plan(&schedules, from, to, plan_format, &mut sink)?;
        }
        (Source::State(State::Api(api)), None) => {
            let mut query = vec![
                ("from", from.to_rfc3339()),
                ("to", to.to_rfc3339()),
                ("format", name.to_owned()),
            ];
            if !screens.is_empty() {
                query.push(("screen", screens.join(",")));
            }
            let body = runtime()?.block_on(api.get_text(&["plan"], &query))?;
            sink.write_all(body.as_bytes())?;
        }
        _ => anyhow::bail!("nothing to plan"),
    }
    sink.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn explain(source: &Source, screen: &str, at: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let text = match (source, catalogue_of(source)?) {
        (_, Some(catalogue)) => crate::http::explain_text(&catalogue, screen, at)
            .map_err(|e| anyhow::anyhow!("{}", e.message()))?,
        (Source::State(State::Api(api)), None) => runtime()?.block_on(api.get_text(
            &["explain"],
            &[("screen", screen.to_owned()), ("at", at.to_rfc3339())],
        ))?,
        _ => anyhow::bail!("nothing to explain"),
    };
    std::io::stdout().write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

pub fn report(
    state: &State,
    what: ReportKind,
    window: Window,
    venue: Option<String>,
    format: ReportFormat,
) -> anyhow::Result<ExitCode> {
    let (dim, kind) = match what {
        ReportKind::Plays => (None, "plays"),
        ReportKind::Venues => (Some(Dimension::Venue), "venues"),
        ReportKind::Screens => (Some(Dimension::Screen), "screens"),
        ReportKind::Campaigns => (Some(Dimension::Campaign), "campaigns"),
        ReportKind::Creatives => (Some(Dimension::Creative), "creatives"),
    };
    let (format, name) = match format {
        ReportFormat::Csv => (crate::report::Format::Csv, "csv"),
        ReportFormat::Json => (crate::report::Format::Json, "json"),
        ReportFormat::Table => (crate::report::Format::Table, "table"),
    };
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match state {
        State::Store(store) => {
            crate::report::render(&**store, dim, &window, venue.as_deref(), format, &mut out)?
        }
        State::Api(api) => {
            let mut query = vec![("format", name.to_owned())];
            for (k, v) in [("from", window.from), ("to", window.to)] {
                if let Some(t) = v {
                    query.push((k, t.to_rfc3339()));
                }
            }
            if let Some(v) = venue {
                query.push(("venue", v));
            }
            let body = runtime()?.block_on(api.get_text(&["reports", kind], &query))?;
            out.write_all(body.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn audit(state: &State) -> anyhow::Result<ExitCode> {
    let verdict: AuditVerdict = match state {
        State::Store(store) => crate::audit::verify(&**store)?,
        State::Api(api) => runtime()?.block_on(api.post(&["audit", "verify"], None))?,
    };
    print!("{}", verdict.lines());
    Ok(if verdict.problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn changes(
    state: &State,
    entity: Option<EntityKind>,
    id: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut cursor: Option<String> = None;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    loop {
        let page: Page<Revision> = match state {
            State::Store(store) => {
                let after = cursor.as_deref().map_or(Ok(0), str::parse)?;
                crate::changes::page(&**store, after, 500, entity, id.as_deref())?
            }
            State::Api(api) => {
                let mut query = vec![("limit", "500".to_owned())];
                if let Some(c) = &cursor {
                    query.push(("cursor", c.clone()));
                }
                if let Some(e) = entity {
                    query.push(("entity", e.as_str().to_owned()));
                }
                if let Some(i) = &id {
                    query.push(("id", i.clone()));
                }
                runtime()?.block_on(api.get(&["changes"], &query))?
            }
        };
        for r in &page.items {
            out.write_all(crate::changes::lines(r).as_bytes())?;
        }
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The password in `file`: its first line, without the line end.
pub fn read_password(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| anyhow::anyhow!("password file {}: {e}", file.display()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        anyhow::bail!("password file {} is empty", file.display());
    }
    Ok(line.to_owned())
}

pub fn set_password(state: &State, name: &str, password: &str) -> anyhow::Result<ExitCode> {
    match state {
        State::Store(store) => {
            crate::auth::set_password(&**store, name, password, LOCAL_AUTHOR)?;
        }
        State::Api(api) => {
            let body = serde_json::json!({ "password": password });
            runtime()?.block_on(api.put_text(&["users", name, "password"], &body))?;
        }
    }
    println!("password of user {name} set; its dashboard sessions have ended");
    Ok(ExitCode::SUCCESS)
}

pub fn add_user(
    state: &State,
    name: &str,
    roles: &[String],
    password: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let roles: Vec<Role> = roles
        .iter()
        .map(|r| {
            Role::parse(r).ok_or_else(|| {
                anyhow::anyhow!("--role {r:?} is not admin, staff, approver, operator or auditor")
            })
        })
        .collect::<anyhow::Result<_>>()?;
    let (shown_roles, token) = match state {
        State::Store(store) => {
            let (user, token) =
                crate::auth::add_user(&**store, name, &roles, password, LOCAL_AUTHOR)?;
            (user.roles, token)
        }
        State::Api(api) => {
            let mut body = serde_json::json!({ "name": name, "roles": roles });
            if let Some(p) = password {
                body["password"] = serde_json::json!(p);
            }
            let created: crate::http::CreatedUser =
                runtime()?.block_on(api.post(&["users"], Some(&body)))?;
            (created.user.roles, created.token)
        }
    };
    let names: Vec<&str> = shown_roles.iter().map(|r| r.as_str()).collect();
    println!(
        "user {name} added with roles {}; its API token (shown once):",
        names.join(", ")
    );
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}

pub fn emergencies(state: &State) -> anyhow::Result<ExitCode> {
    let rows = match state {
        State::Store(store) => {
            crate::emergency::list(&CatalogueService::new(store.clone()), Utc::now())?
        }
        State::Api(api) => runtime()?.block_on(api.get(&["emergencies"], &[]))?,
    };
    Ok(super::emergency::print_list(rows))
}
