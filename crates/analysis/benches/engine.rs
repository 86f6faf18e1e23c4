//! How many measurements per second the engine takes and judges, and what it adds over judging
//! the same values bare (the condition evaluated directly, no scheduling, no bookkeeping).
//!
//! `cargo bench -p flotilla-analysis --bench engine`: 50 metrics × 200 measurements, 1 s apart,
//! from a provider that answers at once, on tokio's paused clock (the schedule costs no wall
//! time: what is measured is the engine). The wall time of `flotilla analysis run` against a
//! real endpoint is measured by `flotilla analysis run` itself (its `verdict:` line gives the
//! elapsed time against the template's schedule).

use std::time::Instant;

use flotilla_analysis::{Metric, Phase, Provider, ProviderError, RunOptions, Template, Value};
use futures::future::BoxFuture;

const METRICS: usize = 50;
const COUNT: usize = 200;

struct Answers;

impl Provider for Answers {
    fn measure<'a>(&'a self, _: &'a Metric) -> BoxFuture<'a, Result<Value, ProviderError>> {
        Box::pin(async { Ok(Value::Floats(vec![0.99])) })
    }
}

fn template() -> String {
    let mut yaml = String::from(
        "apiVersion: argoproj.io/v1alpha1\nkind: AnalysisTemplate\nmetadata:\n  name: bench\nspec:\n  metrics:\n",
    );
    for i in 0..METRICS {
        yaml.push_str(&format!(
            "  - name: m{i}\n    interval: 1s\n    count: {COUNT}\n    \
             successCondition: len(result) > 0 && result[0] >= 0.95\n    \
             provider:\n      prometheus:\n        address: http://127.0.0.1:1\n        query: up\n"
        ));
    }
    yaml
}

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()?;
    let analysis = Template::from_yaml(&template())?.bind(&[])?;
    let measurements = METRICS * COUNT;

    let started = Instant::now();
    let mut seen = 0usize;
    let verdict = runtime.block_on(flotilla_analysis::run(
        &analysis,
        &Answers,
        RunOptions::default(),
        &mut |event| {
            if matches!(event, flotilla_analysis::Event::Measurement { .. }) {
                seen += 1;
            }
        },
    ));
    let engine = started.elapsed();
    anyhow::ensure!(verdict.phase == Phase::Successful, "{verdict:?}");
    anyhow::ensure!(
        seen == measurements,
        "{seen} of {measurements} measurements"
    );

    // The floor: the same conditions judged on the same values, nothing else.
    let value = Value::Floats(vec![0.99]);
    let started = Instant::now();
    for i in 0..measurements {
        let metric = &analysis.metrics[i % METRICS];
        let phase = flotilla_analysis::evaluate::evaluate_result(metric, &value)
            .map_err(anyhow::Error::msg)?;
        anyhow::ensure!(phase == Phase::Successful);
    }
    let bare = started.elapsed();

    let rate = |d: std::time::Duration| measurements as f64 / d.as_secs_f64();
    println!("{METRICS} metrics x {COUNT} measurements ({measurements}), paused clock");
    println!(
        "  engine            {:>10.0} measurements/s  ({engine:.2?})",
        rate(engine)
    );
    println!(
        "  conditions alone  {:>10.0} evaluations/s   ({bare:.2?})",
        rate(bare)
    );
    println!(
        "  engine / bare     {:.1}x the time per measurement",
        engine.as_secs_f64() / bare.as_secs_f64()
    );
    Ok(())
}
