//! What a channel remembers: the last value per key (`snapshot: true`) and the newest records
//! (`history: N`, per key on `by_key` channels, per channel on `broadcast` ones), for
//! `subscribed.snapshot`, `resume` and `history` requests. Records are held as the very
//! [`Delivery`]s sent live (shared, not copied).
//!
//! Memory is bounded per channel by `max_keys` and `max_bytes`: beyond either, the key updated
//! least recently is dropped whole (snapshot and history); on broadcast channels the oldest held
//! record goes. Every drop raises a *floor* — the offset at or below which memory may miss
//! records — so a resume reaching below it is served from Kafka instead.
//!
//! Lives inside the hub's per-channel lock: updates and replays never interleave with routing.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use crate::protocol::Delivery;

/// A record as held: the shared record every session receives, and its position.
#[derive(Debug, Clone)]
pub struct Held {
    pub record: Arc<Delivery>,
    pub partition: i32,
    pub offset: i64,
    /// Kafka timestamp (ms), to merge partitions in time order.
    pub timestamp: i64,
    /// On `subscribe.where` channels: the record's value at the rule's pointer. Only sessions
    /// whose claim equals it receive the record, live or replayed.
    pub scope: Option<Arc<str>>,
}

impl Held {
    pub fn data(&self) -> &str {
        self.record.data()
    }

    /// Bytes this record costs while held (its size plus bookkeeping).
    fn cost(&self) -> usize {
        self.record.size() + 64
    }

    fn position(&self) -> (i32, i64) {
        (self.partition, self.offset)
    }
}

/// What a channel keeps, from its config.
#[derive(Debug, Clone, Copy)]
pub struct MemoryLimits {
    pub snapshot: bool,
    /// Records kept per key (keyed) or per channel.
    pub history: usize,
    /// History is per key (by_key channels) rather than per channel.
    pub keyed_history: bool,
    pub max_keys: usize,
    pub max_bytes: usize,
}

impl MemoryLimits {
    pub fn keeps_anything(&self) -> bool {
        self.snapshot || self.history > 0
    }
}

#[derive(Debug, Default)]
struct KeyState {
    /// Position in the least-recently-updated order.
    seq: u64,
    snapshot: Option<Held>,
    /// A tombstone's position, so an older value read later (snapshot loading) cannot revive
    /// the key.
    removed_at: Option<(i32, i64)>,
    history: VecDeque<Held>,
    /// Offsets at or below this (on the key's partitions) may be missing from `history`.
    floor: i64,
    bytes: usize,
}

/// Live progress of one partition since the bridge started.
#[derive(Debug, Clone, Copy)]
struct PartitionState {
    /// First offset routed live; memory knows nothing before it.
    first: i64,
    /// Next offset the live consumer will route.
    next: i64,
    /// Broadcast history, and keys dropped whole: records at or below may be missing.
    floor: i64,
}

/// Which records a replay is about.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Key(&'a str),
    All,
}

/// A partition range memory cannot serve: offsets `from..until` (`until` None: up to the
/// partition's end) must come from Kafka.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    pub partition: i32,
    pub from: i64,
    pub until: Option<i64>,
}

/// Counters the owner reports as metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct MemoryStats {
    pub keys: usize,
    pub bytes: usize,
    pub evicted_keys: u64,
    pub evicted_records: u64,
}

#[derive(Debug)]
pub struct ChannelMemory {
    limits: MemoryLimits,
    keys: HashMap<Arc<str>, KeyState>,
    /// seq → key, oldest update first.
    order: BTreeMap<u64, Arc<str>>,
    next_seq: u64,
    /// Broadcast channels' history.
    channel_history: VecDeque<Held>,
    /// foldhash: looked up twice per routed record.
    partitions: HashMap<i32, PartitionState, foldhash::fast::RandomState>,
    stats: MemoryStats,
}

impl ChannelMemory {
    pub fn new(limits: MemoryLimits) -> Self {
        ChannelMemory {
            limits,
            keys: HashMap::new(),
            order: BTreeMap::new(),
            next_seq: 0,
            channel_history: VecDeque::new(),
            partitions: HashMap::default(),
            stats: MemoryStats::default(),
        }
    }

    pub fn stats(&self) -> MemoryStats {
        MemoryStats {
            keys: self.keys.len(),
            ..self.stats
        }
    }

    /// The live consumer routed (or skipped) this offset.
    pub fn advance(&mut self, partition: i32, offset: i64) {
        let state = self.partitions.entry(partition).or_insert(PartitionState {
            first: offset,
            next: offset,
            floor: -1,
        });
        state.next = state.next.max(offset + 1);
    }

    /// Next offset the live consumer will route on `partition`, if it routed any.
    pub fn live_next(&self, partition: i32) -> Option<i64> {
        self.partitions.get(&partition).map(|p| p.next)
    }

