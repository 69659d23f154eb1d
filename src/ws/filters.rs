//! A subscribe's client `filter` (contract §5.3): accepted only on channels with
//! `subscribe.filters: true`, parsed once with the same predicate language and bounds as the
//! channel's `filter` transforms; a malformed one is refused with the path of its problem.

use std::sync::Arc;

use crate::catalogue::Channel;
use crate::predicate::Predicate;
use crate::protocol::{ErrorCode, Refusal};

/// The compiled client filter of a subscribe, if it carries one.
pub(super) fn client_filter(
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
