//! The server's MQTT subscriptions on one connection: which SUBSCRIBE carried which topic
//! filters, so the filters a SUBACK refuses can be asked for again, and only those (the
//! schedule filter alone redelivers every retained document of the fleet).
//!
//! Brokers refuse a filter with SUBACK code 0x80. Mosquitto does for an ACL it denies; a
//! clustered broker may while its session store is unavailable (NATS's MQTT listeners do
//! around a node's death and restart). A refused filter that is never asked for again
//! leaves the server deaf to statuses or proof of play until its next reconnect.

use std::collections::{HashMap, VecDeque};

use rumqttc::SubscribeReasonCode;

/// Filters in flight per SUBSCRIBE, and those refused and not yet asked for again.
#[derive(Debug, Default)]
pub struct Subscriptions {
    /// Queued on the client, not yet sent (the driver sends them in order).
    queued: VecDeque<Vec<String>>,
    /// Sent, by packet id, waiting for their SUBACK.
    sent: HashMap<u16, Vec<String>>,
    refused: Vec<String>,
}

impl Subscriptions {
    /// A new connection: nothing is in flight or refused on it.
    pub fn connected(&mut self) {
        *self = Subscriptions::default();
    }

    /// `filters` were queued on the client as one SUBSCRIBE.
    pub fn queued(&mut self, filters: Vec<String>) {
        self.queued.push_back(filters);
    }

    /// `filters` could not be queued (the client's queue is full): they are asked for
    /// again with the refused ones.
    pub fn not_queued(&mut self, filters: Vec<String>) {
        self.refused.extend(filters);
    }

    /// The driver sent the oldest queued SUBSCRIBE as packet `pkid`.
    pub fn sent(&mut self, pkid: u16) {
        if let Some(filters) = self.queued.pop_front() {
            self.sent.insert(pkid, filters);
        }
    }

    /// The SUBACK of packet `pkid`: remembers and returns the filters it refused.
    pub fn acked(&mut self, pkid: u16, codes: &[SubscribeReasonCode]) -> Vec<String> {
        let Some(filters) = self.sent.remove(&pkid) else {
            return Vec::new();
        };
        let refused: Vec<String> = filters
            .into_iter()
            .zip(codes)
            .filter(|(_, c)| matches!(c, SubscribeReasonCode::Failure))
            .map(|(f, _)| f)
            .collect();
        self.refused.extend(refused.iter().cloned());
        refused
    }

    /// The refused filters to ask for again now (each once).
    pub fn take_refused(&mut self) -> Vec<String> {
        std::mem::take(&mut self.refused)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    fn filters(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn refusals_name_their_filters_by_packet_and_position() {
        let mut s = Subscriptions::default();
        let ok = SubscribeReasonCode::Success(QoS::AtLeastOnce);
        let no = SubscribeReasonCode::Failure;
        s.queued(filters(&["pop", "status", "schedule"]));
        s.queued(filters(&["again"]));
        s.sent(7);
        s.sent(8);
        assert_eq!(s.acked(8, &[no]), ["again"]);
        assert_eq!(s.acked(7, &[ok, no, ok]), ["status"]);
        // A SUBACK for nothing sent, or answered already, names nothing.
        assert!(s.acked(7, &[no]).is_empty());
        assert!(s.acked(99, &[no]).is_empty());
        assert_eq!(s.take_refused(), ["again", "status"]);
        assert!(s.take_refused().is_empty(), "each refusal is taken once");
        s.not_queued(filters(&["pop"]));
        assert_eq!(s.take_refused(), ["pop"]);
    }

    #[test]
    fn a_new_connection_forgets_the_old_one() {
        let mut s = Subscriptions::default();
        s.queued(filters(&["pop"]));
        s.sent(1);
        s.acked(1, &[SubscribeReasonCode::Failure]);
        s.queued(filters(&["status"]));
        s.connected();
        assert!(s.take_refused().is_empty());
        s.queued(filters(&["schedule"]));
        s.sent(1);
        assert_eq!(s.acked(1, &[SubscribeReasonCode::Failure]), ["schedule"]);
    }
}
