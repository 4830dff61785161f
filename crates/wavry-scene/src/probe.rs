//! The latency probe: a strip on the host's display that shows the monotonic clock as a
//! barcode, repainted at a high rate, and a reader that finds it again on the client's
//! display. Both ends run on one machine and read one clock (CLOCK_MONOTONIC), so the
//! difference between a reading and the time it shows is the whole path: capture, encode,
//! network, decode, present.
//!
//! Code: [`BITS`] blocks of [`BLOCK_W`]×[`BLOCK_H`] pixels, black for 0 and white for 1:
//! the sync pattern `1 0 1 0`, then the time in microseconds modulo 2^40 (most significant bit
//! first), then a CRC-8 of those five bytes. Blocks are wide enough to survive 4:2:0 chroma
//! subsampling and a low-bitrate encoder; a reading whose sync or CRC fails counts as corrupt.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ConnectionExt as _, CreateGCAux, CreateWindowAux, ImageFormat, Rectangle,
    WindowClass,
};

pub const SYNC: [bool; 4] = [true, false, true, false];
pub const TIME_BITS: usize = 40;
pub const CRC_BITS: usize = 8;
pub const BITS: usize = SYNC.len() + TIME_BITS + CRC_BITS;
pub const BLOCK_W: u16 = 8;
pub const BLOCK_H: u16 = 24;
/// The strip's size in pixels.
pub const WIDTH: u16 = BITS as u16 * BLOCK_W;
pub const HEIGHT: u16 = BLOCK_H;

/// CRC-8 (polynomial 0x07) of `data`.
pub fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The bits that show `t_us`.
pub fn encode(t_us: u64) -> [bool; BITS] {
    let t = t_us & ((1 << TIME_BITS) - 1);
    let bytes = t.to_be_bytes();
    let crc = crc8(&bytes[3..]);
    let mut bits = [false; BITS];
    bits[..SYNC.len()].copy_from_slice(&SYNC);
    for i in 0..TIME_BITS {
        bits[SYNC.len() + i] = (t >> (TIME_BITS - 1 - i)) & 1 == 1;
    }
    for i in 0..CRC_BITS {
        bits[SYNC.len() + TIME_BITS + i] = (crc >> (CRC_BITS - 1 - i)) & 1 == 1;
    }
    bits
}

/// What a reading of the strip found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reading {
    /// A time (µs modulo 2^40).
    Time(u64),
    /// The sync pattern is there but the CRC fails: a corrupt picture.
    Corrupt,
    /// No strip (not on screen yet, or covered).
    Absent,
}

/// Decode bits (as read from the screen).
pub fn decode(bits: &[bool; BITS]) -> Reading {
    if bits[..SYNC.len()] != SYNC {
        return Reading::Absent;
    }
    let mut t = 0u64;
    for i in 0..TIME_BITS {
        t = (t << 1) | bits[SYNC.len() + i] as u64;
    }
    let mut crc = 0u8;
    for i in 0..CRC_BITS {
        crc = (crc << 1) | bits[SYNC.len() + TIME_BITS + i] as u8;
    }
    if crc8(&t.to_be_bytes()[3..]) == crc {
        Reading::Time(t)
    } else {
        Reading::Corrupt
    }
}

/// Read the strip from BGRA pixels (`stride` bytes per row) whose top-left is the strip's.
pub fn read_pixels(bgra: &[u8], stride: usize) -> Reading {
    let mut bits = [false; BITS];
    let y = BLOCK_H as usize / 2;
    for (i, bit) in bits.iter_mut().enumerate() {
        let x = i * BLOCK_W as usize + BLOCK_W as usize / 2;
        let p = y * stride + x * 4;
        let Some(px) = bgra.get(p..p + 3) else {
            return Reading::Absent;
        };
        let luma = 0.0722 * px[0] as f64 + 0.7152 * px[1] as f64 + 0.2126 * px[2] as f64;
        *bit = luma > 128.0;
    }
    decode(&bits)
}

/// Paint the strip showing `t_us` at the top-left of a luma plane (`stride` bytes per row),
/// black 16 and white 235 as in limited-range video: for measuring a client's presentation
/// alone, with pictures made to carry the time. Rows or columns past the plane are skipped.
pub fn paint_luma(luma: &mut [u8], stride: usize, t_us: u64) {
    for (i, bit) in encode(t_us).iter().enumerate() {
        let v = if *bit { 235 } else { 16 };
        let x0 = i * BLOCK_W as usize;
        for row in 0..BLOCK_H as usize {
            let start = row * stride + x0;
            let end = (start + BLOCK_W as usize).min((row + 1) * stride);
            if let Some(px) = luma.get_mut(start..end) {
                px.fill(v);
            }
        }
    }
}

