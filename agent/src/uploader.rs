//! The uploader: forms proof-of-play batches from the outbox, publishes them on `…/pop`
//! (QoS 1), keeps exactly one in flight, resends the identical bytes after
//! [`RESEND_AFTER`] without an ack and on every reconnect, and applies acks (already
//! verified by the main loop) to the outbox. When to act is the pure [`UploadState`];
//! batch contents and chaining are the outbox's.

use std::sync::Arc;
use std::time::Duration;

use playlists::wire::pop::MAX_BATCH_RECORDS;
use playlists::wire::{Keypair, PopAck};
use rumqttc::{AsyncClient, QoS};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::outbox::{should_form_batch, AckOutcome, Outbox, OutboxError, StoredBatch};

pub const RESEND_AFTER: Duration = Duration::from_secs(10);

/// What the uploader is told.
#[derive(Debug, Clone)]
pub enum UploaderMsg {
    /// The player finished one or more records.
    Finalized,
    /// A verified acknowledgement from the server.
    Ack(PopAck),
    /// The broker connection came up (true) or went down (false).
    Connected(bool),
}

/// What the uploader tells the main loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadEvent {
    /// An ack deleted records; `backlog` is what is left.
    Acked { backlog: u64 },
}

/// What to do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Form,
    Send,
}

/// The uploader's timers and flags, without IO.
#[derive(Debug, Clone, Default)]
pub struct UploadState {
    pub connected: bool,
    /// Since when finished records have been waiting for a batch.
    pub waiting_since: Option<Instant>,
    /// A batch exists in the outbox (in flight).
    pub in_flight: bool,
    /// When the batch in flight was last published; `None`: not yet on this connection.
    pub sent_at: Option<Instant>,
}

impl UploadState {
    /// The action due at `now`, given `ready` finished unbatched records.
    pub fn due(&self, now: Instant, ready: u64) -> Option<Action> {
        if !self.connected {
            return None;
        }
        if self.in_flight {
            let resend = self.sent_at.is_none_or(|at| now >= at + RESEND_AFTER);
            return resend.then_some(Action::Send);
        }
        let waited = self
            .waiting_since
            .map(|since| now.saturating_duration_since(since));
        should_form_batch(ready, waited, false).then_some(Action::Form)
    }

    /// When [`due`](Self::due) may next return something without a message arriving.
    pub fn next_wake(&self, ready: u64) -> Option<Instant> {
        if !self.connected {
            return None;
        }
        if self.in_flight {
            return self.sent_at.map(|at| at + RESEND_AFTER);
        }
        (ready > 0)
            .then_some(self.waiting_since?)
            .map(|since| since + crate::outbox::BATCH_AFTER)
    }

    /// Notes that records are waiting, starting the clock if it is not running.
    pub fn records_waiting(&mut self, now: Instant, ready: u64) {
        if ready == 0 {
            self.waiting_since = None;
        } else if self.waiting_since.is_none() {
            self.waiting_since = Some(now);
        }
    }
}

pub struct Uploader {
    pub outbox: Arc<Outbox>,
    pub client: AsyncClient,
    pub topic: String,
    pub screen_id: String,
    pub key: Keypair,
}

