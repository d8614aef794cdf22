//! The route table. Paths and methods are the API contract's.
//!
//! Every path is a `web::resource`, never `scope.route(path, ..)`: the latter puts the method
//! guard on the resource, so a wrong method would fall through to 404 instead of 405.

mod auth;
mod calls;
mod clients;
mod elevenlabs;
mod health;
pub(crate) mod media;
mod metrics;
pub(crate) mod openapi;
mod placement;
mod twilio;

use actix_web::middleware::from_fn;
use actix_web::web::{self, ServiceConfig};
use outcall_domain::webhooks::paths;

use crate::extract::{admin_gate, client_gate};

/// Registers every route of the accounts, auth, call-history and call-placement API, the
/// Twilio webhooks and media stream, and the ElevenLabs post-call webhook. `call_json` is the
/// larger body limit of the call add/update resources (transcripts).
pub fn configure(cfg: &mut ServiceConfig, call_json: web::JsonConfig) {
    cfg.service(web::resource("/healthz").route(web::get().to(health::healthz)))
        .service(web::resource("/readyz").route(web::get().to(health::readyz)))
        .service(web::resource("/metrics").route(web::get().to(metrics::render)))
        // The OpenAPI document and Swagger UI (assets bundled in the binary).
        .service(web::resource(openapi::DOCUMENT_PATH).route(web::get().to(openapi::document)))
        .service(web::resource("/docs").route(web::get().to(openapi::docs_redirect)))
        .service(web::resource("/docs/{file:.*}").route(web::get().to(openapi::docs_file)))
        // Signed by Twilio, not authenticated by token (see `SignedWebhook`). Twilio may be
        // configured to fetch TwiML with GET.
        .service(
            web::resource(paths::TWILIO_TWIML)
                .route(web::post().to(twilio::twiml))
                .route(web::get().to(twilio::twiml)),
        )
        .service(web::resource(paths::TWILIO_STATUS).route(web::post().to(twilio::status)))
        // A WebSocket upgrade signed by Twilio (see `media::stream`).
        .service(web::resource(paths::MEDIA_STREAM).route(web::get().to(media::stream)))
        // Signed by ElevenLabs, not authenticated by token (see `VerifiedAgentWebhook`).
        .service(
            web::resource(paths::ELEVENLABS_POST_CALL).route(web::post().to(elevenlabs::post_call)),
        )
        .service(
            web::scope("/auth")
                .service(web::resource("/admin/login").route(web::post().to(auth::admin_login)))
                .service(web::resource("/login").route(web::post().to(auth::client_login)))
                .service(web::resource("/verify").route(web::post().to(auth::verify)))
                .service(
                    web::resource("/refresh")
                        .wrap(from_fn(client_gate))
                        .route(web::post().to(auth::refresh)),
                )
                .service(
                    web::resource("/logout")
                        .wrap(from_fn(client_gate))
                        .route(web::post().to(auth::logout)),
                )
                .service(
                    web::resource("/change-secret")
                        .wrap(from_fn(client_gate))
                        .route(web::post().to(auth::change_secret)),
                ),
        )
        .service(
            web::scope("/admin")
                .wrap(from_fn(admin_gate))
                .service(
                    web::resource("/clients")
                        .route(web::get().to(clients::list))
                        .route(web::post().to(clients::create)),
                )
                .service(
                    web::resource("/clients/{clientId}")
                        .route(web::get().to(clients::get))
                        .route(web::put().to(clients::update))
                        .route(web::delete().to(clients::delete)),
                )
                .service(
                    web::resource("/clients/{clientId}/reset-secret")
                        .route(web::post().to(clients::reset_secret)),
                )
                .service(
                    web::resource("/clients/{clientId}/calls")
                        .app_data(call_json.clone())
                        .route(web::get().to(calls::list_for_admin))
                        .route(web::post().to(calls::add)),
                )
                .service(
                    web::resource("/clients/{clientId}/calls/{callId}")
                        .app_data(call_json)
                        .route(web::get().to(calls::get_for_admin))
                        .route(web::put().to(calls::update)),
                )
                .service(
                    web::resource("/clients/{clientId}/make-call")
                        .wrap(from_fn(placement::refuse_while_draining))
                        .route(web::post().to(placement::make_for_client)),
                )
                .service(
                    web::resource("/clients/{clientId}/calls/{callId}/hangup")
                        .route(web::post().to(placement::hang_up_for_client)),
                )
                .service(web::resource("/dashboard").route(web::get().to(calls::dashboard)))
                .service(web::resource("/activity").route(web::get().to(calls::activity))),
        )
        .service(
            web::scope("/secure")
                .wrap(from_fn(client_gate))
                .service(
                    web::resource("/client")
                        .route(web::get().to(clients::get_own))
                        .route(web::put().to(clients::update_own)),
                )
                .service(web::resource("/calls").route(web::get().to(calls::list_own)))
                .service(web::resource("/calls/{callId}").route(web::get().to(calls::get_own)))
                .service(
                    web::resource("/make-call")
                        .wrap(from_fn(placement::refuse_while_draining))
                        .route(web::post().to(placement::make_own)),
                )
                .service(
                    web::resource("/calls/{callId}/hangup")
                        .route(web::post().to(placement::hang_up_own)),
                )
                .service(web::resource("/call-stats").route(web::get().to(calls::stats))),
        );
}
