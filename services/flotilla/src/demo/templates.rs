//! The analysis templates the demo's fleet reads: ping's canary templates from
//! `deploy/analysis` as shipped, given the demo's args (its Prometheus or the canary's address,
//! short intervals), and the functional test its builder-trigger runs against each env.

use std::path::{Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

const SUCCESS_RATE: &str = include_str!("../../../../deploy/analysis/success-rate.yaml");
const WEB_SUCCESS_RATE: &str = include_str!("../../../../deploy/analysis/web-success-rate.yaml");

/// The change's functional test: the env's `/ping` must answer `{"value":"pong"}`. A text
/// answer cannot be indexed, which is an Error, and no error is allowed.
const FUNCTIONAL_TEST: &str = r#"# The demo's functional test: GET $FLOTILLA_ENV_URL/ping must answer {"value":"pong"}.
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: ping-answers-json
spec:
  args:
  - name: url
  metrics:
  - name: answer
    consecutiveErrorLimit: 0
    successCondition: result.value == "pong"
    provider:
      web:
        url: "{{args.url}}"
        timeoutSeconds: 5
"#;

/// Measurements start this long after the release, once the canary has had traffic (and, with
/// Prometheus, a few scrapes): an empty first result would be Inconclusive, and abort it.
const INITIAL_DELAY: &str = "3s";
/// Between two measurements.
const INTERVAL: &str = "2s";

/// How the canary is measured.
#[derive(Debug, Clone)]
pub enum Measure {
    /// `success-rate` on this Prometheus, narrowed to the canary's version.
    Prometheus { url: String },
    /// `web-success-rate` on the canary's `/status`.
    Web { status_url: String },
}

/// Where the templates were written.
#[derive(Debug)]
pub struct Written {
    /// FLOTILLA_ANALYSIS_DIR.
    pub analysis_dir: PathBuf,
    /// The canary template's name, for FLOTILLA_ANALYSIS.
    pub canary: &'static str,
    pub functional_test: PathBuf,
}

/// Writes the canary template under `<dir>/analysis` and the functional test under
/// `<dir>/tests`.
pub fn write(dir: &Path, measure: &Measure) -> Result<Written, String> {
    let (canary, yaml) = canary_template(measure)?;
    let analysis_dir = dir.join("analysis");
    let tests = dir.join("tests");
    let functional_test = tests.join("ping-answers-json.yaml");
    let io = |path: &Path, e: std::io::Error| format!("write {}: {e}", path.display());
    for dir in [&analysis_dir, &tests] {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    }
    let path = analysis_dir.join(format!("{canary}.yaml"));
    std::fs::write(&path, yaml).map_err(|e| io(&path, e))?;
    std::fs::write(&functional_test, FUNCTIONAL_TEST).map_err(|e| io(&functional_test, e))?;
    Ok(Written {
        analysis_dir,
        canary,
        functional_test,
    })
}

/// The shipped template `measure` uses, with the demo's args; its name and YAML.
pub fn canary_template(measure: &Measure) -> Result<(&'static str, String), String> {
    let (name, shipped, args) = match measure {
        Measure::Prometheus { url } => (
            "success-rate",
            SUCCESS_RATE,
            vec![("prometheus", url.as_str()), ("interval", INTERVAL)],
        ),
        Measure::Web { status_url } => (
            "web-success-rate",
            WEB_SUCCESS_RATE,
            vec![("url", status_url.as_str()), ("interval", INTERVAL)],
        ),
    };
    let mut template: Value = serde_yaml_ng::from_str(shipped)
        .map_err(|e| format!("deploy/analysis/{name}.yaml: {e}"))?;
    let spec = template
        .get_mut("spec")
        .ok_or_else(|| format!("deploy/analysis/{name}.yaml has no spec"))?;
    for (arg, value) in args {
        set_arg(spec, arg, Some(value))?;
    }
    if matches!(measure, Measure::Prometheus { .. }) {
        narrow_to_version(spec)?;
    }
    let metrics = spec
        .get_mut("metrics")
        .and_then(Value::as_sequence_mut)
        .ok_or_else(|| format!("deploy/analysis/{name}.yaml has no metrics"))?;
    for metric in metrics {
        if let Some(metric) = metric.as_mapping_mut() {
            metric.insert("initialDelay".into(), INITIAL_DELAY.into());
        }
    }
    let yaml = serde_yaml_ng::to_string(&template).map_err(|e| e.to_string())?;
    let header = format!(
        "# deploy/analysis/{name}.yaml as shipped, with the demo's args, a first measurement \
         {INITIAL_DELAY} after the release{}.\n",
        if matches!(measure, Measure::Prometheus { .. }) {
            " and the query narrowed to the canary's version (ping's `version` label)"
        } else {
            ""
        }
    );
    Ok((name, header + &yaml))
}

/// Sets arg `name`'s value (adding the arg when the template lacks it); `None` declares it
/// without a value, for canary-analyzer to give.
fn set_arg(spec: &mut Value, name: &str, value: Option<&str>) -> Result<(), String> {
    let args = spec
        .get_mut("args")
        .and_then(Value::as_sequence_mut)
        .ok_or("the template has no args")?;
    let found = args
        .iter_mut()
        .find(|arg| arg.get("name").and_then(Value::as_str) == Some(name));
    let arg = match found {
        Some(arg) => arg,
        None => {
            let mut arg = Mapping::new();
            arg.insert("name".into(), name.into());
            args.push(Value::Mapping(arg));
            args.last_mut().ok_or("the arg just added")?
        }
    };
    if let (Some(arg), Some(value)) = (arg.as_mapping_mut(), value) {
        arg.insert("value".into(), value.into());
    }
    Ok(())
}

/// Every selector of the query also matches `version="{{args.version}}"` (canary-analyzer gives
/// the release's version as `version`): the canary's answers alone, not the last canary's
/// still in the rate window.
fn narrow_to_version(spec: &mut Value) -> Result<(), String> {
    const SELECTOR: &str = r#"job="{{args.job}}""#;
    set_arg(spec, "version", None)?;
    let metrics = spec
        .get_mut("metrics")
        .and_then(Value::as_sequence_mut)
        .ok_or("success-rate has no metrics")?;
    for metric in metrics {
        let query = metric
            .get_mut("provider")
            .and_then(|p| p.get_mut("prometheus"))
            .and_then(|p| p.get_mut("query"))
            .ok_or("success-rate's metric has no prometheus query")?;
        let text = query.as_str().unwrap_or_default();
        if !text.contains(SELECTOR) {
            return Err(format!(
                "success-rate's query no longer selects {SELECTOR}: {text}"
            ));
        }
        let narrowed = text.replace(
            SELECTOR,
            &format!(r#"{SELECTOR}, version="{{{{args.version}}}}""#),
        );
        *query = narrowed.into();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use flotilla_analysis::Template;

    use super::*;

    fn bound(yaml: &str, args: &[(&str, &str)]) -> String {
        let template = Template::from_yaml(yaml).expect("a template");
        let args: Vec<(String, String)> = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        format!("{:?}", template.bind(&args).expect("binds"))
    }

    #[test]
    fn the_prometheus_copy_keeps_the_shipped_query_narrowed_to_the_canary_version() {
        let measure = Measure::Prometheus {
            url: "http://127.0.0.1:9999".into(),
        };
        let (name, yaml) = canary_template(&measure).expect("rewritten");
        assert_eq!(name, "success-rate");
        let analysis = bound(&yaml, &[("version", "v2")]);
        assert!(analysis.contains("http://127.0.0.1:9999"), "{analysis}");
        assert!(
            analysis.contains(r#"job=\"ping\", version=\"v2\", code!~\"5..\""#),
            "{analysis}"
        );
        assert!(yaml.contains("initialDelay: 3s"), "{yaml}");
        assert!(yaml.contains("successCondition: len(result) > 0 && result[0] >= 0.95"));
    }

    #[test]
    fn the_web_copy_reads_the_canary_status() {
        let measure = Measure::Web {
            status_url: "http://127.0.0.1:9998/status".into(),
        };
        let (name, yaml) = canary_template(&measure).expect("rewritten");
        assert_eq!(name, "web-success-rate");
        let analysis = bound(&yaml, &[]);
        assert!(
            analysis.contains("http://127.0.0.1:9998/status"),
            "{analysis}"
        );
        assert!(!yaml.contains("version"), "{yaml}");
    }

    #[test]
    fn the_functional_test_is_a_valid_template() {
        bound(FUNCTIONAL_TEST, &[("url", "http://127.0.0.1:1/ping")]);
    }
}
