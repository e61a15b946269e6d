//! Loads a dataset folder with loadgen's sample library and dumps what it made, so that
//! `scripts/compare_preprocess.py` can check it against the OpenCV reference:
//!
//!     cargo run --release --example dump_dataset -- DATASET OUTDIR \
//!         [--layout NCHW|NHWC] [--kind resnet50|mobilenet] [--count N] [--size 224] \
//!         [--threads N] [--cache DIR]
//!
//! Writes `OUTDIR/inputs.npy` (N × item shape, float32), `OUTDIR/labels.npy` (int64) and
//! `OUTDIR/names.txt` (one relative path per line, in the dump's order), and prints the
//! load time and rate on stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use loadgen::backend::Layout;
use loadgen::dataset::{Dataset, DatasetOptions};
use loadgen::npy::{write_npy_f32, write_npy_i64};
use loadgen::preprocess::Preprocess;

fn usage() -> ExitCode {
    eprintln!(
        "usage: dump_dataset DATASET OUTDIR [--layout NCHW|NHWC] [--kind resnet50|mobilenet] \
         [--count N] [--size S] [--threads N] [--cache DIR]"
    );
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut pos = Vec::new();
    let (mut layout, mut kind, mut count, mut size, mut threads, mut cache) = (
        Layout::Nchw,
        Preprocess::Resnet50,
        None,
        224usize,
        None,
        None,
    );
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if !a.starts_with("--") {
            pos.push(a.clone());
            continue;
        }
        let Some(v) = it.next() else {
            return usage();
        };
        let ok = match a.as_str() {
            "--layout" => Layout::parse(v).map(|l| layout = l).is_some(),
            "--kind" => Preprocess::parse(v).map(|k| kind = k).is_some(),
            "--count" => v.parse().map(|n| count = Some(n)).is_ok(),
            "--size" => v.parse().map(|n| size = n).is_ok(),
            "--threads" => v.parse().map(|n| threads = Some(n)).is_ok(),
            "--cache" => {
                cache = Some(PathBuf::from(v));
                true
            }
            _ => false,
        };
        if !ok {
            return usage();
        }
    }
    let [root, out] = pos.as_slice() else {
        return usage();
    };
    let mut opts = DatasetOptions::new(root, kind, layout, (size, size));
    opts.count = count;
    opts.threads = threads;
    opts.cache_dir = cache;

    let t0 = Instant::now();
    let ds = match Dataset::load(&opts) {
        Ok(ds) => ds,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "loaded {} images ({} skipped, {} from cache) in {secs:.3} s: {:.1} images/s",
        ds.len(),
        ds.skipped(),
        ds.cache_hits(),
        (ds.len() + ds.skipped()) as f64 / secs
    );

    let out = PathBuf::from(out);
    let mut shape = vec![ds.len()];
    shape.extend_from_slice(ds.item_shape());
    let labels: Vec<i64> = (0..ds.len()).map(|i| ds.label(i).unwrap_or(-1)).collect();
    let names: String = (0..ds.len()).map(|i| format!("{}\n", ds.name(i))).collect();
    let res = std::fs::create_dir_all(&out)
        .and_then(|()| write_npy_f32(out.join("inputs.npy"), &shape, ds.data()))
        .and_then(|()| write_npy_i64(out.join("labels.npy"), &[ds.len()], &labels))
        .and_then(|()| std::fs::write(out.join("names.txt"), names));
    if let Err(e) = res {
        eprintln!("error: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
