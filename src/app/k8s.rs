//! `loadgen k8s`: checks the flags, reads the scenario file, makes the token and
//! prints [`crate::output::k8s::render`]'s manifests (docs/CONTRACT.md §4.7).

use std::io::Read;

use anyhow::Result;
use clap::Parser;

use crate::backend::kserve::client::ServerUrl;
use crate::base::text::{quote, quote_path};
use crate::config::cli::{usage_sentence, Cli, K8sArgs};
use crate::config::settings::{Scenario, SettingsError};
use crate::output::k8s::{render, K8sSpec};

/// The longest `--name`: `NAME-agents-999` and `NAME-coordinator` stay DNS labels.
const MAX_NAME: usize = 40;
/// A ConfigMap holds at most 1 MiB; a scenario file is a few lines.
const MAX_SCENARIO_BYTES: u64 = 256 * 1024;
/// Flags `loadgen k8s` writes itself into the coordinator's command.
const OWN_FLAGS: [&str; 5] = [
    "--agents",
    "--agents-wait",
    "--token",
    "--scenario",
    "--url",
];

/// `loadgen k8s`: the manifests on stdout.
pub fn k8s(args: K8sArgs) -> Result<()> {
    let spec = spec(args)?;
    print!("{}", render(&spec));
    Ok(())
}

fn bad(msg: String) -> anyhow::Error {
    SettingsError(msg).into()
}

/// The checked [`K8sSpec`] of the command line.
pub fn spec(args: K8sArgs) -> Result<K8sSpec> {
    if !dns_label(&args.name, false) || args.name.len() > MAX_NAME {
        return Err(bad(format!(
            "--name takes lowercase letters, digits and '-', starting with a letter and \
             ending with a letter or digit, at most {MAX_NAME} characters, e.g. loadgen; got '{}'",
            quote(&args.name)
        )));
    }
    if let Some(ns) = &args.namespace {
        if !dns_label(ns, true) || ns.len() > 63 {
            return Err(bad(format!(
                "--namespace takes a Kubernetes namespace (lowercase letters, digits and '-', \
                 at most 63), e.g. default; got '{}'",
                quote(ns)
            )));
        }
    }
    if let Some(claim) = &args.results_pvc {
        let ok = claim.len() <= 253 && claim.split('.').all(|l| dns_label(l, true));
        if !ok {
            return Err(bad(format!(
                "--results-pvc takes a PersistentVolumeClaim's name (lowercase letters, \
                 digits, '-' and '.'), e.g. loadgen-results; got '{}'",
                quote(claim)
            )));
        }
    }
    let image = &args.image;
    if image.is_empty()
        || image.len() > 1024
        || image.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad(format!(
            "--image takes an image reference without blanks, e.g. loadgen:cpu; got '{}'",
            quote(image)
        )));
    }
    // The coordinator's own check of --url, here rather than in the cluster.
    ServerUrl::parse(&args.url).map_err(bad)?;
    if args.url.chars().any(char::is_control) {
        return Err(bad(format!(
            "--url {} holds a control character",
            quote(&args.url)
        )));
    }
    let token = match (&args.token, args.no_secret) {
        (_, true) => None,
        (Some(t), false) => {
            if t.is_empty() || t.len() > 256 || !t.chars().all(|c| c.is_ascii_graphic()) {
                return Err(bad(
                    "--token takes 1 to 256 visible ASCII characters (no blanks)".into(),
                ));
            }
            Some(t.clone())
        }
        (None, false) => Some(random_token()?),
    };
    check_run_flags(&args.run_flags)?;
    Ok(K8sSpec {
        name: args.name,
        namespace: args.namespace,
        agents: args.agents,
        image: args.image,
        url: args.url,
        scenario: scenario_text(args.scenario.as_deref())?,
        token,
        agents_wait: args.agents_wait,
        deadline: args.deadline,
        results_pvc: args.results_pvc,
        run_flags: args.run_flags,
    })
}

/// A DNS label: lowercase letters, digits and '-', not at either end; starting with
/// a letter unless `digit_first`.
fn dns_label(s: &str, digit_first: bool) -> bool {
    let first_ok = |c: char| c.is_ascii_lowercase() || (digit_first && c.is_ascii_digit());
    s.starts_with(first_ok)
        && !s.ends_with('-')
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The coordinator's own flags are `loadgen k8s`'s; the rest must parse as
/// `loadgen run` flags here, not fail in the cluster.
fn check_run_flags(flags: &[String]) -> Result<()> {
    for f in flags {
        let name = f.split('=').next().unwrap_or(f);
        if OWN_FLAGS.contains(&name) {
            return Err(bad(format!(
                "{name} is set by loadgen k8s itself; give it as a loadgen k8s flag \
                 (see loadgen k8s --help), not among the run flags"
            )));
        }
    }
    let argv = ["loadgen", "run"]
        .into_iter()
        .map(String::from)
        .chain(flags.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e) => Err(bad(format!("run flags: {}", usage_sentence(&e)))),
    }
}

/// The text of `--scenario`, else of the project's scenarios/cloud.toml; checked as
/// `loadgen run` would read it.
fn scenario_text(flag: Option<&std::path::Path>) -> Result<String> {
    let (_, path) = Scenario::resolve(flag)?;
    let Some(path) = path else {
        return Err(bad(
            "no scenarios/cloud.toml found beside loadgen or here; name a scenario file \
             with --scenario FILE"
                .into(),
        ));
    };
    let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    if len > MAX_SCENARIO_BYTES {
        return Err(bad(format!(
            "scenario file {} is {len} bytes, more than a ConfigMap should hold ({MAX_SCENARIO_BYTES})",
            quote_path(&path)
        )));
    }
    std::fs::read_to_string(&path).map_err(|e| {
        bad(format!(
            "cannot read scenario file {}: {e}",
            quote_path(&path)
        ))
    })
}

/// 32 hex digits from the kernel's random source.
fn random_token() -> Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| {
            bad(format!(
                "cannot read /dev/urandom for a token ({e}); give one with --token"
            ))
        })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for (s, digit_first, ok) in [
            ("loadgen", false, true),
            ("lg-2", false, true),
            ("2lg", false, false),
            ("2lg", true, true),
            ("Lg", false, false),
            ("lg-", false, false),
            ("", true, false),
            ("l_g", false, false),
        ] {
            assert_eq!(dns_label(s, digit_first), ok, "{s}");
        }
    }

    #[test]
    fn run_flags_are_checked_here() {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(check_run_flags(&v(&["--time", "10", "--backend", "kserve"])).is_ok());
        let e = check_run_flags(&v(&["--url=http://x"])).unwrap_err();
        assert!(e.to_string().contains("--url is set by loadgen k8s"), "{e}");
        let e = check_run_flags(&v(&["--no-such-flag"])).unwrap_err();
        assert!(e.to_string().starts_with("run flags: "), "{e}");
        assert!(check_run_flags(&v(&["--time", "-1"])).is_err());
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
