//! What a reviewer reads beside a submission, and what a preview picks from: the version
//! of a campaign that was last rejected (found in the change log), and the screens whose
//! id, venue, venue name, district or venue type match a search. Pure functions over
//! revisions and a snapshot; the HTTP layer (`http/review.rs`) reads the store and pages.

use serde::Serialize;

use playlists::scenario::FileCampaign;

use crate::store::{Approval, ApprovalStatus, CampaignEntity, EntityKind, Revision, Snapshot};

/// A campaign's version as it was when an approver rejected it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RejectedVersion {
    pub spec: FileCampaign,
    /// Who submitted it, who rejected it, when, and why.
    pub approval: Approval,
    /// The revision of the change log that recorded the rejection.
    pub revision: u64,
}

/// Keeps, over the revisions it is shown (oldest first), the last rejected version of
/// one campaign.
#[derive(Debug, Clone)]
pub struct LastRejected {
    id: String,
    found: Option<RejectedVersion>,
}

impl LastRejected {
    pub fn new(id: &str) -> LastRejected {
        LastRejected {
            id: id.to_owned(),
            found: None,
        }
    }

    /// Looks at one revision (call in revision order).
    pub fn see(&mut self, revision: &Revision) {
        for change in &revision.changes {
            if change.entity != EntityKind::Campaign || change.id != self.id {
                continue;
            }
            let Some(after) = &change.after else { continue };
            let Ok(c) = serde_json::from_value::<CampaignEntity>(after.clone()) else {
                continue;
            };
            if c.approval.status != ApprovalStatus::Rejected {
                continue;
            }
            // The same rejection seen again (an archive of a rejected campaign) keeps the
            // revision that made it.
            let same = self
                .found
                .as_ref()
                .is_some_and(|f| f.spec == c.spec && f.approval == c.approval);
            if !same {
                self.found = Some(RejectedVersion {
                    spec: c.spec,
                    approval: c.approval,
                    revision: revision.number,
                });
            }
        }
    }

    pub fn finish(self) -> Option<RejectedVersion> {
        self.found
    }
}

/// A screen as a preview's picker shows it: with its venue's names, district and zone.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ScreenSummary {
    pub id: String,
    pub venue_id: String,
    /// The venue's name (Chinese in the Beijing scenario).
    pub venue_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub venue_name_en: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    pub venue_type: String,
    /// The venue's IANA time zone.
    pub timezone: String,
    pub width: u32,
    pub height: u32,
    pub slot_seconds: u32,
}

/// The screens in service whose id, venue id, venue names, district or venue type contain
/// every word of `query` (case-insensitive), in id order.
pub fn find_screens(snapshot: &Snapshot, query: &str) -> Vec<ScreenSummary> {
    let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
    snapshot
        .screens
        .values()
        .filter(|s| s.decommissioned_at.is_none())
        .filter_map(|s| {
            let v = snapshot.venues.get(&s.spec.venue)?;
            Some(ScreenSummary {
                id: s.spec.id.clone(),
                venue_id: v.spec.id.clone(),
                venue_name: v.spec.name.clone(),
                venue_name_en: v.spec.name_en.clone(),
                district: v.spec.district.clone(),
                venue_type: v.spec.venue_type.clone(),
                timezone: v.spec.timezone.clone().unwrap_or_else(|| "UTC".into()),
                width: s.spec.resolution.width,
                height: s.spec.resolution.height,
                slot_seconds: s.spec.slot_seconds,
            })
        })
        .filter(|s| {
            let hay = [
                Some(&s.id),
                Some(&s.venue_id),
                Some(&s.venue_name),
                s.venue_name_en.as_ref(),
                s.district.as_ref(),
                Some(&s.venue_type),
            ]
            .into_iter()
            .flatten()
            .map(|x| x.to_lowercase())
            .collect::<Vec<_>>()
            .join("\n");
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use serde_json::json;

    use super::*;
    use crate::store::ChangeRecord;

    fn spec(weight: u32) -> FileCampaign {
        serde_json::from_value(json!({
            "id": "c1", "name": "C", "priority": "normal", "weight": weight,
            "flight": {"start": "2023-12-20T00:00:00+08:00", "end": "2023-12-21T00:00:00+08:00"},
            "dayparts": ["* * * * *"], "target": {}, "creatives": ["k"]
        }))
        .expect("campaign")
    }

    fn revision(number: u64, id: &str, weight: u32, status: ApprovalStatus) -> Revision {
        let entity = CampaignEntity {
            spec: spec(weight),
            state: crate::store::CampaignState::Draft,
            archived_at: None,
            approval: Approval {
                status,
                reason: (status == ApprovalStatus::Rejected).then(|| "too loud".to_owned()),
                ..Approval::draft()
            },
            approved: None,
        };
        Revision {
            number,
            author: "a".into(),
            at: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
            comment: String::new(),
            changes: vec![ChangeRecord {
                entity: EntityKind::Campaign,
                id: id.into(),
                before: None,
                after: Some(serde_json::to_value(entity).unwrap()),
            }],
            event: None,
        }
    }

    /// (revisions, expected (revision, weight) of the last rejected version of c1).
    fn check(revisions: &[Revision], expect: Option<(u64, u32)>) {
        let mut last = LastRejected::new("c1");
        for r in revisions {
            last.see(r);
        }
        let got = last.finish().map(|f| (f.revision, f.spec.weight));
        assert_eq!(got, expect);
    }

    #[test]
    fn the_last_rejection_of_the_campaign_is_found() {
        use ApprovalStatus::*;
        check(&[], None);
        check(
            &[revision(1, "c1", 1, Draft), revision(2, "c1", 1, Submitted)],
            None,
        );
        check(
            &[
                revision(1, "c1", 1, Submitted),
                revision(2, "c1", 1, Rejected),
                revision(3, "c1", 2, Draft),
            ],
            Some((2, 1)),
        );
        check(
            &[
                revision(2, "c1", 1, Rejected),
                revision(3, "c1", 2, Rejected),
                revision(4, "c1", 2, Rejected),
                revision(5, "c2", 9, Rejected),
            ],
            Some((3, 2)),
        );
    }

    #[test]
    fn screens_are_found_by_every_word() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).expect("store");
        let scenario = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/beijing-role-models");
        crate::import::import(
            &crate::catalogue::CatalogueService::new(store.clone()),
            &scenario,
            &crate::import::ImportOptions::admin(),
        )
        .expect("import");
        let snapshot = store.snapshot().unwrap();
        let ids = |q: &str| -> Vec<String> {
            find_screens(&snapshot, q)
                .into_iter()
                .map(|s| s.id)
                .collect()
        };
        assert_eq!(ids("").len(), snapshot.screens.len());
        assert!(ids("xidan").contains(&"bj-metro-xidan-s1".to_owned()));
        let station = ids("西单");
        assert!(
            !station.is_empty() && station.iter().all(|s| s.contains("xidan")),
            "{station:?}"
        );
        let xicheng = find_screens(&snapshot, "XICHENG subway");
        assert!(!xicheng.is_empty());
        assert!(xicheng
            .iter()
            .all(|s| s.district.as_deref() == Some("xicheng") && s.venue_type.contains("subway")));
        assert!(ids("no such place").is_empty());
        assert_eq!(
            find_screens(&snapshot, "xidan")[0].timezone,
            "Asia/Shanghai"
        );
    }
}
