//! Small helpers of the hub: subscriber lists, scopes, memory gauges.

use std::collections::HashMap;

use super::{SessionHandle, Subscriber, Subscribers};
use crate::catalogue::Channel;
use crate::config::Deliver;
use crate::state::MemoryStats;

/// The session's scope on a `subscribe.where` channel: its token's claim value (`None`
/// elsewhere, or when the token lacks the claim — the client listener refuses such a
/// subscribe, and no record carries a `None` scope on such a channel).
pub fn scope_of(channel: &Channel, session: &SessionHandle) -> Option<String> {
    let rule = channel.spec.subscribe.where_.as_ref()?;
    crate::auth::claim_text(&session.claims, &rule.equals_claim)
}

/// Moves the channel's memory gauges and eviction counter by what changed.
pub(super) fn report_memory(channel: &Channel, before: MemoryStats, after: MemoryStats) {
    let metrics = &channel.metrics;
    metrics.state_keys.set(after.keys as i64);
    metrics.state_bytes.set(after.bytes as i64);
    metrics
        .state_evicted_keys
        .inc_by(after.evicted_keys - before.evicted_keys);
}

pub(super) fn remove(list: &mut Vec<Subscriber>, id: u64) -> bool {
    // Unsubscribing ends a replay under way too.
    match list.iter().position(|s| s.session.id == id) {
        Some(i) => {
            list.swap_remove(i);
            true
        }
        None => false,
    }
}

/// Subscribers per key (or scope, session id, user). foldhash rather than the standard SipHash:
/// a routing key is looked up for every record, and foldhash takes a fraction of SipHash's
/// instructions on short keys; its seed is random per map, so keys chosen by clients cannot
/// aim at collisions they cannot predict.
pub(super) type KeyMap = HashMap<String, Vec<Subscriber>, foldhash::fast::RandomState>;

pub(super) fn remove_keyed(map: &mut KeyMap, key: &str, id: u64) -> bool {
    let Some(list) = map.get_mut(key) else {
        return false;
    };
    let removed = remove(list, id);
    if list.is_empty() {
        map.remove(key);
    }
    removed
}

/// The subscription entry of `session` (for reply channels: the one routed by session id).
pub(super) fn find_subscriber<'a>(
    channel: &Channel,
    subscribers: &'a mut Subscribers,
    key: Option<&str>,
    session: &SessionHandle,
) -> Option<&'a mut Subscriber> {
    let list = match channel.deliver() {
        Deliver::Broadcast if channel.spec.subscribe.where_.is_some() => subscribers
            .by_key
            .get_mut(scope_of(channel, session).unwrap_or_default().as_str())?,
        Deliver::Broadcast => &mut subscribers.all,
        Deliver::ByKey => subscribers.by_key.get_mut(key.unwrap_or_default())?,
        Deliver::Reply => subscribers.by_key.get_mut(&session.public_id)?,
    };
    list.iter_mut().find(|s| s.session.id == session.id)
}
