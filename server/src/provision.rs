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
use crate::store::{BrokerLoginStore, Snapshot, Store, StoreError};

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

/// A screen that is unknown or decommissioned gets no credentials.
pub(crate) fn not_in_service(screen: &str) -> StoreError {
    StoreError::NotFound {
        entity: "screen in service",
        id: screen.to_owned(),
    }
}

/// Refuses `screen` unless `snapshot` holds it in service: the check before preparing
/// (registering checks again, in its own transaction).
pub fn ensure_in_service(snapshot: &Snapshot, screen: &str) -> Result<(), StoreError> {
    match snapshot.screens.get(screen) {
        Some(s) if s.decommissioned_at.is_none() => Ok(()),
        _ => Err(not_in_service(screen)),
    }
}

/// Makes a key pair and the config text for `screen`. It reads no catalogue (provisioning a
/// fleet is one pass, not a catalogue read per screen): check the screen with
/// [`ensure_in_service`] first; registering refuses one that is not in service.
pub fn prepare(
    store: &dyn Store,
    screen: &str,
    mqtt_url: &str,
    server_url: &str,
    topic_prefix: &str,
) -> anyhow::Result<Provisioned> {
    ScreenId::parse(screen)?;
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::catalogue::CatalogueService;
    use crate::store::OpenMode;

    #[test]
    fn a_screen_decommissioned_after_preparing_gets_no_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), OpenMode::Create).unwrap();
        let catalogue = CatalogueService::new(store.clone());
        let scenario =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/beijing-role-models");
        crate::import::import(
            &catalogue,
            &scenario,
            &crate::import::ImportOptions::admin(),
        )
        .unwrap();
        let screen = "bj-metro-xidan-s1";
        let url = ("mqtt://127.0.0.1:1883", "http://127.0.0.1:8080");
        let prepared = prepare(&*store, screen, url.0, url.1, "signage").unwrap();
        catalogue
            .change("admin", "gone", Utc::now(), |s| {
                s.screens.get_mut(screen).unwrap().decommissioned_at = Some(Utc::now());
                Ok::<_, crate::catalogue::CatalogueError>(())
            })
            .unwrap();
        let err = prepared.register(&*store, Utc::now()).unwrap_err();
        assert!(matches!(err, StoreError::NotFound { .. }), "{err}");
        assert!(store
            .screen_keys()
            .unwrap()
            .get(screen)
            .is_none_or(|k| k.is_empty()));
        assert_eq!(store.broker_login(screen).unwrap(), None);
        // The check before preparing refuses it too, with the same typed error.
        let check = ensure_in_service(&store.snapshot().unwrap(), screen).unwrap_err();
        assert!(matches!(check, StoreError::NotFound { .. }), "{check}");
        assert!(ensure_in_service(&store.snapshot().unwrap(), "bj-metro-xidan-s2").is_ok());
        assert!(ensure_in_service(&store.snapshot().unwrap(), "no-such-screen").is_err());
        // A screen in service still gets its credentials.
        let other = prepare(&*store, "bj-metro-xidan-s2", url.0, url.1, "signage").unwrap();
        other.register(&*store, Utc::now()).unwrap();
        assert!(store.broker_login("bj-metro-xidan-s2").unwrap().is_some());
    }
}
