//! A subscribe's terms. Its client `filter`: accepted only on channels with
//! `subscribe.filters: true`, parsed once with the same predicate language and bounds as the
//! channel's `filter` transforms; a malformed one is refused with the path of its problem. Its
//! `max_rate`: at least 1, at most the channel's.

use std::sync::Arc;

use crate::catalogue::Channel;
use crate::hub::Terms;
use crate::predicate::Predicate;
use crate::protocol::{ErrorCode, Refusal};

/// A subscribe's filter and rate, checked.
pub(super) fn terms(
    channel: &Channel,
    filter: Option<&serde_json::Value>,
    max_rate: Option<u32>,
) -> Result<Terms, Refusal> {
    let refuse = |message: String| Err(Refusal::new(ErrorCode::BadRequest, message));
    match (max_rate, channel.spec.max_rate) {
        (Some(0), _) => {
            return refuse("`max_rate` must be at least 1 (messages per second)".into())
        }
        (Some(asked), Some(limit)) if asked > limit => {
            return refuse(format!(
                "`max_rate` {asked} is above the channel's ({limit} messages per second)"
            ))
        }
        _ => {}
    }
    Ok(Terms {
        filter: client_filter(channel, filter)?,
        max_rate,
    })
}

/// The compiled client filter of a subscribe, if it carries one.
fn client_filter(
    channel: &Channel,
    filter: Option<&serde_json::Value>,
) -> Result<Option<Arc<Predicate>>, Refusal> {
    let Some(filter) = filter else {
        return Ok(None);
    };
    if !channel.spec.subscribe.filters {
        return Err(Refusal::new(
            ErrorCode::BadRequest,
            format!(
                "channel `{}` takes no client filters (subscribe.filters is off)",
                channel.name()
            ),
        ));
    }
    Predicate::parse(filter)
        .map(|p| Some(Arc::new(p)))
        .map_err(|e| {
            let at = if e.path.is_empty() {
                "`filter`".to_owned()
            } else {
                format!("`filter.{}`", e.path)
            };
            Refusal::new(ErrorCode::BadRequest, format!("{at}: {}", e.message))
        })
}
