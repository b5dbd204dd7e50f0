//! `signage broker mosquitto-config`: writes a Mosquitto configuration, password file and
//! ACL for the fleet (see `mosquitto.rs`) into a directory, from the store (`--data-dir`)
//! or a running server (`--server`, which sends the password file and ACL).

use std::path::Path;
use std::process::ExitCode;

use super::state::State;
use super::{runtime, write_private};
use crate::broker_auth::PasswordHash;
use crate::mosquitto::{self, Files};

pub fn mosquitto_config(
    state: &State,
    out: &Path,
    port: u16,
    topic_prefix: &str,
) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(out)
        .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", out.display()))?;
    let dir = std::path::absolute(out)?;
    let files = match state {
        State::Store(store) => {
            let secret = crate::broker_auth::server_secret(store.dir())?;
            let screens = store.broker_logins()?;
            mosquitto::files(
                &dir,
                port,
                topic_prefix,
                &PasswordHash::new(&secret)?,
                &screens,
            )
        }
        State::Api(api) => {
            let body: serde_json::Value =
                runtime()?.block_on(api.get(&["broker", "mosquitto"], &[]))?;
            let text = |k: &str| {
                body[k]
                    .as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| anyhow::anyhow!("the server's answer has no {k:?}"))
            };
            Files {
                conf: mosquitto::conf(&dir, port),
                passwd: text("passwd")?,
                acl: text("acl")?,
            }
        }
    };
    // The password file and ACL first: the configuration names them.
    write_private(&dir.join(mosquitto::PASSWD), &files.passwd)?;
    write_private(&dir.join(mosquitto::ACL), &files.acl)?;
    write_private(&dir.join(mosquitto::CONF), &files.conf)?;
    let users = files.passwd.lines().count();
    println!(
        "wrote {} ({users} users; reload Mosquitto after provisioning screens)",
        dir.join(mosquitto::CONF).display()
    );
    Ok(ExitCode::SUCCESS)
}
