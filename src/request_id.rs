//! `x-request-id` on every response: the client's own if it sent a sane one, else a new one.
//! The same id names the request's log record.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::HttpMessage;

pub const HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The request's id, in the request's extensions.
#[derive(Clone)]
pub struct RequestId(pub Arc<str>);

/// The id of `request` (empty outside the middleware, in tests of a handler alone).
pub fn of(request: &actix_web::HttpRequest) -> String {
    request.extensions().get::<RequestId>().map_or_else(String::new, |id| id.0.to_string())
}

/// A random prefix per process and a counter: unique without a syscall per request.
fn generate() -> String {
    static PREFIX: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| {
        let mut bytes = [0u8; 6];
        let _ = getrandom::fill(&mut bytes);
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    });
    format!("{prefix}-{:08x}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Accepts a client's id if it is short and plain enough to put in a log and a header.
fn client_id(request: &ServiceRequest) -> Option<String> {
    let value = request.headers().get(HEADER)?.to_str().ok()?.trim();
    let sane = !value.is_empty()
        && value.len() <= 128
        && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b));
    sane.then(|| value.to_owned())
}

pub async fn middleware(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = client_id(&request).unwrap_or_else(generate);
    let header = HeaderValue::from_str(&id).ok();
    request.extensions_mut().insert(RequestId(id.into()));
    let mut response = next.call(request).await?;
    if let Some(header) = header {
        response.headers_mut().insert(HEADER, header);
    }
    Ok(response)
}
