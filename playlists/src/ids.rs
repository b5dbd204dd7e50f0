//! Identifier and hash newtypes. An id is safe to use as an MQTT topic level and a client id:
//! 1 to 128 characters from `[A-Za-z0-9._-]`. Parsing is the only way to make one.

use std::fmt;

/// Why a string is not a valid identifier or hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} id is empty")]
    Empty { kind: &'static str },
    #[error("{kind} id {value:?} is longer than 128 characters")]
    TooLong { kind: &'static str, value: String },
    #[error("{kind} id {value:?} has {bad:?}: only letters, digits, '.', '_' and '-' are allowed")]
    BadChar {
        kind: &'static str,
        value: String,
        bad: char,
    },
    #[error("sha256 {value:?} is not 64 lowercase hex digits")]
    BadSha256 { value: String },
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, IdError> {
                check_id($kind, value)?;
                Ok(Self(value.to_owned()))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }
    };
}

id_type!(
    /// A screen: also its MQTT client id, username and topic level.
    ScreenId,
    "screen"
);
id_type!(
    /// A venue (a station, a shelter, a community board).
    VenueId,
    "venue"
);
id_type!(
    /// A campaign, including emergencies.
    CampaignId,
    "campaign"
);
id_type!(
    /// A creative (one media file).
    CreativeId,
    "creative"
);

fn check_id(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if value.len() > 128 {
        return Err(IdError::TooLong {
            kind,
            value: value.to_owned(),
        });
    }
    if let Some(bad) = value
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(IdError::BadChar {
            kind,
            value: value.to_owned(),
            bad,
        });
    }
    Ok(())
}

/// A SHA-256 digest as 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256(String);

impl Sha256 {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let ok = value.len() == 64
            && value
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !ok {
            return Err(IdError::BadSha256 {
                value: value.to_owned(),
            });
        }
        Ok(Self(value.to_owned()))
    }
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Self {
        use sha2::Digest;
        Self(hex::encode(sha2::Sha256::digest(data)))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: Result<(), &str>) {
        let got = ScreenId::parse(input)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(got, expect.map_err(str::to_owned), "input {input:?}");
    }

    #[test]
    fn screen_ids() {
        check("bj-metro-xidan-s1", Ok(()));
        check("a.b_c-9", Ok(()));
        check("", Err("screen id is empty"));
        check(
            "a/b",
            Err("screen id \"a/b\" has '/': only letters, digits, '.', '_' and '-' are allowed"),
        );
        check(
            "a+",
            Err("screen id \"a+\" has '+': only letters, digits, '.', '_' and '-' are allowed"),
        );
        check(
            &"x".repeat(129),
            Err(&format!(
                "screen id {:?} is longer than 128 characters",
                "x".repeat(129)
            )),
        );
    }

    #[test]
    fn sha256() {
        assert_eq!(
            Sha256::of(b"").as_str(),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert!(Sha256::parse(&"A".repeat(64)).is_err());
        assert!(Sha256::parse("abc").is_err());
    }
}
