//! `loadgen k8s`: the Kubernetes manifests of a scaled-out run, as one multi-document
//! YAML (docs/CONTRACT.md §4.7). [`render`] is a pure function of a [`K8sSpec`]; the
//! command line and the files are `crate::app::k8s`'s.
//!
//! The documents, in order: the Secret with the agents' token (left out when the user
//! makes it), the ConfigMap with the scenario file, the headless Service that gives
//! each agent pod a stable DNS name, the agents as an Indexed Job and the coordinator
//! Job. Every value from the user is written as a YAML double-quoted scalar (or, for
//! the scenario file, a literal block where that is exact), so a URL or a flag holding
//! `: `, `#` or quotes stays one string.

/// The agents' port (`loadgen agent --listen 0.0.0.0:7420`).
pub const AGENT_PORT: u16 = 7420;
/// Where the coordinator finds the scenario file (the ConfigMap's mount).
pub const SCENARIO_DIR: &str = "/etc/loadgen";
/// Where the coordinator writes results.json when `results_pvc` is set.
pub const RESULTS_DIR: &str = "/results";

/// What the manifests hold; every field is already checked (`crate::app::k8s`).
#[derive(Debug, Clone, PartialEq)]
pub struct K8sSpec {
    /// Prefix of every object's name (a DNS label).
    pub name: String,
    /// `metadata.namespace` of every object; `None`: the one `kubectl apply` uses.
    pub namespace: Option<String>,
    /// Agent pods (1..=1000).
    pub agents: u32,
    /// The container image with `loadgen` on its PATH.
    pub image: String,
    /// The server under test (`--url`).
    pub url: String,
    /// The scenario file's text, put into the ConfigMap.
    pub scenario: String,
    /// The token the Secret holds; `None`: no Secret document (the user makes it).
    pub token: Option<String>,
    /// `--agents-wait` of the coordinator, seconds.
    pub agents_wait: u32,
    /// `activeDeadlineSeconds` of both Jobs.
    pub deadline: u32,
    /// A PersistentVolumeClaim mounted at [`RESULTS_DIR`] for results.json.
    pub results_pvc: Option<String>,
    /// `loadgen run` flags passed through to the coordinator, after the others.
    pub run_flags: Vec<String>,
}

impl K8sSpec {
    fn agents_name(&self) -> String {
        format!("{}-agents", self.name)
    }

    /// The Secret's name (key `token`).
    pub fn secret_name(&self) -> String {
        format!("{}-token", self.name)
    }

    /// The agents' stable addresses: pod `NAME-agents-I` of the Indexed Job, in the
    /// headless Service's subdomain `NAME-agents`, port 7420.
    pub fn agent_addresses(&self) -> Vec<String> {
        let svc = self.agents_name();
        (0..self.agents)
            .map(|i| format!("{svc}-{i}.{svc}:{AGENT_PORT}"))
            .collect()
    }

    /// The coordinator's arguments after `loadgen`.
    pub fn coordinator_args(&self) -> Vec<String> {
        let mut a: Vec<String> = vec![
            "run".into(),
            "--agents".into(),
            self.agent_addresses().join(","),
            "--agents-wait".into(),
            self.agents_wait.to_string(),
            "--scenario".into(),
            format!("{SCENARIO_DIR}/scenario.toml"),
            "--url".into(),
            self.url.clone(),
        ];
        if self.results_pvc.is_some() {
            a.push("--output".into());
            a.push(format!("{RESULTS_DIR}/results.json"));
        }
        a.extend(self.run_flags.iter().cloned());
        a
    }
}

/// A YAML value, written in block style by [`Node::write`].
#[derive(Debug, Clone)]
enum Node {
    Str(String),
    Int(u64),
    Bool(bool),
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
}

fn s(v: impl Into<String>) -> Node {
    Node::Str(v.into())
}

