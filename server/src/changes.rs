//! The change log, read a page at a time (`GET /api/v1/changes`, `signage changes`):
//! revisions oldest first (with the event entries: logins, refusals), optionally only those
//! touching one kind of entity or one id.

use crate::store::{CatalogueStore, EntityKind, Revision, StoreError};

/// Revisions after `after` (a revision number), at most `limit`, and the cursor of the
/// next page when there is more.
pub fn page(
    store: &dyn CatalogueStore,
    after: u64,
    limit: usize,
    entity: Option<EntityKind>,
    id: Option<&str>,
) -> Result<crate::http::Page<Revision>, StoreError> {
    let mut items = Vec::new();
    let mut cursor = after;
    loop {
        let chunk = store.revisions(cursor, 512)?;
        let Some(last) = chunk.last() else {
            return Ok(crate::http::Page { items, next: None });
        };
        cursor = last.number;
        for r in chunk {
            // Event entries change no entity: they are in the unfiltered log only.
            let wanted = (entity.is_none() && id.is_none())
                || r.changes
                    .iter()
                    .any(|c| entity.is_none_or(|k| c.entity == k) && id.is_none_or(|i| c.id == i));
            if wanted {
                items.push(r);
                if items.len() == limit {
                    let next = items.last().map(|r| r.number);
                    let more = !store.revisions(next.unwrap_or(u64::MAX), 1)?.is_empty();
                    return Ok(crate::http::Page {
                        items,
                        next: next.filter(|_| more).map(|n| n.to_string()),
                    });
                }
            }
        }
    }
}

/// A revision as `signage changes` prints it, one line per entity changed.
pub fn lines(r: &Revision) -> String {
    let event = r
        .event
        .map(|e| format!("[{}] ", e.as_str()))
        .unwrap_or_default();
    let mut out = format!(
        "revision {} by {} at {}: {event}{}\n",
        r.number,
        r.author,
        r.at.to_rfc3339(),
        r.comment
    );
    for c in &r.changes {
        let verb = match (&c.before, &c.after) {
            (None, Some(_)) => "added",
            (Some(_), Some(_)) => "changed",
            (Some(_), None) => "removed",
            (None, None) => "touched",
        };
        out.push_str(&format!("  {} {} {verb}\n", c.entity.as_str(), c.id));
    }
    out
}
