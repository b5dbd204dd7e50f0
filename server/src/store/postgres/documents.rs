//! Schedule documents (`published`, `documents`), screens' keys (`screen_keys`, one JSON
//! list per screen) and broker logins (`broker_logins`) in PostgreSQL. Credentials are
//! registered only for a screen in service, checked on the screen's row locked in the
//! registering transaction: a decommissioning committed meanwhile waits for it or wins.

use std::collections::{BTreeMap, HashMap, HashSet};

use ::postgres::{GenericClient, Transaction};
use chrono::{DateTime, Utc};

use super::{decode, encode, off_worker, read_snapshot, to_i64, to_u64, PgStore};
use crate::store::{
    BrokerLoginStore, DocumentStore, IssuedDocument, KeyStore, PlannedStore, Published,
    ScreenEntity, ScreenKey, StoreError,
};

/// Rows written by one statement.
const BATCH: usize = 1_000;

impl DocumentStore for PgStore {
    fn published(&self) -> Result<HashMap<String, Published>, StoreError> {
        off_worker(|| {
            let rows = self
                .client()?
                .query("SELECT screen_id, body FROM published", &[])?;
            by_screen(rows, "published document of")
        })
    }

    fn record_issued(&self, docs: &[IssuedDocument]) -> Result<(), StoreError> {
        off_worker(|| {
            if docs.is_empty() {
                return Ok(());
            }
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            write_issued(&mut tx, docs)?;
            tx.commit()?;
            Ok(())
        })
    }

    fn planned_store(&self) -> Option<&dyn PlannedStore> {
        Some(self)
    }

    fn issued(&self, screen: &str) -> Result<Vec<IssuedDocument>, StoreError> {
        off_worker(|| {
            read_snapshot(&mut *self.client()?, |tx| {
                let mut out: Vec<IssuedDocument> = Vec::new();
                for row in tx.query(
                    "SELECT version, body FROM documents WHERE screen_id = $1 ORDER BY version",
                    &[&screen],
                )? {
                    let version = to_u64(row.get(0), || format!("a document version of {screen}"))?;
                    let doc: IssuedDocument =
                        decode(|| format!("document {screen} v{version}"), row.get(1))?;
                    if doc.screen_id != screen || doc.version != version {
                        return Err(damaged(screen, "a document is filed under another key"));
                    }
                    out.push(doc);
                }
                let published: Option<Published> = tx
                    .query_opt(
                        "SELECT body FROM published WHERE screen_id = $1",
                        &[&screen],
                    )?
                    .map(|row| decode(|| format!("published document of {screen}"), row.get(0)))
                    .transpose()?;
                // What `record_issued` wrote together must still agree.
                super::super::published_agrees(screen, published.as_ref(), out.last())?;
                Ok(out)
            })
        })
    }
}

/// Keeps `docs` and makes each its screen's latest, in `tx` (see
/// [`DocumentStore::record_issued`]). Written a thousand rows to a statement (arrays
/// unnested): a city's publication is a few round trips, not two per screen. A later
/// document in `docs` for the same screen (or the same version) wins, as it would written
/// one by one.
pub(super) fn write_issued(
    tx: &mut Transaction<'_>,
    docs: &[IssuedDocument],
) -> Result<(), StoreError> {
    let mut latest: HashMap<&str, &IssuedDocument> = HashMap::new();
    let mut kept: BTreeMap<(&str, u64), &IssuedDocument> = BTreeMap::new();
    for d in docs {
        latest.insert(&d.screen_id, d);
        kept.insert((&d.screen_id, d.version), d);
    }
    let kept: Vec<&IssuedDocument> = kept.into_values().collect();
    for batch in kept.chunks(BATCH) {
        let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for d in batch {
            columns.0.push(d.screen_id.as_str());
            columns.1.push(to_i64(d.version, || {
                format!("the version of {}'s document", d.screen_id)
            })?);
            columns.2.push(d.in_force_from);
            columns.3.push(encode(d));
        }
        tx.execute(
            "INSERT INTO documents (screen_id, version, in_force_from, body)
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::jsonb[])
             ON CONFLICT (screen_id, version) DO UPDATE
             SET in_force_from = EXCLUDED.in_force_from, body = EXCLUDED.body",
            &[&columns.0, &columns.1, &columns.2, &columns.3],
        )?;
    }
    let latest: Vec<&IssuedDocument> = latest.into_values().collect();
    for batch in latest.chunks(BATCH) {
        let screens: Vec<&str> = batch.iter().map(|d| d.screen_id.as_str()).collect();
        let bodies: Vec<serde_json::Value> = batch
            .iter()
            .map(|d| {
                encode(&Published {
                    version: d.version,
                    content_hash: d.content_hash.clone(),
                    issued_at: Some(d.issued_at),
                    expires_at: Some(d.expires_at),
                })
            })
            .collect();
        tx.execute(
            "INSERT INTO published (screen_id, body)
             SELECT * FROM unnest($1::text[], $2::jsonb[])
             ON CONFLICT (screen_id) DO UPDATE SET body = EXCLUDED.body",
            &[&screens, &bodies],
        )?;
    }
    Ok(())
}

fn damaged(screen: &str, problem: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("the schedule documents of screen {screen}"),
        problem: problem.to_owned(),
    }
}

