//! Capture → convert → encode → decode on a real Xvfb screen (skipped without Xvfb): windows
//! of known colours and sizes (many edges) are captured while one of them changes colour every
//! frame, and each codec present must give the captured pictures back at PSNR ≥ 35 dB.

use crate::common;

use common::{have_encoder, planes, psnr};
use std::time::{Duration, Instant};
use wavry_media::capture::x11::{X11Capturer, X11Config};
use wavry_media::capture::{CaptureTarget, Capturer, PacerConfig};
use wavry_media::codec::open_encoder_from;
use wavry_media::testing::TestDisplay;
use wavry_media::{open_decoder, Codec, DecoderConfig, EncodedPacket, EncoderConfig, FramePool};

const FRAMES: usize = 20;
/// Frames the first (VBV-capped, hence blurred) keyframe takes to sharpen: see tests/codec.rs.
const SETTLED: usize = 8;

#[test]
fn captured_screen_survives_each_codec() {
    let Some(display) = TestDisplay::start(640, 360) else {
        return;
    };
    let conn = display.connect();
    // A grid of 16×9 windows of distinct colours, each 40×40, plus odd-sized ones on top.
    for gy in 0..9u32 {
        for gx in 0..16u32 {
            let rgb = ((gx * 16) << 16) | ((gy * 28) << 8) | (((gx + gy) * 9) & 0xff);
            display.paint(&conn, (gx * 40) as i16, (gy * 40) as i16, 40, 40, rgb);
        }
    }
    display.paint(&conn, 101, 57, 33, 17, 0xffffff);
    display.paint(&conn, 333, 201, 7, 90, 0x000000);
    let changing = display.paint(&conn, 480, 240, 120, 80, 0x102030);

    let mut codecs = vec![
        (Codec::H264, "libx264"),
        (Codec::Hevc, "libx265"),
        (Codec::Av1, "libaom-av1"),
    ];
    if cfg!(feature = "openh264") {
        codecs.push((Codec::H264, "openh264"));
    }
    for (codec, name) in codecs {
        if name != "openh264" && !have_encoder(name) {
            continue;
        }
        let mut cap = X11Capturer::open(X11Config {
            display: Some(display.name().into()),
            pacer: PacerConfig::new(60, Some(Duration::from_millis(20))),
            target: CaptureTarget::WholeScreen,
        })
        .expect("open capture");
        let mut cfg = EncoderConfig::new(codec, cap_size(&mut cap), 30, 6_000_000);
        cfg.hardware = false;
        let mut enc = open_encoder_from(&cfg, &[name]).expect("encoder");
        let mut dec = if name == "openh264" {
            #[cfg(feature = "openh264")]
            {
                wavry_media::codec::open_openh264_decoder().expect("decoder")
            }
            #[cfg(not(feature = "openh264"))]
            unreachable!()
        } else {
            open_decoder(&DecoderConfig {
                hardware: false,
                ..DecoderConfig::new(codec)
            })
            .expect("decoder")
        };
        let pool = FramePool::new(enc.input_layout(), cfg.size, FramePool::DEFAULT_FRAMES);
        let mut pkt = EncodedPacket::default();
        let mut scores = Vec::new();
        for i in 0..FRAMES {
            display.repaint(&conn, changing, 0x102030 + (i as u32 * 0x0b0703));
            let frame = cap
                .next_frame(Instant::now() + Duration::from_secs(5))
                .expect("capture")
                .expect("a frame within 5 s");
            let mut yuv = pool
                .convert(&frame.view(), i as i64)
                .expect("convert")
                .expect("a free frame");
            drop(frame);
            let src = planes(&yuv);
            enc.send(&mut yuv).expect("encode");
            assert!(enc.receive(&mut pkt).expect("packet"), "{name}: lag");
            dec.send(&pkt.data, pkt.pts).expect("decode");
            let pic = dec.receive().expect("picture").expect("decoder lag");
            scores.push(psnr(&planes(pic), &src));
        }
        let settled = scores[SETTLED..]
            .iter()
            .cloned()
            .fold(f64::INFINITY, f64::min);
        eprintln!(
            "{name}: captured 640x360 screen, PSNR first {:.1} dB, from frame {SETTLED} on \
             min {settled:.1} dB",
            scores[0]
        );
        assert!(settled >= 35.0, "{name}: PSNR {settled:.1} dB: {scores:?}");
    }
}

fn cap_size(cap: &mut X11Capturer) -> wavry_media::PixelSize {
    cap.next_frame(Instant::now() + Duration::from_secs(5))
        .expect("capture")
        .expect("a first frame")
        .size()
}
