//! The compiled schemas by id: read on every record, written once per id. A read takes the
//! read lock, clones an `Arc` and, at most once between two inserts, stamps the entry as
//! used; nothing is allocated. Past `max` entries, an insert evicts the entry used least
//! recently (recency counted in inserts, which is all eviction needs).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use super::Schema;

pub(crate) struct Cache {
    entries: RwLock<HashMap<u32, Entry>>,
    /// Counts inserts; an entry read since the last insert carries the current value, one
    /// inserted carries the value before it.
    epoch: AtomicU64,
    max: usize,
}

struct Entry {
    schema: Arc<Schema>,
    used: AtomicU64,
}

impl Cache {
    pub fn new(max: usize) -> Cache {
        Cache {
            entries: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            max: max.max(1),
        }
    }

    #[inline]
    pub fn get(&self, id: u32) -> Option<Arc<Schema>> {
        let entries = self.entries.read();
        let entry = entries.get(&id)?;
        let epoch = self.epoch.load(Ordering::Relaxed);
        // Only written when it changes, so readers on other cores do not fight over the line.
        if entry.used.load(Ordering::Relaxed) != epoch {
            entry.used.store(epoch, Ordering::Relaxed);
        }
        Some(entry.schema.clone())
    }

    /// Adds `schema` (keeping the one already there, if another fetch got there first) and
    /// answers the schema now cached and how many are.
    pub fn insert(&self, id: u32, schema: Arc<Schema>) -> (Arc<Schema>, usize) {
        let mut entries = self.entries.write();
        // Reads after this insert stamp entries newer than the one inserted.
        let epoch = self.epoch.fetch_add(1, Ordering::Relaxed);
        let kept = entries
            .entry(id)
            .or_insert_with(|| Entry {
                schema,
                used: AtomicU64::new(epoch),
            })
            .schema
            .clone();
        while entries.len() > self.max {
            let oldest = entries
                .iter()
                .filter(|(&other, _)| other != id)
                .min_by_key(|(_, e)| e.used.load(Ordering::Relaxed))
                .map(|(&other, _)| other);
            match oldest {
                Some(other) => entries.remove(&other),
                None => break,
            };
        }
        (kept, entries.len())
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::SchemaKind;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::compile(SchemaKind::Avro, "\"long\"", &[], 1000).unwrap())
    }

    #[test]
    fn evicts_the_least_recently_used() {
        let cache = Cache::new(2);
        cache.insert(1, schema());
        cache.insert(2, schema());
        assert!(cache.get(1).is_some(), "1 is now more recent than 2");
        let (_, len) = cache.insert(3, schema());
        assert_eq!(len, 2);
        assert!(cache.get(2).is_none(), "2 was used least recently");
        assert!(cache.get(1).is_some() && cache.get(3).is_some());
    }

    #[test]
    fn keeps_the_first_of_two_inserts() {
        let cache = Cache::new(4);
        let first = schema();
        cache.insert(7, first.clone());
        let (kept, len) = cache.insert(7, schema());
        assert!(Arc::ptr_eq(&kept, &first));
        assert_eq!(len, 1);
    }
}
