//! The gateway's integration tests, one binary: the HTTP API, signaling, the admin dashboard (in
//! headless Chromium), the OpenAPI document, the signing key and its rotation, and several instances
//! on one PostgreSQL.
mod admin;
mod common;
mod http_api;
mod openapi;
mod scale_out;
mod signaling;
mod signing_key;
