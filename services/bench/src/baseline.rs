//! The baseline a worker's benchmark divides by: one bare JetStream hop at a time, measured in
//! the same run on the same server.

use std::time::Instant;

use futures::StreamExt;

use crate::stats::Latency;

/// `samples` publishes to `subject` (a subject of a stream: each waits for the stream's
/// acknowledgement), each timed until a core subscriber has it. `None` without samples.
pub async fn bare_hop_latency(
    client: &async_nats::Client,
    subject: &str,
    samples: usize,
) -> Result<Option<Latency>, Box<dyn std::error::Error + Send + Sync>> {
    let jetstream = async_nats::jetstream::new(client.clone());
    let mut hops = client.subscribe(subject.to_owned()).await?;
    let mut bare = Vec::with_capacity(samples);
    for i in 0..samples {
        let sent = Instant::now();
        jetstream
            .publish(subject.to_owned(), i.to_string().into())
            .await?
            .await?;
        hops.next().await.ok_or("the subscription ended")?;
        bare.push(sent.elapsed());
    }
    Ok(Latency::from_samples(bare))
}
