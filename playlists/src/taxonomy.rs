//! OpenOOH 1.2.1 venue types: parsing from string values or numeric ids, and
//! the hierarchy that targeting uses (`transit.subway` covers
//! `transit.subway.platform`).
//!
//! The data lives in the generated `openooh_data.rs`; this module owns the
//! lookups and the `VenueType` invariant (it always names an id of that table).
//! Targeting rules themselves belong to the planner.

use std::fmt;

use crate::openooh_data::{ALIASES, VENUE_TYPES};

/// A venue type of the OpenOOH 1.2.1 taxonomy, identified by its immutable
/// numeric id. Ordered by id, so parents sort before their children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VenueType(u32);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaxonomyError {
    #[error("unknown OpenOOH 1.2.1 venue type {value:?}")]
    Unknown { value: String },
    #[error("unknown OpenOOH 1.2.1 venue type id {id}")]
    UnknownId { id: u32 },
}

impl VenueType {
    /// Accepts a 1.2.1 string value (`"transit.subway.platform"`), a string
    /// value of the 1.2 mapping CSV that differs for the same id
    /// (`"outdoor.bus_shelters"`), or a numeric id (`"10502"`). Exact match,
    /// no trimming or case folding.
    pub fn parse(s: &str) -> Result<VenueType, TaxonomyError> {
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let unknown = || TaxonomyError::Unknown {
                value: s.to_owned(),
            };
            let id = s.parse::<u32>().map_err(|_| unknown())?;
            return VenueType::from_id(id).map_err(|_| unknown());
        }
        VENUE_TYPES
            .iter()
            .find(|(_, value, _)| *value == s)
            .map(|&(id, _, _)| id)
            .or_else(|| {
                ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == s)
                    .map(|&(_, id)| id)
            })
            .map(VenueType)
            .ok_or_else(|| TaxonomyError::Unknown {
                value: s.to_owned(),
            })
    }

    pub fn from_id(id: u32) -> Result<VenueType, TaxonomyError> {
        match index_of(id) {
            Some(_) => Ok(VenueType(id)),
            None => Err(TaxonomyError::UnknownId { id }),
        }
    }

    /// Every venue type of the taxonomy, parents before their children.
    pub fn all() -> impl Iterator<Item = VenueType> {
        VENUE_TYPES.iter().map(|&(id, _, _)| VenueType(id))
    }

    pub fn id(self) -> u32 {
        self.0
    }

    /// The 1.2.1 string value (never an alias).
    pub fn as_str(self) -> &'static str {
        self.entry().1
    }

    /// The category name of the specification ("Subway Platform", "Lobby").
    pub fn display_name(self) -> &'static str {
        self.entry().2
    }

    /// The enclosing type: `transit.subway` for `transit.subway.platform`,
    /// none for a top-level category.
    pub fn parent(self) -> Option<VenueType> {
        (self.0 >= 100).then_some(VenueType(self.0 / 100))
    }

    /// True when `self` is `ancestor` or one of its descendants.
    pub fn is_within(self, ancestor: VenueType) -> bool {
        let mut id = self.0;
        loop {
            if id == ancestor.0 {
                return true;
            }
            if id < 100 {
                return false;
            }
            id /= 100;
        }
    }

    fn entry(self) -> &'static (u32, &'static str, &'static str) {
        // The constructors only admit ids of the table.
        let index = index_of(self.0).expect("VenueType holds an id of VENUE_TYPES");
        &VENUE_TYPES[index]
    }
}

fn index_of(id: u32) -> Option<usize> {
    VENUE_TYPES.binary_search_by_key(&id, |&(id, _, _)| id).ok()
}

impl fmt::Display for VenueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VenueType {
    type Err = TaxonomyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        VenueType::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// `input` parses to `expect` (an id), or fails with exactly that error.
    fn check(input: &str, expect: Result<u32, TaxonomyError>) {
        let got = VenueType::parse(input).map(VenueType::id);
        assert_eq!(got, expect, "parse({input:?})");
    }

    fn vt(s: &str) -> VenueType {
        VenueType::parse(s).unwrap()
    }

    fn unknown(value: &str) -> Result<u32, TaxonomyError> {
        Err(TaxonomyError::Unknown {
            value: value.into(),
        })
    }

    #[test]
    fn parse_values_used_by_the_scenario() {
        let cases = [
            ("transit", 1),
            ("transit.subway", 105),
            ("transit.subway.platform", 10502),
            ("transit.subway.interior", 10501),
            ("residential", 11),
            ("outdoor.bus_shelter", 303),
            ("outdoor.spectacular", 304),
            ("outdoor.urban_panel", 302),
            ("office_building.office_building.lobby", 70102),
        ];
        for (input, id) in cases {
            check(input, Ok(id));
        }
    }

