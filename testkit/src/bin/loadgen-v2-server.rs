//! `loadgen-v2-server`: the small KServe v2 server of the tests, as a program, so that
//! `scripts/bench_kserve.sh` can measure the client (and a peer) against a server that
//! answers in microseconds. Not a model server: its models echo their input.
//!
//! Usage: `loadgen-v2-server [--port P] [--shape 16] [--threads N] [--delay-us D]`
//! serves HTTP on P and gRPC on P+1 (127.0.0.1), model `identity` (FP32 [-1, shape]).
//!
//! `loadgen-v2-server --hostile MODE [--port P]` serves instead, over HTTP on P only,
//! the misbehaving server of the tests (`loadgen_testkit::hostile`, model `m`), to
//! try loadgen against a server that is silent, trickles, dies, lies or talks garbage
//! by hand.

use std::net::SocketAddr;
use std::time::Duration;

use loadgen_testkit::hostile::{HostileServer, Mode};
use loadgen_testkit::{TestModel, V2Server};

fn usage(msg: &str) -> ! {
    eprintln!("loadgen-v2-server: {msg}");
    eprintln!(
        "usage: loadgen-v2-server [--port P] [--shape D1,D2,...] [--threads N] [--delay-us D]\n       loadgen-v2-server --hostile MODE [--port P]   (MODE: good, silent, trickle-ready, trickle-answer,\n         dies-after:S, silent-after:S, flaky-after:S, fails-when-busy, wrong-shape, short-values, wrong-name, garbage)"
    );
    std::process::exit(2);
}

fn main() {
    let mut port: u16 = 8500;
    let mut shape: Vec<i64> = vec![16];
    let mut threads: usize = 1;
    let mut delay_us: u64 = 0;
    let mut hostile: Option<Mode> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| usage(&format!("{a} needs a value")))
        };
        match a.as_str() {
            "--port" => {
                port = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--port takes a port number"))
            }
            "--shape" => {
                shape = value()
                    .split(',')
                    .map(|d| d.trim().parse::<i64>().ok().filter(|&d| d > 0))
                    .collect::<Option<_>>()
                    .unwrap_or_else(|| {
                        usage("--shape takes positive dimensions, e.g. 16 or 3,224,224")
                    })
            }
            "--threads" => {
                threads = value()
                    .parse()
                    .ok()
                    .filter(|&t| t > 0)
                    .unwrap_or_else(|| usage("--threads takes a positive number"))
            }
            "--hostile" => {
                hostile = Some(
                    Mode::parse(&value())
                        .unwrap_or_else(|| usage("--hostile takes one of the modes below")),
                )
            }
            "--delay-us" => {
                delay_us = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--delay-us takes microseconds"))
            }
            "-h" | "--help" => {
                usage("serves model 'identity' over KServe v2 HTTP (port P) and gRPC (P+1)")
            }
            other => usage(&format!("unknown argument '{other}'")),
        }
    }
    if port == u16::MAX {
        usage("--port must leave room for the gRPC port P+1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| usage(&format!("could not start the runtime: {e}")));
    if let Some(mode) = hostile {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        rt.block_on(async move {
            match HostileServer::start_on(mode, addr).await {
                Ok(s) => println!("ready: http://{} (hostile: {mode:?}, model m)", s.addr),
                Err(e) => usage(&format!("could not listen on 127.0.0.1:{port}: {e}")),
            }
            std::future::pending::<()>().await;
        });
    }
    let mut model = TestModel::identity("identity", &shape);
    if delay_us > 0 {
        model.delay = Some(Duration::from_micros(delay_us));
    }
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    let grpc = SocketAddr::from(([127, 0, 0, 1], port + 1));
    rt.block_on(async move {
        match V2Server::start(vec![model], http, grpc).await {
            Ok(s) => println!("ready: http://{} grpc://{}", s.http, s.grpc),
            Err(e) => usage(&format!(
                "could not listen on 127.0.0.1:{port}/{}: {e}",
                port + 1
            )),
        }
        std::future::pending::<()>().await;
    });
}
