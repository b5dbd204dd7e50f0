//! `signage broker mosquitto-config`: a Mosquitto configuration for the fleet, written
//! from the store. `mosquitto.conf` (a listener, no anonymous clients, the password file
//! and ACL beside it, a packet limit no larger than the server's own), `passwd` (the
//! server's login and each screen in service, in Mosquitto's `$7$` PBKDF2-SHA512 format:
//! the hashes stored at provisioning, as they are) and `acl` (the server reads and writes
//! everything under the prefix; a screen writes only its own `status` and `pop` and reads
//! only its own `schedule`, `command` and `pop/ack`). Pure text; the CLI writes the files.

use std::collections::BTreeMap;
use std::path::Path;

use crate::broker_auth::{PasswordHash, SERVER_USER};

/// The three files, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Files {
    pub conf: String,
    pub passwd: String,
    pub acl: String,
}

/// Mosquitto's queue per client (`max_queued_messages`): two messages of each of 50,000
/// screens in flight to the server at once.
pub const MAX_QUEUED_MESSAGES: usize = 100_000;

pub const CONF: &str = "mosquitto.conf";
pub const PASSWD: &str = "passwd";
pub const ACL: &str = "acl";

/// The password file: the server's line, then each screen's stored hash.
pub fn passwd(server: &PasswordHash, screens: &BTreeMap<String, String>) -> String {
    let mut out = format!("{SERVER_USER}:{server}\n");
    for (screen, hash) in screens {
        out.push_str(&format!("{screen}:{hash}\n"));
    }
    out
}

/// The ACL: pattern rules on `%u` for screens, everything under `prefix` for the server.
pub fn acl(prefix: &str) -> String {
    let p = prefix.trim_end_matches('/');
    format!(
        "# signage: who may use which topic (written by `signage broker mosquitto-config`).\n\
         # The server reads and writes everything under the prefix.\n\
         user {SERVER_USER}\n\
         topic readwrite {p}/#\n\
         \n\
         # A screen (user name = client id = screen id) publishes only its own status and\n\
         # proof of play, and reads only its own schedule, commands and acknowledgements.\n\
         pattern write {p}/screens/%u/status\n\
         pattern write {p}/screens/%u/pop\n\
         pattern read {p}/screens/%u/schedule\n\
         pattern read {p}/screens/%u/command\n\
         pattern read {p}/screens/%u/pop/ack\n"
    )
}

/// `mosquitto.conf` for a listener on `port`, naming the password file and ACL in `dir`.
pub fn conf(dir: &Path, port: u16) -> String {
    format!(
        "# signage: Mosquitto configuration (written by `signage broker mosquitto-config`).\n\
         # Regenerate after provisioning screens, then send Mosquitto SIGHUP to reload.\n\
         per_listener_settings false\n\
         listener {port}\n\
         allow_anonymous false\n\
         password_file {passwd}\n\
         acl_file {acl}\n\
         # No larger than the server's own limit: an oversized message is refused here and\n\
         # never reaches (or disconnects) the server; room for a full-size schedule.\n\
         max_packet_size {max}\n\
         # The server republishes every schedule when it connects: nothing to keep on disk.\n\
         persistence false\n\
         # The server's one subscription takes every screen's status and proof of play, and\n\
         # a city's screens end a slot together: Mosquitto's default queue (1,000 messages\n\
         # a client) drops such a burst (agents resend only after 10 s). Room for 50,000.\n\
         max_queued_messages {queued}\n\
         max_inflight_messages 500\n",
        passwd = dir.join(PASSWD).display(),
        acl = dir.join(ACL).display(),
        max = crate::broker::MAX_PACKET_BYTES,
        queued = MAX_QUEUED_MESSAGES,
    )
}

/// All three files for the broker in `dir` on `port`.
pub fn files(
    dir: &Path,
    port: u16,
    prefix: &str,
    server: &PasswordHash,
    screens: &BTreeMap<String, String>,
) -> Files {
    Files {
        conf: conf(dir, port),
        passwd: passwd(server, screens),
        acl: acl(prefix),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_name_each_other_and_the_limits() {
        let server = PasswordHash::new("server-secret").unwrap();
        let hash = PasswordHash::new("pw").unwrap().to_string();
        let screens = BTreeMap::from([("scr-1".to_owned(), hash.clone())]);
        let f = files(
            Path::new("/etc/signage"),
            1884,
            "signage/v1/",
            &server,
            &screens,
        );
        assert!(f.conf.contains("listener 1884\n"));
        assert!(f.conf.contains("allow_anonymous false\n"));
        assert!(f.conf.contains("max_queued_messages 100000\n"));
        assert!(f.conf.contains("password_file /etc/signage/passwd\n"));
        assert!(f.conf.contains("acl_file /etc/signage/acl\n"));
        let max: usize = f
            .conf
            .lines()
            .find_map(|l| l.strip_prefix("max_packet_size "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(max > playlists::wire::MAX_SCHEDULE_BYTES);
        assert!(max < crate::broker::CLIENT_MAX_PACKET_BYTES);
        let lines: Vec<&str> = f.passwd.lines().collect();
        assert_eq!(lines.len(), 2);
        let server_line = PasswordHash::parse(lines[0].strip_prefix("signage-server:").unwrap());
        assert!(server_line.unwrap().verify("server-secret"));
        assert_eq!(lines[1], format!("scr-1:{hash}"));
        assert!(f.acl.contains("topic readwrite signage/v1/#\n"));
        assert!(f
            .acl
            .contains("pattern write signage/v1/screens/%u/status\n"));
        assert!(f
            .acl
            .contains("pattern read signage/v1/screens/%u/pop/ack\n"));
        assert!(!f.acl.contains("pattern readwrite"));
    }
}
