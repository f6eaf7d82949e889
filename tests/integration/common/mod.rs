//! Test harness: a scripted mock upstream (an actix-web server inside the test) that records
//! what it receives, and the proxy started on a random port in front of it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use serde_json::{json, Value};
use tokio::sync::Notify;

use glm_proxy::config::Config;

/// One request as the mock upstream saw it.
#[derive(Debug, Clone)]
pub struct Received {
    pub method: String,
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub body: Bytes,
}

impl Received {
    /// The provider key the proxy chose, from `Authorization: Bearer ...`.
    pub fn key(&self) -> &str {
        self.headers.get("authorization").and_then(|v| v.strip_prefix("Bearer ")).unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("mock received JSON")
    }
}

/// How the mock answers one request.
pub enum Reply {
    Json {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
    /// An SSE stream: `chunks` with `delay` before each one after the first. With `gate`, the
    /// stream waits for the test's signal after the first chunk.
    Sse {
        chunks: Vec<String>,
        delay: Duration,
        gate: Option<Arc<Notify>>,
    },
    /// An SSE stream that sends its chunks, then breaks the connection.
    SseThenBreak {
        chunks: Vec<String>,
    },
    /// These exact bytes, as they are (a compressed body, say), never compressed again.
    Raw {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
    },
    /// Never answers; counted in `hangs_dropped` when the proxy gives up on it.
    Hang,
    /// `reply`, after `delay` without a byte.
    Late {
        delay: Duration,
        reply: Box<Reply>,
    },
}

impl Reply {
    pub fn ok(body: serde_json::Value) -> Self {
        Self::Json { status: 200, headers: vec![], body: body.to_string() }
    }

    pub fn status(status: u16, body: serde_json::Value) -> Self {
        Self::Json { status, headers: vec![], body: body.to_string() }
    }

    pub fn rate_limited(retry_after: Option<u64>) -> Self {
        let headers = retry_after.map(|s| vec![("retry-after", s.to_string())]).unwrap_or_default();
        let body = serde_json::json!({"error": {"message": "rate limited", "code": "too_many_requests"}});
        Self::Json { status: 429, headers, body: body.to_string() }
    }

    pub fn sse(n: usize, delay: Duration) -> Self {
        Self::Sse { chunks: sse_chunks(n), delay, gate: None }
    }
}

/// `n` numbered SSE events and the final `[DONE]`.
pub fn sse_chunks(n: usize) -> Vec<String> {
    let mut chunks: Vec<String> =
        (0..n).map(|i| format!("data: {{\"choices\":[{{\"delta\":{{\"content\":\"{i}\"}}}}]}}\n\n")).collect();
    chunks.push("data: [DONE]\n\n".to_owned());
    chunks
}

/// One SSE event carrying `chunk`.
pub fn sse_data(chunk: Value) -> String {
    format!("data: {chunk}\n\n")
}

/// A chat-completion chunk with this `delta`, as an SSE event.
pub fn sse_delta(delta: Value) -> String {
    let chunk = serde_json::json!({"id": "c", "object": "chat.completion.chunk",
                                   "choices": [{"index": 0, "delta": delta, "finish_reason": null}]});
    sse_data(chunk)
}

pub fn completion(text: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "llama-3.3-70b",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]
    })
}

/// A scripted upstream. `script` decides each answer from the request.
pub struct MockUpstream {
    /// Base URL, ending in `/v1` like the real providers'.
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    /// SSE streams dropped before their last chunk was sent (the client went away).
    pub streams_cut: Arc<AtomicUsize>,
    pub streams_finished: Arc<AtomicUsize>,
    /// `Hang` answers the proxy gave up on (it closed the connection).
    pub hangs_dropped: Arc<AtomicUsize>,
}

impl MockUpstream {
    pub fn start(script: impl Fn(&Received) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_with(script, None)
    }

    /// Starts the mock over HTTPS when `tls` is given; its URL then names `localhost`.
    pub fn start_with(
        script: impl Fn(&Received) -> Reply + Send + Sync + 'static,
        tls: Option<rustls::ServerConfig>,
    ) -> Self {
        Self::start_at(0, script, tls)
    }

