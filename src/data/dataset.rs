//! The sample library: every item preprocessed once, before any timed step, into one
//! contiguous `Vec<f32>` (item `i` at `i * item_len`), so that a batch of consecutive
//! items is a plain slice and a query costs no copy.
//!
//! Items come from an ImageNet-layout folder (`val_map.txt` lines
//! `<relative path> <label>`), from a seeded random generator ([`Dataset::synthetic`]),
//! or are empty for backends that take no input ([`Dataset::empty`]).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::UNIX_EPOCH;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use thiserror::Error;

use crate::backend::Layout;
use crate::data::preprocess::{self, Preprocess, Preprocessor};

/// A user's dataset mistake. Every variant is one sentence naming the thing and what is
/// expected; all map to exit code 2.
#[derive(Debug, Error)]
pub enum DatasetError {
    #[error(
        "dataset folder {} does not exist; --dataset-path must name the folder that holds the images and val_map.txt",
        path.display()
    )]
    RootMissing { path: PathBuf },

    #[error(
        "dataset path {} is not a folder; --dataset-path must name the folder that holds the images and val_map.txt",
        path.display()
    )]
    RootNotDir { path: PathBuf },

    #[error(
        "image list {} does not exist; put a val_map.txt of `<relative path> <label>` lines in the dataset folder or name one with --dataset-list",
        path.display()
    )]
    ListMissing { path: PathBuf },

    #[error("cannot read image list {}: {reason}", path.display())]
    ListRead { path: PathBuf, reason: String },

    #[error(
        "image list {} is not UTF-8 text (line {line_no}); save it as UTF-8 with `<relative path> <integer label>` lines",
        path.display()
    )]
    ListNotUtf8 { path: PathBuf, line_no: usize },

    #[error(
        "line {line_no} of {} has label {label}, outside the model's classes: labels must be {range}",
        path.display()
    )]
    LabelOutOfRange {
        path: PathBuf,
        line_no: usize,
        label: i64,
        range: String,
    },

    #[error(
        "line {line_no} of {} reads {line:?} but every line must be `<relative path> <integer label>`",
        path.display()
    )]
    BadListLine {
        path: PathBuf,
        line_no: usize,
        line: String,
    },

    #[error(
        "image list {} lists no images; it must hold lines of `<relative path> <integer label>`",
        path.display()
    )]
    EmptyList { path: PathBuf },

    #[error(
        "none of the {tried} images taken from {} could be used ({skipped} unreadable, warnings above); check --dataset-path, --dataset-list and --count",
        list.display()
    )]
    NoUsableItems {
        list: PathBuf,
        tried: usize,
        skipped: usize,
    },

    #[error("input image size {h}x{w} is invalid; a model input must be at least 1x1 pixels")]
    BadImageSize { h: usize, w: usize },

    #[error("{count} items of {item_len} floats each do not fit in memory; lower --count")]
    TooLarge { count: usize, item_len: usize },

    #[error(
        "cannot create the cache folder {}: {reason}; choose a writable place or run without --cache",
        path.display()
    )]
    CacheDir { path: PathBuf, reason: String },

    #[error("cannot start {threads} preprocessing threads ({reason}); use fewer --threads")]
    ThreadPool { threads: usize, reason: String },
}

impl DatasetError {
    /// Process exit code for this error: always 2 (bad usage or bad input).
    pub fn exit_code(&self) -> i32 {
        2
    }
}

/// One line of the image list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListEntry {
    /// Path relative to the dataset root, as written in the list.
    pub name: String,
    pub label: i64,
    /// 1-based line number in the list, for messages.
    pub line: usize,
}

/// An image that was listed but left out, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SkippedItem {
    pub name: String,
    pub reason: String,
}

/// Parses an image list: lines `<relative path> <label>` separated by whitespace, blank
/// lines skipped. The label is the last field, so a path may contain spaces.
pub fn parse_list(path: &Path, text: &str) -> Result<Vec<ListEntry>, DatasetError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let bad = || DatasetError::BadListLine {
            path: path.to_path_buf(),
            line_no: i + 1,
            line: raw.to_string(),
        };
        let (name, label) = line.rsplit_once(char::is_whitespace).ok_or_else(bad)?;
        let label: i64 = label.parse().map_err(|_| bad())?;
        let name = name.trim_end();
        out.push(ListEntry {
            name: name.to_string(),
            label,
            line: i + 1,
        });
    }
    Ok(out)
}

/// Reads and parses an image list file ([`parse_list`]).
pub fn read_list(path: &Path) -> Result<Vec<ListEntry>, DatasetError> {
    let read_err = |reason: String| DatasetError::ListRead {
        path: path.to_path_buf(),
        reason,
    };
    match fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(DatasetError::ListMissing {
                path: path.to_path_buf(),
            })
        }
        Ok(m) if m.is_dir() => {
            return Err(read_err(
                "it is a folder; name the list file itself (val_map.txt)".into(),
            ))
        }
        // A FIFO or device would block or never end.
        Ok(m) if !m.is_file() => return Err(read_err("it is not a regular file".into())),
        _ => {}
    }
    let bytes = fs::read(path).map_err(|e| read_err(e.to_string()))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line_no = 1 + e.as_bytes()[..at].iter().filter(|&&b| b == b'\n').count();
        DatasetError::ListNotUtf8 {
            path: path.to_path_buf(),
            line_no,
        }
    })?;
    parse_list(path, &text)
}

/// Labels of the used lines must lie in `0..limit` (bad input otherwise: a label the
/// model cannot produce would silently count as a miss).
fn check_labels(
    path: &Path,
    entries: &[ListEntry],
    limit: Option<i64>,
) -> Result<(), DatasetError> {
    for e in entries {
        let ok = e.label >= 0 && limit.is_none_or(|l| e.label < l);
        if !ok {
            return Err(DatasetError::LabelOutOfRange {
                path: path.to_path_buf(),
                line_no: e.line,
                label: e.label,
                range: match limit {
                    Some(l) => format!("0 to {} for this model", l - 1),
                    None => "0 or more".into(),
                },
            });
        }
    }
    Ok(())
}

