//! The store boundary: everything the server keeps, behind traits the domain uses, with
//! typed errors. The domain (catalogue, publishing, ingest, reports, emergencies) never
//! sees a database: it reads a [`Snapshot`] of the catalogue, commits a revision, records
//! the schedule documents it issued, and reads keys, users and the ledger through the
//! traits below. `redb/` is the embedded implementation (one file, one process);
//! `postgres/` the one several server replicas share ([`open_in`] picks by `--store`).
//!
//! Entities are stored as the scenario format writes them (`FileVenue`, `FileCampaign`, …)
//! plus their lifecycle. Nothing with history is deleted: campaigns are archived, screens
//! decommissioned, creatives retired. Every change is one [`Revision`] in an append-only
//! change log, written in the same transaction as the change.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use playlists::Sha256;

pub mod dump;
mod entities;
pub mod lease;
pub mod ledger;
mod location;
mod planned;
pub mod postgres;
pub mod redb;

#[cfg(test)]
mod conformance;

pub use entities::{
    scenario_entities, Approval, ApprovalStatus, ApprovedCampaign, CampaignEntity, CampaignState,
    CheckOutcome, CreativeEntity, Entity, MediaCheck, PendingConfirmation, ScreenEntity,
    StoredEmergency, StoredMeasurement, VenueEntity,
};

pub use location::{open_in, open_url};
pub use planned::{
    plan_id, PlanCounts, PlanEntry, PlanSource, PlannedChange, PlannedPart, PlannedStore,
};

pub use ledger::{
    epoch_name, AuditProblem, AuditReport, BatchSink, ChainSummary, Dimension, Incoming, KeysOf,
    LedgerCounts, LedgerError, LedgerStore, Outcome, ProblemKind, Query, Row, Signer,
};

/// What went wrong in storage. Callers branch on the variant, never on the text.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no store in {path} (run `signage serve` or `signage import` there first, or check the path)")]
    Missing { path: PathBuf },
    #[error("the store in {path} is held by a running server; use --server URL --token-file FILE")]
    Held { path: PathBuf },
    #[error("the catalogue changed meanwhile (revision {head}, expected {expected}); try again")]
    Conflict { expected: u64, head: u64 },
    #[error("no {entity} {id:?}")]
    NotFound { entity: &'static str, id: String },
    #[error("{entity} {id:?} already exists")]
    Exists { entity: &'static str, id: String },
    #[error("stored {what} is damaged: {problem}")]
    Corrupt { what: String, problem: String },
    #[error("store file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("store: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Ledger(#[from] ledger::LedgerError),
    /// `store copy` failed after it had written into its target (`target`, as shown in
    /// messages), which the copy found empty and now holds part of the source.
    #[error(
        "store copy: {problem}; {target} now holds a partial copy: empty it (drop the \
         database, or delete the directory) before copying again"
    )]
    PartialCopy { target: String, problem: String },
}

/// How a command opens a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the store when there is none (`serve`, `import`, `users add`).
    Create,
    /// Refuse a directory without a store: a read never creates one.
    Existing,
}

/// The kinds of entity the change log names.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Venue,
    Screen,
    Creative,
    Campaign,
    Emergency,
    User,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Venue => "venue",
            EntityKind::Screen => "screen",
            EntityKind::Creative => "creative",
            EntityKind::Campaign => "campaign",
            EntityKind::Emergency => "emergency",
            EntityKind::User => "user",
        }
    }
}

/// The whole catalogue at one revision.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The last revision applied (0: none yet).
    pub head: u64,
    pub venues: BTreeMap<String, VenueEntity>,
    pub screens: BTreeMap<String, ScreenEntity>,
    pub creatives: BTreeMap<String, CreativeEntity>,
    pub campaigns: BTreeMap<String, CampaignEntity>,
    pub emergencies: BTreeMap<String, StoredEmergency>,
}

