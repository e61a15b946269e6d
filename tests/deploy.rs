//! The deployment side: `loadgen k8s`'s manifests (checked offline against the
//! Kubernetes API's schemas by the pinned kubernetes-validate, scripts/check_k8s.py),
//! the checked-in example under deploy/k8s/, and the Kubeflow pipeline of
//! deploy/kubeflow/ (its checked-in spec is a fresh compile; kfp's local runner runs
//! it on the sim backend). The ignored tests need .venv-k8s or .venv-kfp
//! (scripts/setup_checks.sh k8s|kfp; scripts/test.sh installs both).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The flags deploy/k8s/loadgen-2-agents.yaml is rendered with (deploy/k8s/README.md).
const EXAMPLE: &[&str] = &[
    "k8s",
    "--agents",
    "2",
    "--url",
    "http://triton:8000",
    "--no-secret",
    "--",
    "--backend",
    "kserve",
    "--model-name",
    "resnet50",
    "--max-latency",
    "0.05,0.1",
    "--distributions",
    "linear,exponential",
    "--time",
    "10",
];

const EXAMPLE_FILE: &str = "deploy/k8s/loadgen-2-agents.yaml";

fn render(args: &[&str]) -> String {
    let o = loadgen().args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", text(&o.stderr));
    text(&o.stdout)
}

#[test]
fn the_checked_in_k8s_example_is_what_loadgen_k8s_renders() {
    let want = render(EXAMPLE);
    let have = std::fs::read_to_string(root().join(EXAMPLE_FILE)).unwrap();
    assert!(
        have == want,
        "{EXAMPLE_FILE} is stale; render it again: loadgen {} > {EXAMPLE_FILE}",
        EXAMPLE.join(" ")
    );
}

#[test]
fn bad_k8s_values_are_one_sentence_and_exit_2() {
    let base = ["k8s", "--url", "http://triton:8000"];
    let cases: &[(&[&str], &str)] = &[
        (&["--agents", "0"], "--agents must be at least 1"),
        (
            &["--agents", "1001"],
            "more than the limit of 1000 agent pods",
        ),
        (&["--agents", "two"], "--agents takes a whole number"),
        (&["--agents", "2", "--name", "Bad_Name"], "--name takes"),
        (
            &["--agents", "2", "--namespace", "a b"],
            "--namespace takes",
        ),
        (&["--agents", "2", "--image", "a b"], "--image takes"),
        (
            &["--agents", "2", "--results-pvc", "-x"],
            "--results-pvc takes",
        ),
        (
            &["--agents", "2", "--token", "yes", "--no-secret"],
            "cannot be used with",
        ),
        (
            &["--agents", "2", "--", "--url", "http://x:1"],
            "--url is set by loadgen k8s",
        ),
        (
            &["--agents", "2", "--", "--agents=a:1"],
            "--agents is set by loadgen k8s",
        ),
        (&["--agents", "2", "--", "--no-such-flag"], "run flags: "),
        (
            &["--agents", "2", "--", "--time", "-1"],
            "run flags: --time",
        ),
        (
            &["--agents", "2", "--scenario", "/nonexistent.toml"],
            "scenario file",
        ),
    ];
    for (extra, want) in cases {
        let o = loadgen().args(base).args(*extra).output().unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{extra:?}: one sentence: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(o.stdout.is_empty(), "{extra:?}: nothing on stdout");
    }
    let o = loadgen()
        .args(["k8s", "--agents", "2", "--url", "ftp://x"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("must start with http:// or grpc://"));
}

/// Runs scripts/check_k8s.py on the files: the parsed documents of each, in order.
fn validate(files: &[PathBuf]) -> Vec<Vec<Value>> {
    let python = root().join(".venv-k8s/bin/python");
    assert!(python.is_file(), "run scripts/setup_checks.sh k8s");
    let o = Command::new(python)
        .arg(root().join("scripts/check_k8s.py"))
        .args(["-k", "1.30.0"])
        .args(files)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "kubernetes-validate: {}{}",
        text(&o.stderr),
        text(&o.stdout)
    );
    let out = text(&o.stdout);
    let docs: Vec<Vec<Value>> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(docs.len(), files.len(), "{out}");
    docs
}

fn kind<'a>(docs: &'a [Value], kind: &str, component: &str) -> Option<&'a Value> {
    docs.iter().find(|d| {
        d["kind"] == kind && d["metadata"]["labels"]["app.kubernetes.io/component"] == component
    })
}

