//! The inbound producer: idempotent, shared by every session (cheap to clone). A publish is
//! answered only from librdkafka's delivery report, so an `ack` always means "written".

use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::util::Timeout;

use super::consumer::BridgeContext;
use super::status::{KafkaStatus, Role};
use super::{producer_config, StartError};
use crate::config::Plan;
use crate::inbound::{Delivered, ProduceError, RecordWriter, WriteFuture};

#[derive(Clone)]
pub(crate) struct Producer {
    inner: FutureProducer<BridgeContext>,
    timeout: Duration,
}

impl Producer {
    pub fn new(plan: &Plan, status: Arc<KafkaStatus>) -> Result<Self, StartError> {
        let inner = producer_config(plan)
            .create_with_context(BridgeContext::new(Role::Producer, status.clone()))?;
        status.register(Role::Producer);
        Ok(Producer {
            inner,
            timeout: Duration::from_millis(plan.config.server.publish_timeout_ms),
        })
    }

    /// Produces one record and waits for its delivery report (at most the publish timeout,
    /// which is also librdkafka's `message.timeout.ms`).
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &[u8])],
    ) -> Result<Delivered, ProduceError> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (name, value) in headers {
            owned = owned.insert(Header {
                key: name,
                value: Some(*value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(payload)
            .headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        // The queue wait counts against the same budget as the delivery; a margin past the
        // librdkafka timeout only guards against a lost delivery report.
        let send = self.inner.send(record, Timeout::After(self.timeout));
        match tokio::time::timeout(self.timeout + Duration::from_secs(1), send).await {
            Ok(Ok(delivery)) => Ok(Delivered {
                partition: delivery.partition,
                offset: (delivery.offset >= 0).then_some(delivery.offset),
            }),
            Ok(Err((error, _))) => Err(classify(&error)),
            Err(_) => Err(ProduceError::Unavailable(
                "no delivery report within the publish timeout".into(),
            )),
        }
    }

    /// Waits until every queued record is delivered or failed. Blocking.
    pub fn flush(&self, timeout: Duration) -> Result<(), String> {
        self.inner.flush(timeout).map_err(|e| e.to_string())
    }

    /// A writer of `auth.session_registry`'s records to `topic` through this producer.
    pub fn registry_writer(
        &self,
        topic: &str,
        failures: prometheus::IntCounter,
    ) -> super::session_registry::RegistryWriter {
        super::session_registry::RegistryWriter {
            producer: self.inner.clone(),
            topic: topic.to_owned(),
            runtime: tokio::runtime::Handle::current(),
            failures,
        }
    }

    /// Records still waiting for their delivery report.
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }
}

impl RecordWriter for Producer {
    fn write<'a>(
        &'a self,
        topic: &'a str,
        key: Option<&'a [u8]>,
        payload: &'a [u8],
        headers: &'a [(&'a str, &'a [u8])],
    ) -> WriteFuture<'a> {
        Box::pin(self.send(topic, key, payload, headers))
    }
}

fn classify(error: &KafkaError) -> ProduceError {
    use RDKafkaErrorCode as C;
    let text = error.to_string();
    match error.rdkafka_error_code() {
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize) => ProduceError::TooLarge(text),
        Some(
            C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::InvalidRecord
            | C::InvalidTopic
            | C::UnknownTopic
            | C::PolicyViolation,
        ) => ProduceError::Refused(text),
        _ => ProduceError::Unavailable(text),
    }
}
