//! A tiny run of `wavry bench gateway` (20 sockets, 1 s of relay, short logins) so the bench
//! keeps working. It checks that the machinery measured something, never a performance target.

use wavry_bench::gateway::{run, LoginCost, Options, Target};

#[test]
fn gateway_bench_smoke() {
    let opts = Options {
        target: Target::InProcess,
        clients: 20,
        devices_per_account: 8,
        pairs: 5,
        rate: 50.0,
        relay_secs: 1.0,
        connect_concurrency: 8,
        login_costs: vec![LoginCost::Owasp, LoginCost::Cheap],
        login_concurrency: 2,
        login_secs: 0.5,
        ..Options::default()
    };
    let report = run(&opts).expect("the bench runs");
    println!("{report}");
    let s = report.signal.expect("signaling measured");
    assert_eq!(s.accounts, 3, "20 devices at 8 per account");
    assert_eq!(s.connected, 20);
    assert_eq!(s.connect_failures, 0);
    assert_eq!(s.pairs, 5);
    assert_eq!(s.sent, 50);
    assert_eq!(s.received, s.sent, "loopback relay loses nothing");
    assert_eq!(s.lost, 0);
    assert_eq!(s.relay.n, 50);
    assert_eq!(s.still_open, 20, "no socket dropped: {:?}", s.drops);
    assert!(s.rss_after_kb.is_some());
    assert_eq!(report.logins.len(), 2);
    for l in &report.logins {
        assert!(l.ok > 0, "{l:?}");
        assert!(l.latency.p99 >= l.latency.p50);
    }
}
