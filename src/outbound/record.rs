//! Records as outbound takes them from Kafka: borrowed from the consumer's buffer while one
//! is routed ([`Record`], handed to a [`RecordSink`]), or owned when read back for a replay
//! ([`OwnedRecord`], returned by a [`RangeRead`]). The `kafka` module implements both sides;
//! this one never sees librdkafka.

use std::future::Future;
use std::pin::Pin;

use crate::hub::{Fetched, Need};

/// A consumed record, borrowed from the client's buffer for the duration of one call.
#[derive(Debug)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    /// Milliseconds since the epoch, when the record has a timestamp.
    pub timestamp: Option<i64>,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

impl<'a> Record<'a> {
    /// The first header of that name, when present with a value.
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| *v)
    }
}

/// Where the consumer hands each record, on its own thread. Returns once the record is routed:
/// it may wait (at most the writer grace) for sessions to take what it queued, which paces the
/// consumer by the sessions that read.
pub trait RecordSink: Send + Sync + 'static {
    fn record(&self, record: &Record<'_>) -> Routed;
}

/// What a [`RecordSink`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Routed {
    /// Routed, or skipped for good (counted): the consumer moves on and may commit past it.
    Done,
    /// Not routable yet — its schema is being fetched. The consumer hands the same record again
    /// later; the records after it on its partition wait behind it (order is kept), while other
    /// partitions flow.
    Later,
}

/// A record read from Kafka, owned.
#[derive(Debug, Clone)]
pub struct OwnedRecord {
    pub partition: i32,
    pub offset: i64,
    pub timestamp: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl OwnedRecord {
    /// Lends the record to code written for live records.
    pub fn with_record<T>(&self, topic: &str, f: impl FnOnce(&Record<'_>) -> T) -> T {
        let headers: Vec<(&str, Option<&[u8]>)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        f(&Record {
            topic,
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
            headers: &headers,
        })
    }
}

/// A read of Kafka under way.
pub type ReadFuture = Pin<Box<dyn Future<Output = Result<Fetched<OwnedRecord>, String>> + Send>>;

/// Reads what a replay needs from Kafka, on a consumer other than the live one.
pub trait RangeRead: Send + Sync {
    /// Reads `need` from `topic`, at most `limit` records.
    fn read(&self, topic: &str, need: Need, limit: usize) -> ReadFuture;
}
