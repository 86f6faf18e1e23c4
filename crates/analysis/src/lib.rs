//! Canary analysis as Argo Rollouts judges it.
//!
//! Reads `AnalysisTemplate` / `ClusterAnalysisTemplate` YAML as users write it
//! ([`Template::from_yaml`]), binds arguments ([`Template::bind`]), and runs the metrics with
//! argo-rollouts' rules ([`run::run`]): conditions in Argo's `expr` syntax, `count`,
//! `interval`, `initialDelay`, failure / inconclusive / consecutive-error limits, dry-run
//! metrics and measurement retention. Providers: `prometheus`, `web`, and Flotilla's
//! `flotilla-mannwhitney` statistical judge. `docs/analysis.md` has the rules.

pub mod assess;
pub mod duration;
pub mod error;
pub mod evaluate;
pub mod expr;
pub mod jsonpath;
pub mod metric;
pub mod oneshot;
pub mod phase;
pub mod provider;
pub mod result;
pub mod run;
pub mod spec;
pub mod stats;
pub mod template;
pub mod validate;
pub mod value;

pub use error::{ProviderError, TemplateError, TemplateErrorKind};
pub use metric::{Analysis, Metric};
pub use oneshot::run_yaml;
pub use phase::Phase;
pub use provider::HttpProvider;
pub use result::{Measurement, MetricResult, Summary, Verdict};
pub use run::{Event, Provider, RunOptions, run};
pub use template::Template;
pub use value::Value;
