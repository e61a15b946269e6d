//! A KServe v2 server over HTTP/1.1 that misbehaves on purpose, one way per
//! [`Mode`]: it is silent, trickles answers that announce 10 GB, dies or falls silent
//! in the middle of a step, fails most requests, answers with shapes or a model name
//! that contradict its metadata, or writes bytes that are not HTTP. Written on raw
//! TCP, so that it can break the protocol where a real HTTP library would not let it.
//!
//! Its one model, `m`, takes FP32 `[-1, 16]` (`INPUT0`) and declares FP32
//! `[-1, 10]` (`OUTPUT0`); behaving, it answers zeros of that shape.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The model's name, input width and declared output width.
pub const MODEL: &str = "m";
pub const INPUT_WIDTH: i64 = 16;
pub const OUTPUT_WIDTH: i64 = 10;
/// What a trickling answer announces, and how fast it sends (bytes per second).
pub const ANNOUNCED: u64 = 10_000_000_000;
pub const TRICKLE_RATE: usize = 4 << 20;

/// How the server misbehaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Answers correctly (the control).
    Good,
    /// Accepts connections and never answers anything.
    Silent,
    /// Readiness answers announce 10 GB and trickle their bytes.
    TrickleReady,
    /// Inference answers announce 10 GB and trickle them at 4 MB/s.
    TrickleAnswer,
    /// Answers for this long after its first inference, then dies: its listener and
    /// every connection close (later connections are refused).
    DiesAfter(Duration),
    /// Answers for this long after its first inference, then holds every later one
    /// without answering.
    SilentAfter(Duration),
    /// Answers for this long after its first inference, then only one in ten (the
    /// others: 500).
    FlakyAfter(Duration),
    /// Answers each inference after 5 ms, and fails (500) one that arrives while
    /// another is in progress: closed loops of one request at a time (the warm-up
    /// and probe with `--concurrency 1`) see a sound server, open-loop steps near
    /// its capacity a failing one.
    FailsWhenBusy,
    /// Answers `[n, 3]` for the declared `[-1, 10]`.
    WrongShape,
    /// Answers `[n, 10]` holding 3 values.
    ShortValues,
    /// Its metadata names another model.
    WrongName,
    /// Answers every request with bytes that are not HTTP.
    Garbage,
}

impl Mode {
    /// `silent`, `trickle-ready`, `trickle-answer`, `dies-after:SECONDS`,
    /// `silent-after:SECONDS`, `flaky-after:SECONDS`, `wrong-shape`, `short-values`,
    /// `wrong-name`, `garbage` or `good`.
    pub fn parse(s: &str) -> Option<Mode> {
        let after = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|t| t.is_finite() && *t >= 0.0 && *t < 1e6)
                .map(Duration::from_secs_f64)
        };
        Some(match s.split_once(':') {
            Some(("dies-after", t)) => Mode::DiesAfter(after(t)?),
            Some(("silent-after", t)) => Mode::SilentAfter(after(t)?),
            Some(("flaky-after", t)) => Mode::FlakyAfter(after(t)?),
            Some(_) => return None,
            None => match s {
                "good" => Mode::Good,
                "silent" => Mode::Silent,
                "trickle-ready" => Mode::TrickleReady,
                "trickle-answer" => Mode::TrickleAnswer,
                "wrong-shape" => Mode::WrongShape,
                "short-values" => Mode::ShortValues,
                "wrong-name" => Mode::WrongName,
                "garbage" => Mode::Garbage,
                "fails-when-busy" => Mode::FailsWhenBusy,
                _ => return None,
            },
        })
    }
}

/// A running hostile server: its address and what it saw. It stops with its runtime.
pub struct HostileServer {
    pub addr: SocketAddr,
    /// Inference requests received.
    pub inferences: Arc<AtomicU64>,
}

struct State {
    mode: Mode,
    inferences: Arc<AtomicU64>,
    /// When the first inference came: the `…After` modes count from it.
    first: OnceLock<Instant>,
    /// Inferences in progress.
    busy: AtomicU64,
    /// Turns true when a [`Mode::DiesAfter`] server dies.
    dead: watch::Sender<bool>,
}