impl Snapshot {
    /// The entity of `kind` and `id`, if any.
    pub fn get(&self, kind: EntityKind, id: &str) -> Option<Entity> {
        match kind {
            EntityKind::Venue => self.venues.get(id).cloned().map(Entity::Venue),
            EntityKind::Screen => self.screens.get(id).cloned().map(Entity::Screen),
            EntityKind::Creative => self.creatives.get(id).cloned().map(Entity::Creative),
            EntityKind::Campaign => self.campaigns.get(id).cloned().map(Entity::Campaign),
            EntityKind::Emergency => self.emergencies.get(id).cloned().map(Entity::Emergency),
            EntityKind::User => None,
        }
    }

    /// Puts `entity` in place (insert or replace).
    pub fn put(&mut self, entity: Entity) {
        match entity {
            Entity::Venue(x) => drop(self.venues.insert(x.spec.id.clone(), x)),
            Entity::Screen(x) => drop(self.screens.insert(x.spec.id.clone(), x)),
            Entity::Creative(x) => drop(self.creatives.insert(x.spec.id.clone(), x)),
            Entity::Campaign(x) => drop(self.campaigns.insert(x.spec.id.clone(), x)),
            Entity::Emergency(x) => drop(self.emergencies.insert(x.id.clone(), x)),
        }
    }

    /// Every entity, in a stable order.
    pub fn entities(&self) -> Vec<Entity> {
        let mut out = Vec::new();
        out.extend(self.venues.values().cloned().map(Entity::Venue));
        out.extend(self.screens.values().cloned().map(Entity::Screen));
        out.extend(self.creatives.values().cloned().map(Entity::Creative));
        out.extend(self.campaigns.values().cloned().map(Entity::Campaign));
        out.extend(self.emergencies.values().cloned().map(Entity::Emergency));
        out
    }

    /// The entities of `self` that differ from (or are absent in) `base`.
    pub fn changed_since(&self, base: &Snapshot) -> Vec<Entity> {
        self.entities()
            .into_iter()
            .filter(|e| base.get(e.kind(), e.id()).as_ref() != Some(e))
            .collect()
    }
}

/// The last snapshot a store read, handed out again while the head stays where it was: at
/// city size a snapshot is tens of thousands of entities, and most requests find the
/// catalogue unchanged since the last one. Every write of an entity moves the head (a
/// commit, a migration, a dump imported into an empty store), so a snapshot kept for a head
/// is the store's truth at that head.
#[derive(Debug, Default)]
pub struct SnapshotCache(std::sync::Mutex<Option<Arc<Snapshot>>>);

impl SnapshotCache {
    /// The snapshot at the store's `head` now: the one kept when its head matches, else
    /// `read` (kept for the next call).
    pub fn get(
        &self,
        head: impl FnOnce() -> Result<u64, StoreError>,
        read: impl FnOnce() -> Result<Snapshot, StoreError>,
    ) -> Result<Arc<Snapshot>, StoreError> {
        let head = head()?;
        let kept = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(s) = kept.filter(|s| s.head == head) {
            return Ok(s);
        }
        let read = Arc::new(read()?);
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(read.clone());
        Ok(read)
    }
}

/// A change to commit: entities to insert or replace, as one revision.
#[derive(Debug, Clone)]
pub struct Commit {
    /// The revision the change was computed from; the store refuses it if the head moved.
    pub base: u64,
    pub author: String,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub entities: Vec<Entity>,
}

/// One entity's change in a revision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChangeRecord {
    pub entity: EntityKind,
    pub id: String,
    #[schema(value_type = Option<Object>)]
    pub before: Option<serde_json::Value>,
    #[schema(value_type = Option<Object>)]
    pub after: Option<serde_json::Value>,
}

/// One entry of the append-only change log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revision {
    pub number: u64,
    pub author: String,
    pub at: DateTime<Utc>,
    pub comment: String,
    pub changes: Vec<ChangeRecord>,
    /// Set on entries that record an event rather than a change (a login, a refusal):
    /// these change no entity (`changes` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventKind>,
}

