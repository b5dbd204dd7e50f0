//! Stored thumbnails: a JPEG of at most [`THUMBNAIL_SIDE`] pixels a side for
//! every creative (a video's is its poster frame, see `media::thumbnail`),
//! kept content-addressed with the media. A creative uploaded since names its
//! thumbnail (`CreativeEntity::thumbnail_sha256`), made at upload. One stored
//! before, or imported from a scenario, gets its thumbnail on the first
//! request for it: made then, stored with the media and remembered under the
//! meta key `thumbnail/{media sha256}` (a request never writes a revision),
//! so later requests read the file instead of decoding the creative again.

use playlists::Sha256;

use crate::store::{CreativeEntity, Store, StoreError};

/// The longer side of a thumbnail at most, in pixels.
pub const THUMBNAIL_SIDE: u32 = 320;

/// Why a thumbnail could not be served.
#[derive(Debug, thiserror::Error)]
pub enum PosterError {
    #[error("creative {id:?}: its sha256 {sha256:?} is not a content address")]
    BadAddress { id: String, sha256: String },
    #[error("reading {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("making the thumbnail: {0}")]
    Media(#[from] media::MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The thumbnail of a creative's file (nothing stored).
pub fn render(data: &[u8]) -> Result<Vec<u8>, PosterError> {
    Ok(media::thumbnail(
        data,
        THUMBNAIL_SIDE,
        &media::Limits::default(),
    )?)
}

/// Stores a thumbnail with the media; returns its address.
pub fn keep(store: &dyn Store, jpeg: &[u8]) -> Result<Sha256, PosterError> {
    let sha = address(&media::sha256_hex(jpeg), "thumbnail")?;
    store.put_media(&sha, jpeg)?;
    Ok(sha)
}

/// Makes the thumbnail of a creative's file and stores it with the media;
/// returns its address.
pub fn make(store: &dyn Store, data: &[u8]) -> Result<Sha256, PosterError> {
    keep(store, &render(data)?)
}

/// The thumbnail of `creative`: the stored one, else made now and stored.
pub fn thumbnail_of(store: &dyn Store, creative: &CreativeEntity) -> Result<Vec<u8>, PosterError> {
    let id = &creative.spec.id;
    let media_sha = address(&creative.spec.sha256, id)?;
    let key = format!("thumbnail/{}", media_sha.as_str());
    let named = match &creative.thumbnail_sha256 {
        Some(s) => Some(s.clone()),
        None => store.meta(&key)?.and_then(|v| String::from_utf8(v).ok()),
    };
    if let Some(sha) = named.and_then(|s| Sha256::parse(&s).ok()) {
        match std::fs::read(store.media_path(&sha)) {
            Ok(jpeg) => return Ok(jpeg),
            // Gone (a store copied without it): made again below.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(PosterError::Read {
                    what: format!("the thumbnail of {id:?}"),
                    source,
                })
            }
        }
    }
    let data = std::fs::read(store.media_path(&media_sha)).map_err(|source| PosterError::Read {
        what: format!("the file of {id:?}"),
        source,
    })?;
    let sha = make(store, &data)?;
    store.set_meta(&key, sha.as_str().as_bytes())?;
    std::fs::read(store.media_path(&sha)).map_err(|source| PosterError::Read {
        what: format!("the thumbnail of {id:?}"),
        source,
    })
}

fn address(sha256: &str, id: &str) -> Result<Sha256, PosterError> {
    Sha256::parse(sha256).map_err(|_| PosterError::BadAddress {
        id: id.to_owned(),
        sha256: sha256.to_owned(),
    })
}
