//! The static arena, arena views and the weight blob: the only `unsafe` code
//! generated models rely on lives here.

use core::cell::UnsafeCell;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// One statically allocated block of `N` f32 (`4 * N` bytes) of scratch memory
/// for all intermediate tensors of a model. Zero-initialised, so it lands in
/// `.bss` and costs no binary size. Access goes through [`StaticArena::lock`],
/// which hands out one exclusive guard at a time. Tensors live in it at the
/// offsets kiln's planner chose (in f32 elements); images are stored NHWC.
///
/// On x86-64 and aarch64 the block starts on a 64-byte boundary (a cache
/// line, and one AVX-512 vector): a tensor whose offset is a multiple of 16
/// is then read and written in whole lines by the vector kernels, none of
/// whose loads splits across two lines. wasm32 keeps f32 alignment (its
/// linear memory layout, and the simulated device's figures, unchanged).
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    repr(C, align(64))
)]
pub struct StaticArena<const N: usize> {
    cell: UnsafeCell<[f32; N]>,
    busy: AtomicBool,
}

// SAFETY: the contents are only reachable through an `ArenaGuard`, and `lock`
// hands out at most one guard at a time (the `busy` flag is taken with an
// acquire compare-exchange and released on drop), so no two threads ever see
// the cell at once.
unsafe impl<const N: usize> Sync for StaticArena<N> {}

impl<const N: usize> StaticArena<N> {
    /// An unlocked arena of `N` zeros; `const`, so it can initialise a
    /// `static`.
    pub const fn new() -> Self {
        Self {
            cell: UnsafeCell::new([0.0; N]),
            busy: AtomicBool::new(false),
        }
    }

    /// Exclusive access to the arena; waits (spinning) while another caller
    /// holds it. Locking twice on one thread without dropping the first guard
    /// never returns.
    pub fn lock(&self) -> ArenaGuard<'_, N> {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        ArenaGuard { arena: self }
    }
}

impl<const N: usize> Default for StaticArena<N> {
    fn default() -> Self {
        Self::new()
    }
}

/// Exclusive access to a [`StaticArena`]; releases it when dropped.
pub struct ArenaGuard<'a, const N: usize> {
    arena: &'a StaticArena<N>,
}

impl<const N: usize> ArenaGuard<'_, N> {
    /// The whole arena as an array (e.g. a program's input buffer).
    pub fn as_array(&self) -> &[f32; N] {
        // SAFETY: as in `deref`.
        unsafe { &*self.arena.cell.get() }
    }

    /// The whole arena as a writable array.
    pub fn as_array_mut(&mut self) -> &mut [f32; N] {
        // SAFETY: as in `deref_mut`.
        unsafe { &mut *self.arena.cell.get() }
    }
}

impl<const N: usize> Deref for ArenaGuard<'_, N> {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        // SAFETY: this guard is the only one alive (see `lock`), so no mutable
        // reference to the cell exists elsewhere.
        unsafe { &*self.arena.cell.get() }
    }
}

impl<const N: usize> DerefMut for ArenaGuard<'_, N> {
    fn deref_mut(&mut self) -> &mut [f32] {
        // SAFETY: as in `deref`; `&mut self` makes this borrow unique too.
        unsafe { &mut *self.arena.cell.get() }
    }
}

impl<const N: usize> Drop for ArenaGuard<'_, N> {
    fn drop(&mut self) {
        self.arena.busy.store(false, Ordering::Release);
    }
}

/// Over-aligned wrapper for `include_bytes!` data, so the weight blob
/// can be read as `&[f32]` in place:
/// `static W: &Aligned<[u8]> = &Aligned(*include_bytes!("w.bin"));`
/// 64-byte aligned on x86-64 and aarch64 (a cache line, as
/// [`StaticArena`]), 16-byte on other targets.
#[cfg_attr(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    repr(C, align(64))
)]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    repr(C, align(16))
)]
pub struct Aligned<T: ?Sized>(pub T);

/// Views a little-endian f32 blob as `&[f32]` without copying (`bytes.len() / 4`
/// values). kiln-codegen's blob holds every constant of a model back to back,
/// each already in the layout its kernel reads (documented at each kernel).
///
/// # Panics
/// If `bytes` is not 4-byte aligned or its length is not a multiple of 4; the
/// generated code always passes an [`Aligned`] blob written by kiln-codegen.
pub fn weights_f32(bytes: &[u8]) -> &[f32] {
    // SAFETY: every bit pattern is a valid f32, and `align_to` only puts
    // correctly aligned, in-bounds elements into the middle slice. The blob is
    // little-endian and big-endian targets are rejected at compile time.
    let (head, body, tail) = unsafe { bytes.align_to::<f32>() };
    assert!(
        head.is_empty() && tail.is_empty(),
        "kiln weight blob is not an aligned f32 array"
    );
    body
}