/// What an event entry of the change log records.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// A user logged in to the dashboard (the author).
    Login,
    /// A login was refused (the author is the name tried, when it is a valid user name).
    LoginFailed,
    /// A user logged out.
    Logout,
    /// A request was refused for a missing role or CSRF token (the author is the caller).
    Refused,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Login => "login",
            EventKind::LoginFailed => "login-failed",
            EventKind::Logout => "logout",
            EventKind::Refused => "refused",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        [
            EventKind::Login,
            EventKind::LoginFailed,
            EventKind::Logout,
            EventKind::Refused,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// The catalogue's entities and their change log.
pub trait CatalogueStore {
    /// Every entity at the current head (kept per head: [`SnapshotCache`]).
    fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError>;
    /// The current head alone (what [`snapshot`](Self::snapshot) would say), cheaply: views
    /// cached per revision check it on every request.
    fn head(&self) -> Result<u64, StoreError> {
        Ok(self.snapshot()?.head)
    }
    /// Writes the entities that differ from what is stored, and one revision naming them,
    /// in one transaction. `Ok(None)` when nothing differs (no revision is written);
    /// [`StoreError::Conflict`] when the head is no longer `commit.base`.
    fn commit(&self, commit: Commit) -> Result<Option<Revision>, StoreError>;
    /// Revisions numbered above `after`, oldest first, at most `limit`.
    fn revisions(&self, after: u64, limit: usize) -> Result<Vec<Revision>, StoreError>;
    /// Appends an event entry (no entity changes) to the change log. Events do not move the
    /// catalogue's head: a commit computed before one still applies.
    fn record_event(
        &self,
        kind: EventKind,
        author: &str,
        at: DateTime<Utc>,
        comment: &str,
    ) -> Result<Revision, StoreError>;
}

/// What was last published for a screen. (Times are absent in stores written before
/// schedules expired; such a document is re-signed with a new version once.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    pub version: u64,
    pub content_hash: String,
    #[serde(default)]
    pub issued_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A signed schedule document as issued: kept forever, never changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedDocument {
    pub screen_id: String,
    pub version: u64,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// When it starts to count as planned, on the server's scheduling clock (a screen's
    /// first version counts from the beginning).
    pub in_force_from: DateTime<Utc>,
    pub content_hash: String,
    /// The signed envelope, exactly as published.
    pub signed: String,
}

/// Schedule documents: the latest per screen, and every one ever issued.
pub trait DocumentStore {
    fn published(&self) -> Result<HashMap<String, Published>, StoreError>;
    /// Keeps `docs` and makes each its screen's latest, in one transaction.
    fn record_issued(&self, docs: &[IssuedDocument]) -> Result<(), StoreError>;
    /// Every document issued for `screen`, oldest version first.
    fn issued(&self, screen: &str) -> Result<Vec<IssuedDocument>, StoreError>;
    /// Where this store keeps planned counts with the documents; `None` when it does not
    /// (reports then plan from the documents).
    fn planned_store(&self) -> Option<&dyn PlannedStore> {
        None
    }
}

/// A screen's public key and when it was valid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScreenKey {
    pub public_hex: String,
    pub valid_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<DateTime<Utc>>,
}

