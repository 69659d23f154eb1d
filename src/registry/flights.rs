//! Fetches of schema ids, one at a time per id, and what callers are told meanwhile: a
//! failed fetch backs off and is tried again while records wait for it; an id the registry
//! does not have is remembered for a while. Also the subject versions publishes use.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::watch;

use super::client::{Answer, Failure};
use super::{Inner, Lookup, RegistryError, Schema, SchemaVersion};

/// How long "no such schema" (or "does not compile") is the answer before asking again.
const BAD_FOR: Duration = Duration::from_secs(30);
const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A failing fetch keeps being retried while someone asked for the id this recently.
const INTEREST: Duration = Duration::from_secs(60);
/// Ids being fetched, backing off or remembered bad at once; past it, a new id is refused
/// (records of random ids cost at most this many requests per [`BAD_FOR`]).
const MAX_FLIGHTS: usize = 1024;
/// After a failed re-ask of `latest`, the version known is used this long before asking again.
const STALE_RETRY: Duration = Duration::from_secs(5);

#[derive(Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<u32, Flight>>,
}

struct Flight {
    state: State,
    /// When a caller last asked for the id.
    asked: Instant,
    /// Ticks whenever `state` changes; dropped (waking every receiver) when the flight ends.
    changed: watch::Sender<()>,
}

enum State {
    Fetching,
    Backoff(String),
    Bad {
        until: Instant,
        error: RegistryError,
    },
}

impl Flights {
    /// Ids records may be waiting for.
    pub fn waiting(&self) -> usize {
        let map = self.map.lock();
        map.values()
            .filter(|f| !matches!(f.state, State::Bad { .. }))
            .count()
    }
}

/// What the flight table says of an id.
enum Seen {
    Cached(Arc<Schema>),
    Waiting(watch::Receiver<()>),
    Backoff(String),
    Bad(RegistryError),
}

/// Looks the id up in the flight table, starting a fetch when none is under way.
fn visit(inner: &Arc<Inner>, id: u32) -> Seen {
    let now = Instant::now();
    let mut map = inner.flights.map.lock();
    // A fetch may have finished since the caller missed the cache (it inserts, then leaves).
    if let Some(schema) = inner.cache.get(id) {
        return Seen::Cached(schema);
    }
    if let Some(flight) = map.get_mut(&id) {
        flight.asked = now;
        match &flight.state {
            State::Fetching => return Seen::Waiting(flight.changed.subscribe()),
            State::Backoff(error) => return Seen::Backoff(error.clone()),
            State::Bad { until, error } if *until > now => return Seen::Bad(error.clone()),
            State::Bad { .. } => {}
        }
    } else if map.len() >= MAX_FLIGHTS {
        map.retain(|_, f| !matches!(f.state, State::Bad { until, .. } if until <= now));
        if map.len() >= MAX_FLIGHTS {
            return Seen::Bad(RegistryError::Unavailable(format!(
                "schema {id}: more than {MAX_FLIGHTS} schema ids are unresolved at once"
            )));
        }
    }
    let (changed, waiting) = watch::channel(());
    let flight = Flight {
        state: State::Fetching,
        asked: now,
        changed,
    };
    map.insert(id, flight);
    drop(map);
    inner.runtime.spawn(run(inner.clone(), id));
    Seen::Waiting(waiting)
}

pub(crate) fn lookup(inner: &Arc<Inner>, id: u32) -> Lookup {
    match visit(inner, id) {
        Seen::Cached(schema) => Lookup::Ready(schema),
        Seen::Waiting(_) | Seen::Backoff(_) => Lookup::Pending,
        Seen::Bad(error) => Lookup::Bad(error.to_string()),
    }
}

pub async fn schema(inner: &Arc<Inner>, id: u32) -> Result<Arc<Schema>, RegistryError> {
    loop {
        if let Some(schema) = inner.cache.get(id) {
            return Ok(schema);
        }
        match visit(inner, id) {
            Seen::Cached(schema) => return Ok(schema),
            // Woken by a change of state or by the flight ending; either way, look again.
            Seen::Waiting(mut changed) => {
                let _ = changed.changed().await;
            }
            Seen::Backoff(error) => return Err(RegistryError::Unavailable(error)),
            Seen::Bad(error) => return Err(error),
        }
    }
}