/// What [`Dataset::load`] reads and how it prepares it.
#[derive(Clone, Debug)]
pub struct DatasetOptions {
    /// Dataset folder (`--dataset-path`).
    pub root: PathBuf,
    /// Image list (`--dataset-list`); `None`: `<root>/val_map.txt`.
    pub list: Option<PathBuf>,
    /// Use the first N lines of the list (`--count`); `None`: all.
    pub count: Option<usize>,
    pub preprocess: Preprocess,
    pub layout: Layout,
    /// Model input (height, width).
    pub image_hw: (usize, usize),
    /// Keep preprocessed items here and reuse them on the next load (`--cache 1`).
    pub cache_dir: Option<PathBuf>,
    /// No progress bar.
    pub quiet: bool,
    /// Preprocessing threads; `None`: all cores.
    pub threads: Option<usize>,
    /// Labels must be below this (the model's classes minus the label offset); `None`:
    /// the model does not say. Negative labels are always refused.
    pub label_limit: Option<i64>,
}

impl DatasetOptions {
    /// Options with the defaults: list `<root>/val_map.txt`, all items, no cache,
    /// progress bar on a terminal, all cores.
    pub fn new(
        root: impl Into<PathBuf>,
        preprocess: Preprocess,
        layout: Layout,
        image_hw: (usize, usize),
    ) -> DatasetOptions {
        DatasetOptions {
            root: root.into(),
            list: None,
            count: None,
            preprocess,
            layout,
            image_hw,
            cache_dir: None,
            quiet: false,
            threads: None,
            label_limit: None,
        }
    }

    /// The image list this load reads.
    pub fn list_path(&self) -> PathBuf {
        self.list
            .clone()
            .unwrap_or_else(|| self.root.join("val_map.txt"))
    }
}

/// Preprocessed items in one contiguous buffer, with their labels and names.
#[derive(Debug)]
pub struct Dataset {
    data: Vec<f32>,
    len: usize,
    item_len: usize,
    item_shape: Vec<usize>,
    layout: Layout,
    labels: Vec<i64>,
    names: Vec<String>,
    skipped: Vec<SkippedItem>,
    cache_hits: usize,
    cache_rebuilt: usize,
    synthetic: bool,
}

/// How one listed image turned out.
enum Outcome {
    Computed,
    FromCache,
    /// Its cache file was damaged; recomputed from the image (and the file rewritten).
    Rebuilt,
    Skipped(String),
}

/// The memory a load fills at a time beyond the items it has kept: one batch of
/// preprocessed items. Large enough that a batch holds many items per thread (the
/// threads wait for each other only once per batch), small next to a dataset.
const BATCH_BYTES: usize = 64 << 20;

/// Items per batch: [`BATCH_BYTES`] worth, and at least four per thread.
fn batch_items(item_len: usize, threads: usize, batch_bytes: usize) -> usize {
    let item_bytes = item_len.saturating_mul(4).max(1);
    (batch_bytes / item_bytes)
        .max(threads.saturating_mul(4))
        .max(1)
}

/// Makes room for `extra` more values in `data`, doubling its capacity when it must
/// grow (so each value is moved O(1) times) but never past `limit`, what every listed
/// item would take: the buffer tracks the items loaded, never the list's length.
fn grow(
    data: &mut Vec<f32>,
    extra: usize,
    limit: usize,
) -> Result<(), std::collections::TryReserveError> {
    let need = data.len().saturating_add(extra);
    if need <= data.capacity() {
        return Ok(());
    }
    let target = data.capacity().saturating_mul(2).min(limit).max(need);
    data.try_reserve_exact(target - data.len())
}

impl Dataset {
    /// Loads and preprocesses the listed images (see the module docs). Unreadable images
    /// are reported on stderr, counted in [`Dataset::skipped`] and left out. Memory
    /// follows the images loaded, not the length of the list or `--count`.
    pub fn load(opts: &DatasetOptions) -> Result<Dataset, DatasetError> {
        let mut ds = Self::load_batched(opts, None)?;
        // The doubling may have left up to twice the data's size reserved.
        ds.data.shrink_to_fit();
        Ok(ds)
    }

    /// [`Dataset::load`], preprocessing `batch` items at a time (`None`:
    /// [`batch_items`]), without giving back the spare capacity (the tests look at it).
    fn load_batched(opts: &DatasetOptions, batch: Option<usize>) -> Result<Dataset, DatasetError> {
        match fs::metadata(&opts.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(DatasetError::RootNotDir {
                    path: opts.root.clone(),
                })
            }
            Err(_) => {
                return Err(DatasetError::RootMissing {
                    path: opts.root.clone(),
                })
            }
        }
        let list_path = opts.list_path();
        let mut entries = read_list(&list_path)?;
        if entries.is_empty() {
            return Err(DatasetError::EmptyList { path: list_path });
        }
        if let Some(n) = opts.count {
            entries.truncate(n);
        }
        check_labels(&list_path, &entries, opts.label_limit)?;
        let (h, w) = opts.image_hw;
        if h == 0 || w == 0 {
            return Err(DatasetError::BadImageSize { h, w });
        }
        let item_len = 3 * h * w;
        let n = entries.len();

        let cache = match &opts.cache_dir {
            Some(dir) => {
                match fs::metadata(dir) {
                    Ok(m) if !m.is_dir() => {
                        return Err(DatasetError::CacheDir {
                            path: dir.clone(),
                            reason: "it exists and is not a folder".into(),
                        })
                    }
                    _ => {}
                }
                fs::create_dir_all(dir).map_err(|e| DatasetError::CacheDir {
                    path: dir.clone(),
                    reason: e.to_string(),
                })?;
                Some(Cache {
                    dir: dir.clone(),
                    warned: AtomicBool::new(false),
                })
            }
            None => None,
        };

