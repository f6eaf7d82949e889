//! `GET /v1/models` (and `/v1/models/{id}`) with a catalogue: its public names and plain
//! aliases, answered by the proxy itself, in the OpenAI shape, or Anthropic's when the client
//! sends `anthropic-version`. A client key with a model list is shown the models it may use.
//! Without a catalogue the request goes to Cerebras as any other.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::exchange::Exchange;
use super::rate_headers::Style;
use super::receive::admit;
use crate::dispatch::reply::Reply;
use crate::doors::openai::{forward, respond};
use crate::error::ProxyError;
use crate::state::AppState;

pub async fn list(
    request: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    client: web::Data<awc::Client>,
) -> HttpResponse {
    let Some(catalogue) = state.dispatcher.catalogue.clone() else {
        return forward(request, payload, state, client).await;
    };
    let mut exchange = Exchange::begin(&state, Style::OpenAi);
    let outcome = admit(&request, &state, &mut exchange.journal).await.and_then(|()| {
        let anthropic = request.headers().contains_key("anthropic-version");
        let pass = exchange.journal.pass.as_ref();
        // The key's list names public models: an alias is checked as the model it stands for.
        let may_use = |name: &str| {
            let public = catalogue.resolve(name).map_or(name, |model| model.name.as_str());
            pass.map_or(Ok(()), |pass| pass.may_use(Some(public)))
        };
        let names = catalogue.listed_names();
        match request.match_info().get("id") {
            None => {
                let usable: Vec<&str> = names.into_iter().filter(|name| may_use(name).is_ok()).collect();
                Ok(Reply::json(&listing(&usable, anthropic)))
            }
            Some(id) if names.contains(&id) => match may_use(id) {
                Ok(()) => Ok(Reply::json(&entry(id, anthropic))),
                Err(refusal) => Err(ProxyError::ClientRefused {
                    refusal,
                    rate: pass.and_then(|pass| pass.view()).unwrap_or_default(),
                }),
            },
            Some(id) => Err(ProxyError::model_not_found(id, &catalogue)),
        }
    });
    respond(&request, exchange.end(&request, outcome, &state))
}

fn listing(names: &[&str], anthropic: bool) -> Value {
    let data: Vec<Value> = names.iter().map(|name| entry(name, anthropic)).collect();
    if anthropic {
        json!({ "data": data, "has_more": false, "first_id": names.first(), "last_id": names.last() })
    } else {
        json!({ "object": "list", "data": data })
    }
}

fn entry(name: &str, anthropic: bool) -> Value {
    if anthropic {
        json!({ "type": "model", "id": name, "display_name": name, "created_at": "1970-01-01T00:00:00Z" })
    } else {
        json!({ "id": name, "object": "model", "created": 0, "owned_by": "glm-proxy" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    fn listed(catalogue: &Catalogue, anthropic: bool) -> Value {
        listing(&catalogue.listed_names(), anthropic)
    }

    #[test]
    fn the_listing_takes_the_clients_shape() {
        let aliases = r#"{"gpt-4o":"glm","claude-*":"glm"}"#;
        let catalogue = Catalogue::parse(r#"{"glm":{"zai":"glm-4.7"}}"#, Some(aliases), &[], &["zai"]).unwrap();
        let openai = listed(&catalogue, false);
        assert_eq!(openai["object"], "list");
        let ids: Vec<&str> = openai["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
        assert_eq!(ids, ["glm", "gpt-4o"]);
        let anthropic = listed(&catalogue, true);
        assert_eq!((anthropic["first_id"].as_str(), anthropic["last_id"].as_str()), (Some("glm"), Some("gpt-4o")));
        assert_eq!(anthropic["data"][0]["type"], "model");
    }
}
