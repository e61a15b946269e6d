//! `loadgen`: thin entry point; everything lives in the library.

use clap::error::ErrorKind;
use clap::Parser;
use loadgen::config::cli::{usage_sentence, Cli, Command};

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => usage_error(e),
    };
    // A server stops on the first signal; the measuring commands finish their step.
    match cli.command {
        Command::Serve(_) => loadgen::app::serve::install_signals(),
        _ => loadgen::app::install_signals(),
    }
    loadgen::base::clock::tighten_timer_slack();
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    let result = match cli.command {
        Command::Run(a) => loadgen::app::run(a, cmdline),
        Command::Fixed(a) => loadgen::app::fixed(a),
        Command::Throughput(a) => loadgen::app::throughput(a, cmdline),
        Command::Latency(a) => loadgen::app::latency(a, cmdline),
        Command::Accuracy(a) => loadgen::app::accuracy(a),
        Command::Compare(a) => loadgen::app::compare(a),
        Command::Report(a) => loadgen::app::report(a),
        Command::Agent(a) => loadgen::app::agent(a),
        Command::K8s(a) => loadgen::app::k8s(a),
        Command::Serve(a) => loadgen::app::serve(a),
    };
    if let Err(e) = result {
        let code = loadgen::error::exit_code(&e);
        if e.is::<loadgen::error::Reported>() {
            std::process::exit(code);
        }
        // One sentence: the error and its causes on one line, no backtrace.
        let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("loadgen: {}", msg.join(": "));
        std::process::exit(code);
    }
}

/// A bad command line: one line (exit 2), like every other bad input (see
/// [`usage_sentence`]); `--help` and `--version` print as usual.
fn usage_error(e: clap::Error) -> ! {
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit();
    }
    eprintln!("loadgen: {}", usage_sentence(&e));
    std::process::exit(2);
}
