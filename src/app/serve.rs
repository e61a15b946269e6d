//! `loadgen serve`: the sim or null backend as a KServe v2 server (see
//! [`crate::serve`]). This file only loads the backend, binds, says where it listens,
//! and waits for SIGINT or SIGTERM.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::backend::{self, BackendConfig, BackendError, BackendKind};
use crate::config::cli::ServeArgs;
use crate::output::lines;
use crate::serve::model::BackendModel;
use crate::serve::{Models, Server};
use crate::signals;

/// How often the server looks at the interrupt flag: a stop is prompt enough.
const POLL: Duration = Duration::from_millis(50);

/// `loadgen serve`: serves until a signal, then exits 0.
pub fn serve(args: ServeArgs) -> Result<()> {
    let kind = BackendKind::parse(&args.backend)
        .filter(|k| matches!(k, BackendKind::Sim | BackendKind::Null))
        .ok_or_else(|| BackendError::BadInput("--backend takes sim or null".into()))?;
    if kind == BackendKind::Null && args.sim_service_time.is_some() {
        return Err(BackendError::BadInput(
            "--sim-service-time sets the sim backend's law: use it with --backend sim".into(),
        )
        .into());
    }
    let cfg = BackendConfig {
        workers: args.threads,
        batch_size: 1,
        sim_service_time: args.sim_service_time.clone(),
        seed: args.seed,
        ..BackendConfig::default()
    };
    let sut = backend::load(kind, &cfg)?;
    let model = BackendModel::new(Arc::clone(&sut), &args.shape.0, args.threads)?;
    let name = sut.name();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.clamp(1, 4))
        .thread_name("serve-io")
        .enable_all()
        .build()
        .map_err(|e| BackendError::Runtime(format!("could not start the I/O runtime: {e}")))?;
    let models = Models::new("loadgen", vec![Arc::new(model)]);
    let server = rt
        .block_on(Server::start(models, args.listen))
        .map_err(|e| BackendError::BadInput(format!("could not listen on {}: {e}", args.listen)))?;
    lines::note(&format!(
        "loadgen serve: listening on http://{} (HTTP and gRPC), model {name}",
        server.addr
    ));
    rt.block_on(async {
        while !signals::interrupted() {
            tokio::time::sleep(POLL).await;
        }
    });
    // The accept loop and the requests still in flight end with the runtime; the
    // workers finish the one they hold.
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(())
}

/// The handlers for `serve`: a first signal stops the server (exit 0), a second one
/// exits at once.
pub fn install_signals() {
    signals::install(|heard| match heard {
        signals::Heard::First(name) => lines::note(&format!("loadgen serve: stopping ({name})")),
        signals::Heard::Second => lines::note("loadgen serve: interrupted twice, exiting now"),
        signals::Heard::NotInstalled => {
            eprintln!("loadgen: warning: could not install the signal handlers")
        }
    });
}
