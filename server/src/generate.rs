//! `signage scenario generate`: a city-sized `signage-scenario/1` directory made from a base
//! scenario (the Beijing one) and a seed, for load tests and benchmarks.
//!
//! The base network is kept as it is (its venues and screens, so every campaign target,
//! even one naming screens or venues by id, still matches), and generated venues and
//! screens are added around it up to the asked counts: venue types in a city's mix
//! (mostly community boards), with the OpenOOH ids, resolutions, slot lengths, operating
//! hours and tags such venues have, spread over Beijing's 16 districts by population,
//! each at a point inside its district. The base's creatives, campaigns and events are
//! reused verbatim and its media files hard-linked (copied where linking fails). Only
//! venue types the base scenario has are generated, with the base's OpenOOH ids, and only
//! resolutions of the aspect ratios its creatives come in.
//!
//! The output is a function of the base and [`GenerateOptions`]: the same seed gives the
//! same `scenario.json` bytes. Validating it (measuring media, checking every field) is
//! `import::load`'s job; the CLI wiring is `cli`'s.

use std::collections::{BTreeMap, HashSet};
use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use playlists::scenario::{self, FileVenue, ScenarioError};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateOptions {
    /// Venues in all, the base scenario's included.
    pub venues: usize,
    /// Screens in all, the base scenario's included.
    pub screens: usize,
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenerateSummary {
    pub venues: usize,
    pub screens: usize,
    pub creatives: usize,
    pub campaigns: usize,
    /// Media files linked or copied into the output directory.
    pub media_files: usize,
    /// Screens per district; moving venues (trains) have none and are counted apart.
    pub screens_by_district: BTreeMap<String, usize>,
    pub moving_screens: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Scenario {
        path: PathBuf,
        source: ScenarioError,
    },
    #[error("{path}: the base scenario has none of the venue types a city is generated from")]
    NoVenueTypes { path: PathBuf },
    #[error("--venues {asked}: at least {min} needed (the base scenario's venues are all kept, so every campaign target still matches)")]
    TooFewVenues { asked: usize, min: usize },
    #[error("--screens {asked}: at least {min} needed for {venues} venues (the base scenario's screens and one for every generated venue)")]
    TooFewScreens {
        asked: usize,
        min: usize,
        venues: usize,
    },
    #[error("--screens {asked}: more screens than the base scenario's {base} need generated venues to stand in: raise --venues above {venues}")]
    NoVenuesForScreens {
        asked: usize,
        base: usize,
        venues: usize,
    },
    #[error("creative {id:?}: field \"file\": {file:?} must be a relative path inside the scenario directory")]
    Escape { id: String, file: String },
    #[error("{path} exists and is not empty: generate into a new or empty directory")]
    OutNotEmpty { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Writes a scenario of `opts.venues` venues and `opts.screens` screens into `out` (created,
/// or empty), from the scenario directory `base`.
pub fn generate(
    base: &Path,
    out: &Path,
    opts: &GenerateOptions,
) -> Result<GenerateSummary, GenerateError> {
    let path = base.join("scenario.json");
    let text = std::fs::read_to_string(&path).map_err(|source| GenerateError::Read {
        path: path.clone(),
        source,
    })?;
    let file = scenario::parse(&text).map_err(|source| GenerateError::Scenario {
        path: path.clone(),
        source,
    })?;
    let raw: serde_json::Value = serde_json::from_str(&text).expect("parsed once already");
    let media: Vec<(String, String)> = file.media_files();
    for (id, rel) in &media {
        if !is_inside(rel) {
            return Err(GenerateError::Escape {
                id: id.clone(),
                file: rel.clone(),
            });
        }
    }

    let kinds: Vec<(&Kind, Option<u32>)> = KINDS
        .iter()
        .filter_map(|k| {
            let v = file.venues.iter().find(|v| v.venue_type == k.venue_type)?;
            Some((k, v.openooh_id))
        })
        .collect();
    if kinds.is_empty() {
        return Err(GenerateError::NoVenueTypes { path });
    }
    let (base_venues, base_screens) = (file.venues.len(), file.screens.len());
    if opts.venues < base_venues {
        return Err(GenerateError::TooFewVenues {
            asked: opts.venues,
            min: base_venues,
        });
    }
    let min_screens = base_screens + (opts.venues - base_venues);
    if opts.screens < min_screens {
        return Err(GenerateError::TooFewScreens {
            asked: opts.screens,
            min: min_screens,
            venues: opts.venues,
        });
    }
    if opts.venues == base_venues && opts.screens > base_screens {
        return Err(GenerateError::NoVenuesForScreens {
            asked: opts.screens,
            base: base_screens,
            venues: opts.venues,
        });
    }

    let mut venues: Vec<OutVenue> = file.venues.iter().map(OutVenue::from_file).collect();
    let mut screens: Vec<OutScreen> = file
        .screens
        .iter()
        .map(|s| OutScreen {
            id: s.id.clone(),
            venue: s.venue.clone(),
            resolution: Resolution {
                width: s.resolution.width,
                height: s.resolution.height,
            },
            slot_seconds: s.slot_seconds,
        })
        .collect();
    let mut rng = SplitMix64::new(opts.seed);
    let made = city(
        &mut rng,
        &kinds,
        opts.venues - base_venues,
        opts.screens - base_screens,
    );
    for g in made {
        for k in 1..=g.screens {
            screens.push(OutScreen {
                id: format!("{}-s{k}", g.venue.id),
                venue: g.venue.id.clone(),
                resolution: g.resolution,
                slot_seconds: g.slot_seconds,
            });
        }
        venues.push(g.venue);
    }

    let screens_by_district = {
        let district: BTreeMap<&str, Option<&str>> = venues
            .iter()
            .map(|v| (v.id.as_str(), v.district.as_deref()))
            .collect();
        let mut by = BTreeMap::new();
        for s in &screens {
            if let Some(d) = district[s.venue.as_str()] {
                *by.entry(d.to_owned()).or_insert(0) += 1;
            }
        }
        by
    };
    let summary = GenerateSummary {
        venues: venues.len(),
        screens: screens.len(),
        creatives: file.creatives.len(),
        campaigns: file.campaigns.len(),
        media_files: media
            .iter()
            .map(|(_, rel)| rel)
            .collect::<HashSet<_>>()
            .len(),
        moving_screens: screens.len() - screens_by_district.values().sum::<usize>(),
        screens_by_district,
    };

    let doc = OutScenario {
        format: scenario::FORMAT,
        name: format!(
            "{} (generated city: {} venues, {} screens, seed {})",
            file.name, opts.venues, opts.screens, opts.seed
        ),
        timezone: &file.timezone,
        window: &raw["window"],
        venues,
        screens,
        creatives: &raw["creatives"],
        campaigns: &raw["campaigns"],
        events: raw.get("events"),
    };
    let mut json = serde_json::to_vec_pretty(&doc).expect("plain data serialises");
    json.push(b'\n');

    prepare_out(out)?;
    for rel in media.iter().map(|(_, rel)| rel).collect::<HashSet<_>>() {
        link_or_copy(&base.join(rel), &out.join(rel))?;
    }
    let target = out.join("scenario.json");
    std::fs::write(&target, json).map_err(|source| GenerateError::Write {
        path: target,
        source,
    })?;
    Ok(summary)
}

fn is_inside(rel: &str) -> bool {
    let p = Path::new(rel);
    !p.is_absolute() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

fn prepare_out(out: &Path) -> Result<(), GenerateError> {
    let write_err = |source| GenerateError::Write {
        path: out.to_owned(),
        source,
    };
    match std::fs::read_dir(out) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(GenerateError::OutNotEmpty {
                    path: out.to_owned(),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir_all(out).map_err(write_err)
        }
        Err(e) => Err(write_err(e)),
    }
}

fn link_or_copy(from: &Path, to: &Path) -> Result<(), GenerateError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|source| GenerateError::Write {
            path: parent.to_owned(),
            source,
        })?;
    }
    if std::fs::hard_link(from, to).is_ok() {
        return Ok(());
    }
    match std::fs::copy(from, to) {
        Ok(_) => Ok(()),
        Err(source) if !from.exists() => Err(GenerateError::Read {
            path: from.to_owned(),
            source,
        }),
        Err(source) => Err(GenerateError::Write {
            path: to.to_owned(),
            source,
        }),
    }
}

/// A generated venue with its screens' shape.
struct Generated {
    venue: OutVenue,
    screens: usize,
    resolution: Resolution,
    slot_seconds: u32,
}

/// `venues` venues holding `screens` screens: kinds by their share, districts by population,
/// one screen each and the rest dealt by each kind's screen weight.
fn city(
    rng: &mut SplitMix64,
    kinds: &[(&Kind, Option<u32>)],
    venues: usize,
    screens: usize,
) -> Vec<Generated> {
    let kind_weights: Vec<u32> = kinds.iter().map(|(k, _)| k.share).collect();
    let district_weights: Vec<u32> = DISTRICTS.iter().map(|d| d.population).collect();
    let mut out = Vec::with_capacity(venues);
    let mut cumulative = Vec::with_capacity(venues);
    let mut total = 0u64;
    for n in 1..=venues {
        let (kind, openooh_id) = kinds[rng.weighted(&kind_weights)];
        let district = (!kind.moving).then(|| &DISTRICTS[rng.weighted(&district_weights)]);
        out.push(venue(rng, kind, openooh_id, district, n));
        total += u64::from(kind.screen_weight);
        cumulative.push(total);
    }
    // The screens beyond one a venue, dealt by weight: a cumulative table, a binary search.
    for _ in 0..screens.saturating_sub(venues) {
        let x = rng.below(total);
        out[cumulative.partition_point(|&c| c <= x)].screens += 1;
    }
    out
}

/// One venue of `kind`, with one screen so far.
fn venue(
    rng: &mut SplitMix64,
    kind: &Kind,
    openooh_id: Option<u32>,
    district: Option<&District>,
    n: usize,
) -> Generated {
    let (id, name, name_en) = match district {
        Some(d) => (
            format!("gen-{}-{}-{n:05}", d.name, kind.slug),
            format!("{}{}{n:05}", d.name_zh, kind.name_zh),
            format!("{} {} {n:05}", d.name_en, kind.name_en),
        ),
        None => (
            format!("gen-{}-{n:05}", kind.slug),
            format!("{}{n:05}", kind.name_zh),
            format!("{} {n:05}", kind.name_en),
        ),
    };
    let mut tags: Vec<String> = Vec::new();
    if kind.on_a_line {
        tags.push(format!(
            "line-{}",
            LINES[rng.below(LINES.len() as u64) as usize]
        ));
    }
    tags.extend(kind.tags.iter().map(|t| (*t).to_owned()));
    for (tag, per_mille) in kind.sometimes {
        if rng.below(1000) < u64::from(*per_mille) {
            tags.push((*tag).to_owned());
        }
    }
    let hours = kind.hours[rng.weighted(&kind.hours.iter().map(|h| h.1).collect::<Vec<_>>())].0;
    let ((width, height), slot_seconds, _) =
        kind.resolutions[rng.weighted(&kind.resolutions.iter().map(|r| r.2).collect::<Vec<_>>())];
    let location = district.map(|d| d.point(rng));
    Generated {
        venue: OutVenue {
            id,
            name,
            name_en: Some(name_en),
            venue_type: kind.venue_type.to_owned(),
            openooh_id,
            district: district.map(|d| d.name.to_owned()),
            location,
            tags,
            operating_hours: hours.to_owned(),
        },
        screens: 1,
        resolution: Resolution { width, height },
        slot_seconds,
    }
}

/// A kind of venue the city is made of.
struct Kind {
    /// OpenOOH string value; generated only when the base scenario has a venue of it.
    venue_type: &'static str,
    /// Share of the generated venues, per mille.
    share: u32,
    /// Weight of this kind's venues when the screens beyond one a venue are dealt (every
    /// kind's is above zero).
    screen_weight: u32,
    /// A moving venue (a train): no district, no location.
    moving: bool,
    slug: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
    /// ((width, height), slot seconds, weight): aspect ratios the base's creatives have.
    resolutions: &'static [((u32, u32), u32, u32)],
    /// (crontab, weight).
    hours: &'static [(&'static str, u32)],
    /// Tagged with one subway line.
    on_a_line: bool,
    tags: &'static [&'static str],
    /// (tag, per mille of venues that carry it).
    sometimes: &'static [(&'static str, u32)],
}

