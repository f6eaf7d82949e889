//! Codex CLI itself through the Responses door: `codex exec` runs in a private network
//! namespace (`unshare --net`, loopback only, so it can never reach the internet), and its one
//! way out is a bridge to the proxy in front of a mock chat upstream. The mock answers the first
//! turn with an `exec_command` call that echoes a marker, checks that the next request carries
//! the marker in a `tool` message, and answers with text that Codex must print.
//!
//! `.ci/run` installs the pinned Codex into `target/codex` and names it in `CODEX_BIN`. Without
//! Codex, or without user namespaces, the test says SKIPPED and why.

use crate::common;

use std::io::Write;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{config, sse_data, sse_delta, MockUpstream, Proxy, Received, Reply};
use serde_json::json;

const MARKER: &str = "GLM-PROXY-MARKER-7f3a";
const ANSWER: &str = "The command printed the marker";
/// Where Codex finds the proxy, inside its namespace.
const INNER_PORT: u16 = 18080;

fn skipped(why: &str) {
    let _ = writeln!(std::io::stderr(), "\ncodex: SKIPPED, {why}\n");
}

/// The Codex launcher: `CODEX_BIN`, or the one `.ci/run` installs under the target folder.
fn codex() -> Option<PathBuf> {
    let installed = Path::new(env!("CARGO_TARGET_TMPDIR")).join("../codex/node_modules/.bin/codex");
    let codex = std::env::var_os("CODEX_BIN").map_or(installed, PathBuf::from);
    codex.exists().then_some(codex)
}

/// The first turn: run `echo MARKER`; once its output is back, say so (or say it is missing).
fn glm(request: &Received) -> Reply {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    let finish =
        |reason: &str| sse_data(json!({"id": "c", "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}));
    let usage = sse_data(json!({"id": "c", "choices": [], "usage": {"prompt_tokens": 900, "completion_tokens": 20}}));
    let mut chunks = vec![sse_delta(json!({"role": "assistant", "reasoning_content": "I will run the command."}))];
    let output = messages.iter().find(|m| m["role"] == "tool").and_then(|m| m["content"].as_str());
    match output {
        None => {
            let arguments = json!({"cmd": format!("echo {MARKER}")}).to_string();
            chunks.push(sse_delta(json!({"tool_calls": [{"index": 0, "id": "call_codex_1", "type": "function",
                "function": {"name": "exec_command", "arguments": ""}}]})));
            chunks.push(sse_delta(json!({"tool_calls": [{"index": 0, "function": {"arguments": arguments}}]})));
            chunks.push(finish("tool_calls"));
        }
        Some(output) => {
            let text = if output.contains(MARKER) { ANSWER } else { "The tool output did not come back" };
            chunks.push(sse_delta(json!({"content": format!("{text}.")})));
            chunks.push(finish("stop"));
        }
    }
    chunks.extend([usage, "data: [DONE]\n\n".to_owned()]);
    Reply::Sse { chunks, delay: Duration::from_millis(2), gate: None }
}

/// Serves the Unix socket the namespace's bridge connects to, each connection piped to `proxy`.
fn bridge(socket: &Path, proxy: String) {
    use std::net::{Shutdown, TcpStream};
    let listener = UnixListener::bind(socket).unwrap();
    std::thread::spawn(move || {
        for inner in listener.incoming().map_while(Result::ok) {
            let Ok(outer) = TcpStream::connect(&proxy) else { continue };
            let (mut from_codex, mut to_proxy) = (inner.try_clone().unwrap(), outer.try_clone().unwrap());
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_codex, &mut to_proxy);
                let _ = to_proxy.shutdown(Shutdown::Write);
            });
            let (mut from_proxy, mut to_codex) = (outer, inner);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_proxy, &mut to_codex);
                let _ = to_codex.shutdown(Shutdown::Write);
            });
        }
    });
}

#[actix_web::test]
async fn codex_exec_runs_a_command_through_the_proxy_and_answers_from_its_output() {
    let Some(codex) = codex() else {
        return skipped(
            "Codex CLI is not installed: .ci/run installs it (npm install @openai/codex), or set CODEX_BIN",
        );
    };
    if !Command::new("unshare").args(["--net", "--map-root-user", "true"]).status().is_ok_and(|s| s.success()) {
        return skipped("`unshare --net --map-root-user` is not allowed here, and Codex runs only without a network");
    }
    let cerebras = MockUpstream::start(glm);
    let proxy = Proxy::start(config(&cerebras.url, &[("MODELS", r#"{"glm": {"cerebras": "zai-glm-4.7"}}"#)]));
    let dir = tempfile::tempdir().unwrap();
    let (home, work, socket) = (dir.path().join("codex-home"), dir.path().join("work"), dir.path().join("proxy.sock"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        home.join("config.toml"),
        format!(
            "model = \"glm\"\nmodel_provider = \"glm-proxy\"\n\n[model_providers.glm-proxy]\nname = \"glm-proxy\"\n\
             base_url = \"http://127.0.0.1:{INNER_PORT}/v1\"\nenv_key = \"GLM_PROXY_KEY\"\nwire_api = \"responses\"\n"
        ),
    )
    .unwrap();
    bridge(&socket, proxy.url.trim_start_matches("http://").to_owned());

    let mut run = Command::new("timeout");
    run.args(["120", "unshare", "--net", "--map-root-user", "python3"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/agents/loopback_bridge.py"))
        .arg(&socket)
        .arg(INNER_PORT.to_string())
        .arg("--")
        .arg(&codex)
        .args(["exec", "--skip-git-repo-check", "--dangerously-bypass-approvals-and-sandbox", "-C"])
        .arg(&work)
        .arg("Run the echo command, then tell me what it printed.")
        .env("CODEX_HOME", &home)
        .env("HOME", dir.path())
        .env("GLM_PROXY_KEY", "sk-codex-client");
    // Codex blocks: it runs on a thread while this test's system serves the proxy.
    let running = std::thread::spawn(move || run.output().expect("run codex"));
    while !running.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(50)).await;
    }
    let output = running.join().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "codex failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(ANSWER), "Codex printed the answer to the tool's output:\n{stdout}\n{stderr}");

    let received = cerebras.received();
    assert_eq!(received.len(), 2, "the call, then the answer");
    let second = received[1].json();
    let messages = second["messages"].as_array().unwrap();
    let call = messages.iter().find(|m| m["role"] == "assistant" && m["tool_calls"].is_array()).unwrap();
    assert_eq!(call["tool_calls"][0]["id"], "call_codex_1");
    let tool = messages.iter().find(|m| m["role"] == "tool").unwrap();
    assert_eq!(tool["tool_call_id"], "call_codex_1");
    assert!(tool["content"].as_str().unwrap().contains(MARKER), "{tool}");
    assert!(received.iter().all(|r| r.json()["model"] == "zai-glm-4.7" && r.key() == "sk-1"));
}