/// Every document `loadgen k8s` writes, for several agent counts and flag sets (and
/// values that hold YAML's own characters), is valid against Kubernetes 1.30's
/// schemas in strict mode, and reads back as what was asked: the agent count, the
/// coordinator's arguments string for string, the scenario file byte for byte.
#[test]
#[ignore = "needs .venv-k8s with kubernetes-validate (scripts/setup_checks.sh k8s)"]
fn k8s_manifests_validate_against_kubernetes_1_30() {
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("odd.toml");
    let scenario_text =
        "# a: b # \"quoted\" ×\ntime = 3\n\n  # indented: a literal block is not exact\n";
    std::fs::write(&scenario, scenario_text).unwrap();
    let hostile_url = "http://triton:8000/pre: fix/\"q\"#h";
    let header = "Authorization: Bearer 'x' \"y\" # z";
    let cases: Vec<(u32, Vec<String>, Vec<String>)> = vec![
        (1, vec![], vec![]),
        (
            2,
            vec!["--no-secret".into()],
            vec!["--time".into(), "5".into()],
        ),
        (
            7,
            vec![
                "--namespace".into(),
                "perf-1".into(),
                "--name".into(),
                "lg".into(),
                "--image".into(),
                "registry.example.com:5000/loadgen:cpu@sha256:0123".into(),
                "--results-pvc".into(),
                "loadgen-results".into(),
                "--token".into(),
                "s3cr3t:\"#".into(),
                "--agents-wait".into(),
                "300".into(),
                "--deadline".into(),
                "7200".into(),
            ],
            vec![
                "--backend".into(),
                "kserve".into(),
                "--http-headers".into(),
                header.into(),
                "--model-name".into(),
                "yes".into(),
            ],
        ),
        (
            1000,
            vec![
                "--scenario".into(),
                scenario.display().to_string(),
                "--url".into(),
                hostile_url.into(),
            ],
            vec!["--max-latency".into(), "0.05".into()],
        ),
    ];
    let mut files = vec![root().join(EXAMPLE_FILE)];
    for (i, (n, flags, run)) in cases.iter().enumerate() {
        let mut args: Vec<String> = vec![
            "k8s".into(),
            "--agents".into(),
            n.to_string(),
            "--url".into(),
            "http://triton:8000".into(),
        ];
        args.extend(flags.iter().cloned());
        args.push("--".into());
        args.extend(run.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let f = dir.path().join(format!("case{i}.yaml"));
        std::fs::write(&f, render(&refs)).unwrap();
        files.push(f);
    }
    let all = validate(&files);
    for (i, (n, flags, run)) in cases.iter().enumerate() {
        let docs = &all[i + 1];
        let flag = |name: &str| {
            flags
                .iter()
                .position(|f| f == name)
                .map(|p| flags[p + 1].clone())
        };
        let name = flag("--name").unwrap_or_else(|| "loadgen".into());
        let url = flag("--url").unwrap_or_else(|| "http://triton:8000".into());
        let secret = kind(docs, "Secret", "token");
        assert_eq!(
            secret.is_some(),
            !flags.contains(&"--no-secret".to_string()),
            "case {i}"
        );
        if let (Some(s), Some(t)) = (secret, flag("--token")) {
            assert_eq!(s["stringData"]["token"], t.as_str(), "case {i}");
        }
        for d in docs {
            assert_eq!(
                d["metadata"]["namespace"].as_str(),
                flag("--namespace").as_deref(),
                "case {i}"
            );
        }
        let agents = kind(docs, "Job", "agent").unwrap();
        assert_eq!(agents["spec"]["completions"], *n, "case {i}");
        assert_eq!(agents["spec"]["parallelism"], *n, "case {i}");
        assert_eq!(agents["spec"]["completionMode"], "Indexed", "case {i}");
        let svc = kind(docs, "Service", "agent").unwrap();
        assert_eq!(svc["spec"]["clusterIP"], "None");
        assert_eq!(
            agents["spec"]["template"]["spec"]["subdomain"],
            svc["metadata"]["name"]
        );
        let coord = kind(docs, "Job", "coordinator").unwrap();
        let c = &coord["spec"]["template"]["spec"]["containers"][0];
        let addresses: Vec<String> = (0..*n)
            .map(|k| format!("{name}-agents-{k}.{name}-agents:7420"))
            .collect();
        let wait = flag("--agents-wait").unwrap_or_else(|| "60".into());
        let mut want: Vec<String> = vec![
            "run".into(),
            "--agents".into(),
            addresses.join(","),
            "--agents-wait".into(),
            wait,
            "--scenario".into(),
            "/etc/loadgen/scenario.toml".into(),
            "--url".into(),
            url,
        ];
        if flag("--results-pvc").is_some() {
            want.extend(["--output".into(), "/results/results.json".into()]);
        }
        want.extend(run.iter().cloned());
        let got: Vec<String> = serde_json::from_value(c["args"].clone()).unwrap();
        assert_eq!(got, want, "case {i}");
        assert_eq!(c["command"], serde_json::json!(["loadgen"]));
        let cm = kind(docs, "ConfigMap", "scenario").unwrap();
        let want_scenario = match flag("--scenario") {
            Some(p) => std::fs::read_to_string(p).unwrap(),
            None => std::fs::read_to_string(root().join("scenarios/cloud.toml")).unwrap(),
        };
        assert_eq!(
            cm["data"]["scenario.toml"],
            want_scenario.as_str(),
            "case {i}"
        );
    }
}

fn kfp_python() -> PathBuf {
    let python = root().join(".venv-kfp/bin/python");
    assert!(python.is_file(), "run scripts/setup_checks.sh kfp");
    python
}

#[test]
#[ignore = "needs .venv-kfp with kfp (scripts/setup_checks.sh kfp)"]
fn the_checked_in_kubeflow_pipeline_is_a_fresh_compile() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pipeline.yaml");
    let o = Command::new(kfp_python())
        .arg(root().join("deploy/kubeflow/pipeline.py"))
        .arg("--compile")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let fresh = std::fs::read_to_string(&out).unwrap();
    let have = std::fs::read_to_string(root().join("deploy/kubeflow/pipeline.yaml")).unwrap();
    assert!(
        fresh == have,
        "deploy/kubeflow/pipeline.yaml is stale; compile it again: \
         .venv-kfp/bin/python deploy/kubeflow/pipeline.py --compile deploy/kubeflow/pipeline.yaml"
    );
}

