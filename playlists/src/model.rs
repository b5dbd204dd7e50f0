//! The domain: venues, screens, creatives, campaigns, targeting and fit. Values here are
//! validated; construction from files and wire messages lives in `scenario` and `wire`.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use crate::cron::CronExpr;
use crate::ids::{CampaignId, CreativeId, ScreenId, Sha256, VenueId};
use crate::taxonomy::VenueType;

/// Priority tiers, lowest first: only the highest tier with an eligible campaign plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Priority {
    Filler,
    Normal,
    High,
    Emergency,
}

impl Priority {
    pub fn parse(s: &str) -> Option<Priority> {
        Some(match s {
            "filler" => Priority::Filler,
            "normal" => Priority::Normal,
            "high" => Priority::High,
            "emergency" => Priority::Emergency,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Filler => "filler",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Emergency => "emergency",
        }
    }
}

/// A half-open interval `[start, end)` of instants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flight {
    start: DateTime<Utc>,
    end: DateTime<Utc>,
}

impl Flight {
    /// `None` when `end` is not after `start`.
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Option<Flight> {
        (start < end).then_some(Flight { start, end })
    }
    pub fn start(&self) -> DateTime<Utc> {
        self.start
    }
    pub fn end(&self) -> DateTime<Utc> {
        self.end
    }
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Video,
}

impl MediaKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Video => "video",
        }
    }
    pub fn parse(s: &str) -> Option<MediaKind> {
        match s {
            "image" => Some(MediaKind::Image),
            "video" => Some(MediaKind::Video),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Venue {
    pub id: VenueId,
    pub name: String,
    pub venue_type: VenueType,
    pub district: Option<String>,
    pub tags: Vec<String>,
    pub timezone: Tz,
    pub operating_hours: CronExpr,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Screen {
    pub id: ScreenId,
    pub venue: VenueId,
    pub width: u32,
    pub height: u32,
    pub slot_seconds: u32,
}

/// How a creative of another aspect ratio (or size) meets a screen's: what its
/// renditions for that screen look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Scaled to fit inside the screen, the rest filled with `background` (RGB).
    Contain { background: [u8; 3] },
    /// Scaled to fill the screen, the overflow cropped evenly (a centre crop).
    Cover,
}

impl Default for Fit {
    /// Fit inside, on black.
    fn default() -> Self {
        Fit::Contain {
            background: [0, 0, 0],
        }
    }
}

impl Fit {
    /// `"fit"` or `"fill"`, as in scenario files and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Fit::Contain { .. } => "fit",
            Fit::Cover => "fill",
        }
    }

    /// The background as `#rrggbb` (lowercase), for [`Fit::Contain`].
    pub fn background_hex(self) -> Option<String> {
        match self {
            Fit::Contain {
                background: [r, g, b],
            } => Some(format!("#{r:02x}{g:02x}{b:02x}")),
            Fit::Cover => None,
        }
    }

    /// From a scenario's or wire's optional `fit` (`"fit"`, the default, or `"fill"`) and
    /// `background` (`#rrggbb`, default black; only with `"fit"`). The error names the
    /// field at fault.
    pub fn parse(
        fit: Option<&str>,
        background: Option<&str>,
    ) -> Result<Fit, (&'static str, String)> {
        match (fit.unwrap_or("fit"), background) {
            ("fit", None) => Ok(Fit::default()),
            ("fit", Some(hex)) => Ok(Fit::Contain {
                background: parse_colour(hex).ok_or_else(|| {
                    (
                        "background",
                        format!("{hex:?} is not a colour: write #rrggbb, e.g. \"#000000\""),
                    )
                })?,
            }),
            ("fill", None) => Ok(Fit::Cover),
            ("fill", Some(_)) => Err((
                "background",
                "a background applies to fit \"fit\" only (\"fill\" covers the screen)".to_owned(),
            )),
            (other, _) => Err((
                "fit",
                format!("{other:?} is not a fit: \"fit\" (inside, on the background) or \"fill\" (centre crop)"),
            )),
        }
    }
}

/// `#rrggbb` (either case) as RGB.
fn parse_colour(hex: &str) -> Option<[u8; 3]> {
    let digits = hex.strip_prefix('#')?;
    if digits.len() != 6 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(&digits[i..i + 2], 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

/// A creative with the dimensions measured from its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Creative {
    pub id: CreativeId,
    pub kind: MediaKind,
    pub sha256: Sha256,
    pub bytes: u64,
    pub width: u32,
    pub height: u32,
    /// How long it plays, whole seconds (a video: its length, rounded).
    pub duration_seconds: u32,
    pub title: String,
    /// How its renditions meet a screen of another aspect ratio.
    pub fit: Fit,
    /// Plays on screens of any aspect ratio (its renditions fit or fill them), not only
    /// within 2 % of its own.
    pub any_aspect: bool,
}

impl Creative {
    /// Duration at most the slot, and aspect ratio within 2 % of the screen's unless the
    /// creative plays on any aspect.
    pub fn fits(&self, screen: &Screen) -> bool {
        self.duration_seconds <= screen.slot_seconds
            && (self.any_aspect || aspect_close(self, screen))
    }

    /// Aspect ratio within 2 % of the screen's.
    pub fn aspect_matches(&self, screen: &Screen) -> bool {
        aspect_close(self, screen)
    }
}

fn aspect_close(creative: &Creative, screen: &Screen) -> bool {
    // |c/s - 1| <= 2 %, with c = cw/ch and s = sw/sh, in exact integers:
    // 50 * |cw*sh - sw*ch| <= sw*ch.
    let (cw, ch) = (i128::from(creative.width), i128::from(creative.height));
    let (sw, sh) = (i128::from(screen.width), i128::from(screen.height));
    if ch == 0 || sh == 0 {
        return false;
    }
    50 * (cw * sh - sw * ch).abs() <= sw * ch
}

/// Targeting: every present key must match; a key matches when any of its values does.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Target {
    pub screens: Option<Vec<ScreenId>>,
    pub venues: Option<Vec<VenueId>>,
    pub venue_types: Option<Vec<VenueType>>,
    pub districts: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
}