    /// Partitions seen live.
    pub fn live_partitions(&self) -> Vec<i32> {
        let mut partitions: Vec<i32> = self.partitions.keys().copied().collect();
        partitions.sort_unstable();
        partitions
    }

    /// Remembers a record routed live. `key` is its routing key; `tombstone` a null value.
    pub fn remember(&mut self, key: Option<&str>, held: &Held, tombstone: bool) {
        if self.limits.history > 0 && !self.limits.keyed_history {
            self.stats.bytes += held.cost();
            self.channel_history.push_back(held.clone());
            while self.channel_history.len() > self.limits.history {
                self.pop_channel_history();
            }
        }
        let keyed_history = self.limits.history > 0 && self.limits.keyed_history;
        if let (Some(key), true) = (key, self.limits.snapshot || keyed_history) {
            let seq = self.touch(key);
            let history = self.limits.history;
            let snapshot = self.limits.snapshot;
            let entry = self.keys.get_mut(key).expect("touched");
            entry.seq = seq;
            let mut delta: isize = 0;
            if snapshot {
                delta += set_snapshot(entry, held, tombstone);
            }
            if keyed_history {
                entry.history.push_back(held.clone());
                delta += held.cost() as isize;
                while entry.history.len() > history {
                    let old = entry.history.pop_front().expect("non-empty");
                    entry.floor = entry.floor.max(old.offset);
                    delta -= old.cost() as isize;
                    self.stats.evicted_records += 1;
                }
            }
            entry.bytes = entry.bytes.saturating_add_signed(delta);
            self.stats.bytes = self.stats.bytes.saturating_add_signed(delta);
        }
        self.enforce_limits();
    }

    /// A record read while loading snapshots at start: only the snapshot may change, and only
    /// towards newer positions.
    pub fn load_snapshot(&mut self, key: &str, held: &Held, tombstone: bool) {
        if !self.limits.snapshot {
            return;
        }
        let newer = |at: Option<(i32, i64)>| match at {
            Some((partition, offset)) => partition != held.partition || held.offset > offset,
            None => true,
        };
        if let Some(entry) = self.keys.get(key) {
            let current = entry
                .snapshot
                .as_ref()
                .map(Held::position)
                .or(entry.removed_at);
            if !newer(current) {
                return;
            }
        } else if tombstone {
            return;
        }
        let seq = self.touch(key);
        let entry = self.keys.get_mut(key).expect("touched");
        entry.seq = seq;
        let delta = set_snapshot(entry, held, tombstone);
        entry.bytes = entry.bytes.saturating_add_signed(delta);
        self.stats.bytes = self.stats.bytes.saturating_add_signed(delta);
        self.enforce_limits();
    }

    /// The snapshot of one key.
    pub fn snapshot(&self, key: &str) -> Option<&Held> {
        self.keys.get(key)?.snapshot.as_ref()
    }

    /// Every key's snapshot, most recently updated last, at most `limit` (the newest).
    pub fn snapshots(&self, limit: usize) -> Vec<Held> {
        let mut out: Vec<Held> = self
            .order
            .values()
            .rev()
            .filter_map(|key| self.keys[key].snapshot.clone())
            .take(limit)
            .collect();
        out.reverse();
        out
    }

    /// Held records of the target on one partition, oldest first.
    fn held(&self, target: Target<'_>) -> Vec<&Held> {
        match target {
            Target::All => self.channel_history.iter().collect(),
            Target::Key(key) => self
                .keys
                .get(key)
                .map(|k| k.history.iter().collect())
                .unwrap_or_default(),
        }
    }

    /// From which offset on `partition` memory holds every record of the target (up to the
    /// live position). `None` when the partition was never seen live.
    pub fn complete_from(&self, target: Target<'_>, partition: i32) -> Option<i64> {
        let state = self.partitions.get(&partition)?;
        let key_floor = match target {
            Target::Key(key) => self.keys.get(key).map_or(-1, |k| k.floor),
            Target::All => -1,
        };
        let history_kept = match target {
            Target::All => self.limits.history > 0 && !self.limits.keyed_history,
            Target::Key(_) => self.limits.history > 0 && self.limits.keyed_history,
        };
        if !history_kept {
            // Nothing is held: memory covers only what is still to come.
            return Some(state.next);
        }
        Some(state.first.max(state.floor + 1).max(key_floor + 1))
    }