/// kfp's local runner runs the pipeline end to end on the sim backend: the task
/// succeeds, its results artifact is loadgen's results.json, and its metrics are the
/// FINAL_RESULT line loadgen printed.
#[test]
#[ignore = "needs .venv-kfp with kfp (scripts/setup_checks.sh kfp)"]
fn the_kubeflow_pipeline_runs_loadgen_with_the_local_runner() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(kfp_python())
        .current_dir(dir.path())
        .env("LOADGEN_BIN", env!("CARGO_BIN_EXE_loadgen"))
        .arg(root().join("deploy/kubeflow/pipeline.py"))
        .args(["--local", "--pipeline-root"])
        .arg(dir.path().join("outputs"))
        .args([
            "--arg",
            "backend=sim",
            "--arg",
            "targets=0.05,0.1",
            "--arg",
            "distributions=linear",
            "--arg",
            "time=1",
            "--arg",
            "mode=latency",
            "--arg",
            "extra_model_args=--sim-service-time exp:5ms --threads 1 --search-time 6 --warmup 0",
        ])
        .output()
        .unwrap();
    let (out, err) = (text(&o.stdout), text(&o.stderr));
    assert!(o.status.success(), "{out}{err}");
    let task: Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    assert_eq!(task["state"], "SUCCEEDED", "{task}");
    // The FINAL_RESULT loadgen printed (in the task's log), as a Python dict literal.
    let both = format!("{out}{err}");
    let line = both
        .lines()
        .find_map(|l| l.trim().strip_prefix("===FINAL_RESULT: "))
        .unwrap_or_else(|| panic!("no FINAL_RESULT in the log: {both}"));
    let final_result: Value = serde_json::from_str(&line.replace('\'', "\"")).unwrap();
    let results_path = task["results"]["path"].as_str().unwrap();
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(results_path).unwrap()).unwrap();
    assert_eq!(results["final_results"], final_result, "{results_path}");
    assert_eq!(task["results"]["metadata"]["mode"], "latency");
    let metrics = task["metrics"]["metadata"].as_object().unwrap();
    let mut want = serde_json::Map::new();
    for (dist, answers) in final_result.as_object().unwrap() {
        for (target, qps) in answers.as_object().unwrap() {
            want.insert(format!("{dist}_{target}"), qps.clone());
        }
    }
    assert_eq!(want.len(), 2, "{final_result}");
    for (k, v) in &want {
        assert_eq!(
            metrics.get(k).and_then(Value::as_f64),
            v.as_f64(),
            "{k}: {metrics:?}"
        );
    }
    assert_eq!(metrics.len(), want.len(), "{metrics:?}");
}
