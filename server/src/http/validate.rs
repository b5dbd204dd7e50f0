//! `POST /api/v1/campaigns/validate`: a dry run of a campaign save for the dashboard's
//! editor (every check a create or edit runs, on a copy of the catalogue, nothing stored),
//! with the dayparts as readable text and what the campaign would reach;
//! `POST /api/v1/dayparts/text`: dayparts in words (the calendar's); and
//! `GET /api/v1/taxonomy`: the OpenOOH venue-type tree the editor's targeting offers.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use playlists::catalogue::CatalogueIndex;
use playlists::scenario::{FileCampaign, ScenarioError};
use playlists::taxonomy::VenueType;

use super::campaigns::{at_once, stage_edit, stage_new, EDIT, READ};
use super::{blocking, ApiError, ApiJson, ApiQuery, Caller, ErrorBody};
use crate::app::Shared;
use crate::store::Snapshot;

pub fn router() -> OpenApiRouter<Arc<Shared>> {
    OpenApiRouter::new()
        .routes(routes!(validate_campaign))
        .routes(routes!(taxonomy))
        .routes(routes!(dayparts_text))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct ValidateQuery {
    /// `true`: checked as a create (its id must be free); `false`: as an edit of the
    /// campaign with its id; absent: an edit when that campaign exists, else a create.
    new: Option<bool>,
}

/// One reason a save would be refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The campaign's field to blame (`dayparts[1]`, `target`, `creatives[0]`, `id`, …).
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

/// Checks a campaign exactly as a save would (the same staging and the same catalogue
/// checks), without storing anything; 200 with the problems, if any.
#[utoipa::path(post, path = "/api/v1/campaigns/validate", params(ValidateQuery), request_body = FileCampaign,
    responses((status = 200, body = Validation), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn validate_campaign(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ValidateQuery>,
    ApiJson(spec): ApiJson<FileCampaign>,
) -> Result<Json<Validation>, ApiError> {
    caller.require(EDIT)?;
    let live = at_once(&shared);
    let name = caller.name().to_owned();
    let at = shared.clock.now();
    let result = blocking(move || {
        let snapshot = shared.store.snapshot()?;
        let by = crate::approval::Actor { name: &name, at };
        Ok(validate(&snapshot, spec, q.new, live, by))
    })
    .await?;
    Ok(Json(result))
}

/// The dry run: `spec` staged in a copy of `snapshot` as a create (`new`) or an edit, then
/// [`crate::catalogue::check`]ed.
pub fn validate(
    snapshot: &Snapshot,
    spec: FileCampaign,
    new: Option<bool>,
    live: bool,
    by: crate::approval::Actor<'_>,
) -> Validation {
    let mut problems = Vec::new();
    let mut dayparts = Vec::new();
    for (i, cron) in spec.dayparts.iter().enumerate() {
        match crate::cron_text::describe(cron) {
            Ok(t) => dayparts.push(DaypartText {
                cron: cron.clone(),
                en: Some(t.en),
                zh: Some(t.zh),
            }),
            Err(e) => {
                problems.push(Problem {
                    field: format!("dayparts[{i}]"),
                    message: e.to_string(),
                });
                dayparts.push(DaypartText {
                    cron: cron.clone(),
                    en: None,
                    zh: None,
                });
            }
        }
    }
    let id = spec.id.clone();
    let mut after = snapshot.clone();
    let new = new.unwrap_or(!snapshot.campaigns.contains_key(&id));
    let staged = if new {
        stage_new(&mut after, crate::approval::new_campaign(spec, live, by))
    } else {
        stage_edit(&mut after, spec, live, by)
    };
    let mut reach = Validation {
        problems: Vec::new(),
        dayparts,
        screens: 0,
        districts: Vec::new(),
        venue_types: Vec::new(),
    };
    if let Err(e) = staged {
        problems.push(Problem {
            field: e.field().unwrap_or("id").to_owned(),
            message: e.message().to_owned(),
        });
    } else if let Err(e) = crate::catalogue::check(&after) {
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
            // Another entity the change breaks: the save names it.
            other => Problem {
                field: "catalogue".into(),
                message: other.to_string(),
            },
        };
        if !problems.iter().any(|p| p.field == problem.field) {
            problems.push(problem);
        }
    } else if let Ok(catalogue) = crate::catalogue::build_drafts(&after) {
        let index = CatalogueIndex::new(&catalogue);
        if let Some(c) = catalogue.campaigns.iter().find(|c| c.id.as_str() == id) {
            let (mut districts, mut types) = (BTreeSet::new(), BTreeSet::new());
            for s in index.targeted(c) {
                reach.screens += 1;
                if let Some(v) = index.venue(s.venue.as_str()) {
                    districts.extend(v.district.clone());
                    types.insert(v.venue_type.as_str().to_owned());
                }
            }
            reach.districts = districts.into_iter().collect();
            reach.venue_types = types.into_iter().collect();
        }
    }
    reach.problems = problems;
    reach
}

/// A daypart in words, or why it does not parse.
fn daypart_text(cron: &str) -> (DaypartText, Option<String>) {
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

/// Crontab dayparts to put in words.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Dayparts {
    /// At most 200.
    #[schema(example = json!(["* 7-8 * * 1-5"]))]
    pub dayparts: Vec<String>,
}

/// Dayparts in English and Chinese, in order (null texts for one that does not parse).
#[utoipa::path(post, path = "/api/v1/dayparts/text", request_body = Dayparts,
    responses((status = 200, body = Vec<DaypartText>), (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
async fn dayparts_text(
    caller: Caller,
    ApiJson(body): ApiJson<Dayparts>,
) -> Result<Json<Vec<DaypartText>>, ApiError> {
    caller.require(READ)?;
    if body.dayparts.len() > 200 {
        return Err(ApiError::invalid_field(
            "dayparts",
            "more than 200 dayparts",
        ));
    }
    Ok(Json(
        body.dayparts.iter().map(|d| daypart_text(d).0).collect(),
    ))
}

/// A venue type of the OpenOOH taxonomy.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TaxonomyNode {
    #[schema(example = 10502)]
    pub id: u32,
    /// The value targeting names (`transit.subway.platform`).
    #[schema(example = "transit.subway.platform")]
    pub value: String,
    #[schema(example = "Subway Platform")]
    pub name: String,
    /// The enclosing type's id; null for a top-level category.
    pub parent: Option<u32>,
}

/// The OpenOOH 1.2.1 venue types, parents before their children.
#[utoipa::path(get, path = "/api/v1/taxonomy",
    responses((status = 200, body = Vec<TaxonomyNode>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
async fn taxonomy(caller: Caller) -> Result<Json<Vec<TaxonomyNode>>, ApiError> {
    caller.require(READ)?;
    Ok(Json(
        VenueType::all()
            .map(|t| TaxonomyNode {
                id: t.id(),
                value: t.as_str().to_owned(),
                name: t.display_name().to_owned(),
                parent: t.parent().map(VenueType::id),
            })
            .collect(),
    ))
}