fn map(entries: Vec<(&str, Node)>) -> Node {
    Node::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

fn strs<I: IntoIterator<Item = S>, S: Into<String>>(items: I) -> Node {
    Node::List(items.into_iter().map(s).collect())
}

impl Node {
    fn is_block(&self) -> bool {
        match self {
            Node::Map(m) => !m.is_empty(),
            Node::List(l) => !l.is_empty(),
            _ => false,
        }
    }

    /// A scalar or an empty collection on the rest of the current line.
    fn inline(&self, indent: usize) -> String {
        match self {
            Node::Str(v) => scalar(v, indent),
            Node::Int(n) => n.to_string(),
            Node::Bool(b) => b.to_string(),
            Node::Map(_) => "{}".into(),
            Node::List(_) => "[]".into(),
        }
    }

    /// A block collection, each line indented by `indent` spaces.
    fn write(&self, out: &mut String, indent: usize) {
        let pad = " ".repeat(indent);
        match self {
            Node::Map(m) => {
                for (k, v) in m {
                    out.push_str(&pad);
                    out.push_str(k);
                    out.push(':');
                    if v.is_block() {
                        out.push('\n');
                        // A list in a map sits at the map's indentation, as kubectl writes it.
                        let inner = if matches!(v, Node::List(_)) {
                            indent
                        } else {
                            indent + 2
                        };
                        v.write(out, inner);
                    } else {
                        out.push(' ');
                        out.push_str(&v.inline(indent + 2));
                        out.push('\n');
                    }
                }
            }
            Node::List(l) => {
                for v in l {
                    out.push_str(&pad);
                    out.push('-');
                    if v.is_block() {
                        // The first entry on the dash's line, the rest under it.
                        let mut inner = String::new();
                        v.write(&mut inner, indent + 2);
                        out.push(' ');
                        out.push_str(&inner[indent + 2..]);
                    } else {
                        out.push(' ');
                        out.push_str(&v.inline(indent + 2));
                        out.push('\n');
                    }
                }
            }
            _ => {
                out.push_str(&pad);
                out.push_str(&self.inline(indent));
                out.push('\n');
            }
        }
    }
}

/// A string as YAML: plain where no YAML reader can take it for anything else, a
/// literal block for multi-line text that it keeps exactly, else double-quoted.
fn scalar(v: &str, indent: usize) -> String {
    if is_plain(v) {
        v.to_string()
    } else if is_literal_block(v) {
        let pad = " ".repeat(indent);
        let mut out = String::from("|");
        for line in v.lines() {
            out.push('\n');
            if !line.is_empty() {
                out.push_str(&pad);
                out.push_str(line);
            }
        }
        out
    } else {
        quote(v)
    }
}

/// Letters, digits and `._/-`, starting with a letter or `/`, and none of YAML 1.1's
/// booleans and nulls (`yes`, `off`, `null`, …).
fn is_plain(v: &str) -> bool {
    const WORDS: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    v.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !WORDS.contains(&v.to_ascii_lowercase().as_str())
}

/// Text that a literal block (`|`, one final newline kept) gives back unchanged: it
/// ends in exactly one newline, and no line starts with a blank or ends with one, or
/// holds a character [`quote`] would escape.
fn is_literal_block(v: &str) -> bool {
    v.ends_with('\n')
        && !v.ends_with("\n\n")
        && v.lines().any(|l| !l.is_empty())
        && v.lines().all(|l| {
            !l.starts_with([' ', '\t'])
                && !l.ends_with([' ', '\t'])
                && !l.chars().any(|c| c == '\t' || needs_escape(c))
        })
}

/// Not in YAML's printable set, or a line break to a YAML 1.1 reader (NEL, LS, PS),
/// or a byte-order mark.
fn needs_escape(c: char) -> bool {
    matches!(c, '\0'..='\x1f' | '\x7f'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}')
}

/// A YAML double-quoted scalar: `"` and `\` escaped, line breaks and every character
/// of [`needs_escape`] as `\n`, `\t` or `\uXXXX`. The result is a JSON string too.
pub fn quote(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn labels(spec: &K8sSpec, component: &str) -> Node {
    map(vec![
        ("app.kubernetes.io/name", s("loadgen")),
        ("app.kubernetes.io/instance", s(&spec.name)),
        ("app.kubernetes.io/component", s(component)),
    ])
}

fn metadata(spec: &K8sSpec, name: String, component: &str) -> Node {
    let mut m = vec![("name", s(name))];
    if let Some(ns) = &spec.namespace {
        m.push(("namespace", s(ns)));
    }
    m.push(("labels", labels(spec, component)));
    map(m)
}

fn token_env(spec: &K8sSpec) -> Node {
    Node::List(vec![map(vec![
        ("name", s("LOADGEN_TOKEN")),
        (
            "valueFrom",
            map(vec![(
                "secretKeyRef",
                map(vec![("name", s(spec.secret_name())), ("key", s("token"))]),
            )]),
        ),
    ])])
}

fn secret(spec: &K8sSpec, token: &str) -> Node {
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Secret")),
        ("metadata", metadata(spec, spec.secret_name(), "token")),
        ("type", s("Opaque")),
        ("stringData", map(vec![("token", s(token))])),
    ])
}

