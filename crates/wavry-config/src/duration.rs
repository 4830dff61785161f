//! Durations as people write them on the command line and in configuration files.

use std::time::Duration;

/// A duration with its unit: `250ms`, `5s`, `2m`, `1.5s`, `1h30m`, `30d` (humantime's syntax:
/// `ns`, `us`, `ms`, `s`, `m`, `h`, `d`, `w` and their long names). A bare number is refused, so
/// `5` can never silently mean seconds in one place and milliseconds in another.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.bytes().any(|b| b.is_ascii_digit()) && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(format!(
            "{s:?} has no unit: add one, e.g. \"{t}s\" or \"{t}ms\""
        ));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("{s:?} is not a duration ({e}); write it with a unit: 250ms, 5s, 2m"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_required() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("200us"), Ok(Duration::from_micros(200)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration(" 2m "), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
        for bare in ["5", "0", "1.5", "250"] {
            let e = parse_duration(bare).unwrap_err();
            assert!(
                e.contains("no unit") && e.contains("add one"),
                "{bare}: {e}"
            );
        }
        for bad in ["", "s", "fast", "-1s", "5 parsecs", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
