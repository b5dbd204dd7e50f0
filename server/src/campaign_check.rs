//! A campaign save staged into a snapshot (a create refuses a taken id, an edit needs the
//! campaign) and its dry run: the staged snapshot through the catalogue's own checks,
//! nothing stored, every refusal as a problem naming the field, the dayparts in words and
//! what the campaign would reach once approved. The HTTP layer's create, edit and
//! validate routes share these functions, so a dry run says what a save would. No IO.

use std::collections::BTreeSet;

use serde::Serialize;

use playlists::catalogue::CatalogueIndex;
use playlists::scenario::{FileCampaign, ScenarioError};

use crate::approval::{self, Actor, ApprovalError};
use crate::store::{CampaignEntity, Entity, Snapshot};

/// Why a save cannot even be staged.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("campaign {0:?} already exists")]
    Exists(String),
    #[error("no campaign {0:?}")]
    Missing(String),
    #[error(transparent)]
    Approval(#[from] ApprovalError),
}

/// Adds a new campaign to `s`: refused when a campaign or emergency has its id.
pub fn stage_new(s: &mut Snapshot, e: CampaignEntity) -> Result<(), StageError> {
    if s.campaigns.contains_key(&e.spec.id) || s.emergencies.contains_key(&e.spec.id) {
        return Err(StageError::Exists(e.spec.id));
    }
    s.put(Entity::Campaign(e));
    Ok(())
}

/// Replaces the rules of the campaign `spec.id` in `s` (a new draft unless `live`).
pub fn stage_edit(
    s: &mut Snapshot,
    spec: FileCampaign,
    live: bool,
    by: Actor<'_>,
) -> Result<(), StageError> {
    let Some(c) = s.campaigns.get_mut(&spec.id) else {
        return Err(StageError::Missing(spec.id));
    };
    Ok(approval::edit_campaign(c, spec, live, by)?)
}

/// One reason a save would be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The campaign's field to blame (`dayparts[1]`, `target`, `creatives[0]`, `id`, …),
    /// or `catalogue` when the change breaks something else.
    #[schema(example = "dayparts[0]")]
    pub field: String,
    pub message: String,
}

/// A daypart in words; `en` and `zh` are null when it does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct DaypartText {
    #[schema(example = "* 7-8 * * 1-5")]
    pub cron: String,
    #[schema(example = "every minute from 07:00 to 08:59, Monday to Friday")]
    pub en: Option<String>,
    #[schema(example = "周一至周五 07:00至08:59 每分钟")]
    pub zh: Option<String>,
}

/// What a save of the campaign would say, and what it would reach once approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Validation {
    /// Empty when a save would be accepted.
    pub problems: Vec<Problem>,
    pub dayparts: Vec<DaypartText>,
    /// The screens it targets (0 while there are problems).
    pub screens: usize,
    /// The districts of those screens' venues.
    pub districts: Vec<String>,
    /// The OpenOOH venue types of those venues.
    pub venue_types: Vec<String>,
}

/// A daypart in words, or why it does not parse.
pub fn daypart_text(cron: &str) -> (DaypartText, Option<String>) {
    match crate::cron_text::describe(cron) {
        Ok(t) => (
            DaypartText {
                cron: cron.to_owned(),
                en: Some(t.en),
                zh: Some(t.zh),
            },
            None,
        ),
        Err(e) => (
            DaypartText {
                cron: cron.to_owned(),
                en: None,
                zh: None,
            },
            Some(e.to_string()),
        ),
    }
}

/// The dry run: `spec` staged in a copy of `snapshot` as a create (`new`), an edit (`new`
/// false) or whichever its id says (`None`), then [`crate::catalogue::check`]ed as a
/// commit would be. Each daypart that does not parse is a problem of its own; the
/// catalogue's check stops at its first refusal.
pub fn validate(
    snapshot: &Snapshot,
    spec: FileCampaign,
    new: Option<bool>,
    live: bool,
    by: Actor<'_>,
) -> Validation {
    let mut v = Validation {
        problems: Vec::new(),
        dayparts: Vec::new(),
        screens: 0,
        districts: Vec::new(),
        venue_types: Vec::new(),
    };
    for (i, cron) in spec.dayparts.iter().enumerate() {
        let (text, problem) = daypart_text(cron);
        v.dayparts.push(text);
        v.problems.extend(problem.map(|message| Problem {
            field: format!("dayparts[{i}]"),
            message,
        }));
    }
    let id = spec.id.clone();
    let mut after = snapshot.clone();
    let staged = if new.unwrap_or(!snapshot.campaigns.contains_key(&id)) {
        stage_new(&mut after, approval::new_campaign(spec, live, by))
    } else {
        stage_edit(&mut after, spec, live, by)
    };
    if let Err(e) = staged {
        v.problems.push(Problem {
            field: "id".into(),
            message: e.to_string(),
        });
        return v;
    }
    if let Err(e) = crate::catalogue::check(&after) {
        let problem = match e {
            ScenarioError::Invalid {
                entity: "campaign",
                id: ref of,
                ref field,
                ref problem,
            } if *of == id => Problem {
                field: field.clone(),
                message: problem.clone(),
            },
            other => Problem {
                field: "catalogue".into(),
                message: other.to_string(),
            },
        };
        if !v.problems.iter().any(|p| p.field == problem.field) {
            v.problems.push(problem);
        }
        return v;
    }
    if !v.problems.is_empty() {
        return v;
    }
    if let Ok(catalogue) = crate::catalogue::build_drafts(&after) {
        let index = CatalogueIndex::new(&catalogue);
        if let Some(c) = catalogue.campaigns.iter().find(|c| c.id.as_str() == id) {
            let (mut districts, mut types) = (BTreeSet::new(), BTreeSet::new());
            for s in index.targeted(c) {
                v.screens += 1;
                if let Some(venue) = index.venue(s.venue.as_str()) {
                    districts.extend(venue.district.clone());
                    types.insert(venue.venue_type.as_str().to_owned());
                }
            }
            v.districts = districts.into_iter().collect();
            v.venue_types = types.into_iter().collect();
        }
    }
    v
}