/// The fetch of one id, tried again with backoff while the registry is unavailable.
async fn run(inner: Arc<Inner>, id: u32) {
    let mut delay = FIRST_BACKOFF;
    loop {
        let result = fetch(&inner, id).await;
        {
            let mut map = inner.flights.map.lock();
            match result {
                Ok(schema) => {
                    let (_, cached) = inner.cache.insert(id, schema);
                    inner.metrics.cached.set(cached as i64);
                    map.remove(&id);
                    return;
                }
                Err(error) => {
                    let Some(flight) = map.get_mut(&id) else {
                        return;
                    };
                    tracing::warn!(schema_id = id, %error, "schema registry: fetch failed");
                    flight.state = match error {
                        RegistryError::Unavailable(e) => State::Backoff(e),
                        error => State::Bad {
                            until: Instant::now() + BAD_FOR,
                            error,
                        },
                    };
                    flight.changed.send_modify(|_| ());
                    if matches!(flight.state, State::Bad { .. }) {
                        return;
                    }
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
        let mut map = inner.flights.map.lock();
        let Some(flight) = map.get_mut(&id) else {
            return;
        };
        if flight.asked.elapsed() > INTEREST {
            map.remove(&id);
            return;
        }
        flight.state = State::Fetching;
    }
}

fn failure(what: &str, failure: Failure) -> RegistryError {
    match failure {
        Failure::NotFound(message) => RegistryError::NotFound {
            what: what.to_owned(),
            message,
        },
        Failure::Error(e) | Failure::Timeout(e) => {
            RegistryError::Unavailable(format!("{what}: {e}"))
        }
    }
}

async fn fetch(inner: &Inner, id: u32) -> Result<Arc<Schema>, RegistryError> {
    let what = format!("schema {id}");
    let answer = inner
        .client
        .schema_by_id(id)
        .await
        .map_err(|f| failure(&what, f))?;
    compile(inner, &what, &answer).await
}

/// Fetches what the answer references and compiles it.
async fn compile(inner: &Inner, what: &str, answer: &Answer) -> Result<Arc<Schema>, RegistryError> {
    let references = inner
        .client
        .references(&answer.references)
        .await
        .map_err(|f| failure(what, f))?;
    let schema = Schema::compile(
        answer.kind,
        &answer.schema,
        &references,
        inner.max_json_bytes,
    )
    .map_err(|reason| RegistryError::Invalid {
        what: format!("{what} ({})", answer.kind.as_str()),
        reason,
    })?;
    Ok(Arc::new(schema))
}

/// What is known of each subject version asked for.
#[derive(Default)]
pub(crate) struct Subjects {
    map: Mutex<HashMap<(String, SchemaVersion), Gate>>,
}

/// What is known of one subject version, locked while the registry is asked about it.
type Gate = Arc<tokio::sync::Mutex<Option<Known>>>;

struct Known {
    id: u32,
    /// When to ask the registry again (`latest` only).
    check_at: Instant,
}

pub async fn subject(
    inner: &Arc<Inner>,
    subject: &str,
    version: SchemaVersion,
) -> Result<(u32, Arc<Schema>), RegistryError> {
    let gate = {
        let mut map = inner.subjects.map.lock();
        map.entry((subject.to_owned(), version))
            .or_default()
            .clone()
    };
    // One caller asks the registry; the others wait for its answer and use it.
    let mut known = gate.lock().await;
    let now = Instant::now();
    let fresh = |k: &Known| version != SchemaVersion::Latest || now < k.check_at;
    let id = match known.as_mut() {
        Some(k) if fresh(k) => k.id,
        _ => {
            let what = format!("subject {subject:?} version {version}");
            match fetch_subject(inner, subject, version, &what).await {
                Ok((id, schema)) => {
                    *known = Some(Known {
                        id,
                        check_at: now + inner.latest_refresh,
                    });
                    return Ok((id, schema));
                }
                Err(RegistryError::Unavailable(e)) if known.is_some() => {
                    let k = known.as_mut().expect("checked");
                    tracing::warn!(subject, %version, schema_id = k.id, error = %e,
                        "schema registry: cannot ask for the latest version, using the one known");
                    k.check_at = now + STALE_RETRY;
                    k.id
                }
                Err(e) => return Err(e),
            }
        }
    };
    drop(known);
    Ok((id, schema(inner, id).await?))
}

async fn fetch_subject(
    inner: &Inner,
    subject: &str,
    version: SchemaVersion,
    what: &str,
) -> Result<(u32, Arc<Schema>), RegistryError> {
    let answer = inner
        .client
        .subject_version(subject, version)
        .await
        .map_err(|f| failure(what, f))?;
    let id = answer.id.ok_or_else(|| RegistryError::Invalid {
        what: what.to_owned(),
        reason: "expected an `id` in the registry's answer, found none".into(),
    })?;
    if let Some(schema) = inner.cache.get(id) {
        return Ok((id, schema));
    }
    let schema = compile(inner, &format!("{what} (schema {id})"), &answer).await?;
    let (schema, cached) = inner.cache.insert(id, schema);
    inner.metrics.cached.set(cached as i64);
    Ok((id, schema))
}
