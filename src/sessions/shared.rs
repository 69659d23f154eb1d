//! `auth.session_registry`: the session limit across instances. Each instance appends a record
//! to a compacted topic when a counted session opens and a tombstone when it closes, reads every
//! instance's records, and closes those of its own sessions that are no longer among the newest
//! N of their user and group. Kafka is the only thing the instances share.
//!
//! A record's key is `["user", "group" or null, "session"]` (one key per session, so that
//! compaction keeps every open session and a tombstone removes one); its value is
//! `{"instance", "boot", "opened_at_ms", "seq"}`. "Newest" is by `opened_at_ms`, then instance,
//! then `seq`: every instance orders the same records the same way, whatever their partition.
//! Records that do not parse, or claim to open more than [`MAX_FUTURE_MS`] from now, are
//! ignored, counted and reported (a warning at most every [`WARN_INTERVAL`]).

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus::IntCounter;
use serde::{Deserialize, Serialize};

use super::GroupKey;

/// Where the records go. Implemented by the Kafka side; appending never blocks, and a failed
/// write is the writer's to count and report.
pub trait RegistryLog: Send + Sync {
    /// Appends a record; `value` `None` is a tombstone.
    fn append(&self, key: Vec<u8>, value: Option<Vec<u8>>);
}

/// A record opening later than this after the reader's clock is ignored: it would hold a slot
/// of its user for as long as it claims, and no clock of a healthy instance is that far ahead.
pub(crate) const MAX_FUTURE_MS: u64 = 60_000;
/// Ignored records are reported at most this often (each is counted).
pub(crate) const WARN_INTERVAL: Duration = Duration::from_secs(10);
/// Longest user id, instance id and boot id a record may carry (bytes).
const MAX_USER: usize = 1024;
const MAX_ID: usize = 256;
/// Longest group (bytes: 64 characters of the handshake's alphabet).
const MAX_GROUP: usize = 64;
/// Longest key or value a record may have.
const MAX_RECORD: usize = 4096;

/// Which of two opens is newer: compared field by field, the same on every instance.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Order {
    pub opened_at_ms: u64,
    pub instance: String,
    pub seq: u64,
}

/// An open session as a record tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Opened {
    pub session: String,
    pub order: Order,
    /// Which start of `order.instance` wrote it (a restarted instance has a new one).
    pub boot: String,
}

/// What one record says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record {
    Open { key: GroupKey, opened: Opened },
    Close { key: GroupKey, session: String },
}

/// Why a record was ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ignored {
    Malformed(String),
    /// Opened later than [`MAX_FUTURE_MS`] from now.
    Future {
        ahead_ms: u64,
    },
}

impl std::fmt::Display for Ignored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ignored::Malformed(why) => f.write_str(why),
            Ignored::Future { ahead_ms } => write!(
                f,
                "opened {ahead_ms} ms after this instance's clock (more than {MAX_FUTURE_MS} ms)"
            ),
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Value {
    instance: String,
    boot: String,
    opened_at_ms: u64,
    seq: u64,
}

pub(crate) fn encode_key(key: &GroupKey, session: &str) -> Vec<u8> {
    serde_json::to_vec(&(&key.user, &key.group, session)).expect("strings serialize")
}

pub(crate) fn encode_open(opened: &Opened) -> Vec<u8> {
    serde_json::to_vec(&Value {
        instance: opened.order.instance.clone(),
        boot: opened.boot.clone(),
        opened_at_ms: opened.order.opened_at_ms,
        seq: opened.order.seq,
    })
    .expect("plain values serialize")
}

/// Reads a record of the registry topic; `now_ms` is the reader's clock.
pub fn decode(key: Option<&[u8]>, value: Option<&[u8]>, now_ms: u64) -> Result<Record, Ignored> {
    let malformed = |why: String| Ignored::Malformed(why);
    let key = key.ok_or_else(|| malformed("a record without a key".into()))?;
    if key.len() > MAX_RECORD || value.is_some_and(|v| v.len() > MAX_RECORD) {
        return Err(malformed(format!(
            "a record over {MAX_RECORD} bytes (key {} bytes, value {} bytes)",
            key.len(),
            value.map_or(0, <[u8]>::len)
        )));
    }
    let (user, group, session): (String, Option<String>, String) = serde_json::from_slice(key)
        .map_err(|e| {
            malformed(format!(
                "key: expected [\"user\", \"group\" or null, \"session\"]: {e}"
            ))
        })?;
    let too_long = [
        ("user", user.len(), MAX_USER),
        ("group", group.as_ref().map_or(0, String::len), MAX_GROUP),
        ("session", session.len(), MAX_ID),
    ]
    .into_iter()
    .find(|(_, len, max)| len > max);
    if let Some((what, len, max)) = too_long {
        return Err(malformed(format!(
            "key: {what} of {len} bytes (at most {max})"
        )));
    }
    if user.is_empty() || session.is_empty() || group.as_ref().is_some_and(String::is_empty) {
        return Err(malformed("key: an empty user, group or session".to_owned()));
    }
    let key = GroupKey { user, group };
    let Some(value) = value else {
        return Ok(Record::Close { key, session });
    };
    let value: Value = serde_json::from_slice(value).map_err(|e| {
        malformed(format!(
            "value: expected {{\"instance\", \"boot\", \"opened_at_ms\", \"seq\"}} or a tombstone: {e}"
        ))
    })?;
    if value.instance.is_empty()
        || value.instance.len() > MAX_ID
        || value.boot.is_empty()
        || value.boot.len() > MAX_ID
    {
        return Err(malformed(format!(
            "value: instance and boot must be 1 to {MAX_ID} bytes"
        )));
    }
    if value.opened_at_ms > now_ms.saturating_add(MAX_FUTURE_MS) {
        return Err(Ignored::Future {
            ahead_ms: value.opened_at_ms - now_ms,
        });
    }
    Ok(Record::Open {
        key,
        opened: Opened {
            session,
            order: Order {
                opened_at_ms: value.opened_at_ms,
                instance: value.instance,
                seq: value.seq,
            },
            boot: value.boot,
        },
    })
}