    #[test]
    fn parse_aliases_numeric_ids_and_fixed_rows() {
        #[rustfmt::skip]
        let cases = [
            ("outdoor.bus_shelters", Ok(303)),
            ("outdoor.spectaculars", Ok(304)),
            ("outdoor.urban_panels", Ok(302)),
            ("office_buildings.office_buildings.lobby", Ok(70102)),
            ("10502", Ok(10502)),
            ("1", Ok(1)),
            ("110103", Ok(110103)),
            ("0010502", Ok(10502)),
            // Trailing dot of the markdown dropped; duplicate value replaced.
            ("health_beauty.gym.lobby", Ok(40101)),
            ("entertainment.casino.restroom", Ok(81101)),
            ("entertainment.convention_center.restroom", Ok(81201)),
            // CSV-only rows and CSV rows whose id disagrees are not imported.
            ("transit.airports.spectacular", unknown("transit.airports.spectacular")),
            ("retail.pet_stores.entrance", unknown("retail.pet_stores.entrance")),
            ("entertainment.movie_theater_restroom", unknown("entertainment.movie_theater_restroom")),
            ("", unknown("")),
            ("transit.", unknown("transit.")),
            ("Transit", unknown("Transit")),
            (" transit", unknown(" transit")),
            ("12", unknown("12")),
            ("99999999999", unknown("99999999999")),
        ];
        for (input, expect) in cases {
            check(input, expect);
        }
    }

    #[test]
    fn accessors_and_errors() {
        let platform = vt("outdoor.bus_shelters");
        assert_eq!(platform.as_str(), "outdoor.bus_shelter");
        assert_eq!(platform.to_string(), "outdoor.bus_shelter");
        assert_eq!(platform.display_name(), "Bus Shelter");
        assert_eq!(vt("10502").display_name(), "Subway Platform");
        assert_eq!("transit.subway".parse::<VenueType>(), Ok(vt("105")));
        assert_eq!(
            VenueType::from_id(105).map(VenueType::as_str),
            Ok("transit.subway")
        );
        assert_eq!(
            VenueType::from_id(12),
            Err(TaxonomyError::UnknownId { id: 12 })
        );
        assert_eq!(
            VenueType::parse("x").unwrap_err().to_string(),
            r#"unknown OpenOOH 1.2.1 venue type "x""#
        );
        assert_eq!(
            VenueType::from_id(12).unwrap_err().to_string(),
            "unknown OpenOOH 1.2.1 venue type id 12"
        );
        assert_eq!(
            vt("transit.subway.platform").parent(),
            Some(vt("transit.subway"))
        );
        assert_eq!(vt("transit.subway").parent(), Some(vt("transit")));
        assert_eq!(vt("transit").parent(), None);
        assert!(vt("transit") < vt("transit.subway"));
    }

    #[test]
    fn is_within() {
        let cases = [
            ("transit.subway.platform", "transit.subway", true),
            ("transit.subway", "transit.subway.platform", false),
            ("10502", "transit", true),
            ("transit", "transit", true),
            ("transit.subway.platform", "transit.subway.platform", true),
            ("transit", "residential", false),
            ("residential", "transit", false),
            ("transit.subway.platform", "transit.train", false),
            ("residential.apartment_building.gym", "residential", true),
            ("residential.apartment_building.gym", "health_beauty", false),
            // 1101 and 110101 must not be taken for descendants of 1 or 110.
            ("residential.apartment", "transit", false),
            ("110101", "101", false),
            ("financial.bank", "financial", true),
            ("financial.bank", "transit", false),
        ];
        for (child, ancestor, expect) in cases {
            assert_eq!(
                vt(child).is_within(vt(ancestor)),
                expect,
                "{child} within {ancestor}"
            );
        }
    }

    #[test]
    fn table_is_sorted_with_parents_and_unique_values() {
        assert!(
            VENUE_TYPES.windows(2).all(|w| w[0].0 < w[1].0),
            "sorted by id, no duplicates"
        );
        let mut values = HashSet::new();
        for &(id, value, name) in VENUE_TYPES {
            assert!(values.insert(value), "duplicate string value {value}");
            assert!(!name.is_empty(), "{id} has a name");
            let t = VenueType::from_id(id).unwrap();
            assert_eq!(VenueType::parse(value).map(VenueType::id), Ok(id));
            assert_eq!(VenueType::parse(&id.to_string()), Ok(t));
            if id >= 100 {
                let parent = VenueType::from_id(id / 100);
                assert!(parent.is_ok(), "parent of {id} exists");
                assert_eq!(t.parent(), parent.ok());
            }
        }
        let categories = VENUE_TYPES.iter().filter(|(id, _, _)| *id < 100).count();
        assert_eq!(categories, 11);
    }

    #[test]
    fn aliases_point_to_known_ids_and_never_shadow_values() {
        for &(alias, id) in ALIASES {
            assert!(VenueType::from_id(id).is_ok(), "alias {alias} -> {id}");
            assert!(
                VENUE_TYPES.iter().all(|(_, value, _)| *value != alias),
                "alias {alias} is also a 1.2.1 value"
            );
            assert_eq!(VenueType::parse(alias).map(VenueType::id), Ok(id));
        }
        assert!(
            ALIASES.windows(2).all(|w| w[0].0 < w[1].0),
            "aliases sorted and unique"
        );
    }
}
