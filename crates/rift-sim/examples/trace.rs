use rift_sim::scenario::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let from: f64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20.0);
    let to: f64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(25.0);
    let s = if args.get(3).map(|s| s.as_str()) == Some("three") {
        Scenario::three_flows()
    } else {
        Scenario::capacity_steps(Controller::delta())
    };
    let r = run(&s);
    for x in r.timeline.iter().filter(|x| x.t >= from && x.t < to) {
        println!(
            "{:6.2} cap {:5.2} q {:6.1} send {:?} tgt {:?} {:?} deliv {:5.2}",
            x.t,
            x.capacity_bps as f64 / 1e6,
            x.queue_ms,
            x.send_bps
                .iter()
                .map(|b| (*b as f64 / 1e4).round() / 100.0)
                .collect::<Vec<_>>(),
            x.target_bps
                .iter()
                .map(|b| (*b as f64 / 1e4).round() / 100.0)
                .collect::<Vec<_>>(),
            x.state,
            x.delivered_bps as f64 / 1e6
        );
    }
}