const LANDSCAPE: (u32, u32) = (1920, 1080);
const LANDSCAPE_4K: (u32, u32) = (3840, 2160);
const LANDSCAPE_720: (u32, u32) = (1280, 720);
const PORTRAIT: (u32, u32) = (1080, 1920);
const PORTRAIT_4K: (u32, u32) = (2160, 3840);
const BAR: (u32, u32) = (1920, 540);

/// The city's mix: community bulletin boards by the thousand, then transit and street.
const KINDS: &[Kind] = &[
    Kind {
        venue_type: "residential",
        share: 700,
        screen_weight: 4,
        moving: false,
        slug: "community",
        name_zh: "社区公告屏",
        name_en: "community board",
        resolutions: &[
            (PORTRAIT, 30, 75),
            (LANDSCAPE, 30, 20),
            (LANDSCAPE_720, 30, 5),
        ],
        hours: &[
            ("* 6-21 * * *", 70),
            ("* 6-22 * * *", 20),
            ("* 7-21 * * *", 10),
        ],
        on_a_line: false,
        tags: &["practice-station"],
        sometimes: &[("elderly", 150), ("university", 30)],
    },
    Kind {
        venue_type: "transit.subway.platform",
        share: 80,
        screen_weight: 6,
        moving: false,
        slug: "metro",
        name_zh: "地铁站",
        name_en: "metro station",
        resolutions: &[(LANDSCAPE, 15, 85), (LANDSCAPE_4K, 15, 15)],
        hours: &[("* 5-23 * * *", 90), ("* 6-23 * * *", 10)],
        on_a_line: true,
        tags: &[],
        sometimes: &[("interchange", 200)],
    },
    Kind {
        venue_type: "transit.subway.interior",
        share: 10,
        screen_weight: 10,
        moving: true,
        slug: "train",
        name_zh: "文明专列",
        name_en: "civility special train",
        resolutions: &[(BAR, 15, 1)],
        hours: &[("* 5-23 * * *", 1)],
        on_a_line: true,
        tags: &["special-train"],
        sometimes: &[],
    },
    Kind {
        venue_type: "outdoor.bus_shelter",
        share: 120,
        screen_weight: 1,
        moving: false,
        slug: "bus",
        name_zh: "公交站",
        name_en: "bus shelter",
        resolutions: &[(PORTRAIT, 15, 90), (PORTRAIT_4K, 15, 10)],
        hours: &[("* * * * *", 80), ("* 5-23 * * *", 20)],
        on_a_line: false,
        tags: &[],
        sometimes: &[],
    },
    Kind {
        venue_type: "outdoor.spectacular",
        share: 20,
        screen_weight: 1,
        moving: false,
        slug: "bigscreen",
        name_zh: "户外大屏",
        name_en: "big screen",
        resolutions: &[(LANDSCAPE_4K, 15, 80), (LANDSCAPE, 15, 20)],
        hours: &[
            ("* 7-22 * * *", 60),
            ("* 7-23 * * *", 25),
            ("* 8-22 * * *", 15),
        ],
        on_a_line: false,
        tags: &["landmark"],
        sometimes: &[("shopping", 300)],
    },
    Kind {
        venue_type: "outdoor.urban_panel",
        share: 30,
        screen_weight: 1,
        moving: false,
        slug: "citytv",
        name_zh: "城市电视",
        name_en: "city TV",
        resolutions: &[(LANDSCAPE, 30, 1)],
        hours: &[("* 7-21 * * *", 1)],
        on_a_line: false,
        tags: &[],
        sometimes: &[],
    },
    Kind {
        venue_type: "office_building.office_building.lobby",
        share: 40,
        screen_weight: 2,
        moving: false,
        slug: "office",
        name_zh: "写字楼大堂",
        name_en: "office lobby",
        resolutions: &[(LANDSCAPE, 15, 60), (PORTRAIT, 15, 40)],
        hours: &[("* 7-20 * * 1-5", 70), ("* 7-21 * * 1-6", 30)],
        on_a_line: false,
        tags: &[],
        sometimes: &[("cbd", 250)],
    },
];

