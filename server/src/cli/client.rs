//! The HTTP client the CLI uses against a running server (`--server URL --token-file F`):
//! one place that builds URLs (each path segment percent-encoded), sends the token, and
//! turns the API's error shape into the error the command prints.

use std::path::Path;

use serde::de::DeserializeOwned;

/// A running server's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: reqwest::Url,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// `server` must be an `http://` or `https://` URL; the token, when given, is read
    /// from `token_file`; with `ca_file`, its certificates alone are trusted for HTTPS.
    pub fn new(
        server: &str,
        token_file: Option<&Path>,
        ca_file: Option<&Path>,
    ) -> anyhow::Result<ApiClient> {
        let base = reqwest::Url::parse(server)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.has_host())
            .ok_or_else(|| {
                anyhow::anyhow!("--server {server:?} is not an http:// or https:// URL")
            })?;
        if base.cannot_be_a_base() {
            anyhow::bail!("--server {server:?} cannot take a path");
        }
        let token = match token_file {
            None => None,
            Some(file) => Some(
                std::fs::read_to_string(file)
                    .map_err(|e| anyhow::anyhow!("token file {}: {e}", file.display()))?
                    .trim()
                    .to_owned(),
            ),
        };
        let mut http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300));
        if let Some(file) = ca_file {
            let pem = std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("CA file {}: {e}", file.display()))?;
            let certs = crate::tls::parse_certs(&pem)
                .map_err(|e| anyhow::anyhow!("CA file {}: {e}", file.display()))?;
            http = http.tls_built_in_root_certs(false);
            for cert in certs {
                http = http.add_root_certificate(reqwest::Certificate::from_der(&cert)?);
            }
        }
        let http = http.build()?;
        Ok(ApiClient { base, token, http })
    }

    /// `{server}/api/v1/{segments…}`, each segment percent-encoded.
    pub fn url(&self, segments: &[&str]) -> reqwest::Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(["api", "v1"]).extend(segments);
        }
        url
    }

    fn authorised(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// Refuses early, with the server's own words, when the token's user holds none of `roles`.
    pub async fn require(&self, roles: &[crate::store::Role]) -> anyhow::Result<()> {
        let me: crate::http::UserView = self.get(&["whoami"], &[]).await?;
        let user = crate::store::User {
            name: me.name,
            roles: me.roles,
            token_sha256: String::new(),
            created_at: me.created_at,
            password_phc: None,
        };
        crate::auth::require(&user, roles)
            .map_err(|e| anyhow::anyhow!("server refused (403 Forbidden): {e}"))
    }

    pub async fn get_text(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<String> {
        let req = self.http.get(self.url(segments)).query(query);
        text(self.authorised(req).send().await?).await
    }

    pub async fn get<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> anyhow::Result<T> {
        Ok(serde_json::from_str(
            &self.get_text(segments, query).await?,
        )?)
    }

    pub async fn post_text(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<String> {
        let mut req = self.http.post(self.url(segments)).query(query);
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(b)?);
        }
        text(self.authorised(req).send().await?).await
    }

    pub async fn put_text(
        &self,
        segments: &[&str],
        body: &serde_json::Value,
    ) -> anyhow::Result<String> {
        let req = self
            .http
            .put(self.url(segments))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body)?);
        text(self.authorised(req).send().await?).await
    }

    pub async fn post<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<T> {
        Ok(serde_json::from_str(
            &self.post_text(segments, &[], body).await?,
        )?)
    }

    pub async fn post_form<T: DeserializeOwned>(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        form: reqwest::multipart::Form,
    ) -> anyhow::Result<T> {
        let req = self
            .http
            .post(self.url(segments))
            .query(query)
            .multipart(form);
        Ok(serde_json::from_str(
            &text(self.authorised(req).send().await?).await?,
        )?)
    }

    /// Posts a multipart form and answers the JSON body; a refusal names the field the
    /// server blamed (for an upload, the check that refused it).
    pub async fn post_form_checked(
        &self,
        segments: &[&str],
        query: &[(&str, String)],
        form: reqwest::multipart::Form,
    ) -> anyhow::Result<serde_json::Value> {
        let req = self
            .http
            .post(self.url(segments))
            .query(query)
            .multipart(form);
        let resp = self.authorised(req).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let message = json["error"]["message"].as_str().unwrap_or(text.as_str());
            match json["error"]["field"].as_str() {
                Some(field) => anyhow::bail!("refused by {field} ({status}): {message}"),
                None => anyhow::bail!("server refused ({status}): {message}"),
            }
        }
        Ok(serde_json::from_str(&text)?)
    }
}

/// The body of a success, or the server's error message as the error.
async fn text(resp: reqwest::Response) -> anyhow::Result<String> {
    let status = resp.status();
    let text = resp.text().await?;
    if !status.is_success() {
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let message = json["error"]["message"]
            .as_str()
            .or(json["error"].as_str())
            .unwrap_or(text.as_str())
            .to_owned();
        anyhow::bail!("server refused ({status}): {message}");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::ApiClient;

    #[test]
    fn urls_are_checked_and_encoded() {
        let at = |server: &str, segments: &[&str]| {
            ApiClient::new(server, None, None)
                .map(|c| c.url(segments).to_string())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            at("http://127.0.0.1:8080", &["emergencies"]).unwrap(),
            "http://127.0.0.1:8080/api/v1/emergencies"
        );
        assert_eq!(
            at("http://h:1/base/", &["emergencies", "a/b?c", "end"]).unwrap(),
            "http://h:1/base/api/v1/emergencies/a%2Fb%3Fc/end"
        );
        for bad in ["not-a-url", "ftp://h/", "127.0.0.1:8080"] {
            let err = at(bad, &[]).unwrap_err();
            assert!(
                err.contains("not an http:// or https:// URL"),
                "{bad}: {err}"
            );
        }
    }
}
