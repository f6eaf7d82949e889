//! The floor under glm-proxy: the least an actix-web server and an awc client can do to
//! forward a request, with none of glm-proxy's work (no keys, routing, JSON, metrics, logs).
//! `bench/run` measures it beside glm-proxy, so the table shows what the stack itself costs
//! and what glm-proxy adds on top.
//!
//! Usage: `bench_floor PORT UPSTREAM_URL [WORKERS]`, e.g. `bench_floor 19006 http://127.0.0.1:19001 2`

use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use bytes::Bytes;

async fn forward(
    request: HttpRequest,
    body: Bytes,
    client: web::Data<awc::Client>,
    upstream: web::Data<String>,
) -> HttpResponse {
    let url = format!("{}{}", upstream.get_ref(), request.uri());
    let mut outgoing = client.request(request.method().clone(), url).no_decompress();
    for (name, value) in request.headers() {
        if name != "host" && name != "connection" {
            outgoing = outgoing.append_header((name.clone(), value.clone()));
        }
    }
    match outgoing.send_body(body).await {
        Ok(mut answer) => {
            let mut response = HttpResponse::build(answer.status());
            for (name, value) in answer.headers() {
                if name != "connection" && name != "transfer-encoding" && name != "content-length" {
                    response.append_header((name.clone(), value.clone()));
                }
            }
            response.streaming(answer.take_payload())
        }
        Err(error) => HttpResponse::BadGateway().body(error.to_string()),
    }
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(19006);
    let upstream = args.next().unwrap_or_else(|| "http://127.0.0.1:19001".to_owned());
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    HttpServer::new(move || {
        let client = awc::Client::builder().disable_redirects().finish();
        App::new()
            .app_data(web::Data::new(client))
            .app_data(web::Data::new(upstream.clone()))
            .default_service(web::to(forward))
    })
    .workers(workers)
    .tcp_nodelay(true)
    .backlog(4096)
    .max_connections(100_000)
    .bind(("127.0.0.1", port))?
    .run()
    .await
}
