//! The official Python SDKs against the proxy and a mock OpenAI chat upstream: Anthropic's
//! (`tests/sdk/anthropic_client.py`) through the Messages door, OpenAI's Responses API
//! (`tests/sdk/openai_responses_client.py`) through the Responses door. Their virtual
//! environment is made by `tests/sdk/setup-venv`, which `.ci/run` calls first; a plain
//! `cargo test` makes it on first use (python3 and PyPI).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use common::{config, reasoned_completion, tool_call_stream, MockUpstream, Proxy, Received, Reply};

pub fn sdk_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sdk")
}

/// The venv's python: `SDK_VENV`, or one under the target folder; made once, whichever test
/// comes first.
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let venv = std::env::var_os("SDK_VENV")
                .map_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk"), PathBuf::from);
            let made =
                Command::new(sdk_dir().join("setup-venv")).arg(&venv).status().expect("run tests/sdk/setup-venv");
            assert!(
                made.success(),
                "tests/sdk/setup-venv could not make the SDKs' environment (python3 -m venv, PyPI)"
            );
            venv.join("bin/python")
        })
        .clone()
}

/// What a GLM provider answers: a tool call, streamed with reasoning, to the first question; a
/// plain answer once the tool's result is in; a greeting otherwise.
fn glm(request: &Received) -> Reply {
    let body = request.json();
    let messages = body["messages"].as_array().cloned().unwrap_or_default();
    if messages.iter().any(|m| m["role"] == "tool") {
        let answered = messages.iter().any(|m| m["role"] == "tool" && m["tool_call_id"] == "call_w1");
        let text = if answered { "It is sunny in Paris." } else { "the tool result lost its call id" };
        return Reply::ok(reasoned_completion(text));
    }
    if body["stream"] == true {
        return Reply::Sse { chunks: tool_call_stream(), delay: Duration::from_millis(5), gate: None };
    }
    Reply::ok(reasoned_completion("Hello from GLM."))
}

/// Runs an SDK script against a proxy in front of `glm` with a catalogue (`alias` → `glm`),
/// and returns the mock upstream for what it received.
async fn run(script: &str, alias: &str, marker: &str) -> MockUpstream {
    let python = python();
    let cerebras = MockUpstream::start(glm);
    let catalogue = [("MODELS", r#"{"glm": {"cerebras": "zai-glm-4.7"}}"#), ("MODEL_ALIASES", alias)];
    let proxy = Proxy::start(config(&cerebras.url, &catalogue));
    let script = sdk_dir().join(script);
    // The SDK blocks: it runs on a thread while this test's system serves the proxy.
    let url = proxy.url.clone();
    let run = std::thread::spawn(move || Command::new(python).arg(script).arg(url).output().expect("run the SDK"));
    while !run.is_finished() {
        actix_rt::time::sleep(Duration::from_millis(20)).await;
    }
    let output = run.join().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "the SDK's checks failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(marker), "{stdout}");
    assert!(cerebras.received().iter().all(|r| r.json()["model"] == "zai-glm-4.7"));
    cerebras
}

#[actix_web::test]
async fn the_official_anthropic_sdk_sends_a_message_streams_one_and_round_trips_a_tool() {
    let cerebras = run("anthropic_client.py", r#"{"claude-*": "glm"}"#, "anthropic sdk: ok").await;
    assert_eq!(cerebras.received().len(), 3, "plain, streamed, tool result; the unknown model never went upstream");
}

#[actix_web::test]
async fn the_official_openai_sdk_creates_responses_streams_them_and_round_trips_a_function() {
    let cerebras = run("openai_responses_client.py", "{}", "openai sdk: ok").await;
    assert_eq!(cerebras.received().len(), 4, "plain, two streams, the output; the refused two never went upstream");
    let answered = cerebras.received()[3].json();
    let tool = answered["messages"].as_array().unwrap().iter().find(|m| m["role"] == "tool").cloned();
    assert_eq!(tool, Some(serde_json::json!({"role": "tool", "tool_call_id": "call_w1", "content": "Sunny, 21 C"})));
}
