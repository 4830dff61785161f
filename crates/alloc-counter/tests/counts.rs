//! The counter sees what it should: an allocation on the measuring thread, one on another
//! thread only in the all-threads scope, and nothing outside a measurement.

#[global_allocator]
static GLOBAL: alloc_counter::Counting = alloc_counter::Counting;

use alloc_counter::{measure, Counts, Scope};

#[test]
fn counts_by_scope() {
    let (v, c) = measure(Scope::ThisThread, || std::hint::black_box(vec![1u8; 64]));
    assert_eq!(c.allocs, 1);
    drop(v);
    let (_, c) = measure(Scope::ThisThread, || {
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(vec![1u8; 64]))
                .join()
                .unwrap();
        })
    });
    // The spawn itself allocates here; the vector on the other thread does not count.
    let (_, all) = measure(Scope::AllThreads, || {
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(vec![1u8; 64]))
                .join()
                .unwrap();
        })
    });
    assert!(all.allocs > c.allocs, "{all:?} vs {c:?}");
    let (_, none) = measure(Scope::ThisThread, || std::hint::black_box(1 + 1));
    assert_eq!(none, Counts::default());
}