/// Beijing's subway lines, as the base scenario tags them (`line-N`).
const LINES: &[u32] = &[1, 2, 4, 5, 6, 7, 8, 9, 10, 13, 14, 15, 16, 17, 19];

/// A district: the base scenario's name for it, its resident population (2020 census, in
/// thousands) as its weight, and a disc (centre, radius) inside it where its venues lie.
struct District {
    name: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
    population: u32,
    lat: f64,
    lon: f64,
    radius_km: f64,
}

impl District {
    /// A uniformly random point of the district's disc, to four decimals (about 10 m).
    fn point(&self, rng: &mut SplitMix64) -> Location {
        let r = self.radius_km * rng.unit().sqrt();
        let theta = std::f64::consts::TAU * rng.unit();
        let lat = self.lat + r * theta.sin() / KM_PER_DEGREE;
        let lon = self.lon + r * theta.cos() / (KM_PER_DEGREE * self.lat.to_radians().cos());
        let round = |x: f64| (x * 1e4).round() / 1e4;
        Location {
            lat: round(lat),
            lon: round(lon),
        }
    }
}

const KM_PER_DEGREE: f64 = 111.2;

const DISTRICTS: [District; 16] = [
    district(
        "dongcheng",
        "东城区",
        "Dongcheng",
        709,
        39.9288,
        116.4164,
        2.5,
    ),
    district("xicheng", "西城区", "Xicheng", 1106, 39.9123, 116.3659, 2.5),
    district(
        "chaoyang",
        "朝阳区",
        "Chaoyang",
        3452,
        39.9480,
        116.4860,
        8.0,
    ),
    district("haidian", "海淀区", "Haidian", 3133, 39.9700, 116.2900, 8.0),
    district("fengtai", "丰台区", "Fengtai", 2019, 39.8585, 116.2864, 6.0),
    district(
        "shijingshan",
        "石景山区",
        "Shijingshan",
        568,
        39.9056,
        116.2229,
        3.5,
    ),
    district(
        "mentougou",
        "门头沟区",
        "Mentougou",
        393,
        39.9404,
        116.1021,
        5.0,
    ),
    district(
        "fangshan",
        "房山区",
        "Fangshan",
        1313,
        39.7355,
        116.1392,
        9.0,
    ),
    district(
        "tongzhou",
        "通州区",
        "Tongzhou",
        1841,
        39.9026,
        116.6564,
        8.0,
    ),
    district("shunyi", "顺义区", "Shunyi", 1324, 40.1300, 116.6545, 9.0),
    district(
        "changping",
        "昌平区",
        "Changping",
        2269,
        40.2206,
        116.2312,
        10.0,
    ),
    district("daxing", "大兴区", "Daxing", 1993, 39.7267, 116.3416, 9.0),
    district("huairou", "怀柔区", "Huairou", 441, 40.3160, 116.6320, 7.0),
    district("pinggu", "平谷区", "Pinggu", 457, 40.1405, 117.1213, 6.0),
    district("miyun", "密云区", "Miyun", 528, 40.3769, 116.8433, 7.0),
    district("yanqing", "延庆区", "Yanqing", 346, 40.4566, 115.9749, 6.0),
];

