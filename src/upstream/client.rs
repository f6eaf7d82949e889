//! The upstream HTTP client: one per worker (awc's `Client` is not `Send`), pooled
//! keep-alive connections, TCP_NODELAY, and TLS that trusts the system's roots, Mozilla's
//! roots and `SSL_CERT_FILE`.

use std::sync::Arc;

use actix_service::Service;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection, Resolver};
use awc::http::Uri;
use futures_util::future::LocalBoxFuture;
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;

use crate::config::{Config, ConfigError};

/// Builds the TLS client configuration once, at start.
pub fn tls_config(config: &Config) -> Result<Arc<ClientConfig>, ConfigError> {
    let mut roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    // rustls-native-certs reads the platform store, or SSL_CERT_FILE/SSL_CERT_DIR instead of it
    // when set; the Mozilla roots above keep public providers trusted either way.
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        log::warn!("event=tls_roots problem={error}");
    }
    let (added, _) = roots.add_parsable_certificates(native.certs);
    if let Some(path) = &config.ssl_cert_file {
        if added == 0 {
            let shown = path.display();
            return Err(ConfigError { var: "SSL_CERT_FILE", problem: format!("holds no PEM certificate: {shown}") });
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError { var: "TLS", problem: e.to_string() })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// A client for one worker.
pub fn build(config: &Config, tls: Arc<ClientConfig>) -> awc::Client {
    let connector = awc::Connector::new()
        .connector(NoDelay(actix_tls::connect::Connector::new(Resolver::default()).service()))
        .rustls_0_23(tls)
        .timeout(config.timeouts.connect)
        .handshake_timeout(config.timeouts.connect)
        // Idle connections are let go before a typical upstream would close them (many close
        // after 5 s), so a reused connection is rarely one the upstream already closed.
        .conn_keep_alive(config.timeouts.pool_idle)
        // Each worker's pool is unbounded: long streams must not queue behind each other.
        .limit(0);
    awc::Client::builder().connector(connector).disable_redirects().timeout(config.timeouts.first_byte).finish()
}

/// Sets TCP_NODELAY on every upstream connection: without it, small SSE chunks can wait
/// 40 ms on Nagle's algorithm and delayed ACKs.
#[derive(Clone)]
struct NoDelay<S>(S);

impl<S> Service<ConnectInfo<Uri>> for NoDelay<S>
where
    S: Service<ConnectInfo<Uri>, Response = Connection<Uri, TcpStream>, Error = ConnectError>,
    S::Future: 'static,
{
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let connecting = self.0.call(request);
        Box::pin(async move {
            let connection = connecting.await?;
            if let Err(error) = connection.io_ref().set_nodelay(true) {
                log::debug!("event=set_nodelay_failed error={error}");
            }
            Ok(connection)
        })
    }
}
