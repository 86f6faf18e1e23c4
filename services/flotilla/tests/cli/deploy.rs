//! deploy/ and docker-compose.yml, checked statically: every kustomization renders with
//! `kubectl kustomize`; every object reads as its Kubernetes type (or has the fields its CRD
//! requires); each Deployment is hardened and probed; each worker's RBAC is exactly what its
//! code calls; each consuming worker scales on its own consumer; and the Deployments and the
//! compose file set only variables the binaries read, naming every worker.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail, ensure};
use clap::Args;
use serde_json::Value;

const WORKERS: [&str; 6] = [
    "source-listener",
    "builder-trigger",
    "env-manager",
    "sync-watcher",
    "canary-analyzer",
    "reaper",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `kubectl kustomize DIR` as JSON values; `None` (and a line saying the check is skipped) where
/// kubectl is not installed.
fn render(dir: &str) -> Result<Option<Vec<Value>>> {
    let output = match Command::new("kubectl")
        .args(["kustomize", &workspace().join(dir).display().to_string()])
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: kubectl is not installed, {dir} is not rendered");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    ensure!(
        output.status.success(),
        "kubectl kustomize {dir}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout)?;
    let mut objects = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document)?;
        if !value.is_null() {
            objects.push(value);
        }
    }
    Ok(Some(objects))
}

fn kind(object: &Value) -> &str {
    object["kind"].as_str().unwrap_or_default()
}

fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// Every object reads as its type: the k8s-openapi type for built-in kinds, the CRD's required
/// fields for the others.
fn check_types(objects: &[Value]) -> Result<()> {
    use k8s_openapi::api::{apps, autoscaling, core, networking, rbac};
    for object in objects {
        let what = format!("{} {}", kind(object), name(object));
        let typed = |r: Result<(), serde_json::Error>| r.with_context(|| what.clone());
        match kind(object) {
            "Deployment" => {
                typed(serde_json::from_value::<apps::v1::Deployment>(object.clone()).map(drop))?
            }
            "ServiceAccount" => {
                typed(serde_json::from_value::<core::v1::ServiceAccount>(object.clone()).map(drop))?
            }
            "Service" => {
                typed(serde_json::from_value::<core::v1::Service>(object.clone()).map(drop))?
            }
            "ConfigMap" => {
                typed(serde_json::from_value::<core::v1::ConfigMap>(object.clone()).map(drop))?
            }
            "Namespace" => {
                typed(serde_json::from_value::<core::v1::Namespace>(object.clone()).map(drop))?
            }
            "Job" => typed(
                serde_json::from_value::<k8s_openapi::api::batch::v1::Job>(object.clone())
                    .map(drop),
            )?,
            "Role" => typed(serde_json::from_value::<rbac::v1::Role>(object.clone()).map(drop))?,
            "ClusterRole" => {
                typed(serde_json::from_value::<rbac::v1::ClusterRole>(object.clone()).map(drop))?
            }
            "RoleBinding" => {
                typed(serde_json::from_value::<rbac::v1::RoleBinding>(object.clone()).map(drop))?
            }
            "ClusterRoleBinding" => typed(
                serde_json::from_value::<rbac::v1::ClusterRoleBinding>(object.clone()).map(drop),
            )?,
            "NetworkPolicy" => typed(
                serde_json::from_value::<networking::v1::NetworkPolicy>(object.clone()).map(drop),
            )?,
            "HorizontalPodAutoscaler" => typed(
                serde_json::from_value::<autoscaling::v2::HorizontalPodAutoscaler>(object.clone())
                    .map(drop),
            )?,
            "ScaledObject" => {
                ensure!(
                    object["spec"]["scaleTargetRef"]["name"].is_string(),
                    "{what}: scaleTargetRef.name"
                );
                ensure!(
                    object["spec"]["triggers"]
                        .as_array()
                        .is_some_and(|t| !t.is_empty()),
                    "{what}: triggers"
                );
            }
            "Rollout" => {
                ensure!(
                    object["spec"]["selector"].is_object(),
                    "{what}: spec.selector"
                );
                ensure!(
                    object["spec"]["template"]["spec"]["containers"].is_array(),
                    "{what}: spec.template"
                );
                ensure!(
                    object["spec"]["strategy"]["canary"]["steps"].is_array(),
                    "{what}: canary steps"
                );
            }
            "AnalysisTemplate" | "ClusterAnalysisTemplate" => {
                let metrics = object["spec"]["metrics"]
                    .as_array()
                    .context("spec.metrics")?;
                for metric in metrics {
                    ensure!(
                        metric["name"].is_string() && metric["provider"].is_object(),
                        "{what}: a metric needs name and provider"
                    );
                }
            }
            other => bail!("{what}: no check for kind {other}"),
        }
    }
    Ok(())
}

