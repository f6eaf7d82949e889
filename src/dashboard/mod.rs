//! `GET /dashboard`: the operator's page, embedded in the binary (HTML, CSS and JavaScript,
//! no dependency, nothing fetched from elsewhere). It reads `/_status` and the admin API with
//! the admin token the operator types once, kept in the tab's session storage and sent as a
//! bearer header: no cookie, so no CSRF surface. Served under a Content-Security-Policy that
//! lets the page load its own two files and talk to this origin, nothing else.
//!
//! Without `ADMIN_TOKEN`, the page says how to turn it on, and its scripts are not there.

use actix_web::http::header::{self, HeaderValue};
use actix_web::{web, HttpResponse};

use crate::state::AppState;

const PAGE: &str = include_str!("index.html");
const OFF: &str = include_str!("off.html");
const SCRIPT: &str = include_str!("app.js");
const STYLE: &str = include_str!("app.css");
const ICON: &str = include_str!("favicon.svg");

const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub fn routes() -> actix_web::Scope {
    web::scope("/dashboard")
        .route("", web::get().to(page))
        .route("/app.js", web::get().to(script))
        .route("/app.css", web::get().to(style))
        .route("/favicon.svg", web::get().to(icon))
}

/// One of the page's files, with the headers every one carries.
fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    let mut response = HttpResponse::Ok().content_type(content_type).body(body);
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

async fn page(state: web::Data<AppState>) -> HttpResponse {
    match state.admin_token {
        Some(_) => file("text/html; charset=utf-8", PAGE),
        None => file("text/html; charset=utf-8", OFF),
    }
}

async fn script(state: web::Data<AppState>) -> HttpResponse {
    served(&state, "text/javascript; charset=utf-8", SCRIPT)
}

async fn style(state: web::Data<AppState>) -> HttpResponse {
    served(&state, "text/css; charset=utf-8", STYLE)
}

async fn icon(state: web::Data<AppState>) -> HttpResponse {
    served(&state, "image/svg+xml", ICON)
}

fn served(state: &AppState, content_type: &'static str, body: &'static str) -> HttpResponse {
    match state.admin_token {
        Some(_) => file(content_type, body),
        None => HttpResponse::NotFound().finish(),
    }
}