    /// Starts the mock on `port` (0 for any free one).
    pub fn start_at(
        port: u16,
        script: impl Fn(&Received) -> Reply + Send + Sync + 'static,
        tls: Option<rustls::ServerConfig>,
    ) -> Self {
        let script: Arc<dyn Script> = Arc::new(script);
        let received = Arc::new(Mutex::new(Vec::new()));
        let streams_cut = Arc::new(AtomicUsize::new(0));
        let streams_finished = Arc::new(AtomicUsize::new(0));
        let hangs_dropped = Arc::new(AtomicUsize::new(0));
        let state = web::Data::new(MockState {
            script,
            received: received.clone(),
            streams_cut: streams_cut.clone(),
            streams_finished: streams_finished.clone(),
            hangs_dropped: hangs_dropped.clone(),
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .app_data(web::PayloadConfig::new(256 << 20))
                .default_service(web::to(answer))
        })
        .workers(2)
        // A proxy that gives up on a request closes the connection: drop the handler then.
        .h1_allow_half_closed(false)
        .disable_signals();
        let address = ("127.0.0.1", port);
        let (server, scheme) = match tls {
            None => (server.bind(address), "http"),
            Some(tls) => (server.bind_rustls_0_23(address, tls), "https"),
        };
        let server = server.expect("bind mock upstream");
        let port = server.addrs()[0].port();
        actix_rt::spawn(server.run());
        let host = if scheme == "https" { "localhost" } else { "127.0.0.1" };
        let url = format!("{scheme}://{host}:{port}/v1");
        Self { url, received, streams_cut, streams_finished, hangs_dropped }
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The provider keys used, in the order requests arrived.
    pub fn keys_used(&self) -> Vec<String> {
        self.received().iter().map(|r| r.key().to_owned()).collect()
    }
}

struct MockState {
    script: Arc<dyn Script>,
    received: Arc<Mutex<Vec<Received>>>,
    streams_cut: Arc<AtomicUsize>,
    streams_finished: Arc<AtomicUsize>,
    hangs_dropped: Arc<AtomicUsize>,
}

/// Counts a hanging answer when the proxy drops it.
struct HangGuard(Arc<AtomicUsize>);

impl Drop for HangGuard {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `body` gzip-compressed, as a server does for a client that accepts it.
pub fn gzip(body: &[u8]) -> Bytes {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).unwrap();
    Bytes::from(encoder.finish().unwrap())
}

/// Counts a stream as cut if it is dropped before it finished.
struct StreamGuard {
    finished: bool,
    cut: Arc<AtomicUsize>,
    done: Arc<AtomicUsize>,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished { &self.done } else { &self.cut };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

async fn answer(request: HttpRequest, body: Bytes, state: web::Data<MockState>) -> HttpResponse {
    let received = Received {
        method: request.method().to_string(),
        path_and_query: request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
        headers: request
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body,
    };
    let reply = (state.script)(&received);
    // Like real servers, the mock compresses JSON for a client that accepts gzip.
    let accepts_gzip = received.headers.get("accept-encoding").is_some_and(|v| v.contains("gzip"));
    state.received.lock().unwrap().push(received);
    let reply = match reply {
        Reply::Late { delay, reply } => {
            actix_rt::time::sleep(delay).await;
            *reply
        }
        reply => reply,
    };
    match reply {
        Reply::Json { status, headers, body } => {
            let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response.insert_header((name, value));
            }
            response.content_type("application/json");
            if accepts_gzip {
                response.insert_header(("content-encoding", "gzip")).body(gzip(body.as_bytes()))
            } else {
                response.body(body)
            }
        }
        Reply::Raw { status, headers, body } => {
            let mut response = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
            for (name, value) in headers {
                response.insert_header((name, value));
            }
            response.body(body)
        }
        Reply::Sse { chunks, delay, gate } => {
            let guard =
                StreamGuard { finished: false, cut: state.streams_cut.clone(), done: state.streams_finished.clone() };
            let total = chunks.len();
            let body = stream::unfold((chunks.into_iter().enumerate(), guard), move |(mut chunks, mut guard)| {
                let gate = gate.clone();
                async move {
                    let (i, chunk) = chunks.next()?;
                    if i > 0 {
                        actix_rt::time::sleep(delay).await;
                    }
                    if i == 1 {
                        if let Some(gate) = gate {
                            gate.notified().await;
                        }
                    }
                    guard.finished = i + 1 == total;
                    Some((Ok::<_, actix_web::Error>(Bytes::from(chunk)), (chunks, guard)))
                }
            });
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        Reply::SseThenBreak { chunks } => {
            let body = stream::iter(chunks.into_iter().map(|c| Ok(Bytes::from(c)))).chain(stream::once(async {
                // Pause so the head and chunks are flushed before the connection breaks.
                actix_rt::time::sleep(Duration::from_millis(50)).await;
                Err(actix_web::error::ErrorInternalServerError("upstream broke"))
            }));
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        Reply::Late { .. } => unreachable!("a late reply is unwrapped above"),
        Reply::Hang => {
            let _guard = HangGuard(state.hangs_dropped.clone());
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

/// A proxy configuration from `vars`, on a random local port, in front of `upstream_url`.
pub fn config(upstream_url: &str, vars: &[(&str, &str)]) -> Config {
    let mut all: HashMap<String, String> = HashMap::from([
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), "0".into()),
        ("WORKERS".into(), "2".into()),
        ("LOG_REQUESTS".into(), "false".into()),
        // Mocks count what they get: a test that wants the `GET /models` reads asks for them.
        ("MODEL_CHECK_INTERVAL".into(), "0".into()),
        ("CEREBRAS_BASE_URL".into(), upstream_url.into()),
        ("CEREBRAS_API_KEYS".into(), r#"{"key1":"sk-1","key2":"sk-2"}"#.into()),
    ]);
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Config::from_lookup(|name| all.get(name).cloned()).expect("valid test config")
}

/// The proxy, running in this test's actix system.
pub struct Proxy {
    pub url: String,
}

impl Proxy {
    pub fn start(config: Config) -> Self {
        let running = glm_proxy::server::start(config).expect("proxy starts");
        let url = format!("http://{}", running.addrs[0]);
        actix_rt::spawn(running.serve());
        Self { url }
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn status(&self) -> serde_json::Value {
        client().get(self.at("/_status")).send().await.unwrap().json().await.unwrap()
    }

    /// Polls `/_status` every 10 ms for up to 5 s until the field at `pointer` (a JSON pointer)
    /// holds `expected`; whether it did.
    pub async fn status_reaches(&self, pointer: &str, expected: serde_json::Value) -> bool {
        for _ in 0..500 {
            if self.status().await.pointer(pointer) == Some(&expected) {
                return true;
            }
            actix_rt::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }
}

/// The value of the series `series` (a name, with its labels if it has any) in the `/metrics`
/// of the proxy at `base_url`; 0 if it has none.
pub async fn metric(base_url: &str, series: &str) -> f64 {
    let text = client().get(format!("{base_url}/metrics")).send().await.unwrap().body().await.unwrap();
    let text = String::from_utf8(text.to_vec()).unwrap();
    text.lines().find_map(|line| line.strip_prefix(series)?.trim().parse().ok()).unwrap_or(0.0)
}

/// A test client with no connection limit and generous timeouts.
pub fn client() -> awc::Client {
    awc::Client::builder().connector(awc::Connector::new().limit(0)).timeout(Duration::from_secs(30)).finish()
}

pub fn chat_body(stream: bool) -> serde_json::Value {
    serde_json::json!({
        "model": "llama-3.3-70b",
        "stream": stream,
        "messages": [{"role": "user", "content": "Hello!"}]
    })
}

/// Polls `condition` every 10 ms for up to 10 s: for effects that happen just after a response.
pub async fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    for _ in 0..1000 {
        if condition() {
            return true;
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// Polls the async `check` every 10 ms for up to 10 s; how long it took to hold.
pub async fn until(check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    until_within(Duration::from_secs(10), check).await
}

/// [`until`], for up to `limit`.
pub async fn until_within(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        actix_rt::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// A local port that refuses connections: bound but never listening, so no other test can take
/// it while this is held. Drop it to free the port.
pub struct RefusingPort {
    pub port: u16,
    _socket: tokio::net::TcpSocket,
}

impl RefusingPort {
    pub fn new() -> Self {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        Self { port: socket.local_addr().unwrap().port(), _socket: socket }
    }

    /// A provider base URL at this port.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }
}

/// Sends `request` as raw bytes on a new connection and reads until the server closes it,
/// off the async threads: for what an HTTP client library would not send.
pub async fn raw_exchange(address: &str, request: Vec<u8>) -> String {
    use std::io::{Read, Write};
    let address = address.trim_start_matches("http://").to_owned();
    actix_web::rt::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        stream.write_all(&request).unwrap();
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .unwrap()
}

/// POSTs `body` to `path` as an HTTP/1.0 client, which reads an answer until the close:
/// the answer's head and body.
pub async fn http_1_0_post(address: &str, path: &str, body: &str) -> (String, String) {
    let request = format!(
        "POST {path} HTTP/1.0\r\nHost: proxy\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_exchange(address, request.into_bytes()).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// A new key database in `dir` holding one client key named `name`: its path and the key.
pub fn client_key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let db = dir.join("keys.db");
    let output = command(dir, &[]).args(["keys", "--db"]).arg(&db).args(["add", name, "--quiet"]).output().unwrap();
    assert!(output.status.success(), "keys add: {}", String::from_utf8_lossy(&output.stderr));
    (db, String::from_utf8(output.stdout).unwrap().trim().to_owned())
}

/// The Cerebras keys of a proxy started as a process.
pub const PROCESS_KEYS: &str = r#"{"tls-key":"sk-tls-secret-value"}"#;

/// The `glm-proxy` binary with only `vars` in its environment.
pub fn command(dir: &std::path::Path, vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_glm-proxy"));
    // An empty working directory, so no developer's .env is read.
    command.current_dir(dir).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    // As `config` does: no `GET /models` reads unless the test asks.
    command.env("MODEL_CHECK_INTERVAL", "0");
    command.envs(vars.iter().copied());
    command
}

/// A running `glm-proxy` process and the lines of its log.
pub struct ProxyProcess {
    pub child: Child,
    pub url: String,
    log: mpsc::Receiver<String>,
    early: std::cell::RefCell<Vec<String>>,
}

impl ProxyProcess {
    pub fn start(dir: &std::path::Path, vars: &[(&str, &str)]) -> Self {
        let defaults = [("HOST", "127.0.0.1"), ("PORT", "0"), ("CEREBRAS_API_KEYS", PROCESS_KEYS)];
        Self::spawn(command(dir, &defaults).envs(vars.iter().copied()))
    }

    /// Starts `command` and waits for its listening line.
    pub fn spawn(command: &mut Command) -> Self {
        let mut child = command.stderr(Stdio::piped()).spawn().unwrap();
        let (sender, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(line);
            }
        });
        let mut seen = Vec::new();
        let url = loop {
            let line =
                log.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no listening line in {seen:?}"));
            if let Some(rest) = line.split("event=listening address=").nth(1) {
                break format!("http://{}", rest.split_whitespace().next().unwrap());
            }
            seen.push(line);
        };
        Self { child, url, log, early: std::cell::RefCell::new(seen) }
    }

    /// The log lines not read yet, those before the listening line included.
    pub fn log_lines(&self) -> Vec<String> {
        let mut lines = std::mem::take(&mut *self.early.borrow_mut());
        lines.extend(self.log.try_iter());
        lines
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ProxyProcess {
    /// Sends SIGTERM and waits for the exit, off the async threads.
    pub async fn terminate(self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        self.terminate_wait().await
    }

    /// Waits for the process to exit, off the async threads.
    pub async fn terminate_wait(mut self) -> std::process::ExitStatus {
        actix_web::rt::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            drop(self);
            status
        })
        .await
        .unwrap()
    }
}

/// Three mock providers and a proxy in front of them, with `vars` added to the config.
pub struct Providers {
    pub cerebras: MockUpstream,
    pub synthetic: MockUpstream,
    pub zai: MockUpstream,
    pub proxy: Proxy,
}

/// A mock's script, as `MockUpstream::start` takes it.
pub trait Script: Fn(&Received) -> Reply + Send + Sync + 'static {}
impl<F: Fn(&Received) -> Reply + Send + Sync + 'static> Script for F {}

pub fn respond_as(provider: &'static str) -> impl Fn(&Received) -> Reply {
    move |_| Reply::ok(completion(provider))
}

impl Providers {
    pub fn start(cerebras: impl Script, synthetic: impl Script, zai: impl Script, vars: &[(&str, &str)]) -> Self {
        let cerebras = MockUpstream::start(cerebras);
        let synthetic = MockUpstream::start(synthetic);
        let zai = MockUpstream::start(zai);
        let mut all = vec![
            ("SYNTHETIC_API_KEY", "sk-synthetic"),
            ("SYNTHETIC_BASE_URL", synthetic.url.as_str()),
            ("ZAI_API_KEY", "sk-zai"),
            ("ZAI_BASE_URL", zai.url.as_str()),
            ("TOKEN_THRESHOLD", "100"),
        ];
        all.extend_from_slice(vars);
        let proxy = Proxy::start(config(&cerebras.url, &all));
        Self { cerebras, synthetic, zai, proxy }
    }

    pub async fn chat(&self, body: &Value) -> (u16, awc::http::header::HeaderMap, Value) {
        let mut response = client().post(self.proxy.at("/v1/chat/completions")).send_json(body).await.unwrap();
        let body = response.json::<Value>().limit(1 << 20).await.unwrap();
        (response.status().as_u16(), response.headers().clone(), body)
    }

    /// How many requests each provider got: (cerebras, synthetic, zai).
    pub fn hits(&self) -> (usize, usize, usize) {
        (self.cerebras.received().len(), self.synthetic.received().len(), self.zai.received().len())
    }
}

/// A TCP relay to `target` that a test can cut (every connection closed, new ones closed at
/// once) and restore: a service going away and coming back, without stopping the service.
pub struct TcpRelay {
    address: std::net::SocketAddr,
    open: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl TcpRelay {
    pub fn start(target: &str) -> Self {
        use std::net::{TcpListener, TcpStream};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let connections: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (accepting, held, target) = (open.clone(), connections.clone(), target.to_owned());
        std::thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                if !accepting.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else { continue };
                let pairs = [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)];
                for (mut from, mut to) in pairs {
                    held.lock().unwrap().push(from.try_clone().unwrap());
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Self { address, open, connections }
    }

    pub fn address(&self) -> std::net::SocketAddr {
        self.address
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for connection in self.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(std::net::Shutdown::Both);
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

/// An OpenAI completion with reasoning, text, and usage.
pub fn reasoned_completion(text: &str) -> Value {
    json!({
        "id": "chatcmpl-1", "object": "chat.completion", "model": "zai-glm-4.7",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text, "reasoning_content": "Thinking it over."}}],
        "usage": {"prompt_tokens": 21, "completion_tokens": 5}
    })
}

/// A recorded-style stream: reasoning, text, a tool call whose arguments come in pieces, then
/// the finish reason and the usage in a last chunk of its own.
pub fn tool_call_stream() -> Vec<String> {
    vec![
        sse_delta(json!({"role": "assistant", "content": ""})),
        sse_delta(json!({"reasoning_content": "The user wants the weather."})),
        sse_delta(json!({"content": "Let me look."})),
        sse_delta(
            json!({"tool_calls": [{"index": 0, "id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": ""}}]}),
        ),
        sse_delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]})),
        sse_delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]})),
        sse_data(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})),
        sse_data(json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 40, "completion_tokens": 12}})),
        "data: [DONE]\n\n".to_owned(),
    ]
}
