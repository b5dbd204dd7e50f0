//! `playlists`: the domain and the rules of signage. Venues, screens, creatives, campaigns,
//! targeting, dayparts, the slot planner, scenario validation, the wire messages and their
//! signatures. Pure: no IO, no clock reads (time is a parameter), no async runtime.
//!
//! The server and the agent run the same [`planner::Planner`], so what the server plans is
//! exactly what an agent plays.

pub mod catalogue;
pub mod cron;
pub mod explain;
pub mod ids;
pub mod model;
pub mod planner;
pub mod scenario;
pub mod taxonomy;
pub mod timefmt;
pub mod wire;

mod openooh_data;

pub use catalogue::Catalogue;
pub use ids::{CampaignId, CreativeId, ScreenId, Sha256, VenueId};
pub use model::{
    Campaign, Creative, Fit, Flight, MediaKind, Priority, Screen, ScreenSchedule, Target, Venue,
};
pub use planner::{DayPlan, PlanKey, Planner, Play, Tally, TallyEntry};
