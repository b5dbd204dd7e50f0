//! `signage screens provision` and `POST /api/v1/screens/{id}/provision`: a fresh key pair
//! and broker password for a screen, and the agent's TOML config carrying the private
//! half, the password and the server's public key to pin. Preparing registers nothing: the
//! caller registers the new public key and the password's hash (together, one transaction)
//! only once the config is safely written (the CLI) or sent (the API), so a failed write
//! never leaves the screen with a key or password nobody holds. Older keys stay with their
//! validity; the older password stops working.

use chrono::{DateTime, Utc};

use playlists::ScreenId;

use crate::broker_auth::PasswordHash;
use crate::store::{BrokerLoginStore, Store, StoreError};

/// A config ready to hand out, and the key and password hash to register with it.
#[derive(Debug)]
pub struct Provisioned {
    pub screen: String,
    pub config: String,
    pub public_hex: String,
    /// The broker password's hash (`$7$…`); the password itself is only in `config`.
    pub broker_hash: String,
}

impl Provisioned {
    /// Pins `ca_pem` in the config (`server_ca_pem`): the agent trusts it alone for
    /// `https://` and `mqtts://`.
    pub fn pin_ca(&mut self, ca_pem: &str) {
        let pem = toml::Value::String(ca_pem.to_owned()).to_string();
        self.config.push_str(&format!("server_ca_pem = {pem}\n"));
    }

    /// Registers the new key, valid from `at`, and the new broker password.
    pub fn register(
        &self,
        store: &dyn BrokerLoginStore,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        store.add_screen_credentials(&self.screen, &self.public_hex, &self.broker_hash, at)
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
    let password = crate::broker_auth::new_password()?;
    let broker_hash = PasswordHash::new(&password)?.to_string();
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let config = format!(
        "# signage agent config for screen {screen}\n\
         screen_id = {}\nmqtt_url = {}\nserver_url = {}\ntopic_prefix = {}\n\
         server_public_key = {}\nscreen_secret_key = {}\nmqtt_password = {}\n",
        quote(screen),
        quote(mqtt_url),
        quote(server_url),
        quote(topic_prefix),
        quote(&server.public_hex()),
        quote(&key.secret_hex()),
        quote(&password),
    );
    Ok(Provisioned {
        screen: screen.to_owned(),
        config,
        public_hex: key.public_hex(),
        broker_hash,
    })
}
