//! What a subscription lets through besides its route: its `subscribe.where` scope and its
//! client `filter`, the same for live records and replays. A client filter is evaluated on the
//! record's frame as sent (the transformed value, its key and headers), parsed once per record
//! however many subscriptions filter it.

use serde_json::Value;

use crate::predicate::{Predicate, Subject};
use crate::state::Held;

/// A `message` frame read back for client filters.
pub struct FrameSubject(Value);

impl FrameSubject {
    pub fn parse(held: &Held) -> Option<FrameSubject> {
        serde_json::from_str(held.frame.as_str())
            .ok()
            .map(FrameSubject)
    }
}

impl Subject for FrameSubject {
    fn value(&self) -> Option<&Value> {
        self.0.get("data")
    }
    fn key(&self) -> Option<&str> {
        self.0.get("key").and_then(Value::as_str)
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get("headers")?.get(name)?.as_str()
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
            && self.filter.is_none_or(|filter| {
                FrameSubject::parse(held).is_some_and(|subject| filter.matches(&subject))
            })
    }
}
