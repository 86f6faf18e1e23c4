//! The durable consumer of each worker: its settings and creating or updating it.

use std::time::Duration;

use async_nats::jetstream::consumer::{self, IntoConsumerConfig};

use super::streams::human;
use super::{Bus, Names, Reconciled};
use crate::error::BusError;

impl Bus {
    /// Creates or updates the durable consumer of a worker.
    pub async fn ensure_consumer(
        &self,
        spec: &ConsumerSpec,
    ) -> Result<(consumer::PullConsumer, Reconciled), BusError> {
        let stream = self.stream().await?;
        let mut want = spec.config(&self.names, self.supports_multi_filter());
        let name = spec.name.clone();
        let reconciled = match stream.get_consumer::<consumer::pull::Config>(&name).await {
            Ok(mut existing) => {
                let have = existing
                    .info()
                    .await
                    .map_err(|e| BusError::jetstream(format!("read consumer {name}"), e))?
                    .config
                    .clone();
                // The start position of a durable is fixed at creation.
                want.deliver_policy = have.deliver_policy;
                let changes = consumer_drift(&have, &want.clone().into_consumer_config());
                if changes.is_empty() {
                    Reconciled::Unchanged(name.clone())
                } else {
                    Reconciled::Updated(name.clone(), changes)
                }
            }
            Err(_) => Reconciled::Created(name.clone()),
        };
        let consumer = match reconciled {
            Reconciled::Unchanged(_) => {
                stream
                    .get_consumer(&name)
                    .await
                    .map_err(|source| BusError::JetStream {
                        what: format!("bind consumer {name}"),
                        source,
                    })?
            }
            _ => stream
                .create_consumer(want)
                .await
                .map_err(|e| BusError::jetstream(format!("create consumer {name}"), e))?,
        };
        Ok((consumer, reconciled))
    }
}

/// The durable consumer of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub name: String,
    /// Subject patterns below the prefix, e.g. `build.succeeded.>`.
    pub subjects: Vec<String>,
    pub ack_wait: Duration,
    /// Deliveries the runtime attempts before dead-lettering.
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}

impl ConsumerSpec {
    /// Full subject patterns, e.g. `flotilla.build.succeeded.>`.
    pub fn patterns(&self, names: &Names) -> Vec<String> {
        self.subjects.iter().map(|s| names.subject(s)).collect()
    }

    /// The consumer config. With several subjects on a server without multi-filter consumers,
    /// the consumer takes the whole prefix and the runtime skips what does not match.
    pub fn config(&self, names: &Names, multi_filter: bool) -> consumer::pull::Config {
        let patterns = self.patterns(names);
        let (filter_subject, filter_subjects) = match patterns.as_slice() {
            [one] => (one.clone(), Vec::new()),
            _ if multi_filter => (String::new(), patterns),
            _ => (format!("{}.>", names.prefix), Vec::new()),
        };
        consumer::pull::Config {
            durable_name: Some(self.name.clone()),
            description: Some(format!("Flotilla worker {}", self.name)),
            // A new worker starts with the events that follow its creation (`flotilla init`
            // creates every worker's consumer before events flow), not a week of history.
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            // One more than the runtime's limit: a delivery beyond it is one whose handler never
            // finished (the process died or hung), and the runtime dead-letters it unhandled.
            max_deliver: self.max_deliver + 1,
            max_ack_pending: self.max_ack_pending,
            filter_subject,
            filter_subjects,
            ..Default::default()
        }
    }
}

fn consumer_drift(have: &consumer::Config, want: &consumer::Config) -> Vec<String> {
    let mut changes = Vec::new();
    if have.filter_subject != want.filter_subject {
        changes.push(format!(
            "filter {} -> {}",
            have.filter_subject, want.filter_subject
        ));
    }
    if have.filter_subjects != want.filter_subjects {
        changes.push(format!(
            "filters {} -> {}",
            have.filter_subjects.join(","),
            want.filter_subjects.join(",")
        ));
    }
    if have.ack_wait != want.ack_wait {
        changes.push(format!(
            "ack_wait {} -> {}",
            human(have.ack_wait),
            human(want.ack_wait)
        ));
    }
    if have.max_deliver != want.max_deliver {
        changes.push(format!(
            "max_deliver {} -> {}",
            have.max_deliver, want.max_deliver
        ));
    }
    if want.max_ack_pending > 0 && have.max_ack_pending != want.max_ack_pending {
        changes.push(format!(
            "max_ack_pending {} -> {}",
            have.max_ack_pending, want.max_ack_pending
        ));
    }
    changes
}