impl Uploader {
    pub async fn run<E: From<UploadEvent>>(
        self,
        mut inbox: mpsc::Receiver<UploaderMsg>,
        events: mpsc::Sender<E>,
        shutdown: CancellationToken,
    ) -> Result<(), OutboxError> {
        let mut st = UploadState::default();
        let mut batch: Option<StoredBatch> = self.blocking(|o| o.in_flight()).await?;
        st.in_flight = batch.is_some();
        st.records_waiting(Instant::now(), self.outbox.book().ready());
        loop {
            let ready = self.outbox.book().ready();
            match st.due(Instant::now(), ready) {
                Some(Action::Form) => {
                    let (screen, key) = (self.screen_id.clone(), self.key.clone());
                    batch = self
                        .blocking(move |o| o.form_batch(&screen, &key, MAX_BATCH_RECORDS))
                        .await?;
                    st.in_flight = batch.is_some();
                    st.sent_at = None;
                    // Records left over keep their age, so they go as soon as this is acked.
                    if batch.is_none() || self.outbox.book().ready() == 0 {
                        st.waiting_since = None;
                    }
                    continue;
                }
                Some(Action::Send) => {
                    if let Some(b) = &batch {
                        self.publish(b);
                    }
                    st.sent_at = Some(Instant::now());
                    continue;
                }
                None => {}
            }
            let wake = st.next_wake(ready);
            let msg = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = sleep_until(wake) => continue,
                msg = inbox.recv() => match msg {
                    Some(m) => m,
                    None => return Ok(()),
                },
            };
            match msg {
                UploaderMsg::Finalized => {
                    st.records_waiting(Instant::now(), self.outbox.book().ready())
                }
                UploaderMsg::Connected(up) => {
                    st.connected = up;
                    // Resend on every new connection.
                    st.sent_at = None;
                }
                UploaderMsg::Ack(ack) => {
                    for acked in ack.batches {
                        let (epoch, hash) = (acked.epoch.clone(), acked.hash.clone());
                        match self
                            .blocking(move |o| o.ack(&epoch, acked.batch_seq, &hash))
                            .await?
                        {
                            AckOutcome::Deleted => {
                                tracing::debug!(batch_seq = acked.batch_seq, "batch acknowledged");
                                batch = None;
                                st.in_flight = false;
                                st.sent_at = None;
                                let backlog = self.outbox.book().backlog();
                                // Never block on the main loop, which may be sending to us.
                                let _ = events.try_send(UploadEvent::Acked { backlog }.into());
                            }
                            AckOutcome::Ignored => {
                                tracing::debug!(
                                    batch_seq = acked.batch_seq,
                                    "ack for a batch not in flight ignored"
                                )
                            }
                        }
                    }
                    st.records_waiting(Instant::now(), self.outbox.book().ready());
                }
            }
        }
    }

    fn publish(&self, b: &StoredBatch) {
        tracing::debug!(
            batch_seq = b.info.batch_seq,
            first = b.info.first_seq,
            last = b.info.last_seq,
            "publishing batch"
        );
        if let Err(e) =
            self.client
                .try_publish(&self.topic, QoS::AtLeastOnce, false, b.bytes.clone())
        {
            tracing::warn!(error = %e, "could not queue batch; will resend");
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Outbox) -> Result<T, OutboxError> + Send + 'static,
    ) -> Result<T, OutboxError> {
        let outbox = self.outbox.clone();
        match tokio::task::spawn_blocking(move || f(&outbox)).await {
            Ok(r) => r,
            Err(e) => Err(OutboxError::Corrupt(format!("outbox task failed: {e}"))),
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn forms_after_a_second_or_five_hundred_records() {
        let t0 = Instant::now();
        let mut st = UploadState {
            connected: true,
            ..UploadState::default()
        };
        assert_eq!(st.due(t0, 0), None);
        st.records_waiting(t0, 3);
        assert_eq!(st.due(t0, 3), None);
        assert_eq!(st.next_wake(3), Some(t0 + Duration::from_secs(1)));
        // A later record does not restart the clock.
        st.records_waiting(t0 + Duration::from_millis(600), 4);
        assert_eq!(st.due(t0 + Duration::from_millis(999), 4), None);
        assert_eq!(st.due(t0 + Duration::from_secs(1), 4), Some(Action::Form));
        assert_eq!(st.due(t0, 500), Some(Action::Form));
        st.connected = false;
        assert_eq!(st.due(t0 + Duration::from_secs(5), 500), None);
        assert_eq!(st.next_wake(500), None);
    }

    #[tokio::test(start_paused = true)]
    async fn one_in_flight_resent_every_ten_seconds_and_on_reconnect() {
        let t0 = Instant::now();
        let mut st = UploadState {
            connected: true,
            in_flight: true,
            ..UploadState::default()
        };
        // Never sent on this connection: send now, whatever is ready.
        assert_eq!(st.due(t0, 900), Some(Action::Send));
        st.sent_at = Some(t0);
        assert_eq!(st.due(t0 + Duration::from_millis(9_999), 900), None);
        assert_eq!(st.next_wake(900), Some(t0 + RESEND_AFTER));
        assert_eq!(st.due(t0 + RESEND_AFTER, 900), Some(Action::Send));
        // A reconnect forgets when it was sent.
        st.sent_at = None;
        assert_eq!(st.due(t0 + Duration::from_secs(1), 0), Some(Action::Send));
    }

    fn record(i: i64) -> crate::outbox::NewPlay {
        let at = chrono::DateTime::from_timestamp(1_702_886_400 + 15 * i, 0).unwrap();
        crate::outbox::NewPlay {
            record: playlists::wire::PlayRecord {
                play_id: String::new(),
                screen_id: "scr-1".into(),
                epoch: String::new(),
                seq: 0,
                venue_id: "ven-1".into(),
                campaign_id: "camp-1".into(),
                creative_id: "cr-0".into(),
                creative_sha256: "0".repeat(64),
                schedule_version: 1,
                slot_start: at,
                started_at: at,
                ended_at: at,
                duration_ms: 0,
                status: playlists::wire::PlayStatus::Failed,
                clock_synced: true,
                media_sha256: None,
            },
            in_progress: false,
        }
    }

    /// Payloads published on the pop topic since the last call.
    fn published(eventloop: &mut rumqttc::EventLoop) -> Vec<Vec<u8>> {
        eventloop.clean();
        eventloop
            .pending
            .drain(..)
            .filter_map(|r| match r {
                rumqttc::Request::Publish(p) if p.topic == "signage/v1/screens/scr-1/pop" => {
                    Some(p.payload.to_vec())
                }
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn sends_resends_and_applies_acks() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, _) = Outbox::open(dir.path(), crate::outbox::Durability::Relaxed).unwrap();
        let outbox = Arc::new(outbox);
        for i in 0..3 {
            outbox.boundary(None, Some(record(i))).unwrap();
        }
        let opts = rumqttc::MqttOptions::new("scr-1", "127.0.0.1", 1);
        let (client, mut eventloop) = AsyncClient::new(opts, 64);
        let key = Keypair::from_secret([5; 32]);
        let uploader = Uploader {
            outbox: outbox.clone(),
            client,
            topic: "signage/v1/screens/scr-1/pop".into(),
            screen_id: "scr-1".into(),
            key: key.clone(),
        };
        let (tx, inbox) = mpsc::channel(8);
        let (events, mut events_rx) = mpsc::channel::<UploadEvent>(8);
        let stop = CancellationToken::new();
        let task = tokio::spawn(uploader.run(inbox, events, stop.clone()));

        // Offline: nothing goes out, however long it waits.
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(published(&mut eventloop).is_empty());
        assert!(outbox.in_flight().unwrap().is_none());
        // Connected: the waiting records form one batch, sent at once.
        tx.send(UploaderMsg::Connected(true)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let batch = outbox.in_flight().unwrap().expect("a batch in flight");
        assert_eq!((batch.info.first_seq, batch.info.last_seq), (1, 3));
        assert_eq!(published(&mut eventloop), vec![batch.bytes.clone()]);
        // No ack: the identical bytes again after ten seconds, and after a reconnect.
        tokio::time::sleep(RESEND_AFTER).await;
        assert_eq!(published(&mut eventloop), vec![batch.bytes.clone()]);
        tx.send(UploaderMsg::Connected(false)).await.unwrap();
        tx.send(UploaderMsg::Connected(true)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(published(&mut eventloop), vec![batch.bytes.clone()]);

        // A wrong hash or another epoch changes nothing; the right one deletes the batch
        // and its records.
        let ack = |epoch: &str, hash: &str| PopAck {
            v: 1,
            screen_id: "scr-1".into(),
            batches: vec![playlists::wire::pop::AckedBatch {
                epoch: epoch.into(),
                batch_seq: 1,
                hash: hash.into(),
            }],
        };
        let epoch = outbox.epoch().to_owned();
        tx.send(UploaderMsg::Ack(ack(&epoch, &"0".repeat(64))))
            .await
            .unwrap();
        tx.send(UploaderMsg::Ack(ack("", &batch.info.hash)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(outbox.book().backlog(), 3);
        tx.send(UploaderMsg::Ack(ack(&epoch, &batch.info.hash)))
            .await
            .unwrap();
        assert_eq!(
            events_rx.recv().await,
            Some(UploadEvent::Acked { backlog: 0 })
        );
        assert_eq!(outbox.book().rows, 0);
        assert!(outbox.in_flight().unwrap().is_none());

        // More records: the next batch chains to the first.
        outbox.boundary(None, Some(record(3))).unwrap();
        tx.send(UploaderMsg::Finalized).await.unwrap();
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let next = outbox.in_flight().unwrap().expect("second batch");
        assert_eq!((next.info.batch_seq, next.info.first_seq), (2, 4));
        let env = playlists::wire::signed::open_envelope(
            &next.bytes,
            playlists::wire::pop::BATCH_KIND,
            &key.public(),
            usize::MAX,
        )
        .unwrap();
        let body: playlists::wire::PopBatch = serde_json::from_str(&env.payload).unwrap();
        assert_eq!(body.prev_hash, batch.info.hash);
        stop.cancel();
        task.await.unwrap().unwrap();
    }
}
