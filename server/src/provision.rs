//! `signage screens provision` and `POST /api/v1/screens/{id}/provision`: a fresh key pair
//! for a screen and the agent's TOML config carrying the private half and the server's
//! public key to pin. Preparing registers nothing: the caller registers the new public key
//! only once the config is safely written (the CLI) or sent (the API), so a failed write
//! never leaves the screen with a key nobody holds. Older keys stay with their validity.

use chrono::{DateTime, Utc};

use playlists::ScreenId;

use crate::store::{KeyStore, Store, StoreError};

/// A config ready to hand out, and the key to register with it.
#[derive(Debug)]
pub struct Provisioned {
    pub screen: String,
    pub config: String,
    pub public_hex: String,
}

impl Provisioned {
    /// Pins `ca_pem` in the config (`server_ca_pem`): the agent trusts it alone for
    /// `https://` and `mqtts://`.
    pub fn pin_ca(&mut self, ca_pem: &str) {
        let pem = toml::Value::String(ca_pem.to_owned()).to_string();
        self.config.push_str(&format!("server_ca_pem = {pem}\n"));
    }

    /// Registers the new key, valid from `at`.
    pub fn register(&self, store: &dyn KeyStore, at: DateTime<Utc>) -> Result<(), StoreError> {
        store.add_screen_key(&self.screen, &self.public_hex, at)
    }
}

/// Makes a key pair and the config text for `screen` (which must be a known screen).
pub fn prepare(
    store: &dyn Store,
    screen: &str,
    mqtt_url: &str,
    server_url: &str,
    topic_prefix: &str,
) -> anyhow::Result<Provisioned> {
    let id = ScreenId::parse(screen)?;
    let snapshot = store.snapshot()?;
    let known = snapshot
        .screens
        .get(id.as_str())
        .is_some_and(|s| s.decommissioned_at.is_none());
    anyhow::ensure!(
        known,
        "unknown screen {screen:?}: add it (or import a scenario that defines it) first"
    );
    let server = crate::keys::server_key(store.dir())?;
    let key = crate::keys::generate()?;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let config = format!(
        "# signage agent config for screen {screen}\n\
         screen_id = {}\nmqtt_url = {}\nserver_url = {}\ntopic_prefix = {}\n\
         server_public_key = {}\nscreen_secret_key = {}\n",
        quote(screen),
        quote(mqtt_url),
        quote(server_url),
        quote(topic_prefix),
        quote(&server.public_hex()),
        quote(&key.secret_hex()),
    );
    Ok(Provisioned {
        screen: screen.to_owned(),
        config,
        public_hex: key.public_hex(),
    })
}