/// The bytes of `x` in memory order: little-endian f32s (big-endian targets
/// are rejected), e.g. to write a model's output as is.
pub fn f32_bytes(x: &[f32]) -> &[u8] {
    // SAFETY: an f32 slice is `size_of_val(x)` initialised bytes, and u8 has
    // alignment 1; the borrow keeps `x` alive and unchanged.
    unsafe { core::slice::from_raw_parts(x.as_ptr().cast::<u8>(), core::mem::size_of_val(x)) }
}

/// The bytes of `x`, writable: reading little-endian f32 data into them fills
/// `x` without a copy.
pub fn f32_bytes_mut(x: &mut [f32]) -> &mut [u8] {
    // SAFETY: as in `f32_bytes`; every byte pattern written is a valid f32,
    // and the exclusive borrow of `x` is handed on to the byte view.
    unsafe {
        core::slice::from_raw_parts_mut(x.as_mut_ptr().cast::<u8>(), core::mem::size_of_val(x))
    }
}

/// Splits the arena into `K` read-only views and one writable view.
/// Each region is `(offset, len)` in f32 elements. Read regions may overlap
/// each other but not the written region.
///
/// # Panics
/// If a region is out of bounds or a read overlaps the write: the planner never
/// produces either.
#[inline]
pub fn io2<const K: usize>(
    arena: &mut [f32],
    reads: [(usize, usize); K],
    write: (usize, usize),
) -> ([&[f32]; K], &mut [f32]) {
    let (head, rest) = arena.split_at_mut(write.0);
    let (out, tail) = rest.split_at_mut(write.1);
    let (head, tail): (&[f32], &[f32]) = (head, tail);
    let tail_start = write.0 + write.1;
    let views = core::array::from_fn(|i| {
        let (off, len) = reads[i];
        if off + len <= write.0 {
            &head[off..off + len]
        } else {
            assert!(off >= tail_start, "arena read overlaps the written tensor");
            &tail[off - tail_start..off - tail_start + len]
        }
    });
    (views, out)
}

/// [`io2`] with one read view, the common case: `read` and `write` are
/// `(offset, len)` in f32 elements.
///
/// # Panics
/// As [`io2`]: if a region is out of bounds or the read overlaps the write.
#[inline]
pub fn io1(arena: &mut [f32], read: (usize, usize), write: (usize, usize)) -> (&[f32], &mut [f32]) {
    let ([x], y) = io2(arena, [read], write);
    (x, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    static ARENA: StaticArena<8> = StaticArena::new();

    #[test]
    fn arena_guard_gives_exclusive_writable_memory_and_releases_it() {
        {
            let mut a = ARENA.lock();
            a[3] = 7.0;
            assert_eq!(a.len(), 8);
        }
        let a = ARENA.lock();
        assert_eq!(a[3], 7.0);
        assert!(ARENA.busy.load(Ordering::Relaxed));
        drop(a);
        assert!(!ARENA.busy.load(Ordering::Relaxed));
    }

    #[test]
    fn arena_guard_gives_the_whole_arena_as_an_array() {
        static IO: StaticArena<3> = StaticArena::new();
        let mut g = IO.lock();
        *g.as_array_mut() = [1.0, 2.0, 3.0];
        assert_eq!(g.as_array(), &[1.0, 2.0, 3.0]);
    }

    #[test]
    fn f32_byte_views_are_little_endian_and_writable() {
        let mut x = [1.0f32, -2.0];
        assert_eq!(
            f32_bytes(&x),
            &[0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]
        );
        f32_bytes_mut(&mut x)[4..].copy_from_slice(&0.5f32.to_le_bytes());
        assert_eq!(x, [1.0, 0.5]);
        assert!(f32_bytes(&[]).is_empty());
    }

    #[test]
    fn weights_blob_reads_little_endian_floats() {
        static BLOB: &Aligned<[u8]> = &Aligned([0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0xc0]);
        assert_eq!(weights_f32(&BLOB.0), &[1.0, -2.0]);
    }

    #[test]
    #[should_panic(expected = "aligned f32")]
    fn weights_blob_of_odd_length_is_rejected() {
        static BLOB: &Aligned<[u8]> = &Aligned([0u8; 6]);
        weights_f32(&BLOB.0);
    }

    #[test]
    fn io_views_on_both_sides_of_the_write() {
        let mut a: [f32; 10] = core::array::from_fn(|i| i as f32);
        let ([x, z], y) = io2(&mut a, [(0, 2), (7, 3)], (3, 4));
        assert_eq!(x, &[0.0, 1.0]);
        assert_eq!(z, &[7.0, 8.0, 9.0]);
        y.fill(-1.0);
        assert_eq!(a[3..7], [-1.0; 4]);
    }

    #[test]
    #[should_panic(expected = "overlaps")]
    fn io_rejects_overlap() {
        let mut a = [0.0f32; 10];
        let _ = io1(&mut a, (2, 4), (4, 4));
    }
}
