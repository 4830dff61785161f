//! What `/metrics` reports (Prometheus text format, docs/GATEWAY.md lists each metric):
//! counters the handlers bump, and gauges read when scraped.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route's template (`/v1/sessions/{session_id}`), never the raw path: bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: HistogramFamily<RouteLabel>,
    pub logins: Family<OutcomeLabel, Counter>,
    pub registrations: Counter,
    pub signal_messages: Family<TypeLabel, Counter>,
    pub signal_sockets: Gauge,
    pub hosts_online: Gauge,
    pub bus_sent: Counter,
    pub bus_received: Counter,
}

fn latency_histogram() -> Histogram {
    // 0.25 ms … 8 s.
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wavry_gateway");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route and status",
            http_requests.clone(),
        );
        let http_seconds: HistogramFamily<RouteLabel> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            http_seconds.clone(),
        );
        let logins = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "logins",
            "Login attempts by outcome: succeeded, failed (wrong password or code), locked \
             (refused by the lockout), banned",
            logins.clone(),
        );
        let registrations = Counter::default();
        registry.register(
            "registrations",
            "Accounts registered",
            registrations.clone(),
        );
        let signal_messages = Family::<TypeLabel, Counter>::default();
        registry.register(
            "signal_messages",
            "Signaling messages received from peers, by type",
            signal_messages.clone(),
        );
        let signal_sockets = Gauge::default();
        registry.register(
            "signal_devices_present",
            "Devices connected to this instance's signaling (or within their resume grace)",
            signal_sockets.clone(),
        );
        let hosts_online = Gauge::default();
        registry.register(
            "hosts_online",
            "Hosts online on any instance sharing the database",
            hosts_online.clone(),
        );
        let bus_sent = Counter::default();
        registry.register(
            "bus_notices_sent",
            "Notices sent to other instances (PostgreSQL NOTIFY)",
            bus_sent.clone(),
        );
        let bus_received = Counter::default();
        registry.register(
            "bus_notices_received",
            "Notices received from other instances",
            bus_received.clone(),
        );
        Metrics {
            registry,
            http_requests,
            http_seconds,
            logins,
            registrations,
            signal_messages,
            signal_sockets,
            hosts_online,
            bus_sent,
            bus_received,
        }
    }

    pub fn login(&self, outcome: &'static str) {
        self.logins.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
