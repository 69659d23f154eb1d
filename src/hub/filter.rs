//! What a subscription lets through besides its route: its `subscribe.where` scope and its
//! client `filter`, the same for live records and replays. A client filter reads the record as
//! sent (the transformed value, its key and headers) from the shared [`Delivery`], whose value
//! is parsed once per record however many subscriptions filter it.

use serde_json::Value;

use crate::predicate::{Predicate, Subject};
use crate::protocol::Delivery;
use crate::state::Held;

/// A record as client filters read it.
pub struct RecordSubject<'a>(pub &'a Delivery);

impl Subject for RecordSubject<'_> {
    fn value(&self) -> Option<&Value> {
        self.0.value()
    }
    fn key(&self) -> Option<&str> {
        self.0.key()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0.header(name)
    }
}

/// A subscription's scope and filter.
#[derive(Clone, Copy)]
pub struct Sieve<'a> {
    pub scope: Option<&'a str>,
    pub filter: Option<&'a Predicate>,
}

impl Sieve<'_> {
    /// Whether a held record (replayed, or a snapshot) may go to the subscription.
    pub fn admits(&self, held: &Held) -> bool {
        held.scope.as_deref() == self.scope
            && self
                .filter
                .is_none_or(|filter| filter.matches(&RecordSubject(&held.record)))
    }
}
