//! Renditions per screen: before the publisher builds the documents of some screens, it
//! makes the still renditions those documents need and are missing (in parallel on
//! rayon's pool; each once, kept in the media and indexed in the store), then names in
//! each screen's document the rendition that screen downloads.
//!
//! [`rendition_for`] decides what a screen gets for a creative. A video larger than its
//! screen is transcoded down to it, which takes seconds to minutes: publishing does not
//! wait for it. The rendition is queued for [`video_worker`]; until it is made the
//! screens get the (gated) original. Once made it is recorded in the store as finished
//! (numbered), and the publisher, following the store, rebuilds the documents of the
//! screens that name it ([`screens_naming`]): so a rendition finished on a replica that
//! no longer publishes reaches its screens too. A rendition that cannot be made (a corrupt
//! or animated original) does not stop publishing: it is logged once and the original is
//! sent. Decoding, resizing and transcoding are `media`'s; where files live is the
//! store's (a source another replica stored is fetched from it first).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use playlists::catalogue::CatalogueIndex;
use playlists::wire::WireRendition;
use playlists::{Catalogue, Creative, Fit, MediaKind, Screen, Sha256};
use rayon::prelude::*;

use crate::store::{rendition_key, Store, StoreError, StoredRendition};

/// Why one rendition was not made.
#[derive(Debug, thiserror::Error)]
pub enum RenditionError {
    #[error(transparent)]
    Media(#[from] media::MediaError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("rendition file: {0}")]
    Io(#[from] std::io::Error),
    #[error("the rendition's hash {0:?} is not a SHA-256")]
    Hash(String),
}

/// What `screen` downloads for `creative` when it is not the original: the rendition to
/// make (its size and fit), or `None` to send the original. A still gets one at the
/// screen's resolution unless the original already has it, or has the screen's aspect
/// ratio and is no larger (the kiosk scales it up as well as a rendition would, and the
/// download would only grow). Video and animations (refused by `media` as they are made)
/// are sent as they are until the transcoder takes them.
pub fn rendition_for(
    kind: MediaKind,
    creative: &Creative,
    screen: &Screen,
) -> Option<media::RenditionSpec> {
    let no_larger = creative.width <= screen.width && creative.height <= screen.height;
    let keep = no_larger && creative.aspect_matches(screen);
    match kind {
        // Scaled down to fit inside the screen (its aspect kept: a kiosk's player
        // letterboxes video), never up.
        MediaKind::Video => (!no_larger).then_some(media::RenditionSpec {
            width: screen.width,
            height: screen.height,
            fit: media::Fit::Contain {
                background: [0, 0, 0],
            },
        }),
        MediaKind::Image => (!keep).then_some(media::RenditionSpec {
            width: screen.width,
            height: screen.height,
            fit: match creative.fit {
                Fit::Contain { background } => media::Fit::Contain { background },
                Fit::Cover => media::Fit::Cover,
            },
        }),
    }
}

/// The index key of `creative`'s rendition for `spec`.
fn key_of(creative: &Creative, spec: &media::RenditionSpec) -> String {
    rendition_key(
        creative.sha256.as_str(),
        spec.width,
        spec.height,
        creative.fit.name(),
        creative.fit.background_hex().as_deref(),
    )
}

/// The renditions known for one round of documents.
#[derive(Debug, Default)]
pub struct RenditionMap {
    made: HashMap<String, StoredRendition>,
}

impl RenditionMap {
    /// The rendition `screen`'s document names for `creative`, if one was made.
    pub fn wire(&self, creative: &Creative, screen: &Screen) -> Option<WireRendition> {
        let spec = rendition_for(creative.kind, creative, screen)?;
        let r = self.made.get(&key_of(creative, &spec))?;
        Some(WireRendition {
            sha256: r.sha256.clone(),
            bytes: r.bytes,
            width: r.width,
            height: r.height,
            url: format!("/media/{}", r.sha256),
        })
    }
}

/// Makes renditions and remembers, for the life of the process, those that cannot be
/// made, so a corrupt original is tried (and logged) once, not at every publish.
#[derive(Debug, Default)]
pub struct Renditions {
    failed: Mutex<HashSet<String>>,
    videos: Mutex<VideoQueue>,
    wake: Notify,
}

/// Video renditions waiting for [`video_worker`]: by index key, what to make (and the
/// screens that asked for it, for the log); and the one being made.
#[derive(Debug, Default)]
struct VideoQueue {
    waiting: BTreeMap<String, Job>,
    making: Option<String>,
}

/// A rendition to make, and the screens that asked for it.
#[derive(Debug, Clone)]
struct Job {
    creative: Creative,
    spec: media::RenditionSpec,
    screens: BTreeSet<String>,
}

impl Renditions {
    /// Makes what the documents of `screens` (every screen when `None`) need and the store
    /// lacks, and returns every rendition they name. Only a store that cannot be read
    /// fails it; a rendition that cannot be made is left out (its original is sent).
    pub fn prepare(
        &self,
        store: &dyn Store,
        catalogue: &Catalogue,
        screens: Option<&BTreeSet<String>>,
    ) -> Result<RenditionMap, StoreError> {
        let wanted = wanted(catalogue, screens);
        let mut map = RenditionMap::default();
        let mut missing = Vec::new();
        let failed = self.failed.lock().map(|f| f.clone()).unwrap_or_default();
        for (key, job) in wanted {
            match store.rendition(&key)? {
                Some(r) if store.has_media(&sha(&r.sha256)?)? => {
                    map.made.insert(key, r);
                }
                _ if failed.contains(&key) => {}
                _ if job.creative.kind == MediaKind::Video => self.queue_video(key, job),
                _ => missing.push((key, job.creative, job.spec)),
            }
        }
        if missing.is_empty() {
            return Ok(map);
        }
        let started = std::time::Instant::now();
        let results: Vec<_> = missing
            .par_iter()
            .map(|(key, creative, spec)| (key, creative, make(store, creative, spec)))
            .collect();
        let (mut made, mut failures) = (0, 0);
        for (key, creative, result) in results {
            match result {
                Ok(r) => {
                    made += 1;
                    map.made.insert(key.clone(), r);
                }
                Err(e) => {
                    failures += 1;
                    if matches!(e, RenditionError::Media(media::MediaError::Animated)) {
                        tracing::info!(creative = %creative.id, "animated: sent as its original");
                    } else {
                        tracing::warn!(creative = %creative.id, rendition = %key, error = %e, "rendition not made; the original is sent");
                    }
                    if let Ok(mut f) = self.failed.lock() {
                        f.insert(key.clone());
                    }
                }
            }
        }
        tracing::info!(
            made,
            failures,
            ms = started.elapsed().as_millis() as u64,
            "renditions made"
        );
        Ok(map)
    }
}

/// The renditions the documents of `screens` (every screen when `None`) name, by index
/// key, with the screens naming each.
fn wanted(catalogue: &Catalogue, screens: Option<&BTreeSet<String>>) -> BTreeMap<String, Job> {
    let index = CatalogueIndex::new(catalogue);
    let ids: Vec<&str> = match screens {
        Some(set) => set.iter().map(String::as_str).collect(),
        None => catalogue.screens.iter().map(|s| s.id.as_str()).collect(),
    };
    let mut wanted: BTreeMap<String, Job> = BTreeMap::new();
    for id in ids {
        let Some(schedule) = index.schedule_for(id) else {
            continue;
        };
        for c in &schedule.creatives {
            if !c.fits(&schedule.screen) {
                continue;
            }
            if let Some(spec) = rendition_for(c.kind, c, &schedule.screen) {
                wanted
                    .entry(key_of(c, &spec))
                    .or_insert_with(|| Job {
                        creative: c.clone(),
                        spec,
                        screens: BTreeSet::new(),
                    })
                    .screens
                    .insert(id.to_owned());
            }
        }
    }
    wanted
}

impl Renditions {
    /// Those of the renditions the documents of `screens` name that are made already;
    /// nothing is made or queued (for emergency commands, which must not wait).
    pub fn known(
        &self,
        store: &dyn Store,
        catalogue: &Catalogue,
        screens: &BTreeSet<String>,
    ) -> Result<RenditionMap, StoreError> {
        let mut map = RenditionMap::default();
        for key in wanted(catalogue, Some(screens)).into_keys() {
            if let Some(r) = store.rendition(&key)? {
                if store.has_media(&sha(&r.sha256)?)? {
                    map.made.insert(key, r);
                }
            }
        }
        Ok(map)
    }

    /// Queues a video rendition for [`video_worker`] (once: a queued one gains screens).
    fn queue_video(&self, key: String, job: Job) {
        let Ok(mut q) = self.videos.lock() else {
            return;
        };
        if q.making.as_deref() == Some(key.as_str()) {
            return;
        }
        q.waiting
            .entry(key)
            .and_modify(|j| j.screens.extend(job.screens.iter().cloned()))
            .or_insert(job);
        drop(q);
        self.wake.notify_one();
    }

    /// The next video rendition to make, marked as being made.
    fn next_video(&self) -> Option<(String, Job)> {
        let mut q = self.videos.lock().ok()?;
        let (key, job) = q.waiting.pop_first()?;
        q.making = Some(key.clone());
        Some((key, job))
    }

    fn video_done(&self, key: &str, failed: bool) {
        if let Ok(mut q) = self.videos.lock() {
            q.making = None;
        }
        if failed {
            if let Ok(mut f) = self.failed.lock() {
                f.insert(key.to_owned());
            }
        }
    }
}

/// Makes queued video renditions one at a time, off the runtime, and records each in the
/// store as finished ([`RenditionStore::put_finished_rendition`]), where the publisher
/// finds it and rebuilds the documents that name it, whichever replica publishes by then.
/// Runs until `shutdown`.
///
/// [`RenditionStore::put_finished_rendition`]: crate::store::RenditionStore::put_finished_rendition
pub async fn video_worker(
    renditions: Arc<Renditions>,
    store: Arc<dyn Store>,
    gate: media::VideoGate,
    shutdown: CancellationToken,
) {
    loop {
        let next = renditions.next_video();
        let Some((key, job)) = next else {
            tokio::select! {
                _ = renditions.wake.notified() => continue,
                _ = shutdown.cancelled() => return,
            }
        };
        let started = std::time::Instant::now();
        let (s, g, j) = (store.clone(), gate.clone(), job.clone());
        let made =
            tokio::task::spawn_blocking(move || make_video(&*s, &j.creative, &j.spec, g)).await;
        match made {
            Ok(Ok(r)) => {
                renditions.video_done(&key, false);
                tracing::info!(creative = %job.creative.id, rendition = %key, width = r.width, height = r.height,
                    ms = started.elapsed().as_millis() as u64, screens = job.screens.len(), "video rendition made");
            }
            Ok(Err(e)) => {
                renditions.video_done(&key, true);
                tracing::warn!(creative = %job.creative.id, rendition = %key, error = %e, "video rendition not made; the original is sent");
            }
            Err(e) => {
                renditions.video_done(&key, true);
                tracing::error!(rendition = %key, error = %e, "video rendition task failed");
            }
        }
    }
}

/// Transcodes one video rendition into the gate, scaled down to fit the spec's frame.
fn make_video(
    store: &dyn Store,
    creative: &Creative,
    spec: &media::RenditionSpec,
    gate: media::VideoGate,
) -> Result<StoredRendition, RenditionError> {
    let temp = tempfile::Builder::new()
        .suffix(".mp4")
        .tempfile_in(store.upload_dir())?
        .into_temp_path();
    let source = store.local_copy(&creative.sha256)?;
    let transcode = media::TranscodeSpec {
        max_width: spec.width.min(gate.max_width),
        max_height: spec.height.min(gate.max_height),
        loudness: None,
        ..media::TranscodeSpec::for_gate(gate)
    };
    media::transcode(&source, &temp, &transcode, &mut |_| {})?;
    let measured = media::probe_file(&temp, &media::Limits::default())?;
    keep(store, creative, spec, temp, measured, Kept::Finished)
}

fn sha(hex: &str) -> Result<Sha256, StoreError> {
    Sha256::parse(hex).map_err(|e| StoreError::Corrupt {
        what: "rendition index".into(),
        problem: e.to_string(),
    })
}

/// Makes one rendition: written in the upload directory, moved into the media under its
/// hash, then indexed (so the index never names a file that is not there).
fn make(
    store: &dyn Store,
    creative: &Creative,
    spec: &media::RenditionSpec,
) -> Result<StoredRendition, RenditionError> {
    let temp = tempfile::NamedTempFile::new_in(store.upload_dir())?.into_temp_path();
    let source = store.local_copy(&creative.sha256)?;
    let measured = media::still_rendition(&source, spec, &media::Limits::default(), &temp)?;
    keep(store, creative, spec, temp, measured, Kept::ForThisBuild)
}

/// How a made rendition is indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kept {
    /// For the documents being built now (a still): indexed only.
    ForThisBuild,
    /// In the background (a video): indexed and numbered as finished, for the publisher.
    Finished,
}

/// Moves a made rendition into the media under its hash, then indexes it.
fn keep(
    store: &dyn Store,
    creative: &Creative,
    spec: &media::RenditionSpec,
    temp: tempfile::TempPath,
    measured: media::Measured,
    how: Kept,
) -> Result<StoredRendition, RenditionError> {
    let sha256 = Sha256::parse(&measured.sha256)
        .map_err(|_| RenditionError::Hash(measured.sha256.clone()))?;
    let kept = temp.keep().map_err(|e| e.error)?;
    store.adopt_media(&sha256, &kept)?;
    let r = StoredRendition {
        source: creative.sha256.to_string(),
        width: measured.width,
        height: measured.height,
        fit: creative.fit.name().to_owned(),
        background: creative.fit.background_hex(),
        sha256: measured.sha256,
        bytes: measured.bytes,
        frame: Some([spec.width, spec.height]).filter(|f| *f != [measured.width, measured.height]),
    };
    match how {
        Kept::ForThisBuild => store.put_rendition(&r)?,
        Kept::Finished => {
            store.put_finished_rendition(&r)?;
        }
    }
    Ok(r)
}

/// The screens whose documents name `rendition`: those targeted by a campaign naming a
/// creative made from its source that get a rendition of its size and fit for it. Reads
/// the campaigns and their targets, never the screens' whole schedules.
pub fn screens_naming(catalogue: &Catalogue, rendition: &StoredRendition) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let made_from: HashMap<&str, &Creative> = catalogue
        .creatives
        .iter()
        .filter(|c| c.sha256.as_str() == rendition.source)
        .map(|c| (c.id.as_str(), c))
        .collect();
    if made_from.is_empty() {
        return out;
    }
    let key = rendition.key();
    let index = CatalogueIndex::new(catalogue);
    for campaign in &catalogue.campaigns {
        for creative in campaign
            .creatives
            .iter()
            .filter_map(|id| made_from.get(id.as_str()))
        {
            for screen in index.targeted(campaign) {
                let names = creative.fits(screen)
                    && rendition_for(creative.kind, creative, screen)
                        .is_some_and(|spec| key_of(creative, &spec) == key);
                if names {
                    out.insert(screen.id.to_string());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use playlists::{CreativeId, ScreenId, VenueId};

    fn screen(width: u32, height: u32) -> Screen {
        Screen {
            id: ScreenId::parse("s").unwrap(),
            venue: VenueId::parse("v").unwrap(),
            width,
            height,
            slot_seconds: 15,
        }
    }

    fn creative(kind: MediaKind, width: u32, height: u32, fit: Fit) -> Creative {
        Creative {
            id: CreativeId::parse("c").unwrap(),
            kind,
            sha256: Sha256::of(b"c"),
            bytes: 1,
            width,
            height,
            duration_seconds: 10,
            title: String::new(),
            fit,
            any_aspect: true,
        }
    }

    /// `(creative size, screen size)` -> the rendition's size, or `None` for the original.
    fn check(kind: MediaKind, c: (u32, u32), s: (u32, u32), expect: Option<(u32, u32)>) {
        let got = rendition_for(
            kind,
            &creative(kind, c.0, c.1, Fit::Cover),
            &screen(s.0, s.1),
        );
        assert_eq!(got.map(|r| (r.width, r.height)), expect, "{c:?} on {s:?}");
    }

    #[test]
    fn stills_get_the_screens_size_unless_they_have_it_or_are_smaller_alike() {
        let image = MediaKind::Image;
        check(image, (3840, 2160), (1920, 1080), Some((1920, 1080)));
        check(image, (3840, 2160), (1080, 1920), Some((1080, 1920)));
        check(image, (1920, 1080), (1920, 1080), None);
        check(image, (1920, 1080), (3840, 2160), None);
        // Smaller but of another aspect: padded or cropped to the screen.
        check(image, (1920, 1080), (1920, 1200), Some((1920, 1200)));
    }

    #[test]
    fn videos_are_scaled_down_to_smaller_screens_only() {
        let video = MediaKind::Video;
        check(video, (1920, 1080), (1280, 720), Some((1280, 720)));
        check(video, (1920, 1080), (1080, 1920), Some((1080, 1920)));
        check(video, (1920, 1080), (1920, 1080), None);
        check(video, (1280, 720), (1920, 1080), None);
    }

    #[test]
    fn the_screens_naming_a_rendition_are_those_that_get_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::open(dir.path(), crate::store::OpenMode::Create).unwrap();
        let service = crate::catalogue::CatalogueService::new(store);
        crate::import::import(
            &service,
            &crate::cli::default_scenario().unwrap(),
            &crate::import::ImportOptions::admin(),
        )
        .unwrap();
        let mut catalogue = (*service.catalogue().unwrap()).clone();
        // A small screen beside the 1920x1080 ones at a station the video plays at.
        let metro = catalogue
            .screens
            .iter()
            .find(|s| s.id.as_str() == "bj-metro-xidan-s1")
            .unwrap()
            .clone();
        catalogue.screens.push(Screen {
            id: ScreenId::parse("small").unwrap(),
            width: 640,
            height: 360,
            ..metro
        });
        let video = catalogue
            .creatives
            .iter()
            .find(|c| c.id.as_str() == "rm2023-vote-video")
            .unwrap()
            .clone();
        let made = |source: &str, width, height| StoredRendition {
            source: source.to_owned(),
            width,
            height,
            fit: video.fit.name().to_owned(),
            background: video.fit.background_hex(),
            sha256: "e".repeat(64),
            bytes: 1,
            frame: None,
        };
        let source = video.sha256.to_string();
        assert_eq!(
            screens_naming(&catalogue, &made(&source, 640, 360)),
            BTreeSet::from(["small".to_owned()]),
            "the small screen only: the 1920x1080 ones play the original"
        );
        assert!(screens_naming(&catalogue, &made(&source, 320, 180)).is_empty());
        assert!(screens_naming(&catalogue, &made(&"0".repeat(64), 640, 360)).is_empty());
        // A screen within the 2 % the video fits at, not its exact aspect: the video comes
        // out 629x354 inside the 640x354 frame, and is found by the frame the screen asks
        // for, not by the size it came out at.
        catalogue.screens.push(Screen {
            id: ScreenId::parse("near").unwrap(),
            width: 640,
            height: 354,
            ..catalogue.screens.last().unwrap().clone()
        });
        let letterboxed = StoredRendition {
            frame: Some([640, 354]),
            ..made(&source, 629, 354)
        };
        let spec = rendition_for(video.kind, &video, catalogue.screens.last().unwrap()).unwrap();
        assert_eq!(letterboxed.key(), key_of(&video, &spec));
        assert_eq!(
            screens_naming(&catalogue, &letterboxed),
            BTreeSet::from(["near".to_owned()])
        );
    }

    #[test]
    fn the_fit_follows_the_creative() {
        let red = Fit::Contain {
            background: [255, 0, 0],
        };
        let c = creative(MediaKind::Image, 100, 100, red);
        let spec = rendition_for(c.kind, &c, &screen(50, 20)).unwrap();
        assert_eq!(
            spec.fit,
            media::Fit::Contain {
                background: [255, 0, 0]
            }
        );
        assert!(key_of(&c, &spec).ends_with("/50x20/fit/#ff0000"));
        let c = creative(MediaKind::Image, 100, 100, Fit::Cover);
        let spec = rendition_for(c.kind, &c, &screen(50, 20)).unwrap();
        assert_eq!(spec.fit, media::Fit::Cover);
        assert!(key_of(&c, &spec).ends_with("/50x20/fill"));
    }
}
