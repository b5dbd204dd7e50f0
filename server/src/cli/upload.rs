//! `signage creatives add FILE...`: uploads each file to a running server, streaming the
//! body with a progress bar of the bytes sent, then following the server's processing
//! (probing, checks, transcoding) through the progress route under a token of our own,
//! and prints every check's verdict. Bars are hidden when stderr is not a terminal, so
//! scripts and logs get the verdict lines alone.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::client::ApiClient;

/// What `creatives add` sends beside each file.
#[derive(Debug, Clone, Default)]
pub struct AddOptions {
    pub id: Option<String>,
    pub title: Option<String>,
    pub duration_seconds: Option<u32>,
}

/// Uploads `files` one after the other; exit 1 when any was refused.
pub async fn add(
    api: &ApiClient,
    files: &[PathBuf],
    options: &AddOptions,
) -> anyhow::Result<ExitCode> {
    let mut failed = 0;
    for file in files {
        match add_one(api, file, options).await {
            Ok(lines) => {
                for line in lines {
                    println!("{line}");
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("{}: {e}", file.display());
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files refused", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The id a file gets without `--id`: its name without the extension.
fn default_id(file: &Path) -> anyhow::Result<String> {
    file.file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("cannot make a creative id from the file name; give --id"))
}

fn bar(len: u64, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some(len),
        if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

async fn add_one(
    api: &ApiClient,
    file: &Path,
    options: &AddOptions,
) -> anyhow::Result<Vec<String>> {
    let id = match &options.id {
        Some(id) => id.clone(),
        None => default_id(file)?,
    };
    let handle = tokio::fs::File::open(file).await?;
    let len = handle.metadata().await?.len();
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("upload")
        .to_owned();

    let sending = bar(
        len,
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    );
    sending.set_message(format!("{name}: sending"));
    let sent_bar = sending.clone();
    let stream = tokio_util::io::ReaderStream::new(handle).inspect(move |chunk| {
        if let Ok(c) = chunk {
            sent_bar.inc(c.len() as u64);
        }
    });
    let mut meta = serde_json::json!({ "id": id });
    if let Some(t) = &options.title {
        meta["title"] = t.clone().into();
    }
    if let Some(d) = options.duration_seconds {
        meta["duration_seconds"] = d.into();
    }
    let form = reqwest::multipart::Form::new()
        .text("meta", meta.to_string())
        .part(
            "file",
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
                .file_name(name.clone()),
        );
    let token = progress_token()?;

    // Once every byte is sent, follow the server's phases until the answer comes.
    let finished = Arc::new(AtomicBool::new(false));
    let processing = bar(1000, "{msg} [{bar:30}] {percent}%");
    let watcher = {
        let api = api.clone();
        let token = token.clone();
        let (sending, processing, finished) =
            (sending.clone(), processing.clone(), finished.clone());
        let name = name.clone();
        tokio::spawn(async move {
            while !finished.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if sending.position() < len {
                    continue;
                }
                if !sending.is_finished() {
                    sending.finish_and_clear();
                }
                let Ok(p) = api
                    .get::<serde_json::Value>(&["creatives", "progress", &token], &[])
                    .await
                else {
                    continue;
                };
                let phase = p["phase"].as_str().unwrap_or("?");
                let fraction = p["fraction"].as_f64().unwrap_or(0.0);
                processing.set_message(format!("{name}: {phase}"));
                processing.set_position((fraction * 1000.0) as u64);
            }
        })
    };
    let answer = api
        .post_form_checked(&["creatives"], &[("progress", token)], form)
        .await;
    finished.store(true, Ordering::Relaxed);
    let _ = watcher.await;
    sending.finish_and_clear();
    processing.finish_and_clear();

    let entity = answer?;
    let mut lines = vec![format!(
        "{}: creative {} stored as {} ({} bytes{})",
        file.display(),
        entity["spec"]["id"].as_str().unwrap_or(&id),
        entity["spec"]["sha256"].as_str().unwrap_or("?"),
        entity["spec"]["bytes"].as_u64().unwrap_or(0),
        match entity["source_sha256"].as_str() {
            Some(s) => format!(", uploaded as {s}"),
            None => String::new(),
        }
    )];
    for check in entity["checks"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {}: {}: {}",
            check["check"].as_str().unwrap_or("?"),
            check["outcome"].as_str().unwrap_or("?"),
            check["detail"].as_str().unwrap_or("")
        ));
    }
    Ok(lines)
}

/// A random token for the progress route.
fn progress_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; 12];
    getrandom::getrandom(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(format!("cli-{}", hex::encode(bytes)))
}