/// The monotonic clock in microseconds modulo 2^40, as the probe shows it.
pub fn now_us() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: writes one timespec we own; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000) & ((1 << TIME_BITS) - 1)
}

/// A probe painting the clock into a strip at the top-left of a display; stops on drop.
pub struct Probe {
    stop: Arc<AtomicBool>,
    painted: Arc<Mutex<Vec<u64>>>,
    join: Option<JoinHandle<()>>,
}

impl Probe {
    /// Paint at `rate_hz` (≥ 240 for the benchmark) at (`x`, `y`) on `display`.
    pub fn start(display: &str, x: i16, y: i16, rate_hz: u32) -> Result<Probe, String> {
        let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
        let root = conn.setup().roots[screen].root;
        let win = conn.generate_id().map_err(|e| e.to_string())?;
        conn.create_window(
            0,
            win,
            root,
            x,
            y,
            WIDTH,
            HEIGHT,
            0,
            WindowClass::INPUT_OUTPUT,
            0,
            &CreateWindowAux::new()
                .background_pixel(0)
                .override_redirect(1),
        )
        .map_err(|e| e.to_string())?;
        let gc = conn.generate_id().map_err(|e| e.to_string())?;
        conn.create_gc(gc, win, &CreateGCAux::new())
            .map_err(|e| e.to_string())?;
        conn.map_window(win).map_err(|e| e.to_string())?;
        conn.flush().map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let painted = Arc::new(Mutex::new(Vec::new()));
        let (stop2, painted2) = (stop.clone(), painted.clone());
        let join = std::thread::Builder::new()
            .name("probe".into())
            .spawn(move || {
                let interval = Duration::from_secs(1) / rate_hz.max(1);
                let start = Instant::now();
                let mut n = 0u32;
                while !stop2.load(Ordering::Relaxed) {
                    let t = now_us();
                    let bits = encode(t);
                    let (mut ones, mut zeros) = (Vec::new(), Vec::new());
                    for (i, &b) in bits.iter().enumerate() {
                        let r = Rectangle {
                            x: (i as u16 * BLOCK_W) as i16,
                            y: 0,
                            width: BLOCK_W,
                            height: BLOCK_H,
                        };
                        if b {
                            ones.push(r)
                        } else {
                            zeros.push(r)
                        }
                    }
                    let ok = conn
                        .change_gc(gc, &ChangeGCAux::new().foreground(0xffffff))
                        .and_then(|_| conn.poly_fill_rectangle(win, gc, &ones))
                        .and_then(|_| conn.change_gc(gc, &ChangeGCAux::new().foreground(0)))
                        .and_then(|_| conn.poly_fill_rectangle(win, gc, &zeros))
                        .is_ok()
                        && conn.flush().is_ok();
                    if !ok {
                        return;
                    }
                    if let Ok(mut p) = painted2.lock() {
                        p.push(t);
                    }
                    n += 1;
                    let next = start + interval * n;
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Probe {
            stop,
            painted,
            join: Some(join),
        })
    }

    /// The times painted so far (µs modulo 2^40), in order.
    pub fn painted(&self) -> Vec<u64> {
        self.painted.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Reads the strip at (`x`, `y`) of a display, as fast as asked.
pub struct Reader {
    conn: x11rb::rust_connection::RustConnection,
    root: u32,
    x: i16,
    y: i16,
}

impl Reader {
    pub fn open(display: &str, x: i16, y: i16) -> Result<Reader, String> {
        let (conn, screen) = x11rb::connect(Some(display)).map_err(|e| e.to_string())?;
        let root = conn.setup().roots[screen].root;
        Ok(Reader { conn, root, x, y })
    }

    /// Grab the strip's pixels now and decode them.
    pub fn read(&self) -> Result<Reading, String> {
        let img = self
            .conn
            .get_image(
                ImageFormat::Z_PIXMAP,
                self.root,
                self.x,
                self.y,
                WIDTH,
                HEIGHT,
                !0,
            )
            .map_err(|e| e.to_string())?
            .reply()
            .map_err(|e| e.to_string())?;
        Ok(read_pixels(&img.data, WIDTH as usize * 4))
    }
}

/// Figures from painted times and timed readings (both µs, one clock).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency {
    /// For every painted time, until it or a later one first shows: what a person feels.
    pub event_ms: Vec<f64>,
    /// For every time that shows, from its painting to its first showing.
    pub frame_ms: Vec<f64>,
    pub corrupt: usize,
    /// Stretches over 100 ms without a new value.
    pub freezes: usize,
    pub readings: usize,
}

/// Match readings `(read_at_us, Reading)` against `painted` times.
pub fn analyse(painted: &[u64], readings: &[(u64, Reading)]) -> Latency {
    let mut out = Latency {
        readings: readings.len(),
        ..Latency::default()
    };
    // First showing of each new value, in reading order.
    let mut shows: Vec<(u64, u64)> = Vec::new();
    // A freeze is > 100 ms without a new value, counted from the first reading to the last
    // (a picture that stops changing for good is a freeze too).
    let mut last_change = readings.first().map(|r| r.0);
    for &(at, r) in readings {
        match r {
            Reading::Time(t) => {
                if shows.last().is_none_or(|&(_, v)| t > v) {
                    if let Some(prev) = last_change {
                        if at.saturating_sub(prev) > 100_000 {
                            out.freezes += 1;
                        }
                    }
                    last_change = Some(at);
                    shows.push((at, t));
                    out.frame_ms.push((at.saturating_sub(t)) as f64 / 1e3);
                }
            }
            Reading::Corrupt => out.corrupt += 1,
            Reading::Absent => {}
        }
    }
    if let (Some(prev), Some(&(end, _))) = (last_change, readings.last()) {
        if end.saturating_sub(prev) > 100_000 {
            out.freezes += 1;
        }
    }
    // Event latency over the painted times the readings cover.
    let (Some(&(_, first)), Some(&(_, last))) = (shows.first(), shows.last()) else {
        return out;
    };
    let mut j = 0;
    for &p in painted.iter().filter(|&&p| p >= first && p <= last) {
        while j < shows.len() && shows[j].1 < p {
            j += 1;
        }
        if let Some(&(at, _)) = shows.get(j) {
            out.event_ms.push(at.saturating_sub(p) as f64 / 1e3);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_damage_is_caught() {
        for t in [0u64, 1, 123_456_789, (1 << 40) - 1] {
            assert_eq!(decode(&encode(t)), Reading::Time(t));
        }
        let mut bits = encode(987_654_321);
        bits[10] = !bits[10];
        assert_eq!(decode(&bits), Reading::Corrupt);
        bits[0] = false;
        assert_eq!(decode(&bits), Reading::Absent);
    }

    #[test]
    fn pixels_decode_from_block_centres() {
        let bits = encode(42_000_000);
        let stride = WIDTH as usize * 4;
        let mut px = vec![0u8; stride * HEIGHT as usize];
        for (i, &b) in bits.iter().enumerate() {
            for y in 0..HEIGHT as usize {
                for x in 0..BLOCK_W as usize {
                    let p = y * stride + (i * BLOCK_W as usize + x) * 4;
                    px[p..p + 4].fill(if b { 250 } else { 5 });
                }
            }
        }
        assert_eq!(read_pixels(&px, stride), Reading::Time(42_000_000));
    }

    #[test]
    fn a_painted_luma_plane_reads_back_through_grey_pixels() {
        let stride = WIDTH as usize + 10;
        let mut luma = vec![128u8; stride * HEIGHT as usize];
        paint_luma(&mut luma, stride, 77_000_123);
        // Grey (Y = R = G = B, chroma neutral) as a BGRA picture.
        let bgra: Vec<u8> = luma.iter().flat_map(|&y| [y, y, y, 255]).collect();
        assert_eq!(read_pixels(&bgra, stride * 4), Reading::Time(77_000_123));
        // A plane narrower than the strip is painted as far as it goes, without a panic.
        let mut narrow = vec![0u8; 20 * 4];
        paint_luma(&mut narrow, 20, 1);
    }

    #[test]
    fn latency_counts_events_and_frames() {
        // Painted every 4 ms; shown: 0 at 10 ms, 8 at 20 ms (4 was never shown).
        let painted = [0, 4_000, 8_000];
        let readings = [
            (10_000, Reading::Time(0)),
            (12_000, Reading::Time(0)),
            (20_000, Reading::Time(8_000)),
            (21_000, Reading::Corrupt),
        ];
        let l = analyse(&painted, &readings);
        assert_eq!(l.frame_ms, vec![10.0, 12.0]);
        // 0 → shown at 10; 4 → first later value shows at 20 (16 ms); 8 → 12 ms.
        assert_eq!(l.event_ms, vec![10.0, 16.0, 12.0]);
        assert_eq!(l.corrupt, 1);
        assert_eq!(l.freezes, 0);
    }

    #[test]
    fn a_picture_that_stops_changing_is_a_freeze() {
        let readings = [
            (0, Reading::Time(0)),
            (50_000, Reading::Time(40_000)),
            (400_000, Reading::Time(40_000)),
        ];
        assert_eq!(analyse(&[0, 40_000], &readings).freezes, 1);
    }
}