        let threads = opts.threads.unwrap_or(0);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("preprocess-{i}"))
            .build()
            .map_err(|e| DatasetError::ThreadPool {
                threads,
                reason: e.to_string(),
            })?;
        let batch = batch
            .unwrap_or_else(|| batch_items(item_len, pool.current_num_threads(), BATCH_BYTES))
            .min(n)
            .max(1);

        let pb = progress_bar(n as u64, opts.quiet);
        let ctx = LoadCtx {
            root: &opts.root,
            preprocess: opts.preprocess,
            layout: opts.layout,
            hw: (h, w),
            cache: cache.as_ref(),
            pb: &pb,
        };
        // Items are preprocessed a batch at a time straight into the tail of `data`,
        // which grows with the images actually loaded: a list of 20,000 missing files
        // costs one batch of memory, not 20,000 items (it once took 11.8 GB).
        let limit = n.saturating_mul(item_len);
        let mut data: Vec<f32> = Vec::new();
        let mut labels = Vec::new();
        let mut names = Vec::new();
        let mut skipped = Vec::new();
        let mut cache_hits = 0;
        let mut cache_rebuilt = 0;
        // Items kept so far: the first `kept * item_len` values of `data`. What lies
        // beyond is the last batch's slots, overwritten by the next batch (every kept
        // item is written whole), so each value is zero-filled once, not once a batch.
        let mut kept = 0;
        for part in entries.chunks_mut(batch) {
            let start = kept * item_len;
            let end = start + part.len() * item_len;
            if end > data.len() {
                let extra = end - data.len();
                grow(&mut data, extra, limit).map_err(|_| DatasetError::TooLarge {
                    count: kept + part.len(),
                    item_len,
                })?;
                data.resize(end, 0.0);
            }
            let outcomes: Vec<Outcome> = pool.install(|| {
                data[start..end]
                    .par_chunks_mut(item_len)
                    .zip(part.par_iter())
                    .map_init(
                        || Worker {
                            pp: Preprocessor::new(opts.preprocess, opts.layout, h, w),
                            buf: Vec::new(),
                        },
                        |worker, (chunk, entry)| {
                            let outcome = worker.run(&ctx, entry, chunk);
                            pb.inc(1);
                            outcome
                        },
                    )
                    .collect()
            });
            // Keep the good items, in list order, moving them down over the skipped ones.
            let first = kept;
            for (i, (outcome, entry)) in outcomes.into_iter().zip(part.iter_mut()).enumerate() {
                let name = std::mem::take(&mut entry.name);
                match outcome {
                    Outcome::Skipped(reason) => skipped.push(SkippedItem { name, reason }),
                    ok => {
                        match ok {
                            Outcome::FromCache => cache_hits += 1,
                            Outcome::Rebuilt => cache_rebuilt += 1,
                            _ => {}
                        }
                        let slot = first + i;
                        if kept != slot {
                            data.copy_within(
                                slot * item_len..(slot + 1) * item_len,
                                kept * item_len,
                            );
                        }
                        labels.push(entry.label);
                        names.push(name);
                        kept += 1;
                    }
                }
            }
        }
        pb.finish_and_clear();
        data.truncate(kept * item_len);
        if kept == 0 {
            return Err(DatasetError::NoUsableItems {
                list: list_path,
                tried: n,
                skipped: skipped.len(),
            });
        }
        Ok(Dataset {
            data,
            len: kept,
            item_len,
            item_shape: preprocess::item_shape(opts.layout, h, w),
            layout: opts.layout,
            labels,
            names,
            skipped,
            cache_hits,
            cache_rebuilt,
            synthetic: false,
        })
    }

    /// `count` seeded random items of `item_shape`, uniform over the range ResNet-50
    /// preprocessing produces (`[-123.68, 151.06]`); no labels. The same seed gives the
    /// same tensors whatever the number of threads.
    pub fn synthetic(
        item_shape: &[usize],
        layout: Layout,
        count: usize,
        seed: u64,
    ) -> Result<Dataset, DatasetError> {
        Self::synthetic_in_range(
            item_shape,
            layout,
            count,
            seed,
            Preprocess::Resnet50.value_range(),
        )
    }

    /// [`Dataset::synthetic`] with values uniform in `[lo, hi)` (e.g.
    /// [`Preprocess::value_range`] of the profile's preprocessing).
    pub fn synthetic_in_range(
        item_shape: &[usize],
        layout: Layout,
        count: usize,
        seed: u64,
        (lo, hi): (f32, f32),
    ) -> Result<Dataset, DatasetError> {
        let item_len = if item_shape.is_empty() {
            0
        } else {
            item_shape.iter().product()
        };
        let too_large = || DatasetError::TooLarge { count, item_len };
        let total = count.checked_mul(item_len).ok_or_else(too_large)?;
        let mut data: Vec<f32> = Vec::new();
        data.try_reserve_exact(total).map_err(|_| too_large())?;
        data.resize(total, 0.0);
        if item_len > 0 {
            let span = hi - lo;
            data.par_chunks_mut(item_len)
                .enumerate()
                .for_each(|(i, chunk)| {
                    let mut rng = StdRng::seed_from_u64(splitmix64(seed ^ splitmix64(i as u64)));
                    for v in chunk {
                        *v = lo + span * rng.random::<f32>();
                    }
                });
        }
        Ok(Dataset {
            data,
            len: count,
            item_len,
            item_shape: item_shape.to_vec(),
            layout,
            labels: Vec::new(),
            names: Vec::new(),
            skipped: Vec::new(),
            cache_hits: 0,
            cache_rebuilt: 0,
            synthetic: true,
        })
    }

    /// `count` items of no data, for backends that take no input (`item_len() == 0`).
    /// Counts as synthetic: no labels, no accuracy pass.
    pub fn empty(count: usize) -> Dataset {
        Dataset {
            data: Vec::new(),
            len: count,
            item_len: 0,
            item_shape: Vec::new(),
            layout: Layout::Nchw,
            labels: Vec::new(),
            names: Vec::new(),
            skipped: Vec::new(),
            cache_hits: 0,
            cache_rebuilt: 0,
            synthetic: true,
        }
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements (f32) in one item.
    pub fn item_len(&self) -> usize {
        self.item_len
    }

    /// Shape of one item without the batch dimension (`[]` for [`Dataset::empty`]).
    pub fn item_shape(&self) -> &[usize] {
        &self.item_shape
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Item `i`. Panics if `i >= len()` (like slice indexing).
    pub fn item(&self, i: usize) -> &[f32] {
        self.items(i, 1)
    }

    /// Items `start .. start + n` as one contiguous slice (`n * item_len()` values).
    /// Panics if `start + n > len()` (like slice indexing).
    pub fn items(&self, start: usize, n: usize) -> &[f32] {
        assert!(
            start + n <= self.len,
            "items {start}..{} out of range (len {})",
            start + n,
            self.len
        );
        &self.data[start * self.item_len..(start + n) * self.item_len]
    }

    /// All items, item `i` at `i * item_len()`.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// The label of item `i` as written in the list (`None`: synthetic or out of range).
    pub fn label(&self, i: usize) -> Option<i64> {
        self.labels.get(i).copied()
    }

    /// All labels, when the items came from a list.
    pub fn labels(&self) -> Option<&[i64]> {
        (!self.synthetic).then_some(self.labels.as_slice())
    }

    /// The relative path of item `i` (`""` for synthetic items).
    pub fn name(&self, i: usize) -> &str {
        self.names.get(i).map_or("", String::as_str)
    }

    /// How many listed images were left out as unreadable.
    pub fn skipped(&self) -> usize {
        self.skipped.len()
    }

    /// The images left out, and why.
    pub fn skipped_items(&self) -> &[SkippedItem] {
        &self.skipped
    }

    /// How many items were read from the disk cache instead of being decoded.
    pub fn cache_hits(&self) -> usize {
        self.cache_hits
    }

    /// How many cache files were found damaged (each named on stderr) and rebuilt from
    /// their image.
    pub fn cache_rebuilt(&self) -> usize {
        self.cache_rebuilt
    }

    pub fn is_synthetic(&self) -> bool {
        self.synthetic
    }
}

fn progress_bar(n: u64, quiet: bool) -> ProgressBar {
    use std::io::IsTerminal;
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    // A constant, valid template: the fallback only keeps this free of a panic path.
    let style = ProgressStyle::with_template(
        "preprocessing {bar:40} {pos}/{len} images ({rate} images/s, {eta} left)",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .with_key(
        "rate",
        |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{:.0}", state.per_sec());
        },
    );
    ProgressBar::with_draw_target(Some(n), ProgressDrawTarget::stderr()).with_style(style)
}

/// An error text on one line (some decoder messages end in a newline).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// What every worker shares during a load.
struct LoadCtx<'a> {
    root: &'a Path,
    preprocess: Preprocess,
    layout: Layout,
    hw: (usize, usize),
    cache: Option<&'a Cache>,
    pb: &'a ProgressBar,
}

