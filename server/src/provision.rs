//! `signage screens provision`: a fresh key pair for a screen, its public half registered
//! on the server, and the agent's TOML config carrying the private half and the server's
//! public key to pin.

use playlists::ScreenId;

use crate::store::Store;

/// Registers a new key for `screen` and returns the agent config text.
pub fn provision(
    store: &Store,
    screen: &str,
    mqtt_url: &str,
    server_url: &str,
    topic_prefix: &str,
) -> anyhow::Result<String> {
    let id = ScreenId::parse(screen)?;
    let catalogue = store.catalogue()?;
    anyhow::ensure!(
        catalogue.screen(&id).is_some(),
        "unknown screen {screen:?}: import a scenario that defines it first"
    );
    let server = crate::keys::server_key(store.dir())?;
    let key = crate::keys::generate()?;
    store.set_screen_key(screen, &key.public_hex())?;
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    Ok(format!(
        "# signage agent config for screen {screen}\n\
         screen_id = {}\nmqtt_url = {}\nserver_url = {}\ntopic_prefix = {}\n\
         server_public_key = {}\nscreen_secret_key = {}\n",
        quote(screen),
        quote(mqtt_url),
        quote(server_url),
        quote(topic_prefix),
        quote(&server.public_hex()),
        quote(&key.secret_hex()),
    ))
}