/// Whether `screen` is stored and not decommissioned, its row locked against a
/// decommissioning until the transaction ends.
fn lock_in_service(tx: &mut Transaction<'_>, screen: &str) -> Result<bool, StoreError> {
    let Some(row) = tx.query_opt(
        "SELECT body FROM entities WHERE kind = 'screen' AND id = $1 FOR SHARE",
        &[&screen],
    )?
    else {
        return Ok(false);
    };
    let entity: ScreenEntity = decode(|| format!("screen {screen:?}"), row.get(0))?;
    Ok(entity.decommissioned_at.is_none())
}

/// The screens in service among `screens`, read by `client`.
fn in_service(
    client: &mut impl GenericClient,
    screens: &[String],
) -> Result<HashSet<String>, StoreError> {
    let mut out = HashSet::new();
    for row in client.query(
        "SELECT id, body FROM entities WHERE kind = 'screen' AND id = ANY($1)",
        &[&screens],
    )? {
        let id: String = row.get(0);
        let entity: ScreenEntity = decode(|| format!("screen {id:?}"), row.get(1))?;
        if entity.decommissioned_at.is_none() {
            out.insert(id);
        }
    }
    Ok(out)
}

/// Appends a key to `screen`'s list, ending the previous one's validity at `at`.
fn push_key(
    tx: &mut Transaction<'_>,
    screen: &str,
    public_hex: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let mut keys: Vec<ScreenKey> = match tx.query_opt(
        "SELECT keys FROM screen_keys WHERE screen_id = $1 FOR UPDATE",
        &[&screen],
    )? {
        Some(row) => decode(|| format!("keys of screen {screen}"), row.get(0))?,
        None => Vec::new(),
    };
    if let Some(last) = keys.last_mut() {
        last.valid_until.get_or_insert(at);
    }
    keys.push(ScreenKey {
        public_hex: public_hex.to_owned(),
        valid_from: at,
        valid_until: None,
    });
    tx.execute(
        "INSERT INTO screen_keys (screen_id, keys) VALUES ($1, $2)
         ON CONFLICT (screen_id) DO UPDATE SET keys = EXCLUDED.keys",
        &[&screen, &encode(&keys)],
    )?;
    Ok(())
}

impl KeyStore for PgStore {
    fn screen_keys(&self) -> Result<HashMap<String, Vec<ScreenKey>>, StoreError> {
        off_worker(|| {
            let rows = self
                .client()?
                .query("SELECT screen_id, keys FROM screen_keys", &[])?;
            by_screen(rows, "keys of screen")
        })
    }

    fn keys_of(&self, screens: &[&str]) -> Result<HashMap<String, Vec<ScreenKey>>, StoreError> {
        off_worker(|| {
            let rows = self.client()?.query(
                "SELECT screen_id, keys FROM screen_keys WHERE screen_id = ANY($1)",
                &[&screens],
            )?;
            by_screen(rows, "keys of screen")
        })
    }

    fn add_screen_key(
        &self,
        screen: &str,
        public_hex: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        off_worker(|| {
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            if !lock_in_service(&mut tx, screen)? {
                return Err(crate::provision::not_in_service(screen));
            }
            push_key(&mut tx, screen, public_hex, at)?;
            tx.commit()?;
            Ok(())
        })
    }
}

impl BrokerLoginStore for PgStore {
    fn add_screen_credentials(
        &self,
        screen: &str,
        public_hex: &str,
        broker_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        off_worker(|| {
            let mut client = self.client()?;
            let mut tx = client.transaction()?;
            // Checked in the writing transaction: a screen decommissioned since the config
            // was prepared gets no credentials.
            if !lock_in_service(&mut tx, screen)? {
                return Err(crate::provision::not_in_service(screen));
            }
            push_key(&mut tx, screen, public_hex, at)?;
            tx.execute(
                "INSERT INTO broker_logins (screen_id, hash) VALUES ($1, $2)
                 ON CONFLICT (screen_id) DO UPDATE SET hash = EXCLUDED.hash",
                &[&screen, &broker_hash],
            )?;
            tx.commit()?;
            Ok(())
        })
    }

    fn broker_login(&self, screen: &str) -> Result<Option<String>, StoreError> {
        off_worker(|| {
            read_snapshot(&mut *self.client()?, |tx| {
                let Some(row) = tx.query_opt(
                    "SELECT hash FROM broker_logins WHERE screen_id = $1",
                    &[&screen],
                )?
                else {
                    return Ok(None);
                };
                let serving = in_service(tx, &[screen.to_owned()])?;
                Ok((!serving.is_empty()).then(|| row.get(0)))
            })
        })
    }

    fn broker_logins(&self) -> Result<BTreeMap<String, String>, StoreError> {
        off_worker(|| {
            read_snapshot(&mut *self.client()?, |tx| {
                let mut all: BTreeMap<String, String> = tx
                    .query("SELECT screen_id, hash FROM broker_logins", &[])?
                    .into_iter()
                    .map(|row| (row.get(0), row.get(1)))
                    .collect();
                let screens: Vec<String> = all.keys().cloned().collect();
                let serving = in_service(tx, &screens)?;
                all.retain(|screen, _| serving.contains(screen));
                Ok(all)
            })
        })
    }
}

/// Rows of `(screen id, JSON value)` by screen; `what` names a value in errors ("keys of
/// screen" for "keys of screen s1").
fn by_screen<T: serde::de::DeserializeOwned>(
    rows: Vec<::postgres::Row>,
    what: &str,
) -> Result<HashMap<String, T>, StoreError> {
    rows.into_iter()
        .map(|row| {
            let screen: String = row.get(0);
            let value = decode(|| format!("{what} {screen}"), row.get(1))?;
            Ok((screen, value))
        })
        .collect()
}