#[test]
fn every_kustomization_renders_and_every_object_reads_as_its_type() -> Result<()> {
    for dir in [
        "deploy/overlays/dev",
        "deploy/overlays/production",
        "deploy/examples/ping",
    ] {
        let Some(objects) = render(dir)? else {
            return Ok(());
        };
        ensure!(!objects.is_empty(), "{dir} renders nothing");
        check_types(&objects).with_context(|| dir.to_owned())?;
    }
    Ok(())
}

#[test]
fn each_worker_is_a_hardened_probed_deployment_with_its_own_service_account() -> Result<()> {
    let Some(objects) = render("deploy/overlays/production")? else {
        return Ok(());
    };
    let deployments: BTreeMap<&str, &Value> = objects
        .iter()
        .filter(|o| kind(o) == "Deployment")
        .map(|o| (name(o), o))
        .collect();
    assert_eq!(deployments.keys().copied().collect::<Vec<_>>(), {
        let mut w = WORKERS.to_vec();
        w.sort();
        w
    });
    for (worker, deployment) in deployments {
        let pod = &deployment["spec"]["template"]["spec"];
        assert_eq!(pod["serviceAccountName"], worker);
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{worker}");
        assert!(
            pod["terminationGracePeriodSeconds"]
                .as_i64()
                .is_some_and(|s| s > 30),
            "{worker}: longer than the 30s drain"
        );
        let container = &pod["containers"][0];
        assert_eq!(
            container["readinessProbe"]["httpGet"]["path"], "/readyz",
            "{worker}"
        );
        assert_eq!(
            container["livenessProbe"]["httpGet"]["path"], "/healthz",
            "{worker}"
        );
        assert!(
            container["resources"]["requests"]["memory"].is_string(),
            "{worker}"
        );
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{worker}"
        );
        let security = &container["securityContext"];
        assert_eq!(security["allowPrivilegeEscalation"], false, "{worker}");
        assert_eq!(security["readOnlyRootFilesystem"], true, "{worker}");
        assert_eq!(security["capabilities"]["drop"][0], "ALL", "{worker}");
        assert_eq!(container["command"][0], format!("/usr/local/bin/{worker}"));
    }
    Ok(())
}

/// What each worker's code calls in Kubernetes: (namespace or "" for cluster scope, api group,
/// resource) → verbs. builder-trigger's job backend (create, watch, delete Jobs; the pod's log),
/// sync-watcher's Application watcher, the reaper's cluster sweep (list and delete labelled
/// Applications and Namespaces), canary-analyzer's Rollout and AnalysisRun watchers and its
/// promote/abort patches.
fn calls() -> BTreeMap<&'static str, BTreeSet<(String, String, String, String)>> {
    let rule = |ns: &str, group: &str, resource: &str, verbs: &[&str]| {
        verbs
            .iter()
            .map(|v| {
                (
                    ns.to_owned(),
                    group.to_owned(),
                    resource.to_owned(),
                    (*v).to_owned(),
                )
            })
            .collect::<Vec<_>>()
    };
    let mut calls = BTreeMap::new();
    calls.insert(
        "builder-trigger",
        [
            rule(
                "flotilla-builds",
                "batch",
                "jobs",
                &["create", "delete", "list", "watch"],
            ),
            rule("flotilla-builds", "", "pods", &["list"]),
            rule("flotilla-builds", "", "pods/log", &["get"]),
        ]
        .concat()
        .into_iter()
        .collect(),
    );
    calls.insert(
        "sync-watcher",
        rule("argocd", "argoproj.io", "applications", &["list", "watch"])
            .into_iter()
            .collect(),
    );
    calls.insert(
        "reaper",
        [
            rule("argocd", "argoproj.io", "applications", &["delete", "list"]),
            rule("", "", "namespaces", &["delete", "list"]),
        ]
        .concat()
        .into_iter()
        .collect(),
    );
    calls.insert(
        "canary-analyzer",
        [
            rule(
                "default",
                "argoproj.io",
                "rollouts",
                &["list", "patch", "watch"],
            ),
            rule("default", "argoproj.io", "rollouts/status", &["patch"]),
            rule("default", "argoproj.io", "analysisruns", &["list", "watch"]),
        ]
        .concat()
        .into_iter()
        .collect(),
    );
    calls
}