/// Screens' keys, with their history.
pub trait KeyStore {
    /// Every screen's keys, oldest first; the last is current.
    fn screen_keys(&self) -> Result<HashMap<String, Vec<ScreenKey>>, StoreError>;
    /// The keys of each of `screens` that has any, as [`KeyStore::screen_keys`]: what
    /// ingest reads per call, so its cost follows the batches, not the fleet.
    fn keys_of(&self, screens: &[&str]) -> Result<HashMap<String, Vec<ScreenKey>>, StoreError> {
        let mut all = self.screen_keys()?;
        Ok(screens
            .iter()
            .filter_map(|s| Some((s.to_string(), all.remove(*s)?)))
            .collect())
    }
    /// Adds a key valid from `at`; the previous key's validity ends there.
    fn add_screen_key(
        &self,
        screen: &str,
        public_hex: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Screens' broker passwords, kept only as hashes in Mosquitto's `$7$` format (see
/// `broker_auth`), registered together with the screen's key at provisioning.
pub trait BrokerLoginStore {
    /// Adds a key valid from `at` (as [`KeyStore::add_screen_key`]) and makes
    /// `broker_hash` the screen's broker password hash, in one transaction.
    fn add_screen_credentials(
        &self,
        screen: &str,
        public_hex: &str,
        broker_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The broker password hash of `screen` when it is a known screen in service (not
    /// decommissioned) that was provisioned with one.
    fn broker_login(&self, screen: &str) -> Result<Option<String>, StoreError>;
    /// Every screen in service with a broker password hash, by screen id.
    fn broker_logins(&self) -> Result<BTreeMap<String, String>, StoreError>;
}

/// What a user may do (design.md, "People and roles").
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Staff,
    Approver,
    Operator,
    Auditor,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Staff,
        Role::Approver,
        Role::Operator,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Staff => "staff",
            Role::Approver => "approver",
            Role::Operator => "operator",
            Role::Auditor => "auditor",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A user. The API token is kept only as its SHA-256 (a random 256-bit value needs no
/// slow hash); the dashboard password, when set, as an argon2id PHC string.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    pub roles: Vec<Role>,
    pub token_sha256: String,
    pub created_at: DateTime<Utc>,
    /// Absent in stores written before passwords, and for users who use only a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_phc: Option<String>,
}

impl Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("roles", &self.roles)
            .field("created_at", &self.created_at)
            .field("has_password", &self.password_phc.is_some())
            .finish_non_exhaustive()
    }
}

impl User {
    /// The user as the change log shows it: no token or password hash.
    pub fn public(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "roles": self.roles,
            "created_at": self.created_at,
            "has_password": self.password_phc.is_some(),
        })
    }
}

/// Users and their tokens.
pub trait UserStore {
    fn users(&self) -> Result<Vec<User>, StoreError>;
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn user_by_token(&self, token_sha256: &str) -> Result<Option<User>, StoreError>;
    /// Adds a user and a revision naming it; [`StoreError::Exists`] for a taken name.
    fn add_user(&self, user: &User, author: &str) -> Result<Revision, StoreError>;
    /// Sets `name`'s password (a PHC string) and ends its sessions, with a revision naming
    /// the user (never the hash); [`StoreError::NotFound`] for an unknown user.
    fn set_password(
        &self,
        name: &str,
        password_phc: &str,
        author: &str,
        at: DateTime<Utc>,
    ) -> Result<Revision, StoreError>;
}

/// A dashboard session. Stored under the SHA-256 of its id (the cookie's value), so the
/// store never holds a usable cookie.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub user: String,
    /// The synchronizer token every state change through this session carries as
    /// `X-CSRF-Token`.
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// Dashboard sessions (they survive a restart of the server).
pub trait SessionStore {
    fn put_session(&self, id_sha256: &str, session: &Session) -> Result<(), StoreError>;
    fn session(&self, id_sha256: &str) -> Result<Option<Session>, StoreError>;
    fn delete_session(&self, id_sha256: &str) -> Result<(), StoreError>;
    /// Deletes sessions last seen before `idle_before`; returns how many.
    fn purge_sessions(&self, idle_before: DateTime<Utc>) -> Result<usize, StoreError>;
}

/// Small settings (the last simulated report window, …).
pub trait MetaStore {
    fn meta(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    fn set_meta(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
}

/// Media bytes, content-addressed, beside the store.
pub trait MediaStore {
    fn media_path(&self, sha256: &Sha256) -> PathBuf;
    /// Writes `data` under its hash (temporary file, fsync, rename): idempotent.
    fn put_media(&self, sha256: &Sha256, data: &[u8]) -> Result<(), StoreError>;
    /// Moves a complete, fsynced file into place under its hash.
    fn adopt_media(&self, sha256: &Sha256, file: &Path) -> Result<(), StoreError>;
    /// A directory for uploads in progress, on the same file system as the media.
    fn upload_dir(&self) -> PathBuf;
    /// The file of media `sha256` on this machine, fetched first when the store holds it
    /// but this replica has no copy yet (another replica stored it); a store on one
    /// machine has only its [`media_path`](Self::media_path).
    fn local_copy(&self, sha256: &Sha256) -> Result<PathBuf, StoreError> {
        Ok(self.media_path(sha256))
    }
    /// Whether the store holds media `sha256` (here, or for a replica to fetch).
    fn has_media(&self, sha256: &Sha256) -> Result<bool, StoreError> {
        Ok(self.media_path(sha256).exists())
    }
}

/// A rendition of a creative's original: what it was made from and as, and the file made
/// (content-addressed in the media like any creative).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StoredRendition {
    /// SHA-256 of the original it was made from.
    pub source: String,
    pub width: u32,
    pub height: u32,
    /// `"fit"` (inside, on `background`) or `"fill"` (centre crop).
    pub fit: String,
    /// `#rrggbb` for `"fit"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background: Option<String>,
    /// SHA-256 of the rendition's file.
    pub sha256: String,
    pub bytes: u64,
    /// The frame it was made for, `[width, height]`, when that is not the size it came
    /// out at (a video keeps its aspect inside the frame): screens find a rendition by the
    /// frame they ask for. Absent in renditions indexed before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame: Option<[u32; 2]>,
}

impl StoredRendition {
    /// The index key of what it was made from and as.
    pub fn key(&self) -> String {
        let [width, height] = self.frame.unwrap_or([self.width, self.height]);
        rendition_key(
            &self.source,
            width,
            height,
            &self.fit,
            self.background.as_deref(),
        )
    }
}

/// The index key of a rendition of `source` at `width` x `height` with a fit: the source
/// first, so that one original's renditions are one key range.
pub fn rendition_key(
    source: &str,
    width: u32,
    height: u32,
    fit: &str,
    background: Option<&str>,
) -> String {
    match background {
        Some(bg) => format!(
            "{source}/{width}x{height}/{fit}/{}",
            bg.to_ascii_lowercase()
        ),
        None => format!("{source}/{width}x{height}/{fit}"),
    }
}

/// The index of renditions made: made once, found by what they were made from and as.
pub trait RenditionStore {
    /// The rendition kept under `key` (see [`rendition_key`]).
    fn rendition(&self, key: &str) -> Result<Option<StoredRendition>, StoreError>;
    /// Records a rendition whose file is already in the media.
    fn put_rendition(&self, rendition: &StoredRendition) -> Result<(), StoreError>;
    /// Every rendition made from `source` (a SHA-256), in key order.
    fn renditions_of(&self, source: &str) -> Result<Vec<StoredRendition>, StoreError>;
    /// Records a rendition made in the background (a video's) and numbers its finish, in
    /// one transaction; returns the number. Numbers rise in commit order, so whoever read
    /// up to one has missed none below it: the publisher follows them
    /// ([`finished_renditions`](Self::finished_renditions)) to republish the screens that
    /// name the rendition, whichever replica made it.
    fn put_finished_rendition(&self, rendition: &StoredRendition) -> Result<u64, StoreError>;
    /// The renditions finished with numbers above `after`, oldest first, at most `limit`,
    /// each with its number (a rendition finished twice appears at both).
    fn finished_renditions(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRendition)>, StoreError>;
    /// The last finish number (0 when none): where a new publisher starts following.
    fn last_finished_rendition(&self) -> Result<u64, StoreError>;
}

/// Everything the server stores.
pub trait Store:
    CatalogueStore
    + DocumentStore
    + KeyStore
    + BrokerLoginStore
    + UserStore
    + SessionStore
    + MetaStore
    + MediaStore
    + RenditionStore
    + Send
    + Sync
    + Debug
{
    /// The proof-of-play ledger.
    fn ledger(&self) -> Arc<dyn LedgerStore>;
    /// The data directory (server key, admin token, media).
    fn dir(&self) -> &Path;
    /// A new contender for the right to publish schedules and commands (one per server):
    /// by default always held, for a backend that one server uses alone.
    fn publisher_lease(&self) -> Box<dyn lease::PublisherLease> {
        Box::new(lease::Sole)
    }
}

/// The shared handle the domain holds.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store in `dir` (the embedded redb store).
pub fn open(dir: &Path, mode: OpenMode) -> Result<SharedStore, StoreError> {
    Ok(Arc::new(redb::RedbStore::open(dir, mode)?))
}

/// Checks that what a backend stored together for `screen` still agrees: its published
/// document is the last of its issued documents. A store published before documents were
/// kept (migrated) has none to agree with yet; every later publication keeps its document.
pub(crate) fn published_agrees(
    screen: &str,
    published: Option<&Published>,
    last: Option<&IssuedDocument>,
) -> Result<(), StoreError> {
    let problem = match (published, last) {
        (None, None) => return Ok(()),
        (Some(p), None) if p.issued_at.is_none() => return Ok(()),
        (Some(p), Some(last))
            if p.version == last.version && p.content_hash == last.content_hash =>
        {
            return Ok(())
        }
        (Some(p), _) => format!(
            "version {} is published but not among its documents",
            p.version
        ),
        (None, Some(_)) => "it has documents but none is published".to_owned(),
    };
    Err(StoreError::Corrupt {
        what: format!("the schedule documents of screen {screen}"),
        problem,
    })
}

/// The revision that records `user` added by `author`, numbered `number`.
pub(crate) fn user_added_revision(number: u64, author: &str, user: &User) -> Revision {
    Revision {
        number,
        author: author.to_owned(),
        at: user.created_at,
        comment: format!("user {} added", user.name),
        changes: vec![ChangeRecord {
            entity: EntityKind::User,
            id: user.name.clone(),
            before: None,
            after: Some(user.public()),
        }],
        event: None,
    }
}

/// Each screen's keys, newest (current) first, parsed: what ingest and the audit verify
/// proof-of-play batches with. A key that does not parse is left out.
pub fn key_rings(
    store: &dyn KeyStore,
) -> Result<HashMap<String, Vec<ed25519_dalek::VerifyingKey>>, StoreError> {
    Ok(rings(store.screen_keys()?))
}

/// [`key_rings`] of `screens` only.
pub fn key_rings_of(
    store: &dyn KeyStore,
    screens: &[&str],
) -> Result<HashMap<String, Vec<ed25519_dalek::VerifyingKey>>, StoreError> {
    Ok(rings(store.keys_of(screens)?))
}

fn rings(
    keys: HashMap<String, Vec<ScreenKey>>,
) -> HashMap<String, Vec<ed25519_dalek::VerifyingKey>> {
    keys.into_iter()
        .map(|(screen, keys)| {
            let ring = keys
                .iter()
                .rev()
                .filter_map(|k| playlists::wire::signed::public_key_from_hex(&k.public_hex).ok())
                .collect();
            (screen, ring)
        })
        .collect()
}

/// Each screen's current key.
pub fn current_keys(store: &dyn KeyStore) -> Result<HashMap<String, String>, StoreError> {
    Ok(store
        .screen_keys()?
        .into_iter()
        .filter_map(|(screen, keys)| Some((screen, keys.last()?.public_hex.clone())))
        .collect())
}
