//! The dashboard's files: `/` (the page) and `/ui/{file}` (its modules and styles), compiled
//! into the binary so that an installed server needs nothing beside it and no request
//! leaves its origin. With `SIGNAGE_WEB_DIR` set they are read from that folder instead
//! (for working on the dashboard without rebuilding).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Every file of the dashboard: (name, content type, bytes).
const FILES: &[(&str, &str, &str)] = &[
    ("index.html", HTML, include_str!("../web/index.html")),
    ("app.js", JS, include_str!("../web/app.js")),
    ("core.js", JS, include_str!("../web/core.js")),
    ("campaigns.js", JS, include_str!("../web/campaigns.js")),
    ("creatives.js", JS, include_str!("../web/creatives.js")),
    ("operator.js", JS, include_str!("../web/operator.js")),
    ("auditor.js", JS, include_str!("../web/auditor.js")),
    ("app.css", CSS, include_str!("../web/app.css")),
    ("campaigns.css", CSS, include_str!("../web/campaigns.css")),
    ("creatives.css", CSS, include_str!("../web/creatives.css")),
    ("operator.css", CSS, include_str!("../web/operator.css")),
    ("auditor.css", CSS, include_str!("../web/auditor.css")),
];

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// The file `name` with its content type: from `SIGNAGE_WEB_DIR` when set, else built in.
fn file(name: &str) -> Option<(&'static str, Vec<u8>)> {
    let &(_, kind, built_in) = FILES.iter().find(|(n, _, _)| *n == name)?;
    if let Some(dir) = std::env::var_os("SIGNAGE_WEB_DIR") {
        if let Ok(bytes) = std::fs::read(std::path::Path::new(&dir).join(name)) {
            return Some((kind, bytes));
        }
    }
    Some((kind, built_in.as_bytes().to_vec()))
}

fn respond(name: &str) -> Result<Response, ApiError> {
    let (kind, bytes) =
        file(name).ok_or_else(|| ApiError::not_found(format!("no dashboard file {name:?}")))?;
    Ok((
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        bytes,
    )
        .into_response())
}

/// The dashboard's page.
pub(super) async fn page() -> Result<Response, ApiError> {
    respond("index.html")
}

/// One of the dashboard's modules or styles.
pub(super) async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    respond(&name)
}

#[cfg(test)]
mod tests {
    use super::FILES;

    /// Every module the page or another module names is served, and every served file is
    /// named somewhere: a page that forgets to list a new module fails here, not in a
    /// browser.
    #[test]
    fn every_referenced_file_is_served() {
        let names: Vec<&str> = FILES.iter().map(|f| f.0).collect();
        let mut referenced = vec!["index.html"];
        for (_, _, text) in FILES {
            for part in text.split(['\'', '"']) {
                let part = part.trim_start_matches("./").trim_start_matches("/ui/");
                if (part.ends_with(".js") || part.ends_with(".css")) && !part.contains(' ') {
                    assert!(names.contains(&part), "{part} is referenced but not served");
                    referenced.push(part);
                }
            }
        }
        for n in names {
            assert!(
                referenced.contains(&n),
                "{n} is served but never referenced"
            );
        }
    }
}
