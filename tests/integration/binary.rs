//! The `glm-proxy` binary as an operator runs it: configuration errors, TLS to an HTTPS
//! upstream trusted through `SSL_CERT_FILE`, and a clean stop on SIGTERM.

use crate::common;

use common::{chat_body, client, command, completion, MockUpstream, ProxyProcess, Reply};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::Value;

#[test]
fn bad_configuration_stops_with_one_clear_line_and_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = ("CEREBRAS_API_KEYS", common::PROCESS_KEYS);
    let cases: [(&[(&str, &str)], &str); 6] = [
        (&[], "CEREBRAS_API_KEYS is required"),
        (&[("CEREBRAS_API_KEYS", "sk-bare-secret-key")], "CEREBRAS_API_KEYS is not a JSON object of name → key"),
        (
            &[("CEREBRAS_API_KEYS", common::PROCESS_KEYS), ("UPSTREAM_TIMEOUT", "soon")],
            "UPSTREAM_TIMEOUT is not a valid number",
        ),
        (
            &[keys, ("SYNTHETIC_API_KEYS", r#"{"pack1":"sk-secret-1"}"#), ("SYNTHETIC_API_KEY", "sk-secret-2")],
            "SYNTHETIC_API_KEYS and SYNTHETIC_API_KEY are both set",
        ),
        (
            &[keys, ("ZAI_API_KEYS", r#"{"z1":"sk-secret-1"}"#), ("ZAI_API_KEY", "sk-secret-2")],
            "ZAI_API_KEYS and ZAI_API_KEY are both set",
        ),
        (&[keys, ("PROVIDERS_FILE", "/nonexistent/providers.json")], "PROVIDERS_FILE cannot be read"),
    ];
    for (vars, expected) in cases {
        let output = command(dir.path(), vars).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{expected}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(!stderr.contains("secret"), "{stderr}");
        assert!(output.stdout.is_empty());
    }
}

/// A self-signed CA and a `localhost` certificate it signed, as a mock upstream serves it.
fn tls_material(dir: &std::path::Path) -> (std::path::PathBuf, rustls::ServerConfig) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();

    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();

    let ca_file = dir.join("mock-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let server =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(leaf.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
            )
            .unwrap();
    (ca_file, server)
}

#[actix_web::test]
async fn an_https_upstream_is_trusted_through_ssl_cert_file_and_only_then() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_file, server_tls) = tls_material(dir.path());
    let upstream = MockUpstream::start_with(|_| Reply::ok(completion("over TLS")), Some(server_tls));
    assert!(upstream.url.starts_with("https://localhost:"));
    let ca_file = ca_file.to_str().unwrap();

    let trusted = ProxyProcess::start(dir.path(), &[("CEREBRAS_BASE_URL", &upstream.url), ("SSL_CERT_FILE", ca_file)]);
    let mut response = client()
        .post(format!("{}/v1/chat/completions", trusted.url))
        .send_body(chat_body(false).to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("over TLS"));
    assert_eq!(upstream.keys_used(), ["sk-tls-secret-value"]);
    let log = trusted.log_lines().join("\n");
    assert!(!log.contains("sk-tls-secret-value"), "no key in the log: {log}");

    // Without the CA, the handshake must fail: the certificate is not trusted.
    let untrusted = ProxyProcess::start(
        dir.path(),
        &[("CEREBRAS_BASE_URL", &upstream.url), ("CEREBRAS_COOLDOWN", "0.01"), ("MAX_KEY_WAIT", "5")],
    );
    let mut response = client()
        .post(format!("{}/v1/chat/completions", untrusted.url))
        .send_body(chat_body(false).to_string())
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("cannot connect"), "{body}");
    assert_eq!(upstream.received().len(), 1, "no request got through without trust");
}

#[actix_web::test]
async fn sigterm_stops_the_proxy_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("ok")));
    let running = ProxyProcess::start(dir.path(), &[("CEREBRAS_BASE_URL", &upstream.url)]);
    let health = client().get(format!("{}/health", running.url)).send().await.unwrap();
    assert_eq!(health.status(), 200);

    let status = running.terminate().await;
    assert!(status.success(), "{status:?}");
}

#[actix_web::test]
async fn sighup_has_rejected_keys_tried_again_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let valid = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let accepted = valid.clone();
    let upstream = MockUpstream::start(move |_| match accepted.load(std::sync::atomic::Ordering::SeqCst) {
        true => Reply::ok(completion("welcome back")),
        false => Reply::status(401, serde_json::json!({"message": "Wrong API Key", "code": "wrong_api_key"})),
    });
    let running = ProxyProcess::start(dir.path(), &[("CEREBRAS_BASE_URL", &upstream.url)]);
    let chat = || client().post(format!("{}/v1/chat/completions", running.url)).send_json(&chat_body(false));

    let mut response = chat().await.unwrap();
    assert_eq!(response.status(), 502);
    assert_eq!(response.json::<Value>().await.unwrap()["error"]["code"], "upstream_keys_rejected");
    // The operator fixes the account; until told, the proxy keeps the key out.
    valid.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(chat().await.unwrap().status(), 502);
    assert_eq!(upstream.received().len(), 1);

    let pid = running.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap().success());
    let mut served = false;
    for _ in 0..100 {
        if chat().await.unwrap().status() == 200 {
            served = true;
            break;
        }
        actix_rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(served, "after SIGHUP the key is tried again");
    assert!(running
        .log_lines()
        .iter()
        .any(|line| line.contains("event=key_rejections_cleared provider=cerebras keys=1")));
}

