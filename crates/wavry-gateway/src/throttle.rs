//! Failed-attempt backoff and lockout per account and per client address, and the
//! per-address rate limit on registrations.
//!
//! The counts live in each gateway process's memory. On SQLite one process serves and sees
//! every attempt. On PostgreSQL several instances share the database, and each counts on the
//! others too: a failure counted here is published on the signaling bus
//! (`BusMessage::LoginFailed`, set up in `Gateway::open`) and every other instance records it
//! (`record_failure`), so a lockout holds whichever instance a guess reaches; registrations
//! are shared the same way (`BusMessage::Registered`). What stays per instance: attempts in
//! flight (a parallel burst spread over N instances passes the in-flight check on each), a
//! success clearing an account's failures (elsewhere they lapse after `forget_after`), and
//! notices the bus lost (a listener reconnecting, a full queue); a restarted instance starts
//! with no counts. `LoginThrottle` is the whole interface (begin before, record after), so a
//! database-backed version could replace it without touching the handlers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::{Backoff, ThrottleConfig};

/// What is being throttled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "value", rename_all = "snake_case")]
pub enum ThrottleKey {
    /// A normalised email, whether or not an account has it (so a lockout tells nothing).
    Account(String),
    /// A client address; IPv6 reduced to its /64.
    Ip(IpAddr),
    /// TOTP code checks of a signed-in user (confirm, disable): 10⁶ codes must not be
    /// guessable through them either.
    Totp(String),
}

impl ThrottleKey {
    pub fn ip(addr: IpAddr) -> Self {
        let addr = match addr {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => {
                    let mut seg = v6.segments();
                    seg[4..].fill(0);
                    IpAddr::V6(seg.into())
                }
            },
            v4 => v4,
        };
        ThrottleKey::Ip(addr)
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    failures: u32,
    last_failure_ms: i64,
    locked_until_ms: i64,
    /// Attempts begun and not finished: they count toward the threshold, so a burst of
    /// parallel guesses cannot all get past the check before the first failure is recorded.
    in_flight: u32,
}

impl Entry {
    fn idle(&self, now_ms: i64) -> bool {
        self.in_flight == 0 && self.failures == 0 && self.locked_until_ms <= now_ms
    }
}

/// Per-key failure counts and lockouts.
///
/// An attempt is `begin`, then `failed` or `succeeded` (or dropped: a client that went away
/// counts as neither).
type FailureObserver = Box<dyn Fn(&ThrottleKey) + Send + Sync>;

pub struct LoginThrottle {
    config: ThrottleConfig,
    entries: Mutex<HashMap<ThrottleKey, Entry>>,
    /// Told of every failure counted here (other gateway instances count it too).
    observer: std::sync::OnceLock<FailureObserver>,
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn secs_ceil(ms: i64) -> u64 {
    // Round up: never tell a client to come back before the lock ends.
    u64::try_from((ms + 999) / 1000).unwrap_or(u64::MAX)
}

/// An attempt in progress on some keys; finish it with `failed` or `succeeded`.
#[derive(Debug)]
#[must_use = "an attempt counts as in flight until finished or dropped"]
pub struct Attempt<'a> {
    throttle: &'a LoginThrottle,
    keys: Vec<ThrottleKey>,
    finished: bool,
}