impl HostileServer {
    /// Starts on 127.0.0.1 (a free port) on the current tokio runtime.
    pub async fn start(mode: Mode) -> std::io::Result<HostileServer> {
        Self::start_on(mode, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on `addr` (port 0: a free one) on the current tokio runtime.
    pub async fn start_on(mode: Mode, addr: SocketAddr) -> std::io::Result<HostileServer> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let inferences = Arc::new(AtomicU64::new(0));
        let (dead, _) = watch::channel(false);
        let state = Arc::new(State {
            mode,
            inferences: Arc::clone(&inferences),
            first: OnceLock::new(),
            busy: AtomicU64::new(0),
            dead,
        });
        tokio::spawn(async move {
            let mut died = state.dead.subscribe();
            loop {
                tokio::select! {
                    // Dropping the listener refuses every later connection.
                    _ = died.wait_for(|d| *d) => return,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let st = Arc::clone(&state);
                        tokio::spawn(async move {
                            let mut died = st.dead.subscribe();
                            tokio::select! {
                                _ = died.wait_for(|d| *d) => {}
                                _ = serve(&st, stream) => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(HostileServer { addr, inferences })
    }
}

/// One request's head: method, path and body length.
struct Head {
    method: String,
    path: String,
    length: usize,
    header_length: Option<usize>,
}

/// Reads one request (head and body) off `stream`; `None` when the client is gone.
async fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<(Head, Vec<u8>)> {
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let mut chunk = [0u8; 16 << 10];
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let header = |name: &str| {
        text.split("\r\n").find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().parse::<usize>().ok())
                .flatten()
        })
    };
    let length = header("content-length").unwrap_or(0);
    let header_length = header("inference-header-content-length");
    buf.drain(..end);
    while buf.len() < length {
        let mut chunk = [0u8; 64 << 10];
        let n = stream.read(&mut chunk).await.ok().filter(|&n| n > 0)?;
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = buf.drain(..length).collect();
    Some((
        Head {
            method,
            path,
            length,
            header_length,
        },
        body,
    ))
}

async fn serve(st: &State, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    if st.mode == Mode::Silent {
        // Hold the connection, reading and answering nothing.
        std::future::pending::<()>().await;
    }
    let mut buf = Vec::new();
    while let Some((head, body)) = read_request(&mut stream, &mut buf).await {
        if st.mode == Mode::Garbage {
            let _ = stream
                .write_all(b"\x00\x01\x02 not http at all\r\n\r\n")
                .await;
            return;
        }
        let answer = match (head.method.as_str(), head.path.as_str()) {
            ("GET", "/v2/health/ready" | "/v2/health/live") if st.mode == Mode::TrickleReady => {
                trickle(&mut stream, "application/json", None).await;
                return;
            }
            ("GET", "/v2/health/ready" | "/v2/health/live") => json_answer(200, &json!({})),
            ("GET", "/v2") => json_answer(
                200,
                &json!({"name": "hostile", "version": "0", "extensions": ["binary_tensor_data"]}),
            ),
            ("GET", p) if p == format!("/v2/models/{MODEL}") => {
                json_answer(200, &metadata(st.mode))
            }
            ("GET", p) if p == format!("/v2/models/{MODEL}/ready") => json_answer(200, &json!({})),
            ("POST", p) if p == format!("/v2/models/{MODEL}/infer") => {
                match infer(st, &head, &body, &mut stream).await {
                    Some(a) => a,
                    None => return,
                }
            }
            _ => json_answer(404, &json!({"error": "no such endpoint"})),
        };
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

fn metadata(mode: Mode) -> Value {
    let name = if mode == Mode::WrongName {
        "another"
    } else {
        MODEL
    };
    json!({
        "name": name, "versions": ["1"], "platform": "hostile",
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, INPUT_WIDTH]}],
        "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, OUTPUT_WIDTH]}],
    })
}

fn response(status: u16, content_type: &str, extra: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n{extra}\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn json_answer(status: u16, v: &Value) -> Vec<u8> {
    response(status, "application/json", "", v.to_string().as_bytes())
}

/// Announces [`ANNOUNCED`] bytes and sends zeros at [`TRICKLE_RATE`] until the
/// client goes away.
async fn trickle(stream: &mut TcpStream, content_type: &str, header_length: Option<usize>) {
    let extra = header_length
        .map(|n| format!("inference-header-content-length: {n}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {ANNOUNCED}\r\n{extra}\r\n"
    );
    if stream.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let chunk = vec![b' '; TRICKLE_RATE / 64];
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / 64));
    loop {
        tick.tick().await;
        if stream.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

/// Answers one inference as the mode says; `None` when the connection must end.
async fn infer(st: &State, head: &Head, body: &[u8], stream: &mut TcpStream) -> Option<Vec<u8>> {
    let served = st.inferences.fetch_add(1, Ordering::SeqCst);
    let since = st.first.get_or_init(Instant::now).elapsed();
    let json_len = head.header_length.unwrap_or(head.length).min(body.len());
    let request: Value = serde_json::from_slice(&body[..json_len]).unwrap_or(Value::Null);
    let n = request["inputs"][0]["shape"][0]
        .as_i64()
        .unwrap_or(1)
        .max(1);
    match st.mode {
        Mode::DiesAfter(t) if since >= t => {
            st.dead.send_replace(true);
            return None;
        }
        Mode::SilentAfter(t) if since >= t => {
            std::future::pending::<()>().await;
        }
        Mode::FlakyAfter(t) if since >= t && !served.is_multiple_of(10) => {
            return Some(json_answer(500, &json!({"error": "failing on purpose"})));
        }
        Mode::TrickleAnswer => {
            trickle(stream, "application/octet-stream", Some(64)).await;
            return None;
        }
        Mode::FailsWhenBusy => {
            let others = st.busy.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
            st.busy.fetch_sub(1, Ordering::SeqCst);
            if others > 0 {
                return Some(json_answer(
                    500,
                    &json!({"error": "busy, failing on purpose"}),
                ));
            }
        }
        _ => {}
    }
    let (shape, values) = match st.mode {
        Mode::WrongShape => (vec![n, 3], (n * 3) as usize),
        Mode::ShortValues => (vec![n, OUTPUT_WIDTH], 3),
        _ => (vec![n, OUTPUT_WIDTH], (n * OUTPUT_WIDTH) as usize),
    };
    let header = json!({"model_name": MODEL, "outputs": [{
        "name": "OUTPUT0", "datatype": "FP32", "shape": shape,
        "parameters": {"binary_data_size": values * 4}}]})
    .to_string();
    let mut data = header.clone().into_bytes();
    data.resize(header.len() + values * 4, 0);
    Some(response(
        200,
        "application/octet-stream",
        &format!("inference-header-content-length: {}\r\n", header.len()),
        &data,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_from_their_names() {
        assert_eq!(Mode::parse("garbage"), Some(Mode::Garbage));
        assert_eq!(
            Mode::parse("dies-after:2.5"),
            Some(Mode::DiesAfter(Duration::from_millis(2500)))
        );
        for bad in ["", "dies-after", "dies-after:-1", "silent-after:x", "loud"] {
            assert_eq!(Mode::parse(bad), None, "{bad}");
        }
    }
}
