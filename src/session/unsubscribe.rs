//! `unsubscribe`: the subscription leaves the hub (records of it still queued are sent), and
//! `unsubscribed` confirms — also for a subscription the session did not have.

use super::Session;
use crate::config::Deliver;
use crate::protocol::{Answer, ErrorCode, Refusal, RequestId, Unsubscribed};

impl Session {
    pub(super) fn unsubscribe(
        &mut self,
        id: &RequestId,
        channel: &str,
        key: Option<String>,
    ) -> Result<(), Refusal> {
        let Some(channel_id) = self.ctx.catalogue.channel_id(channel) else {
            return Err(Refusal::new(
                ErrorCode::UnknownChannel,
                format!("no channel named `{channel}`"),
            ));
        };
        let key = match self.ctx.catalogue.channel(channel_id).deliver() {
            Deliver::ByKey => key.or_else(|| self.identity.user.clone()),
            _ => None,
        };
        if self
            .subscriptions
            .remove(&(channel_id, key.clone()))
            .is_some()
        {
            self.ctx
                .hub
                .unsubscribe(channel_id, key.as_deref(), &self.handle);
        }
        self.answer(Answer::Unsubscribed(Unsubscribed {
            id: id.clone(),
            channel: channel_id,
            name: channel.to_owned(),
            key,
            reason: None,
        }));
        Ok(())
    }
}
