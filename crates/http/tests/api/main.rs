//! HTTP-layer tests: the real `App` over mocked ports. They check paths, status codes, JSON
//! shapes and that invalid requests never reach a port.

#[cfg(test)]
mod agent_webhooks;
mod auth;
mod calls;
mod clients;
#[cfg(test)]
mod common;
#[cfg(test)]
mod drain;
mod errors;
#[cfg(test)]
mod logs;
#[cfg(test)]
mod media_stream;
#[cfg(test)]
mod metrics;
#[cfg(test)]
mod openapi;
#[cfg(test)]
mod placement;
#[cfg(test)]
mod request_ids;
#[cfg(test)]
mod webhooks;
