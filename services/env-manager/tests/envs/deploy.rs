//! The Argo CD example in deploy/argocd against env-manager's defaults, and against real
//! ApplicationSets from Argo CD's repository (read from the shared fixtures when present).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn fixtures() -> PathBuf {
    std::env::var_os("FLOTILLA_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("../shared/fixtures"))
}

fn yaml(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| path.display().to_string())?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{} parses", path.display()))
}

fn ours() -> Result<Value> {
    yaml(&workspace().join("deploy/argocd/applicationset.yaml"))
}

/// What every ApplicationSet has: its kind and API, a name, and generators, each a mapping
/// with one key naming its kind (`git`, `pullRequest`, `list`, ...).
fn shape_problems(set: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |pointer: &str, ok: bool| {
        if !ok {
            problems.push(pointer.to_owned());
        }
    };
    want("/apiVersion", set["apiVersion"] == "argoproj.io/v1alpha1");
    want("/kind", set["kind"] == "ApplicationSet");
    want(
        "/metadata/name",
        set.pointer("/metadata/name").is_some_and(Value::is_string),
    );
    let generators = set.pointer("/spec/generators").and_then(Value::as_array);
    want(
        "/spec/generators",
        generators.is_some_and(|g| !g.is_empty()),
    );
    for (i, generator) in generators.into_iter().flatten().enumerate() {
        let kinds = generator.as_object().map(|g| g.keys().count());
        want(&format!("/spec/generators/{i}"), kinds == Some(1));
    }
    problems
}

/// What a complete template has: the Application's name, a source and a destination. (Some
/// upstream documentation examples elide their template; those are not checked for it.)
fn template_problems(set: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let mut want = |pointer: &str, ok: bool| {
        if !ok {
            problems.push(pointer.to_owned());
        }
    };
    let template = set.pointer("/spec/template");
    want(
        "/spec/template/metadata/name",
        template.and_then(|t| t.pointer("/metadata/name")).is_some(),
    );
    let spec = template.and_then(|t| t.get("spec"));
    let source = spec.and_then(|s| s.get("source").or_else(|| s.get("sources")));
    want("/spec/template/spec/source", source.is_some());
    want(
        "/spec/template/spec/destination",
        spec.and_then(|s| s.get("destination"))
            .is_some_and(Value::is_object),
    );
    problems
}

#[test]
fn the_applicationset_generates_one_app_per_env_file_in_the_default_envs_dir() -> Result<()> {
    let set = ours()?;
    assert_eq!(shape_problems(&set), Vec::<String>::new());
    assert_eq!(template_problems(&set), Vec::<String>::new());
    let defaults = env_manager::Config::new("unused", "unused");
    let files = set
        .pointer("/spec/generators/0/git/files")
        .and_then(Value::as_array)
        .context("a git files generator")?;
    let paths: Vec<&str> = files.iter().filter_map(|f| f["path"].as_str()).collect();
    assert_eq!(paths, [format!("{}/*.json", defaults.envs_dir)]);
    assert_eq!(
        set.pointer("/spec/generators/0/git/revision")
            .and_then(Value::as_str),
        Some(defaults.gitops.branch.as_str())
    );
    // Each env becomes its own namespace through the chart, named by the file's "env" field.
    let name = set
        .pointer("/spec/template/metadata/name")
        .and_then(Value::as_str);
    assert_eq!(name, Some("env-{{ .env }}"));
    let values = set
        .pointer("/spec/template/spec/source/helm/valueFiles/0")
        .and_then(Value::as_str)
        .context("the env file is the chart's values")?;
    let chart = set
        .pointer("/spec/template/spec/source/path")
        .and_then(Value::as_str);
    let resolved = Path::new(chart.context("a chart path")?).join(values);
    let mut normal = PathBuf::new();
    for part in resolved.components() {
        match part {
            std::path::Component::ParentDir => {
                normal.pop();
            }
            other => normal.push(other),
        }
    }
    assert_eq!(normal, Path::new(&defaults.env_manifest("{{ .env }}")));
    Ok(())
}

#[test]
fn the_env_chart_reads_the_fields_env_manager_writes() -> Result<()> {
    let chart = workspace().join("deploy/argocd/env-chart");
    let meta = yaml(&chart.join("Chart.yaml"))?;
    assert_eq!(meta["apiVersion"], "v2");
    let mut templates = String::new();
    for file in std::fs::read_dir(chart.join("templates"))? {
        templates.push_str(&std::fs::read_to_string(file?.path())?);
    }
    // The fields of an env manifest (manifest::render_env) the chart relies on.
    for field in [
        ".Values.env",
        ".Values.kind",
        ".Values.change_id",
        ".Values.apps",
        "$app.version",
        "$app.image",
        ".Values.suspended",
    ] {
        assert!(templates.contains(field), "the chart uses {field}");
    }
    Ok(())
}

#[test]
fn the_applicationset_reads_as_argo_cds_own_examples_do() -> Result<()> {
    let dir = fixtures().join("argocd/applicationset");
    if !dir.is_dir() {
        println!("skipped: no fixtures at {}", dir.display());
        return Ok(());
    }
    let (mut checked, mut templates) = (0, 0);
    let mut paths = Vec::new();
    for dir in [dir.clone(), dir.join("status")] {
        for entry in std::fs::read_dir(&dir)? {
            paths.push(entry?.path());
        }
    }
    for path in paths {
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let set = yaml(&path)?;
        if set["kind"] != "ApplicationSet" {
            continue;
        }
        // The upstream examples are what the checks are measured against: they must pass.
        assert_eq!(
            shape_problems(&set),
            Vec::<String>::new(),
            "{}",
            path.display()
        );
        checked += 1;
        if set.pointer("/spec/template").is_some_and(|t| !t.is_null()) {
            assert_eq!(
                template_problems(&set),
                Vec::<String>::new(),
                "{}",
                path.display()
            );
            templates += 1;
        }
    }
    assert!(
        checked > 0 && templates > 0,
        "ApplicationSets among the fixtures in {}",
        dir.display()
    );
    let set = ours()?;
    assert_eq!(shape_problems(&set), Vec::<String>::new());
    assert_eq!(template_problems(&set), Vec::<String>::new());
    Ok(())
}
