//! `loadgen`: thin entry point; everything lives in the library.

use clap::Parser;
use loadgen::config::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    loadgen::signals::install();
    loadgen::measure::clock::tighten_timer_slack();
    let cmdline = std::env::args().collect::<Vec<_>>().join(" ");
    let result = match cli.command {
        Command::Run(a) => loadgen::app::run(a, cmdline),
        Command::Fixed(a) => loadgen::app::fixed(a),
        Command::Throughput(a) => loadgen::app::throughput(a),
        Command::Accuracy(a) => loadgen::app::accuracy(a),
    };
    if let Err(e) = result {
        let code = loadgen::error::exit_code(&e);
        // One sentence: the error and its causes on one line, no backtrace.
        let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
        eprintln!("loadgen: {}", msg.join(": "));
        std::process::exit(code);
    }
}