/// Per-thread state: the preprocessor's buffers and a byte buffer for file reads.
struct Worker {
    pp: Preprocessor,
    buf: Vec<u8>,
}

impl Worker {
    fn run(&mut self, ctx: &LoadCtx<'_>, entry: &ListEntry, out: &mut [f32]) -> Outcome {
        let path = ctx.root.join(&entry.name);
        match self.run_inner(ctx, entry, &path, out) {
            Ok(o) => o,
            Err(reason) => {
                ctx.pb
                    .suspend(|| eprintln!("warning: skipping image {}: {reason}", path.display()));
                Outcome::Skipped(reason)
            }
        }
    }

    fn run_inner(
        &mut self,
        ctx: &LoadCtx<'_>,
        entry: &ListEntry,
        path: &Path,
        out: &mut [f32],
    ) -> Result<Outcome, String> {
        let meta = fs::metadata(path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => "file not found".to_string(),
            _ => e.to_string(),
        })?;
        if !meta.is_file() {
            return Err("not a regular file".to_string());
        }
        let cached = ctx.cache.map(|c| {
            let key = cache_key(entry, &meta, ctx);
            (c, c.file_for(&key), key)
        });
        let mut damaged = None;
        if let Some((_, file, key)) = &cached {
            match read_cache(file, key, out, &mut self.buf) {
                CacheRead::Hit => return Ok(Outcome::FromCache),
                CacheRead::Miss => {}
                CacheRead::Damaged(why) => damaged = Some(why),
            }
        }
        self.buf.clear();
        fs::File::open(path)
            .and_then(|mut f| f.read_to_end(&mut self.buf))
            .map_err(|e| format!("cannot read it ({e})"))?;
        let bytes = &self.buf;
        if let Some(why) = preprocess::truncation(bytes) {
            return Err(format!("cannot decode it ({why})"));
        }
        let pp = &mut self.pp;
        // A decoder bug on a hostile file must not take the whole load down.
        let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pp.process_encoded(bytes, out)
        }));
        match decoded {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(format!("cannot decode it ({})", one_line(&e.to_string()))),
            Err(_) => return Err("the image decoder crashed on it".to_string()),
        }
        if let Some((cache, file, key)) = &cached {
            if let Some(why) = damaged {
                ctx.pb
                    .suspend(|| eprintln!("{}", damaged_cache_warning(file, why, path)));
            }
            if let Err(e) = write_cache(file, key, out, &mut self.buf) {
                if !cache.warned.swap(true, Ordering::Relaxed) {
                    ctx.pb.suspend(|| {
                        eprintln!(
                            "warning: cannot write the preprocessing cache in {} ({e}); going on without it",
                            cache.dir.display()
                        )
                    });
                }
            }
        }
        Ok(if damaged.is_some() {
            Outcome::Rebuilt
        } else {
            Outcome::Computed
        })
    }
}

/// The stderr line for a cache file that failed its check: without it a damaged cache
/// is either used silently (garbage fed to the model, as before the checksum) or
/// rebuilt silently (a failing disk goes unnoticed).
fn damaged_cache_warning(file: &Path, why: &str, source: &Path) -> String {
    format!(
        "loadgen: warning: the cached image {} was damaged ({why}); rebuilt from {}",
        file.display(),
        source.display()
    )
}

/// The on-disk cache: one file per item, `<hash of the key>.f32`, holding
/// [`CACHE_MAGIC`], the CRC-32 of everything after it (u32), the key's length (u32)
/// and the full key (checked on read, so a hash collision only costs a recomputation),
/// the number of values (u64) and the item as raw f32; integers and floats are little
/// endian. The checksum is what catches a file changed after it was written (a bad
/// disk, another program writing into it): before it, such a file fed the model
/// whatever its bytes made (8,184 NaN inputs, in one report).
struct Cache {
    dir: PathBuf,
    warned: AtomicBool,
}

/// Version 2: the checksum. Files of an older version (`LGCACHE1`) are rebuilt without
/// a warning: they are not damaged, only older.
const CACHE_MAGIC: &[u8; 8] = b"LGCACHE2";

/// What every version of the cache format starts with.
const CACHE_FAMILY: &[u8; 7] = b"LGCACHE";

/// Bytes before the checksummed part: the magic and the checksum.
const CACHE_HEAD: usize = 8 + 4;