impl LoginThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        LoginThrottle {
            config,
            entries: Mutex::new(HashMap::new()),
            observer: std::sync::OnceLock::new(),
        }
    }

    /// Call `f` with each key a local attempt fails on (set once).
    pub fn observe_failures(&self, f: impl Fn(&ThrottleKey) + Send + Sync + 'static) {
        let _ = self.observer.set(Box::new(f));
    }

    /// Count a failure that happened elsewhere (another gateway instance) against `key`.
    pub fn record_failure(&self, key: &ThrottleKey, now_ms: i64) {
        let mut map = self.lock();
        if !map.contains_key(key) && map.len() >= self.config.max_entries {
            Self::evict(&mut map, now_ms, self.config.max_entries);
        }
        let b = *self.backoff(key);
        count_failure(map.entry(key.clone()).or_default(), &b, now_ms);
    }

    fn backoff(&self, key: &ThrottleKey) -> &Backoff {
        match key {
            ThrottleKey::Ip(_) => &self.config.ip,
            ThrottleKey::Account(_) | ThrottleKey::Totp(_) => &self.config.account,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ThrottleKey, Entry>> {
        // A panic while holding the lock cannot leave an entry half-written (plain copies), so
        // a poisoned map is still sound.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Failures that still count: a key forgets them `forget_after` after the last one.
    fn live_failures(e: &Entry, b: &Backoff, now_ms: i64) -> u32 {
        if e.locked_until_ms <= now_ms && now_ms - e.last_failure_ms > ms(b.forget_after) {
            0
        } else {
            e.failures
        }
    }

    /// Begin an attempt on `keys`, or `Err(seconds)` to wait: a key is locked, or so many
    /// attempts on it are in flight that they could take it past its threshold. (Past the
    /// threshold, once a lock ends, one attempt at a time.)
    pub fn begin(&self, keys: &[&ThrottleKey], now_ms: i64) -> Result<Attempt<'_>, u64> {
        let mut map = self.lock();
        let mut wait_ms = 0i64;
        for key in keys {
            let Some(e) = map.get(*key) else { continue };
            let b = self.backoff(key);
            let failures = Self::live_failures(e, b, now_ms);
            if e.locked_until_ms > now_ms {
                wait_ms = wait_ms.max(e.locked_until_ms - now_ms);
            } else if e.in_flight > 0 && failures.saturating_add(e.in_flight) >= b.threshold {
                wait_ms = wait_ms.max(1000);
            }
        }
        if wait_ms > 0 {
            return Err(secs_ceil(wait_ms));
        }
        for key in keys {
            if !map.contains_key(*key) && map.len() >= self.config.max_entries {
                Self::evict(&mut map, now_ms, self.config.max_entries);
            }
            let e = map.entry((*key).clone()).or_default();
            e.in_flight = e.in_flight.saturating_add(1);
        }
        Ok(Attempt {
            throttle: self,
            keys: keys.iter().map(|k| (*k).clone()).collect(),
            finished: false,
        })
    }

    /// Make room: drop what is forgotten anyway, then, if still full, unlocked entries.
    /// Entries with attempts in flight always stay.
    fn evict(map: &mut HashMap<ThrottleKey, Entry>, now_ms: i64, max: usize) {
        let hour = 60 * 60 * 1000;
        map.retain(|_, e| {
            e.in_flight > 0 || e.locked_until_ms > now_ms || now_ms - e.last_failure_ms < hour
        });
        if map.len() >= max {
            map.retain(|_, e| e.in_flight > 0 || e.locked_until_ms > now_ms);
        }
        if map.len() >= max {
            // Everything is locked: keep the longest locks.
            let mut v: Vec<_> = map.drain().collect();
            v.sort_by_key(|(_, e)| (e.in_flight == 0, std::cmp::Reverse(e.locked_until_ms)));
            v.truncate(max / 2);
            map.extend(v);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

impl Attempt<'_> {
    /// The attempt failed: count it against every key, locking those past their threshold.
    pub fn failed(mut self, now_ms: i64) {
        self.finished = true;
        let t = self.throttle;
        let mut map = t.lock();
        for key in &self.keys {
            let b = *t.backoff(key);
            let e = map.entry(key.clone()).or_default();
            e.in_flight = e.in_flight.saturating_sub(1);
            count_failure(e, &b, now_ms);
        }
        drop(map);
        if let Some(f) = t.observer.get() {
            for key in &self.keys {
                f(key);
            }
        }
    }

    /// The attempt succeeded: `clear` (an account after a correct login) forgets its failures;
    /// the other keys keep theirs (never clear an address, or one attacker's own account would
    /// reset the count of their guesses at others).
    pub fn succeeded(mut self, clear: &ThrottleKey, now_ms: i64) {
        self.finished = true;
        let mut map = self.throttle.lock();
        for key in &self.keys {
            let Some(e) = map.get_mut(key) else { continue };
            e.in_flight = e.in_flight.saturating_sub(1);
            if key == clear {
                e.failures = 0;
                e.locked_until_ms = 0;
            }
            if e.idle(now_ms) {
                map.remove(key);
            }
        }
    }
}

impl std::fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginThrottle")
            .field("config", &self.config)
            .field("entries", &self.lock().len())
            .finish_non_exhaustive()
    }
}

/// One more failure on `e`, locking it past the threshold.
fn count_failure(e: &mut Entry, b: &Backoff, now_ms: i64) {
    e.failures = LoginThrottle::live_failures(e, b, now_ms).saturating_add(1);
    e.last_failure_ms = now_ms;
    if e.failures >= b.threshold {
        let doublings = (e.failures - b.threshold).min(30);
        let lock = ms(b.base_lockout)
            .saturating_mul(1i64 << doublings)
            .min(ms(b.max_lockout));
        e.locked_until_ms = now_ms.saturating_add(lock);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let mut map = self.throttle.lock();
        for key in &self.keys {
            if let Some(e) = map.get_mut(key) {
                e.in_flight = e.in_flight.saturating_sub(1);
                if e.in_flight == 0 && e.failures == 0 && e.locked_until_ms == 0 {
                    map.remove(key);
                }
            }
        }
    }
}

/// A token bucket per client address: `burst` requests at once, then one per `every`.
/// For actions that cost the gateway (registration hashes a password), not for failures.
#[derive(Debug)]
pub struct RateLimiter {
    burst: u32,
    every_ms: i64,
    max_entries: usize,
    /// Per key: the time at which its bucket is full again ("theoretical arrival time").
    full_at_ms: Mutex<HashMap<IpAddr, i64>>,
}

impl RateLimiter {
    pub fn new(burst: u32, every: Duration, max_entries: usize) -> Self {
        RateLimiter {
            burst: burst.max(1),
            every_ms: ms(every).max(1),
            max_entries: max_entries.max(1),
            full_at_ms: Mutex::new(HashMap::new()),
        }
    }

    /// Take one token for `addr` (IPv6 by /64), or `Err(seconds)` until one is free.
    pub fn take(&self, addr: IpAddr, now_ms: i64) -> Result<(), u64> {
        let ThrottleKey::Ip(addr) = ThrottleKey::ip(addr) else {
            return Ok(());
        };
        let mut map = self.full_at_ms.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= self.max_entries && !map.contains_key(&addr) {
            // Full buckets carry no state: forget them; if still full, the oldest half.
            map.retain(|_, full_at| *full_at > now_ms);
            if map.len() >= self.max_entries {
                let mut v: Vec<_> = map.drain().collect();
                v.sort_by_key(|(_, full_at)| std::cmp::Reverse(*full_at));
                v.truncate(self.max_entries / 2);
                map.extend(v);
            }
        }
        let full_at = map.get(&addr).copied().unwrap_or(now_ms).max(now_ms);
        let next = full_at.saturating_add(self.every_ms);
        // The bucket holds `burst` tokens: refused when taking one would put its refill time
        // more than `burst` intervals ahead.
        let limit = now_ms.saturating_add(self.every_ms.saturating_mul(i64::from(self.burst)));
        if next > limit {
            let wait = next - limit;
            return Err(u64::try_from((wait + 999) / 1000).unwrap_or(u64::MAX));
        }
        map.insert(addr, next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        let b = Backoff {
            threshold: 3,
            base_lockout: Duration::from_secs(10),
            max_lockout: Duration::from_secs(35),
            forget_after: Duration::from_secs(100),
        };
        ThrottleConfig {
            account: b,
            ip: Backoff { threshold: 5, ..b },
            max_entries: 4,
            ..ThrottleConfig::default()
        }
    }

    fn fail(t: &LoginThrottle, keys: &[&ThrottleKey], now: i64) {
        t.begin(keys, now).expect("not locked").failed(now);
    }

    fn check(t: &LoginThrottle, keys: &[&ThrottleKey], now: i64) -> Result<(), u64> {
        t.begin(keys, now).map(drop)
    }

    #[test]
    fn locks_after_threshold_and_doubles_to_the_cap() {
        let t = LoginThrottle::new(config());
        let a = ThrottleKey::Account("a@x".into());
        let mut now = 1_000_000;
        for _ in 0..2 {
            fail(&t, &[&a], now);
            assert_eq!(check(&t, &[&a], now), Ok(()));
        }
        fail(&t, &[&a], now);
        assert_eq!(check(&t, &[&a], now), Err(10));
        now += 10_000;
        assert_eq!(check(&t, &[&a], now), Ok(()));
        fail(&t, &[&a], now);
        assert_eq!(check(&t, &[&a], now), Err(20));
        now += 20_000;
        fail(&t, &[&a], now);
        assert_eq!(check(&t, &[&a], now), Err(35), "capped");
        now += 35_000;
        t.begin(&[&a], now).unwrap().succeeded(&a, now);
        assert_eq!(t.len(), 0, "a cleared key is forgotten");
        assert_eq!(check(&t, &[&a], now), Ok(()));
    }

    #[test]
    fn failures_are_forgotten_after_a_quiet_while() {
        let t = LoginThrottle::new(config());
        let a = ThrottleKey::Account("a@x".into());
        fail(&t, &[&a], 0);
        fail(&t, &[&a], 1);
        fail(&t, &[&a], 200_000);
        assert_eq!(check(&t, &[&a], 200_000), Ok(()));
    }

    #[test]
    fn attempts_in_flight_count_toward_the_threshold() {
        let t = LoginThrottle::new(config());
        let a = ThrottleKey::Account("a@x".into());
        let ip = ThrottleKey::ip("192.0.2.1".parse().unwrap());
        // Threshold 3: three guesses may be in flight at once, not a fourth.
        let g1 = t.begin(&[&a, &ip], 0).unwrap();
        let g2 = t.begin(&[&a, &ip], 0).unwrap();
        let g3 = t.begin(&[&a, &ip], 0).unwrap();
        assert_eq!(check(&t, &[&a, &ip], 0), Err(1));
        // A client that went away frees its place without counting.
        drop(g3);
        let g3 = t.begin(&[&a, &ip], 0).unwrap();
        g1.failed(0);
        g2.failed(0);
        g3.failed(0);
        assert_eq!(check(&t, &[&a], 0), Err(10));
        // After the lock, one attempt at a time.
        let g = t.begin(&[&a], 10_000).unwrap();
        assert_eq!(check(&t, &[&a], 10_000), Err(1));
        g.succeeded(&a, 10_000);
        assert_eq!(check(&t, &[&a], 10_000), Ok(()));
        // The address kept its three failures.
        fail(&t, &[&ip], 10_000);
        fail(&t, &[&ip], 10_000);
        assert_eq!(check(&t, &[&ip], 10_000), Err(10));
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(ThrottleKey::ip(a), ThrottleKey::ip(b));
        let m: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            ThrottleKey::ip(m),
            ThrottleKey::Ip("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn rate_limiter_allows_a_burst_then_one_per_interval() {
        let r = RateLimiter::new(3, Duration::from_secs(60), 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let t = 1_000_000;
        for _ in 0..3 {
            assert_eq!(r.take(a, t), Ok(()));
        }
        assert_eq!(r.take(a, t), Err(60));
        assert_eq!(r.take(b, t), Ok(()), "per address");
        assert_eq!(r.take(a, t + 30_000), Err(30));
        assert_eq!(r.take(a, t + 60_000), Ok(()));
        assert_eq!(r.take(a, t + 60_000), Err(60));
        // A long quiet spell refills the whole burst, no more.
        for _ in 0..3 {
            assert_eq!(r.take(a, t + 10_000_000), Ok(()));
        }
        assert!(r.take(a, t + 10_000_000).is_err());
        // Bounded memory.
        for i in 0..1000u32 {
            let _ = r.take(IpAddr::from(i.to_be_bytes()), t);
            assert!(r.full_at_ms.lock().unwrap().len() <= 100);
        }
    }

    #[test]
    fn bounded_memory_keeps_locked_keys() {
        let t = LoginThrottle::new(config());
        let locked = ThrottleKey::Account("victim".into());
        for _ in 0..3 {
            fail(&t, &[&locked], 0);
        }
        let busy = ThrottleKey::Account("busy".into());
        let in_flight = t.begin(&[&busy], 0).unwrap();
        for i in 0..20 {
            fail(&t, &[&ThrottleKey::Account(format!("k{i}"))], 1);
            assert!(t.len() <= 4);
        }
        assert!(check(&t, &[&locked], 1).is_err());
        in_flight.failed(1);
        assert_eq!(t.lock().get(&busy).map(|e| e.failures), Some(1));
    }
}