    /// Records of the target after `after` (per partition; partitions not listed: every held
    /// record), or the ranges memory cannot serve for the listed partitions.
    pub fn replay_after(
        &self,
        target: Target<'_>,
        after: &BTreeMap<i32, i64>,
    ) -> Result<Vec<Held>, Vec<Missing>> {
        let mut missing = Vec::new();
        for (&partition, &last_seen) in after {
            match self.complete_from(target, partition) {
                Some(from) if last_seen + 1 >= from => {}
                Some(from) => missing.push(Missing {
                    partition,
                    from: last_seen + 1,
                    until: Some(from),
                }),
                None => missing.push(Missing {
                    partition,
                    from: last_seen + 1,
                    until: None,
                }),
            }
        }
        if !missing.is_empty() {
            return Err(missing);
        }
        Ok(self
            .held(target)
            .into_iter()
            .filter(|h| after.get(&h.partition).is_none_or(|last| h.offset > *last))
            .cloned()
            .collect())
    }

    /// The newest `count` held records of the target, oldest first, and whether that is all
    /// that was asked for (records are appended in order, so the newest held ones are the
    /// newest that exist; when fewer are held the rest must come from Kafka).
    pub fn newest(&self, target: Target<'_>, count: usize) -> (Vec<Held>, bool) {
        let mut held: Vec<Held> = self.held(target).into_iter().cloned().collect();
        sort_by_time(&mut held);
        let newest = held.split_off(held.len().saturating_sub(count));
        let enough = newest.len() >= count;
        (newest, enough)
    }

    /// Assigns a fresh update sequence to `key`, creating its entry.
    fn touch(&mut self, key: &str) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        match self.keys.get_mut(key) {
            Some(entry) => {
                if let Some(name) = self.order.remove(&entry.seq) {
                    self.order.insert(seq, name);
                }
            }
            None => {
                let name: Arc<str> = Arc::from(key);
                // A key (re)appearing after being dropped whole: memory may miss its past.
                let floor = self
                    .partitions
                    .values()
                    .map(|p| p.floor)
                    .max()
                    .unwrap_or(-1);
                self.keys.insert(
                    name.clone(),
                    KeyState {
                        floor,
                        ..KeyState::default()
                    },
                );
                self.order.insert(seq, name);
            }
        }
        seq
    }

    fn pop_channel_history(&mut self) {
        if let Some(old) = self.channel_history.pop_front() {
            self.stats.bytes = self.stats.bytes.saturating_sub(old.cost());
            self.stats.evicted_records += 1;
            if let Some(state) = self.partitions.get_mut(&old.partition) {
                state.floor = state.floor.max(old.offset);
            }
        }
    }

    /// Drops the least recently updated keys (and the oldest broadcast history) until within
    /// `max_keys` and `max_bytes`.
    fn enforce_limits(&mut self) {
        while self.keys.len() > self.limits.max_keys
            || (self.stats.bytes > self.limits.max_bytes && !self.keys.is_empty())
        {
            if self.stats.bytes > self.limits.max_bytes && !self.channel_history.is_empty() {
                self.pop_channel_history();
                continue;
            }
            let Some((_, key)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.keys.remove(&key) {
                self.stats.bytes = self.stats.bytes.saturating_sub(entry.bytes);
                self.stats.evicted_keys += 1;
                for held in entry.history.iter().chain(entry.snapshot.as_ref()) {
                    if let Some(state) = self.partitions.get_mut(&held.partition) {
                        state.floor = state.floor.max(held.offset);
                    }
                }
            }
        }
        while self.stats.bytes > self.limits.max_bytes && !self.channel_history.is_empty() {
            self.pop_channel_history();
        }
    }
}

/// Sets or clears a key's snapshot; returns the change in held bytes.
fn set_snapshot(entry: &mut KeyState, held: &Held, tombstone: bool) -> isize {
    let before = entry.snapshot.as_ref().map_or(0, Held::cost) as isize;
    if tombstone {
        entry.snapshot = None;
        entry.removed_at = Some(held.position());
    } else {
        entry.snapshot = Some(held.clone());
        entry.removed_at = None;
    }
    entry.snapshot.as_ref().map_or(0, Held::cost) as isize - before
}

/// Orders records by time across partitions while keeping each partition in offset order
/// (timestamps within a partition need not increase): a merge of the partitions by the
/// timestamp of their next record.
pub fn sort_by_time(records: &mut Vec<Held>) {
    records.sort_by_key(|h| (h.partition, h.offset));
    let mut partitions: Vec<std::collections::VecDeque<Held>> = Vec::new();
    for held in records.drain(..) {
        match partitions.last_mut() {
            Some(run) if run.back().is_some_and(|h| h.partition == held.partition) => {
                run.push_back(held)
            }
            _ => partitions.push(std::collections::VecDeque::from([held])),
        }
    }
    while let Some(next) = partitions
        .iter_mut()
        .filter(|run| !run.is_empty())
        .min_by_key(|run| run.front().map(|h| (h.timestamp, h.partition)))
    {
        records.push(next.pop_front().expect("non-empty"));
    }
}