#[test]
fn production_replicates_every_stream_three_times() -> Result<()> {
    for (overlay, replicas) in [
        ("deploy/overlays/dev", "1"),
        ("deploy/overlays/production", "3"),
    ] {
        let Some(objects) = render(overlay)? else {
            return Ok(());
        };
        let config = objects
            .iter()
            .find(|o| kind(o) == "ConfigMap" && name(o) == "flotilla")
            .context("the ConfigMap")?;
        assert_eq!(
            config["data"]["FLOTILLA_STREAM_REPLICAS"], replicas,
            "{overlay}"
        );
        let init = objects
            .iter()
            .find(|o| kind(o) == "Job" && name(o) == "flotilla-init")
            .context("the init Job")?;
        let container = &init["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["command"][1], "init");
        assert!(
            container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|e| e["name"] == "FLOTILLA_STREAM_REPLICAS"),
            "{overlay}"
        );
    }
    Ok(())
}

#[test]
fn each_workers_rbac_is_exactly_what_its_code_calls() -> Result<()> {
    let Some(objects) = render("deploy/overlays/production")? else {
        return Ok(());
    };
    let roles: BTreeMap<(String, String), &Value> = objects
        .iter()
        .filter(|o| matches!(kind(o), "Role" | "ClusterRole"))
        .map(|o| ((kind(o).to_owned(), name(o).to_owned()), o))
        .collect();
    let mut granted: BTreeMap<String, BTreeSet<(String, String, String, String)>> = BTreeMap::new();
    for binding in objects
        .iter()
        .filter(|o| matches!(kind(o), "RoleBinding" | "ClusterRoleBinding"))
    {
        let role_kind = binding["roleRef"]["kind"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let role_name = binding["roleRef"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let role = roles
            .get(&(role_kind, role_name))
            .with_context(|| format!("{} binds a missing role", name(binding)))?;
        let namespace = role["metadata"]["namespace"].as_str().unwrap_or_default();
        for subject in binding["subjects"].as_array().into_iter().flatten() {
            let worker = subject["name"].as_str().unwrap_or_default().to_owned();
            assert_eq!(
                subject["namespace"], "flotilla",
                "{worker}'s service account"
            );
            for rule in role["rules"].as_array().into_iter().flatten() {
                for group in rule["apiGroups"].as_array().into_iter().flatten() {
                    for resource in rule["resources"].as_array().into_iter().flatten() {
                        for verb in rule["verbs"].as_array().into_iter().flatten() {
                            granted.entry(worker.clone()).or_default().insert((
                                namespace.to_owned(),
                                group.as_str().unwrap_or_default().to_owned(),
                                resource.as_str().unwrap_or_default().to_owned(),
                                verb.as_str().unwrap_or_default().to_owned(),
                            ));
                        }
                    }
                }
            }
        }
    }
    let calls = calls();
    assert_eq!(
        granted.keys().collect::<Vec<_>>(),
        calls.keys().collect::<Vec<_>>(),
        "source-listener and env-manager call no Kubernetes API and get no role"
    );
    for (worker, wanted) in calls {
        assert_eq!(granted.get(worker), Some(&wanted), "{worker}");
    }
    Ok(())
}

#[test]
fn each_consuming_worker_scales_on_its_own_consumer() -> Result<()> {
    let Some(objects) = render("deploy/overlays/production")? else {
        return Ok(());
    };
    let scaled: BTreeMap<&str, &Value> = objects
        .iter()
        .filter(|o| kind(o) == "ScaledObject")
        .map(|o| (name(o), o))
        .collect();
    for worker in WORKERS.iter().filter(|w| **w != "source-listener") {
        let object = scaled
            .get(worker)
            .with_context(|| format!("a ScaledObject for {worker}"))?;
        assert_eq!(object["spec"]["scaleTargetRef"]["name"], *worker);
        let trigger = &object["spec"]["triggers"][0];
        assert_eq!(trigger["type"], "nats-jetstream");
        assert_eq!(trigger["metadata"]["stream"], "FLOTILLA");
        assert_eq!(
            trigger["metadata"]["consumer"], *worker,
            "the durable the bus creates"
        );
        assert!(
            flotilla_bus::topology::worker_subjects(worker).is_some(),
            "{worker} is a worker of the bus topology"
        );
    }
    assert!(
        objects
            .iter()
            .any(|o| kind(o) == "HorizontalPodAutoscaler" && name(o) == "source-listener"),
        "source-listener scales on CPU"
    );
    Ok(())
}

/// The environment variables a worker's binary reads: its flags' (as clap declares them) and
/// the logging and tracing variables every process reads.
fn reads(worker: &str) -> BTreeSet<String> {
    let command = clap::Command::new("worker");
    let command = flotilla_bus::service::ServiceArgs::augment_args(command);
    let command = match worker {
        "source-listener" => source_listener::Args::augment_args(command),
        "builder-trigger" => flotilla_env::HooksArgs::augment_args(
            flotilla_env::PreviewArgs::augment_args(flotilla_bus::WorkerArgs::augment_args(
                builder_trigger::Args::augment_args(command),
            )),
        ),
        "env-manager" => {
            flotilla_env::HooksArgs::augment_args(flotilla_env::PreviewArgs::augment_args(
                flotilla_bus::WorkerArgs::augment_args(env_manager::Args::augment_args(command)),
            ))
        }
        "sync-watcher" => flotilla_gitops::GitopsArgs::augment_args(
            flotilla_bus::WorkerArgs::augment_args(sync_watcher::Args::augment_args(command)),
        ),
        "canary-analyzer" => {
            flotilla_bus::WorkerArgs::augment_args(canary_analyzer::Args::augment_args(command))
        }
        "reaper" => flotilla_gitops::GitopsArgs::augment_args(reaper::SharedArgs::augment_args(
            flotilla_bus::WorkerArgs::augment_args(reaper::Args::augment_args(command)),
        )),
        other => panic!("no worker {other}"),
    };
    let mut names: BTreeSet<String> = command
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    for always in [
        "RUST_LOG",
        "FLOTILLA_LOG_FORMAT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_SERVICE_NAME",
    ] {
        names.insert(always.to_owned());
    }
    names
}

#[test]
fn deployments_set_only_variables_their_binaries_read() -> Result<()> {
    let Some(objects) = render("deploy/overlays/production")? else {
        return Ok(());
    };
    for deployment in objects.iter().filter(|o| kind(o) == "Deployment") {
        let worker = name(deployment);
        let known = reads(worker);
        assert!(
            known.contains("NATS_URL") && known.len() > 10,
            "{worker}: {known:?}"
        );
        for variable in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let variable = variable["name"].as_str().unwrap_or_default();
            assert!(
                known.contains(variable),
                "{worker} does not read {variable}"
            );
        }
    }
    Ok(())
}

#[test]
fn docker_compose_runs_every_worker_with_only_variables_it_reads() -> Result<()> {
    let text = std::fs::read_to_string(workspace().join("docker-compose.yml"))?;
    let compose: Value = serde_yaml_ng::from_str(&text)?;
    let services = compose["services"].as_object().context("services")?;
    let mut workers = BTreeSet::new();
    for (service, spec) in services {
        let binary = spec["command"][0].as_str().unwrap_or_default();
        if !WORKERS.contains(&binary) {
            continue;
        }
        assert_eq!(service, binary, "a worker's service is named after it");
        workers.insert(binary.to_owned());
        let known = reads(binary);
        for variable in spec["environment"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, _)| k)
        {
            assert!(
                known.contains(variable),
                "{binary} does not read {variable}"
            );
        }
    }
    assert_eq!(
        workers,
        WORKERS
            .iter()
            .map(|w| (*w).to_owned())
            .collect::<BTreeSet<_>>(),
        "docker-compose.yml runs every worker"
    );
    Ok(())
}
