//! End-to-end tests of the `wavry` binary and of whole sessions: a host and a client (this crate
//! owns both ends) on real sockets, X displays (Xvfb) and, for the lossy one, network namespaces.
mod common;
mod connect_errors;
mod cursor_e2e;
mod demo;
mod end_to_end;
mod gateway_cli;
mod lossy_e2e;
mod monitors;