#[actix_web::test]
async fn the_env_example_copied_verbatim_starts_the_proxy() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(concat!(env!("CARGO_MANIFEST_DIR"), "/.env.example"), dir.path().join(".env")).unwrap();
    let upstream = MockUpstream::start(|_| Reply::ok(completion("from .env")));
    // The environment wins over .env: only where to listen and the upstream are changed.
    let vars = [("HOST", "127.0.0.1"), ("PORT", "0"), ("CEREBRAS_BASE_URL", upstream.url.as_str())];
    let running = ProxyProcess::spawn(&mut command(dir.path(), &vars));
    let mut response =
        client().post(format!("{}/v1/chat/completions", running.url)).send_json(&chat_body(false)).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), completion("from .env"));
    assert_eq!(upstream.keys_used(), ["csk-xxx"], "the example's first placeholder key");
}

/// Whether a log line is logfmt: `ts=… level=… target=…`, then `key=value` pairs, values bare or quoted.
fn is_logfmt(line: &str) -> bool {
    let mut rest = line;
    let mut keys = Vec::new();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else { return false };
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return false;
        }
        keys.push(key.to_owned());
        rest = match after.strip_prefix('"') {
            Some(quoted) => {
                let mut escaped = false;
                let end = quoted.char_indices().find_map(|(i, c)| {
                    let closes = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    closes.then_some(i)
                });
                let Some(end) = end else { return false };
                quoted[end + 1..].trim_start()
            }
            None => after.split_once(' ').map_or("", |(_, a)| a.trim_start()),
        };
    }
    keys.starts_with(&["ts".to_owned(), "level".to_owned(), "target".to_owned()])
}

#[test]
fn an_open_proxy_and_a_keyless_one_say_so_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let open = ProxyProcess::start(dir.path(), &[("HOST", "0.0.0.0")]);
    let lines = open.log_lines().join("\n");
    assert!(
        lines.contains("level=warn")
            && lines.contains("event=open_proxy")
            && lines.contains("ENABLE_INCOMING_AUTH=true"),
        "{lines}"
    );
    for line in lines.lines() {
        assert!(is_logfmt(line), "not logfmt: {line}");
    }
    drop(open);

    let local = ProxyProcess::start(dir.path(), &[]);
    assert!(!local.log_lines().join("\n").contains("open_proxy"), "loopback only: nothing to warn of");
    drop(local);

    let db = dir.path().join("data/keys.db");
    let keyless =
        ProxyProcess::start(dir.path(), &[("ENABLE_INCOMING_AUTH", "true"), ("INCOMING_KEY_DB", db.to_str().unwrap())]);
    let lines = keyless.log_lines().join("\n");
    assert!(lines.contains("event=no_client_keys") && lines.contains("glm-proxy keys add"), "{lines}");
}

#[test]
fn an_unwritable_log_dir_and_a_taken_port_stop_the_start_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a-file"), b"").unwrap();
    let base = [("CEREBRAS_API_KEYS", common::PROCESS_KEYS), ("HOST", "127.0.0.1"), ("PORT", "0")];
    let output = command(dir.path(), &base).env("LOG_DIR", "a-file/logs").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("LOG_DIR names a-file/logs") && stderr.contains("chown -R 10001:10001"), "{stderr}");

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let output = command(dir.path(), &base).env("PORT", &port).env("LOG_REQUESTS", "false").output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot listen on 127.0.0.1:"));
}

/// `glm-proxy health`, with `HOST` and `PORT` as the container's `HEALTHCHECK` has them.
async fn health(dir: &std::path::Path, vars: &[(&str, &str)]) -> std::process::Output {
    let mut health = command(dir, vars);
    health.args(["health", "--timeout", "5"]);
    actix_web::rt::task::spawn_blocking(move || health.output().unwrap()).await.unwrap()
}

#[actix_web::test]
async fn the_health_command_checks_the_proxy_at_host_and_port() {
    let dir = tempfile::tempdir().unwrap();
    let proxy = ProxyProcess::start(dir.path(), &[]);
    let port = proxy.url.rsplit(':').next().unwrap().to_owned();
    // A wildcard HOST, as in the container, is checked on loopback.
    let up = health(dir.path(), &[("HOST", "0.0.0.0"), ("PORT", &port)]).await;
    assert_eq!((up.status.code(), String::from_utf8_lossy(&up.stdout).trim()), (Some(0), "ok"));

    let refusing = common::RefusingPort::new();
    let down = health(dir.path(), &[("PORT", &refusing.port.to_string())]).await;
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert_eq!(down.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!(":{}/health", refusing.port)), "{stderr}");

    let unwell = MockUpstream::start(|_| Reply::status(503, serde_json::json!({"status": "unavailable"})));
    let unwell_port = unwell.url.trim_end_matches("/v1").rsplit(':').next().unwrap().to_owned();
    let answered = health(dir.path(), &[("HOST", "127.0.0.1"), ("PORT", &unwell_port)]).await;
    assert_eq!(answered.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&answered.stderr).contains("answered 503"));

    let misconfigured = health(dir.path(), &[("PORT", "eighty")]).await;
    assert_eq!(misconfigured.status.code(), Some(2));
}