const fn district(
    name: &'static str,
    name_zh: &'static str,
    name_en: &'static str,
    population: u32,
    lat: f64,
    lon: f64,
    radius_km: f64,
) -> District {
    District {
        name,
        name_zh,
        name_en,
        population,
        lat,
        lon,
        radius_km,
    }
}

/// splitmix64 (Steele, Lea, Flood 2014): small, fast, and the same sequence everywhere.
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)` (`n` > 0), by multiply-high.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index of `weights` (not all zero), each as likely as its weight.
    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|w| u64::from(*w)).sum();
        let mut x = self.below(total);
        for (i, w) in weights.iter().enumerate() {
            let w = u64::from(*w);
            if x < w {
                return i;
            }
            x -= w;
        }
        unreachable!("x < total")
    }
}

#[derive(Serialize)]
struct OutScenario<'a> {
    format: &'a str,
    name: String,
    timezone: &'a str,
    window: &'a serde_json::Value,
    venues: Vec<OutVenue>,
    screens: Vec<OutScreen>,
    creatives: &'a serde_json::Value,
    campaigns: &'a serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    events: Option<&'a serde_json::Value>,
}

#[derive(Serialize)]
struct OutVenue {
    id: String,
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    name_en: Option<String>,
    #[serde(rename = "type")]
    venue_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    openooh_id: Option<u32>,
    district: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    location: Option<Location>,
    tags: Vec<String>,
    operating_hours: String,
}

impl OutVenue {
    fn from_file(v: &FileVenue) -> Self {
        Self {
            id: v.id.clone(),
            name: v.name.clone(),
            name_en: v.name_en.clone(),
            venue_type: v.venue_type.clone(),
            openooh_id: v.openooh_id,
            district: v.district.clone(),
            location: v.location.as_ref().map(|l| Location {
                lat: l.lat,
                lon: l.lon,
            }),
            tags: v.tags.clone(),
            operating_hours: v.operating_hours.clone(),
        }
    }
}

#[derive(Serialize)]
struct Location {
    lat: f64,
    lon: f64,
}

#[derive(Serialize)]
struct OutScreen {
    id: String,
    venue: String,
    resolution: Resolution,
    slot_seconds: u32,
}

#[derive(Serialize, Clone, Copy)]
struct Resolution {
    width: u32,
    height: u32,
}

#[cfg(test)]
mod tests;