fn config_map(spec: &K8sSpec) -> Node {
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("ConfigMap")),
        (
            "metadata",
            metadata(spec, format!("{}-scenario", spec.name), "scenario"),
        ),
        ("data", map(vec![("scenario.toml", s(&spec.scenario))])),
    ])
}

fn service(spec: &K8sSpec) -> Node {
    map(vec![
        ("apiVersion", s("v1")),
        ("kind", s("Service")),
        ("metadata", metadata(spec, spec.agents_name(), "agent")),
        (
            "spec",
            map(vec![
                ("clusterIP", s("None")),
                // DNS names exist from the pod's start: the coordinator retries until
                // the agent listens (--agents-wait).
                ("publishNotReadyAddresses", Node::Bool(true)),
                ("selector", labels(spec, "agent")),
                (
                    "ports",
                    Node::List(vec![map(vec![
                        ("name", s("agent")),
                        ("port", Node::Int(AGENT_PORT.into())),
                        ("targetPort", Node::Int(AGENT_PORT.into())),
                    ])]),
                ),
            ]),
        ),
    ])
}

fn agents_job(spec: &K8sSpec) -> Node {
    let n = u64::from(spec.agents);
    let spread = map(vec![(
        "podAntiAffinity",
        map(vec![(
            "preferredDuringSchedulingIgnoredDuringExecution",
            Node::List(vec![map(vec![
                ("weight", Node::Int(100)),
                (
                    "podAffinityTerm",
                    map(vec![
                        ("topologyKey", s("kubernetes.io/hostname")),
                        (
                            "labelSelector",
                            map(vec![("matchLabels", labels(spec, "agent"))]),
                        ),
                    ]),
                ),
            ])]),
        )]),
    )]);
    // An agent resolves the coordinator's flags itself, so the scenario file they
    // name is mounted at the same path; it serves one coordinator and ends, which
    // completes the Job.
    let container = map(vec![
        ("name", s("agent")),
        ("image", s(&spec.image)),
        ("command", strs(["loadgen"])),
        (
            "args",
            strs([
                "agent".to_string(),
                "--listen".into(),
                format!("0.0.0.0:{AGENT_PORT}"),
                "--sessions".into(),
                "1".into(),
            ]),
        ),
        ("env", token_env(spec)),
        ("volumeMounts", Node::List(vec![scenario_mount()])),
        (
            "ports",
            Node::List(vec![map(vec![
                ("name", s("agent")),
                ("containerPort", Node::Int(AGENT_PORT.into())),
            ])]),
        ),
        (
            "readinessProbe",
            map(vec![(
                "tcpSocket",
                map(vec![("port", Node::Int(AGENT_PORT.into()))]),
            )]),
        ),
    ]);
    map(vec![
        ("apiVersion", s("batch/v1")),
        ("kind", s("Job")),
        ("metadata", metadata(spec, spec.agents_name(), "agent")),
        (
            "spec",
            map(vec![
                ("completionMode", s("Indexed")),
                ("completions", Node::Int(n)),
                ("parallelism", Node::Int(n)),
                ("backoffLimit", Node::Int(3 * n)),
                ("activeDeadlineSeconds", Node::Int(spec.deadline.into())),
                (
                    "template",
                    map(vec![
                        ("metadata", map(vec![("labels", labels(spec, "agent"))])),
                        (
                            "spec",
                            map(vec![
                                // Pod NAME-agents-I answers at NAME-agents-I.NAME-agents.
                                ("subdomain", s(spec.agents_name())),
                                ("restartPolicy", s("OnFailure")),
                                ("affinity", spread),
                                ("containers", Node::List(vec![container])),
                                ("volumes", Node::List(vec![scenario_volume(spec)])),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ])
}

/// The scenario ConfigMap's mount, the same in the coordinator and the agents.
fn scenario_mount() -> Node {
    map(vec![
        ("name", s("scenario")),
        ("mountPath", s(SCENARIO_DIR)),
        ("readOnly", Node::Bool(true)),
    ])
}

fn scenario_volume(spec: &K8sSpec) -> Node {
    map(vec![
        ("name", s("scenario")),
        (
            "configMap",
            map(vec![("name", s(format!("{}-scenario", spec.name)))]),
        ),
    ])
}

fn coordinator_job(spec: &K8sSpec) -> Node {
    let mut mounts = vec![scenario_mount()];
    let mut volumes = vec![scenario_volume(spec)];
    if let Some(claim) = &spec.results_pvc {
        mounts.push(map(vec![
            ("name", s("results")),
            ("mountPath", s(RESULTS_DIR)),
        ]));
        volumes.push(map(vec![
            ("name", s("results")),
            ("persistentVolumeClaim", map(vec![("claimName", s(claim))])),
        ]));
    }
    let container = map(vec![
        ("name", s("coordinator")),
        ("image", s(&spec.image)),
        ("command", strs(["loadgen"])),
        ("args", strs(spec.coordinator_args())),
        ("env", token_env(spec)),
        ("volumeMounts", Node::List(mounts)),
    ]);
    map(vec![
        ("apiVersion", s("batch/v1")),
        ("kind", s("Job")),
        (
            "metadata",
            metadata(spec, format!("{}-coordinator", spec.name), "coordinator"),
        ),
        (
            "spec",
            map(vec![
                // A failed run is not measured again behind the user's back.
                ("backoffLimit", Node::Int(0)),
                ("activeDeadlineSeconds", Node::Int(spec.deadline.into())),
                (
                    "template",
                    map(vec![
                        (
                            "metadata",
                            map(vec![("labels", labels(spec, "coordinator"))]),
                        ),
                        (
                            "spec",
                            map(vec![
                                ("restartPolicy", s("Never")),
                                ("containers", Node::List(vec![container])),
                                ("volumes", Node::List(volumes)),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ])
}

/// The manifests: a comment, then one `---`-separated document per object.
pub fn render(spec: &K8sSpec) -> String {
    let mut out = format!(
        "# loadgen on Kubernetes: {n} agent(s) and a coordinator, `{name}`. Apply with\n\
         # `kubectl apply -f`; the coordinator's log ends with ===FINAL_RESULT. Both Jobs\n\
         # end after {d} s (activeDeadlineSeconds); `kubectl delete -f` the file when done.\n",
        n = spec.agents,
        name = spec.name,
        d = spec.deadline,
    );
    let mut docs = Vec::new();
    if let Some(token) = &spec.token {
        docs.push(secret(spec, token));
    }
    docs.extend([
        config_map(spec),
        service(spec),
        agents_job(spec),
        coordinator_job(spec),
    ]);
    for doc in docs {
        out.push_str("---\n");
        doc.write(&mut out, 0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> K8sSpec {
        K8sSpec {
            name: "loadgen".into(),
            namespace: None,
            agents: 2,
            image: "loadgen:cpu".into(),
            url: "http://triton:8000".into(),
            scenario: "name = \"cloud\"\ntime = 10\n".into(),
            token: Some("abc".into()),
            agents_wait: 60,
            deadline: 3600,
            results_pvc: None,
            run_flags: vec!["--backend".into(), "kserve".into()],
        }
    }

    #[test]
    fn quoted_strings_read_back_as_json() {
        let table = [
            ("plain", "\"plain\""),
            ("a: b", "\"a: b\""),
            ("say \"hi\"", "\"say \\\"hi\\\"\""),
            ("back\\slash", "\"back\\\\slash\""),
            ("two\nlines", "\"two\\nlines\""),
            ("tab\there", "\"tab\\there\""),
            ("nul\0", "\"nul\\u0000\""),
            ("nel\u{85}ls\u{2028}", "\"nel\\u0085ls\\u2028\""),
            ("bom\u{feff}", "\"bom\\ufeff\""),
            ("ünï ×", "\"ünï ×\""),
            ("# not a comment", "\"# not a comment\""),
        ];
        for (raw, want) in table {
            let q = quote(raw);
            assert_eq!(q, want, "{raw:?}");
            assert_eq!(serde_json::from_str::<String>(&q).unwrap(), raw);
        }
    }

    #[test]
    fn scalars_are_plain_only_when_nothing_else() {
        let table = [
            ("loadgen", "loadgen"),
            ("batch/v1", "batch/v1"),
            ("app.kubernetes.io/name", "app.kubernetes.io/name"),
            ("yes", "\"yes\""),
            ("Off", "\"Off\""),
            ("null", "\"null\""),
            ("7420", "\"7420\""),
            ("1e3", "\"1e3\""),
            ("loadgen:cpu", "\"loadgen:cpu\""),
            ("--time", "\"--time\""),
            ("", "\"\""),
            ("a\n", "|\n  a"),
            ("a\n\nb\n", "|\n  a\n\n  b"),
            (" lead\n", "\" lead\\n\""),
            ("trail \n", "\"trail \\n\""),
            ("no end", "\"no end\""),
            ("two ends\n\n", "\"two ends\\n\\n\""),
            ("tab\tin\n", "\"tab\\tin\\n\""),
        ];
        for (raw, want) in table {
            assert_eq!(scalar(raw, 2), want, "{raw:?}");
        }
    }

    #[test]
    fn agents_have_stable_names_through_the_headless_service() {
        let mut sp = spec();
        sp.agents = 3;
        sp.name = "lg".into();
        assert_eq!(
            sp.agent_addresses(),
            [
                "lg-agents-0.lg-agents:7420",
                "lg-agents-1.lg-agents:7420",
                "lg-agents-2.lg-agents:7420"
            ]
        );
        let y = render(&sp);
        assert!(y.contains("  name: lg-agents\n"), "{y}");
        assert!(y.contains("      subdomain: lg-agents\n"), "{y}");
        assert!(y.contains("  completions: 3\n  parallelism: 3\n"), "{y}");
        assert!(y.contains("  clusterIP: None\n"), "{y}");
        assert!(
            y.contains("- \"lg-agents-0.lg-agents:7420,lg-agents-1.lg-agents:7420,lg-agents-2.lg-agents:7420\"\n"),
            "{y}"
        );
    }

    #[test]
    fn documents_and_options() {
        // (change to the spec, documents, lines that must be there, lines that must not)
        type Case = (
            fn(&mut K8sSpec),
            usize,
            &'static [&'static str],
            &'static [&'static str],
        );
        let cases: [Case; 4] = [
            (
                |_| {},
                5,
                &[
                    "kind: Secret",
                    "  token: abc",
                    "  scenario.toml: |\n    name = \"cloud\"\n    time = 10\n",
                    "        - \"--scenario\"\n        - /etc/loadgen/scenario.toml\n",
                    "        - \"--url\"\n        - \"http://triton:8000\"\n        - \"--backend\"\n        - kserve\n",
                    "              name: loadgen-token\n              key: token\n",
                    "  activeDeadlineSeconds: 3600\n",
                ],
                &["namespace:", "persistentVolumeClaim", "--output"],
            ),
            (
                |s| s.token = None,
                4,
                &["name: loadgen-token"],
                &["kind: Secret"],
            ),
            (
                |s| s.namespace = Some("perf".into()),
                5,
                &["  namespace: perf\n"],
                &[],
            ),
            (
                |s| {
                    s.results_pvc = Some("results-claim".into());
                    s.deadline = 600;
                },
                5,
                &[
                    "        - \"--output\"\n        - /results/results.json\n        - \"--backend\"",
                    "          claimName: results-claim\n",
                    "  activeDeadlineSeconds: 600\n",
                ],
                &[],
            ),
        ];
        for (i, (change, docs, has, hasnt)) in cases.iter().enumerate() {
            let mut sp = spec();
            change(&mut sp);
            let y = render(&sp);
            assert_eq!(y.matches("\n---\n").count(), *docs, "case {i}: {y}");
            for want in *has {
                assert!(y.contains(want), "case {i}: {want:?} in {y}");
            }
            for not in *hasnt {
                assert!(!y.contains(not), "case {i}: {not:?} in {y}");
            }
        }
    }

    #[test]
    fn hostile_values_stay_one_string() {
        let mut sp = spec();
        sp.url = "http://x:1/a: b # c\n- evil: \"q\"".into();
        sp.run_flags = vec!["--http-headers".into(), "Authorization: Bearer 'x'".into()];
        sp.scenario = "  indented = 1\n".into();
        let y = render(&sp);
        assert!(
            y.contains("- \"http://x:1/a: b # c\\n- evil: \\\"q\\\"\"\n"),
            "{y}"
        );
        assert!(y.contains("- \"Authorization: Bearer 'x'\"\n"), "{y}");
        assert!(
            y.contains("  scenario.toml: \"  indented = 1\\n\"\n"),
            "{y}"
        );
        // No line of a document starts a key the renderer did not write.
        assert!(
            !y.lines().any(|l| l.trim_start().starts_with("evil")),
            "{y}"
        );
    }
}