impl Target {
    pub fn matches(&self, screen: &Screen, venue: &Venue) -> bool {
        self.mismatch(screen, venue).is_none()
    }

    /// The first key that does not match, for explanations.
    pub fn mismatch(&self, screen: &Screen, venue: &Venue) -> Option<&'static str> {
        fn key<T>(values: &Option<Vec<T>>, hit: impl Fn(&T) -> bool) -> bool {
            values.as_ref().is_none_or(|vs| vs.iter().any(hit))
        }
        if !key(&self.screens, |s| *s == screen.id) {
            return Some("screens");
        }
        if !key(&self.venues, |v| *v == venue.id) {
            return Some("venues");
        }
        if !key(&self.venue_types, |t| venue.venue_type.is_within(*t)) {
            return Some("venue_types");
        }
        if !key(&self.districts, |d| {
            venue.district.as_deref() == Some(d.as_str())
        }) {
            return Some("districts");
        }
        if !key(&self.tags, |t| venue.tags.contains(t)) {
            return Some("tags");
        }
        None
    }

    pub fn is_everything(&self) -> bool {
        *self == Target::default()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Campaign {
    pub id: CampaignId,
    pub name: String,
    pub priority: Priority,
    /// Share of voice within the tier, at least 1.
    pub weight: u32,
    pub flight: Flight,
    /// Any match makes a minute active; never empty.
    pub dayparts: Vec<CronExpr>,
    pub target: Target,
    /// In rotation order.
    pub creatives: Vec<CreativeId>,
    pub max_plays_per_hour: Option<u32>,
}

/// Everything the planner needs for one screen: what a schedule document carries.
/// Campaigns may include ones that do not target the screen or have no fitting creative;
/// the planner skips them (and `explain` says why).
#[derive(Debug, Clone, PartialEq)]
pub struct ScreenSchedule {
    pub screen: Screen,
    pub venue: Venue,
    pub campaigns: Vec<Campaign>,
    /// The creatives the campaigns name (others are ignored).
    pub creatives: Vec<Creative>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn screen(w: u32, h: u32, slot: u32) -> Screen {
        Screen {
            id: ScreenId::parse("s").unwrap(),
            venue: VenueId::parse("v").unwrap(),
            width: w,
            height: h,
            slot_seconds: slot,
        }
    }

    fn creative(w: u32, h: u32, secs: u32) -> Creative {
        Creative {
            id: CreativeId::parse("c").unwrap(),
            kind: MediaKind::Image,
            sha256: Sha256::of(b"x"),
            bytes: 1,
            width: w,
            height: h,
            duration_seconds: secs,
            title: String::new(),
            fit: Fit::default(),
            any_aspect: false,
        }
    }

    fn check(c: (u32, u32, u32), s: (u32, u32, u32), expect: bool) {
        assert_eq!(
            creative(c.0, c.1, c.2).fits(&screen(s.0, s.1, s.2)),
            expect,
            "{c:?} on {s:?}"
        );
    }

    #[test]
    fn fit() {
        check((1920, 1080, 15), (3840, 2160, 15), true);
        check((1920, 1080, 15), (1920, 1080, 10), false);
        check((1080, 1920, 15), (1920, 1080, 15), false);
        // Exactly 2 % off fits, 2.2 % does not.
        check((1000, 1000, 5), (1020, 1000, 5), true);
        check((1020, 1000, 5), (1000, 1000, 5), true);
        check((1021, 1000, 5), (1000, 1000, 5), false);
        check((1000, 1000, 5), (1022, 1000, 5), false);
        check((1920, 540, 15), (1920, 540, 30), true);
    }

    #[test]
    fn any_aspect_fits_every_screen_but_not_a_short_slot() {
        let any = Creative {
            any_aspect: true,
            ..creative(3840, 2160, 10)
        };
        assert!(any.fits(&screen(1080, 1920, 15)));
        assert!(any.fits(&screen(1920, 1080, 10)));
        assert!(!any.fits(&screen(1080, 1920, 5)));
    }

    #[test]
    fn fit_parses_and_names_the_field() {
        let ok = |fit, bg| Fit::parse(fit, bg).unwrap();
        assert_eq!(ok(None, None), Fit::default());
        assert_eq!(ok(Some("fill"), None), Fit::Cover);
        assert_eq!(
            ok(Some("fit"), Some("#FF0080")),
            Fit::Contain {
                background: [255, 0, 128]
            }
        );
        assert_eq!(
            ok(None, Some("#ff0080")).background_hex().unwrap(),
            "#ff0080"
        );
        for (fit, bg, field) in [
            (Some("stretch"), None, "fit"),
            (None, Some("red"), "background"),
            (None, Some("#12345"), "background"),
            (None, Some("#12345g"), "background"),
            (None, Some("#1234567"), "background"),
            (Some("fill"), Some("#000000"), "background"),
        ] {
            assert_eq!(Fit::parse(fit, bg).unwrap_err().0, field, "{fit:?} {bg:?}");
        }
    }
}
