//! The `renditions` table: the index of renditions made, keyed by
//! [`rendition_key`](crate::store::rendition_key) (source SHA-256 first, so one original's
//! renditions are one key range). The files themselves are media like any other.
//! `rendition_finishes` numbers the renditions made in the background as they finish
//! (number -> index key; a write transaction is one at a time, so numbers rise in commit
//! order).

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::{decode, encode, RedbStore};
use crate::store::{RenditionStore, StoreError, StoredRendition};

pub(super) const RENDITIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("renditions");
pub(super) const FINISHES: TableDefinition<u64, &str> = TableDefinition::new("rendition_finishes");

impl RenditionStore for RedbStore {
    fn rendition(&self, key: &str) -> Result<Option<StoredRendition>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(RENDITIONS)?;
            t.get(key)?
                .map(|v| decode(|| format!("rendition {key}"), v.value()))
                .transpose()
        })
    }

    fn put_rendition(&self, rendition: &StoredRendition) -> Result<(), StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_write()?;
            tx.open_table(RENDITIONS)?
                .insert(rendition.key().as_str(), encode(rendition).as_slice())?;
            tx.commit()?;
            Ok(())
        })
    }

    fn put_finished_rendition(&self, rendition: &StoredRendition) -> Result<u64, StoreError> {
        self.guarded(|| {
            let key = rendition.key();
            let tx = self.db.begin_write()?;
            tx.open_table(RENDITIONS)?
                .insert(key.as_str(), encode(rendition).as_slice())?;
            let n = {
                let mut t = tx.open_table(FINISHES)?;
                let n = t.last()?.map_or(0, |(n, _)| n.value()) + 1;
                t.insert(n, key.as_str())?;
                n
            };
            tx.commit()?;
            Ok(n)
        })
    }

    fn finished_renditions(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, StoredRendition)>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let (finishes, renditions) = (tx.open_table(FINISHES)?, tx.open_table(RENDITIONS)?);
            let mut out = Vec::new();
            for row in finishes.range(after.saturating_add(1)..)?.take(limit) {
                let (n, key) = row?;
                let key = key.value();
                let body = renditions.get(key)?.ok_or_else(|| StoreError::Corrupt {
                    what: format!("rendition finish {}", n.value()),
                    problem: format!("it names {key}, which is not indexed"),
                })?;
                out.push((
                    n.value(),
                    decode(|| format!("rendition {key}"), body.value())?,
                ));
            }
            Ok(out)
        })
    }

    fn last_finished_rendition(&self) -> Result<u64, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(FINISHES)?;
            let last = t.last()?.map_or(0, |(n, _)| n.value());
            Ok(last)
        })
    }

    fn renditions_of(&self, source: &str) -> Result<Vec<StoredRendition>, StoreError> {
        self.guarded(|| {
            let tx = self.db.begin_read()?;
            let t = tx.open_table(RENDITIONS)?;
            // Keys are `{source}/…`; '0' follows '/' in ASCII.
            let (from, to) = (format!("{source}/"), format!("{source}0"));
            let mut out = Vec::new();
            for row in t.range(from.as_str()..to.as_str())? {
                let (k, v) = row?;
                out.push(decode(|| format!("rendition {}", k.value()), v.value())?);
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::OpenMode;

    fn rendition(source: &str, width: u32, fit: &str) -> StoredRendition {
        StoredRendition {
            source: source.into(),
            width,
            height: 100,
            fit: fit.into(),
            background: (fit == "fit").then(|| "#000000".into()),
            sha256: format!("{width:064x}"),
            bytes: u64::from(width),
            frame: None,
        }
    }

    #[test]
    fn kept_by_source_size_and_fit() {
        let dir = tempfile::tempdir().unwrap();
        let store = RedbStore::open(dir.path(), OpenMode::Create).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let made = [
            rendition(&a, 10, "fit"),
            rendition(&a, 20, "fill"),
            rendition(&b, 30, "fit"),
        ];
        for r in &made {
            store.put_rendition(r).unwrap();
        }
        assert_eq!(
            store.rendition(&made[1].key()).unwrap(),
            Some(made[1].clone())
        );
        assert_eq!(
            store.rendition(&rendition(&a, 20, "fit").key()).unwrap(),
            None
        );
        assert_eq!(store.renditions_of(&a).unwrap(), made[..2].to_vec());
        assert_eq!(store.renditions_of(&b).unwrap(), made[2..].to_vec());
        drop(store);
        let store = RedbStore::open(dir.path(), OpenMode::Existing).unwrap();
        assert_eq!(
            store.renditions_of(&a).unwrap().len(),
            2,
            "kept across opens"
        );
    }
}