/// The newest `max` open sessions of each user and group, as the records tell them. An open
/// pushed out of them never comes back: its instance closes it when it reads the same records.
#[derive(Debug, Default)]
pub(crate) struct Directory {
    max: usize,
    /// Oldest first; at most `max` each.
    groups: HashMap<GroupKey, Vec<Opened>>,
}

impl Directory {
    pub fn new(max: usize) -> Self {
        Directory {
            max: max.max(1),
            groups: HashMap::new(),
        }
    }

    /// Applies an open; returns what it pushed out of the newest `max` of its group (the open
    /// itself, when `max` newer ones are known). An open known already changes nothing.
    pub fn open(&mut self, key: GroupKey, opened: Opened) -> Vec<Opened> {
        let entries = self.groups.entry(key).or_default();
        if entries.iter().any(|e| e.session == opened.session) {
            return Vec::new();
        }
        let at = entries.partition_point(|e| e.order < opened.order);
        entries.insert(at, opened);
        let excess = entries.len().saturating_sub(self.max);
        entries.drain(..excess).collect()
    }

    /// Applies a close (a tombstone).
    pub fn close(&mut self, key: &GroupKey, session: &str) {
        if let Some(entries) = self.groups.get_mut(key) {
            entries.retain(|e| e.session != session);
            if entries.is_empty() {
                self.groups.remove(key);
            }
        }
    }

    /// Open sessions known, over all groups.
    pub fn open_sessions(&self) -> usize {
        self.groups.values().map(Vec::len).sum()
    }
}

/// The registry's counters.
#[derive(Clone)]
pub struct SharedMetrics {
    /// Records read, by what they were: opens, closes (tombstones), ignored.
    pub opened: IntCounter,
    pub closed: IntCounter,
    pub ignored: IntCounter,
}

/// Reading the registry topic, as readiness reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Loading {
    /// Reading what the topic held at start; the last problem, if any.
    Reading(Option<String>),
    /// Read up to where it was at start: this instance knows every open session.
    Loaded,
}

/// What the registry of sessions needs for the shared limit.
pub struct Shared {
    pub(super) instance: String,
    /// This start of the instance: records of the same instance with another boot are a
    /// previous start's, whose sessions are gone.
    pub(super) boot: String,
    pub(super) log: Box<dyn RegistryLog>,
    pub(super) metrics: SharedMetrics,
    pub(super) state: Mutex<SharedState>,
}

pub(super) struct SharedState {
    pub(super) directory: Directory,
    /// The last open written: `opened_at_ms` never goes back, and `seq` orders opens within
    /// one millisecond.
    pub(super) last_ms: u64,
    pub(super) seq: u64,
    pub(super) loading: Loading,
    /// Sessions a previous start of this instance left open, tombstoned once loaded.
    pub(super) previous: BTreeSet<(GroupKey, String)>,
    /// When an ignored record was last reported, and how many were not reported since.
    pub(super) warned: Option<Instant>,
    pub(super) unreported: u64,
}

impl Shared {
    /// The shared limit of `instance` (`instance_id`), keeping `max` sessions per user and
    /// group, writing to `log`.
    pub fn new(
        instance: String,
        max: usize,
        log: Box<dyn RegistryLog>,
        metrics: SharedMetrics,
    ) -> Self {
        Shared {
            instance,
            boot: uuid::Uuid::new_v4().simple().to_string(),
            log,
            metrics,
            state: Mutex::new(SharedState {
                directory: Directory::new(max),
                last_ms: 0,
                seq: 0,
                loading: Loading::Reading(None),
                previous: BTreeSet::new(),
                warned: None,
                unreported: 0,
            }),
        }
    }

    /// Writes the open of a session of this instance.
    pub(super) fn opened(&self, key: &GroupKey, session: &str) {
        let order = {
            let mut state = self.state.lock();
            state.last_ms = state.last_ms.max(now_ms());
            state.seq += 1;
            Order {
                opened_at_ms: state.last_ms,
                instance: self.instance.clone(),
                seq: state.seq,
            }
        };
        let opened = Opened {
            session: session.to_owned(),
            order,
            boot: self.boot.clone(),
        };
        self.log
            .append(encode_key(key, session), Some(encode_open(&opened)));
    }

    /// Writes the close of a session of this instance.
    pub(super) fn closed(&self, key: &GroupKey, session: &str) {
        self.log.append(encode_key(key, session), None);
    }

    /// Whether an open is one of this start's sessions.
    pub(super) fn is_mine(&self, opened: &Opened) -> bool {
        opened.order.instance == self.instance && opened.boot == self.boot
    }

    /// Counts an ignored record; reports it unless one was reported within [`WARN_INTERVAL`].
    pub(super) fn ignore(&self, state: &mut SharedState, why: &Ignored) {
        self.metrics.ignored.inc();
        let now = Instant::now();
        if state
            .warned
            .is_some_and(|at| now.duration_since(at) < WARN_INTERVAL)
        {
            state.unreported += 1;
            return;
        }
        let unreported = std::mem::take(&mut state.unreported);
        state.warned = Some(now);
        tracing::warn!(
            reason = %why,
            also_ignored_since_last_warning = unreported,
            "session registry: ignored a record that is not a bridge's (kafka_ws_bridge_session_registry_records_total{{result=\"ignored\"}})"
        );
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
