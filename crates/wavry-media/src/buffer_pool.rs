//! A fixed set of reusable buffers (triple buffering and the like).
//!
//! [`BufferPool::take`] lends out one of the buffers as a [`Pooled`] handle; dropping the handle puts
//! the buffer back. Buffers are moved in and out of a free list whose capacity is the pool size,
//! so lending and returning never touch the heap. A handle keeps its pool alive, so a pool can be
//! replaced (e.g. after a resolution change) while old buffers are still being read.

use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, PoisonError};

/// A pool of `T`s lent out one at a time.
pub struct BufferPool<T> {
    shared: Arc<Shared<T>>,
}

struct Shared<T> {
    free: Mutex<Vec<T>>,
    size: usize,
}

impl<T> BufferPool<T> {
    /// A pool holding `items` (its size is their number).
    pub fn new(items: Vec<T>) -> Self {
        let size = items.len();
        let mut free = Vec::with_capacity(size);
        free.extend(items);
        Self {
            shared: Arc::new(Shared {
                free: Mutex::new(free),
                size,
            }),
        }
    }

    /// Lend out a free buffer, or `None` when every buffer is in use.
    pub fn take(&self) -> Option<Pooled<T>> {
        let item = lock(&self.shared.free).pop()?;
        Some(Pooled {
            item: Some(item),
            home: Arc::clone(&self.shared),
        })
    }

    /// How many buffers the pool has in all.
    pub fn size(&self) -> usize {
        self.shared.size
    }

    /// How many buffers are free right now.
    pub fn available(&self) -> usize {
        lock(&self.shared.free).len()
    }
}

// A panic while holding the lock leaves the free list consistent (push and pop are atomic
// with respect to unwinding), so a poisoned lock is safe to keep using.
fn lock<T>(m: &Mutex<Vec<T>>) -> std::sync::MutexGuard<'_, Vec<T>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A buffer lent out by a [`BufferPool`]; goes back to it when dropped.
pub struct Pooled<T> {
    // `Some` until dropped.
    item: Option<T>,
    home: Arc<Shared<T>>,
}

impl<T> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        match &self.item {
            Some(item) => item,
            None => unreachable!("a pooled item is present until drop"),
        }
    }
}

impl<T> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        match &mut self.item {
            Some(item) => item,
            None => unreachable!("a pooled item is present until drop"),
        }
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            // Never grows: the free list was created with room for every item.
            lock(&self.home.free).push(item);
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Pooled").field(&**self).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lends_each_buffer_once_and_takes_it_back() {
        let pool = BufferPool::new(vec![vec![1u8], vec![2], vec![3]]);
        let a = pool.take().unwrap();
        let b = pool.take().unwrap();
        let c = pool.take().unwrap();
        assert!(pool.take().is_none());
        let mut seen = [a[0], b[0], c[0]];
        seen.sort();
        assert_eq!(seen, [1, 2, 3]);
        drop(b);
        assert_eq!(pool.available(), 1);
        let again = pool.take().unwrap();
        assert_eq!(again[0], 2);
    }

    #[test]
    fn handles_outlive_their_pool() {
        let pool = BufferPool::new(vec![String::from("x")]);
        let mut s = pool.take().unwrap();
        drop(pool);
        s.push('y');
        assert_eq!(&*s, "xy");
    }
}