/// How a cache file read turned out.
#[derive(Debug, PartialEq, Eq)]
enum CacheRead {
    /// The item was filled from the file.
    Hit,
    /// No usable file for this key (none, an older format, another key's): compute it.
    Miss,
    /// The file failed its check (why); `out` holds garbage and must be recomputed.
    Damaged(&'static str),
}

impl Cache {
    fn file_for(&self, key: &str) -> PathBuf {
        let h1 = fnv1a64(key.as_bytes(), 0xcbf2_9ce4_8422_2325);
        let h2 = fnv1a64(key.as_bytes(), splitmix64(h1));
        self.dir.join(format!("{h1:016x}{h2:016x}.f32"))
    }
}

fn fnv1a64(bytes: &[u8], basis: u64) -> u64 {
    bytes.iter().fold(basis, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// What identifies a cached item: the image (relative path, size, modification time)
/// and everything that shapes its tensor.
fn cache_key(entry: &ListEntry, meta: &fs::Metadata, ctx: &LoadCtx<'_>) -> String {
    let mtime_ns: i128 = match meta.modified().map(|t| t.duration_since(UNIX_EPOCH)) {
        Ok(Ok(d)) => d.as_nanos() as i128,
        Ok(Err(before)) => -(before.duration().as_nanos() as i128),
        Err(_) => 0,
    };
    format!(
        "loadgen preprocessed item v1\npath={}\nsize={}\nmtime_ns={mtime_ns}\npreprocess={}\nlayout={}\nhw={}x{}\n",
        entry.name,
        meta.len(),
        ctx.preprocess.as_str(),
        ctx.layout.as_str(),
        ctx.hw.0,
        ctx.hw.1
    )
}

/// Fills `out` from the cache file made for `key`, checking it ([`check_cache`]).
fn read_cache(file: &Path, key: &str, out: &mut [f32], buf: &mut Vec<u8>) -> CacheRead {
    buf.clear();
    // Only a regular file: opening a FIFO planted there would block.
    if !fs::metadata(file).is_ok_and(|m| m.is_file()) {
        return CacheRead::Miss;
    }
    let Ok(mut f) = fs::File::open(file) else {
        return CacheRead::Miss;
    };
    if f.read_to_end(buf).is_err() {
        return CacheRead::Miss;
    }
    check_cache(buf, key, out)
}

/// Checks the bytes of a cache file against `key` and its checksum, decoding the item
/// into `out` in the same pass: each block is checksummed and converted while it is
/// in the processor's cache, so the check costs next to nothing on top of the read.
fn check_cache(bytes: &[u8], key: &str, out: &mut [f32]) -> CacheRead {
    const BLOCK: usize = 16 << 10;
    if bytes.len() >= CACHE_MAGIC.len()
        && bytes.starts_with(CACHE_FAMILY)
        && !bytes.starts_with(CACHE_MAGIC)
    {
        return CacheRead::Miss;
    }
    if bytes.len() < CACHE_HEAD || !bytes.starts_with(CACHE_MAGIC) {
        return CacheRead::Damaged("not a loadgen cache file");
    }
    let stored = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let body = &bytes[CACHE_HEAD..];
    let head = 4 + key.len() + 8;
    let ours = body.len() == head + out.len() * 4
        && body[..4] == (key.len() as u32).to_le_bytes()
        && &body[4..4 + key.len()] == key.as_bytes()
        && body[4 + key.len()..head] == (out.len() as u64).to_le_bytes();
    if !ours {
        // A sound file made for another key (the names' hashes collided) is no damage.
        return if crc32fast::hash(body) == stored {
            CacheRead::Miss
        } else {
            CacheRead::Damaged("checksum mismatch")
        };
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&body[..head]);
    for (o, b) in out.chunks_mut(BLOCK / 4).zip(body[head..].chunks(BLOCK)) {
        crc.update(b);
        for (v, c) in o.iter_mut().zip(b.chunks_exact(4)) {
            *v = f32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        }
    }
    if crc.finalize() == stored {
        CacheRead::Hit
    } else {
        CacheRead::Damaged("checksum mismatch")
    }
}

/// The bytes of the cache file of `item` under `key` (format: [`Cache`]).
fn encode_cache(key: &str, item: &[f32], buf: &mut Vec<u8>) {
    buf.clear();
    buf.reserve(CACHE_HEAD + 4 + key.len() + 8 + item.len() * 4);
    buf.extend_from_slice(CACHE_MAGIC);
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(&(item.len() as u64).to_le_bytes());
    for v in item {
        buf.extend_from_slice(&v.to_le_bytes());
    }
    let crc = crc32fast::hash(&buf[CACHE_HEAD..]);
    buf[8..CACHE_HEAD].copy_from_slice(&crc.to_le_bytes());
}

/// Writes a cache file atomically (temporary file, then rename).
fn write_cache(file: &Path, key: &str, item: &[f32], buf: &mut Vec<u8>) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    encode_cache(key, item, buf);
    // Never rename over something that is not a regular file (a FIFO planted there).
    if fs::symlink_metadata(file).is_ok_and(|m| !m.is_file()) {
        return Err(io::Error::other("a non-regular file is in the way"));
    }
    let tmp = file.with_extension(format!(
        "tmp.{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let res = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(buf))
        .and_then(|()| fs::rename(&tmp, file));
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res
}

impl crate::measure::pool::SampleLibrary for Dataset {
    fn count(&self) -> usize {
        self.len.max(1)
    }
    fn item_len(&self) -> usize {
        self.item_len
    }
    fn items(&self, start: usize, n: usize) -> &[f32] {
        Dataset::items(self, start, n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{DynamicImage, ImageFormat, RgbImage};

    fn pattern(w: u32, h: u32, seed: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([
                ((x * 7 + y * 3 + seed) % 256) as u8,
                ((x * y + seed * 5) % 256) as u8,
                (((x / 8 + y / 8) % 2) * 200 + seed % 50) as u8,
            ])
        })
    }

    /// A dataset folder: a PNG, a JPEG, a grey PNG; returns the decoded images.
    fn make_set(dir: &Path) -> Vec<RgbImage> {
        let a = pattern(60, 45, 1);
        let b = pattern(40, 70, 2);
        let c = pattern(33, 33, 3);
        DynamicImage::ImageRgb8(a.clone())
            .save_with_format(dir.join("a.PNG"), ImageFormat::Png)
            .unwrap();
        DynamicImage::ImageRgb8(b.clone())
            .save_with_format(dir.join("b.JPEG"), ImageFormat::Jpeg)
            .unwrap();
        DynamicImage::ImageRgb8(c.clone())
            .to_luma8()
            .save_with_format(dir.join("c.png"), ImageFormat::Png)
            .unwrap();
        fs::write(dir.join("val_map.txt"), "a.PNG 7\n\nb.JPEG 65\nc.png 999\n").unwrap();
        let decode = |n: &str| preprocess::decode_rgb8(&fs::read(dir.join(n)).unwrap()).unwrap();
        vec![decode("a.PNG"), decode("b.JPEG"), decode("c.png")]
    }

    fn opts(dir: &Path) -> DatasetOptions {
        let mut o = DatasetOptions::new(dir, Preprocess::Resnet50, Layout::Nchw, (16, 16));
        o.quiet = true;
        // One thread: the suite runs tests in parallel on a small machine, and timing
        // tests elsewhere in the crate suffer from oversubscription.
        o.threads = Some(1);
        o
    }

    #[test]
    fn loads_in_list_order_into_one_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let imgs = make_set(dir.path());
        let mut o = opts(dir.path());
        o.threads = Some(2);
        let ds = Dataset::load(&o).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.item_len(), 3 * 16 * 16);
        assert_eq!(ds.item_shape(), &[3, 16, 16]);
        assert_eq!(ds.data().len(), 3 * ds.item_len());
        assert_eq!(
            (ds.label(0), ds.label(1), ds.label(2), ds.label(3)),
            (Some(7), Some(65), Some(999), None)
        );
        assert_eq!(ds.name(1), "b.JPEG");
        assert!(!ds.is_synthetic());
        assert_eq!(ds.skipped(), 0);
        for (i, img) in imgs.iter().enumerate() {
            let want = preprocess::preprocess(img, Preprocess::Resnet50, 16, 16, Layout::Nchw);
            assert_eq!(ds.item(i), &want[..], "item {i}");
        }
        assert_eq!(&ds.items(1, 2)[..ds.item_len()], ds.item(1));
        // Grey replicated: the three planes differ only by the means.
        let c = ds.item(2);
        assert_eq!(c[0] + RESNET_R, c[256] + RESNET_G);
    }

    const RESNET_R: f32 = preprocess::RESNET50_MEANS[0];
    const RESNET_G: f32 = preprocess::RESNET50_MEANS[1];

    #[test]
    fn count_takes_the_first_lines() {
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        let mut o = opts(dir.path());
        o.count = Some(2);
        o.layout = Layout::Nhwc;
        let ds = Dataset::load(&o).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.item_shape(), &[16, 16, 3]);
        assert_eq!(ds.name(1), "b.JPEG");
    }

    #[test]
    fn corrupt_and_missing_images_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        let jpeg = fs::read(dir.path().join("b.JPEG")).unwrap();
        fs::write(dir.path().join("bad.JPEG"), &jpeg[..200]).unwrap();
        fs::write(
            dir.path().join("val_map.txt"),
            "a.PNG 7\nbad.JPEG 1\nmissing.JPEG 2\nc.png 3\n",
        )
        .unwrap();
        let ds = Dataset::load(&opts(dir.path())).unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.skipped(), 2);
        assert_eq!((ds.name(0), ds.name(1)), ("a.PNG", "c.png"));
        assert_eq!((ds.label(0), ds.label(1)), (Some(7), Some(3)));
        assert_eq!(ds.skipped_items()[0].name, "bad.JPEG");
        assert!(ds.skipped_items()[0].reason.contains("decode"));
        assert_eq!(ds.skipped_items()[1].reason, "file not found");
        // The kept items were moved down intact.
        let full = Dataset::load(&{
            let mut o = opts(dir.path());
            o.list = Some(dir.path().join("one.txt"));
            fs::write(dir.path().join("one.txt"), "c.png 3\n").unwrap();
            o
        })
        .unwrap();
        assert_eq!(ds.item(1), full.item(0));
    }

    #[test]
    fn no_usable_items_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("x.JPEG"), b"garbage").unwrap();
        fs::write(dir.path().join("val_map.txt"), "x.JPEG 1\n").unwrap();
        let err = Dataset::load(&opts(dir.path())).unwrap_err();
        assert!(matches!(
            err,
            DatasetError::NoUsableItems {
                tried: 1,
                skipped: 1,
                ..
            }
        ));
        assert_eq!(err.exit_code(), 2);
        fs::write(dir.path().join("val_map.txt"), "\n\n").unwrap();
        let err = Dataset::load(&opts(dir.path())).unwrap_err();
        assert!(matches!(err, DatasetError::EmptyList { .. }), "{err}");
    }

    #[test]
    fn list_errors_name_file_and_line() {
        let p = Path::new("/data/val_map.txt");
        let err = parse_list(p, "a.JPEG 1\n\nb.JPEG\n").unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(&err, DatasetError::BadListLine { line_no: 3, line, .. } if line == "b.JPEG")
        );
        assert!(msg.contains("line 3 of /data/val_map.txt"), "{msg}");
        assert!(msg.contains("`<relative path> <integer label>`"), "{msg}");
        let err = parse_list(p, "a.JPEG x1\n").unwrap_err();
        assert!(matches!(err, DatasetError::BadListLine { line_no: 1, .. }));
        let ok = parse_list(p, "  dir/a b.JPEG\t12  \r\nc.png -1\n").unwrap();
        assert_eq!(
            ok,
            vec![
                ListEntry {
                    name: "dir/a b.JPEG".into(),
                    label: 12,
                    line: 1
                },
                ListEntry {
                    name: "c.png".into(),
                    label: -1,
                    line: 2
                }
            ]
        );
    }

    #[test]
    fn labels_outside_the_classes_name_the_line() {
        let p = Path::new("/d/val_map.txt");
        let entries = parse_list(p, "a 0\nb 999\nc 1000\n").unwrap();
        check_labels(p, &entries[..2], Some(1000)).unwrap();
        let e = check_labels(p, &entries, Some(1000))
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 3 of /d/val_map.txt has label 1000"), "{e}");
        assert!(e.contains("0 to 999"), "{e}");
        let entries = parse_list(p, "a 5\nb -1\n").unwrap();
        let e = check_labels(p, &entries, None).unwrap_err().to_string();
        assert!(e.contains("line 2") && e.contains("label -1"), "{e}");
    }

    #[test]
    fn a_list_that_is_not_utf8_or_a_folder_gets_one_sentence() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("val_map.txt");
        fs::write(&p, b"a.JPEG 1\nb\xff.JPEG 2\n").unwrap();
        let e = read_list(&p).unwrap_err().to_string();
        assert!(e.contains("is not UTF-8 text (line 2)"), "{e}");
        let e = read_list(dir.path()).unwrap_err().to_string();
        assert!(e.contains("it is a folder"), "{e}");
        assert!(!e.contains("os error"), "{e}");
    }

    #[test]
    fn missing_root_or_list() {
        let dir = tempfile::tempdir().unwrap();
        let mut errors = Vec::new();
        let err = Dataset::load(&opts(&dir.path().join("nope"))).unwrap_err();
        assert!(matches!(err, DatasetError::RootMissing { .. }));
        assert!(err.to_string().contains("nope does not exist"), "{err}");
        errors.push(err);
        let err = Dataset::load(&opts(dir.path())).unwrap_err();
        assert!(matches!(err, DatasetError::ListMissing { .. }));
        assert!(
            err.to_string().contains("val_map.txt does not exist"),
            "{err}"
        );
        errors.push(err);
        fs::write(dir.path().join("f"), "").unwrap();
        let err = Dataset::load(&opts(&dir.path().join("f"))).unwrap_err();
        assert!(matches!(err, DatasetError::RootNotDir { .. }));
        errors.push(err);
        let mut o = opts(dir.path());
        o.list = Some(dir.path().join("other.txt"));
        let err = Dataset::load(&o).unwrap_err();
        assert!(err.to_string().contains("other.txt"), "{err}");
        errors.push(err);
        fs::write(dir.path().join("val_map.txt"), "a 1\n").unwrap();
        let mut o = opts(dir.path());
        o.image_hw = (0, 224);
        errors.push(Dataset::load(&o).unwrap_err());
        for e in errors {
            let s = e.to_string();
            assert_eq!(e.exit_code(), 2);
            assert!(!s.contains(". ") && !s.contains('\n'), "one sentence: {s}");
        }
    }

    #[test]
    fn cache_is_reused_and_identical() {
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        let cache = dir.path().join("cache");
        let mut o = opts(dir.path());
        o.cache_dir = Some(cache.clone());
        let first = Dataset::load(&o).unwrap();
        assert_eq!(first.cache_hits(), 0);
        let files: Vec<_> = fs::read_dir(&cache).unwrap().collect();
        assert_eq!(files.len(), 3);
        let second = Dataset::load(&o).unwrap();
        assert_eq!(second.cache_hits(), 3);
        assert_eq!(first.data(), second.data());
        assert_eq!(second.name(2), "c.png");

        // Another layout is another key.
        o.layout = Layout::Nhwc;
        let nhwc = Dataset::load(&o).unwrap();
        assert_eq!(nhwc.cache_hits(), 0);
        assert_eq!(fs::read_dir(&cache).unwrap().count(), 6);
        o.layout = Layout::Nchw;

        // A truncated cache file is found damaged and rewritten.
        for f in fs::read_dir(&cache).unwrap() {
            let p = f.unwrap().path();
            let bytes = fs::read(&p).unwrap();
            fs::write(&p, &bytes[..bytes.len() - 5]).unwrap();
        }
        let third = Dataset::load(&o).unwrap();
        assert_eq!(third.cache_hits(), 0);
        assert_eq!(third.cache_rebuilt(), 3);
        assert_eq!(third.data(), first.data());
        let fourth = Dataset::load(&o).unwrap();
        assert_eq!(fourth.cache_hits(), 3);
        assert_eq!(fourth.cache_rebuilt(), 0);

        // A changed image (size/mtime) is not served from the cache.
        let img = pattern(50, 50, 9);
        DynamicImage::ImageRgb8(img)
            .save_with_format(dir.path().join("a.PNG"), ImageFormat::Png)
            .unwrap();
        let fifth = Dataset::load(&o).unwrap();
        assert_eq!(fifth.cache_hits(), 2);
        assert_ne!(fifth.item(0), first.item(0));
    }

    /// The cache files of `dir`, sorted.
    fn cache_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|f| f.unwrap().path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_cache_item_overwritten_in_its_data_is_rebuilt_alone() {
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        let cache = dir.path().join("cache");
        let mut o = opts(dir.path());
        o.cache_dir = Some(cache.clone());
        let first = Dataset::load(&o).unwrap();
        // Bytes in the middle of one item's values replaced (here by NaNs), its header
        // intact: the case that once reached the model unnoticed.
        let victim = &cache_files(&cache)[1];
        let mut bytes = fs::read(victim).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid..mid + 64].fill(0xFF);
        fs::write(victim, &bytes).unwrap();
        let second = Dataset::load(&o).unwrap();
        assert_eq!(second.cache_hits(), 2);
        assert_eq!(second.cache_rebuilt(), 1);
        assert_eq!(second.data(), first.data());
        assert!(second.data().iter().all(|v| v.is_finite()));
        // The rebuilt file was rewritten sound.
        let third = Dataset::load(&o).unwrap();
        assert_eq!((third.cache_hits(), third.cache_rebuilt()), (3, 0));
        assert_eq!(third.data(), first.data());
    }

    #[test]
    fn a_cache_file_of_the_older_format_is_rebuilt_without_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        let cache = dir.path().join("cache");
        let mut o = opts(dir.path());
        o.cache_dir = Some(cache.clone());
        let first = Dataset::load(&o).unwrap();
        for p in cache_files(&cache) {
            let mut bytes = fs::read(&p).unwrap();
            bytes[..8].copy_from_slice(b"LGCACHE1");
            fs::write(&p, &bytes).unwrap();
        }
        let second = Dataset::load(&o).unwrap();
        assert_eq!((second.cache_hits(), second.cache_rebuilt()), (0, 0));
        assert_eq!(second.data(), first.data());
        assert_eq!(Dataset::load(&o).unwrap().cache_hits(), 3);
    }

    #[test]
    fn the_cache_check_finds_every_changed_byte() {
        let key = "loadgen preprocessed item v1\npath=a.PNG\n";
        let item: Vec<f32> = (0..300).map(|i| i as f32 * 0.5 - 20.0).collect();
        let mut bytes = Vec::new();
        encode_cache(key, &item, &mut bytes);
        let mut out = vec![0.0; item.len()];
        assert_eq!(check_cache(&bytes, key, &mut out), CacheRead::Hit);
        assert_eq!(out, item);
        // One flipped bit anywhere after the magic: header, key, length, values, checksum.
        for at in (8..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert_eq!(
                check_cache(&bad, key, &mut out),
                CacheRead::Damaged("checksum mismatch"),
                "byte {at}"
            );
        }
        let cut = &bytes[..bytes.len() - 4];
        assert_eq!(
            check_cache(cut, key, &mut out),
            CacheRead::Damaged("checksum mismatch")
        );
        for junk in [&b""[..], b"LGCA", b"\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0"] {
            assert_eq!(
                check_cache(junk, key, &mut out),
                CacheRead::Damaged("not a loadgen cache file")
            );
        }
        // Another key's sound file (a collision of the names' hashes) is only a miss.
        let mut other = Vec::new();
        encode_cache("another key", &item, &mut other);
        assert_eq!(check_cache(&other, key, &mut out), CacheRead::Miss);
        let mut old = bytes.clone();
        old[..8].copy_from_slice(b"LGCACHE1");
        assert_eq!(check_cache(&old, key, &mut out), CacheRead::Miss);
    }

    #[test]
    fn the_damage_warning_is_one_line_naming_both_files() {
        let w = damaged_cache_warning(
            Path::new("out/cache/0123.f32"),
            "checksum mismatch",
            Path::new("/data/a.JPEG"),
        );
        assert_eq!(
            w,
            "loadgen: warning: the cached image out/cache/0123.f32 was damaged (checksum mismatch); rebuilt from /data/a.JPEG"
        );
    }

    #[test]
    fn missing_files_cost_no_memory() {
        // 1,000 lines, one real image among 999 missing files, batches of 8 items:
        // the buffer never holds more than a few batches, where the whole list once
        // was allocated (and zero-filled) before any file was looked at.
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        let mut list = String::new();
        for i in 0..1000 {
            if i == 500 {
                list.push_str("c.png 3\n");
            } else {
                list.push_str(&format!("missing{i}.JPEG 1\n"));
            }
        }
        fs::write(dir.path().join("val_map.txt"), list).unwrap();
        let o = opts(dir.path());
        let item_len = 3 * 16 * 16;
        let ds = Dataset::load_batched(&o, Some(8)).unwrap();
        assert_eq!((ds.len(), ds.skipped()), (1, 999));
        assert_eq!(ds.name(0), "c.png");
        assert!(
            ds.data.capacity() <= 2 * 8 * item_len,
            "capacity {} values",
            ds.data.capacity()
        );
        assert_eq!(
            ds.skipped_items()[999 - 1].reason,
            "file not found",
            "missing files are still named"
        );
    }

    #[test]
    fn batches_keep_the_list_order_and_skip_across_their_edges() {
        let dir = tempfile::tempdir().unwrap();
        make_set(dir.path());
        fs::write(
            dir.path().join("val_map.txt"),
            "a.PNG 7\nnope1.JPEG 1\nb.JPEG 65\nnope2.JPEG 2\nnope3.JPEG 2\nc.png 999\n",
        )
        .unwrap();
        let whole = Dataset::load(&opts(dir.path())).unwrap();
        assert_eq!(whole.len(), 3);
        for per_batch in [1, 2, 3, 4, 7] {
            let ds = Dataset::load_batched(&opts(dir.path()), Some(per_batch)).unwrap();
            assert_eq!(ds.data(), whole.data(), "batches of {per_batch}");
            assert_eq!(ds.labels(), Some(&[7, 65, 999][..]));
            assert_eq!(
                (ds.name(0), ds.name(1), ds.name(2)),
                ("a.PNG", "b.JPEG", "c.png")
            );
            let skipped: Vec<_> = ds.skipped_items().iter().map(|s| &s.name[..]).collect();
            assert_eq!(skipped, ["nope1.JPEG", "nope2.JPEG", "nope3.JPEG"]);
        }
    }

    #[test]
    fn growth_doubles_up_to_the_list_and_no_further() {
        assert_eq!(batch_items(768, 2, 64 << 20), (64 << 20) / 3072);
        assert_eq!(batch_items(150_528, 64, 64 << 20), 256);
        assert_eq!(batch_items(usize::MAX, 1, 1), 4);
        let mut v: Vec<f32> = Vec::new();
        grow(&mut v, 10, 1000).unwrap();
        assert_eq!(v.capacity(), 10);
        v.resize(10, 0.0);
        grow(&mut v, 5, 1000).unwrap();
        assert_eq!(v.capacity(), 20);
        v.resize(20, 0.0);
        grow(&mut v, 5, 22).unwrap();
        assert_eq!(v.capacity(), 25, "the limit never starves what is needed");
        v.truncate(2);
        grow(&mut v, 5, 1000).unwrap();
        assert_eq!(v.capacity(), 25, "room enough: nothing reserved");
    }

    #[test]
    fn synthetic_is_seeded() {
        let a = Dataset::synthetic(&[3, 8, 8], Layout::Nchw, 5, 42).unwrap();
        let b = Dataset::synthetic(&[3, 8, 8], Layout::Nchw, 5, 42).unwrap();
        let c = Dataset::synthetic(&[3, 8, 8], Layout::Nchw, 5, 43).unwrap();
        assert!(a.is_synthetic());
        assert_eq!(a.len(), 5);
        assert_eq!(a.item_len(), 192);
        assert_eq!(a.data(), b.data());
        assert_ne!(a.data(), c.data());
        assert_ne!(a.item(0), a.item(1));
        let (lo, hi) = Preprocess::Resnet50.value_range();
        assert!(a.data().iter().all(|&v| v >= lo && v <= hi));
        assert_eq!(a.label(0), None);
        assert_eq!(a.labels(), None);
        assert_eq!(a.name(0), "");
        let m = Dataset::synthetic_in_range(&[2, 2], Layout::Nhwc, 3, 1, (-1.0, 1.0)).unwrap();
        assert!(m.data().iter().all(|&v| (-1.0..=1.0).contains(&v)));
    }

    #[test]
    fn empty_has_items_without_data() {
        let e = Dataset::empty(4);
        assert_eq!(e.len(), 4);
        assert_eq!(e.item_len(), 0);
        assert!(e.item(3).is_empty());
        assert!(e.items(0, 4).is_empty());
        assert!(e.item_shape().is_empty());
    }
}
