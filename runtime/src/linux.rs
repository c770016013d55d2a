//! Process services for a generated model's `no_std` Linux program (host and
//! aarch64 musl): file descriptors, argv, a monotonic clock, peak RSS, the C
//! `main` entry point and the panic handler (see [`linux_main!`](crate::linux_main!)).
//!
//! Both targets link a C library (glibc, or musl's static libc.a shipped
//! with rustc), so this module declares the few libc functions it needs
//! instead of using std, whose formatting, I/O and panic machinery would be
//! most of the program's code. Every `unsafe` of the program lives here.

use core::ffi::{CStr, c_char, c_int, c_void};

use crate::text::TextOut;

mod sys {
    use core::ffi::{c_char, c_int, c_long, c_void};

    /// `struct timespec` of the (64-bit time_t on every 64-bit) Linux ABI.
    #[repr(C)]
    pub struct Timespec {
        pub tv_sec: c_long,
        pub tv_nsec: c_long,
    }

    pub const CLOCK_MONOTONIC: c_int = 1;
    pub const O_RDONLY: c_int = 0;
    pub const O_CLOEXEC: c_int = 0o2_000_000;
    pub const EINTR: c_int = 4;

    #[link(name = "c")]
    unsafe extern "C" {
        pub fn read(fd: c_int, buf: *mut c_void, count: usize) -> isize;
        pub fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
        pub fn open(path: *const c_char, flags: c_int, ...) -> c_int;
        pub fn close(fd: c_int) -> c_int;
        pub fn clock_gettime(clock: c_int, tp: *mut Timespec) -> c_int;
        pub fn strerror(errnum: c_int) -> *const c_char;
        pub fn __errno_location() -> *mut c_int;
        pub fn abort() -> !;
    }
}

/// An error number from the C library (`errno`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Errno(pub c_int);

impl Errno {
    /// The calling thread's current `errno`.
    fn last() -> Self {
        // SAFETY: `__errno_location` (glibc and musl) returns a valid pointer
        // to the calling thread's errno, readable for the thread's lifetime.
        Errno(unsafe { *sys::__errno_location() })
    }

    /// Appends the C library's message and the number, as std prints an
    /// I/O error: `No such file or directory (os error 2)`.
    pub fn describe<W: TextOut>(self, out: &mut W) {
        // SAFETY: strerror returns a NUL-terminated string that stays valid
        // until the next strerror call; it is copied out before returning.
        let msg = unsafe { CStr::from_ptr(sys::strerror(self.0)) };
        out.bytes(msg.to_bytes()).str(" (os error ");
        match u64::try_from(self.0) {
            Ok(n) => out.num(n),
            Err(_) => out.str("?"),
        };
        out.str(")");
    }
}

/// A file descriptor this program may use but does not close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(c_int);

/// Standard input (descriptor 0).
pub const STDIN: Fd = Fd(0);
/// Standard output (descriptor 1).
pub const STDOUT: Fd = Fd(1);
/// Standard error (descriptor 2).
pub const STDERR: Fd = Fd(2);

impl Fd {
    /// A descriptor the caller owns for as long as it uses this `Fd`. A
    /// wrong number gives `EBADF` errors, never memory unsafety.
    pub const fn from_raw(fd: c_int) -> Self {
        Fd(fd)
    }

    /// One `read(2)` into `buf`, retried on `EINTR`: the number of bytes read,
    /// `Ok(0)` at end of file.
    ///
    /// # Errors
    /// The `errno` of a failed `read(2)` other than `EINTR`.
    pub fn read(self, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            // SAFETY: `buf` is valid for writes of `buf.len()` bytes and
            // exclusively borrowed for the call.
            let n = unsafe { sys::read(self.0, buf.as_mut_ptr().cast::<c_void>(), buf.len()) };
            match usize::try_from(n) {
                Ok(n) => return Ok(n),
                Err(_) if Errno::last().0 == sys::EINTR => continue,
                Err(_) => return Err(Errno::last()),
            }
        }
    }

    /// Reads until `buf` is full or the end of file; returns the number of
    /// bytes read.
    ///
    /// # Errors
    /// The `errno` of the first failed `read(2)` (bytes read before it are
    /// in `buf` but not counted).
    pub fn read_full(self, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut done = 0;
        while done < buf.len() {
            match self.read(&mut buf[done..])? {
                0 => break,
                n => done += n,
            }
        }
        Ok(done)
    }

    /// Reads to the end of file, keeping the first `buf.len()` bytes in
    /// `buf`; returns how many bytes there were in all (may exceed `buf.len()`,
    /// so a caller can say how long a wrong-sized input was).
    ///
    /// # Errors
    /// The `errno` of the first failed `read(2)`.
    pub fn read_to_end_into(self, buf: &mut [u8]) -> Result<usize, Errno> {
        let mut total = self.read_full(buf)?;
        if total == buf.len() {
            let mut rest = [0u8; 4096];
            loop {
                match self.read(&mut rest)? {
                    0 => break,
                    n => total += n,
                }
            }
        }
        Ok(total)
    }

    /// Writes all of `bytes` (`write(2)` in a loop, retried on `EINTR`).
    ///
    /// # Errors
    /// The `errno` of a failed `write(2)`, or `Errno(0)` if it wrote nothing.
    /// Part of `bytes` may have been written before the error.
    pub fn write_all(self, mut bytes: &[u8]) -> Result<(), Errno> {
        while !bytes.is_empty() {
            // SAFETY: `bytes` is valid for reads of `bytes.len()` bytes.
            let n = unsafe { sys::write(self.0, bytes.as_ptr().cast::<c_void>(), bytes.len()) };
            match usize::try_from(n) {
                Ok(0) => return Err(Errno(0)),
                Ok(n) => bytes = &bytes[n.min(bytes.len())..],
                Err(_) if Errno::last().0 == sys::EINTR => continue,
                Err(_) => return Err(Errno::last()),
            }
        }
        Ok(())
    }
}

/// A file opened for reading; closed when dropped.
#[derive(Debug)]
pub struct File(Fd);

impl File {
    /// Opens `path` read-only (`O_RDONLY | O_CLOEXEC`).
    ///
    /// # Errors
    /// The `errno` of a failed `open(2)`, e.g. `Errno(2)` for a missing file.
    pub fn open(path: &CStr) -> Result<Self, Errno> {
        // SAFETY: `path` is a valid NUL-terminated string; the variadic mode
        // argument is not read without O_CREAT.
        let fd = unsafe { sys::open(path.as_ptr(), sys::O_RDONLY | sys::O_CLOEXEC) };
        if fd < 0 {
            Err(Errno::last())
        } else {
            Ok(File(Fd(fd)))
        }
    }

    /// The descriptor, valid while this `File` lives.
    pub fn fd(&self) -> Fd {
        self.0
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // SAFETY: the descriptor was opened by `File::open` and is closed once.
        unsafe { sys::close(self.0.0) };
    }
}

/// Buffered text output to a descriptor, formatted with [`TextOut`]: a line
/// goes out in one `write(2)` when it fits in [`FdWriter::CAPACITY`] bytes.
/// The first error is kept and reported by [`FdWriter::finish`]; later writes
/// are dropped. One buffer size, so the text code exists once in a program.
pub struct FdWriter {
    fd: Fd,
    buf: [u8; FdWriter::CAPACITY],
    len: usize,
    error: Option<Errno>,
}

impl FdWriter {
    /// Size of the buffer in bytes.
    pub const CAPACITY: usize = 512;

    /// An empty writer to `fd`; nothing is written before the buffer fills or
    /// [`FdWriter::finish`] is called. Dropping it without `finish` loses what
    /// is buffered.
    pub const fn new(fd: Fd) -> Self {
        Self {
            fd,
            buf: [0; Self::CAPACITY],
            len: 0,
            error: None,
        }
    }

    fn flush(&mut self) {
        if self.error.is_none()
            && let Err(e) = self.fd.write_all(&self.buf[..self.len])
        {
            self.error = Some(e);
        }
        self.len = 0;
    }

    /// Writes out what is buffered.
    ///
    /// # Errors
    /// The first error of this writer (from this or an earlier flush), if any.
    pub fn finish(mut self) -> Result<(), Errno> {
        self.flush();
        self.error.map_or(Ok(()), Err)
    }
}

impl TextOut for FdWriter {
    #[inline(never)]
    fn bytes(&mut self, mut b: &[u8]) -> &mut Self {
        while !b.is_empty() {
            if self.len == Self::CAPACITY {
                self.flush();
            }
            let n = b.len().min(Self::CAPACITY - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&b[..n]);
            self.len += n;
            b = &b[n..];
        }
        self
    }
}

/// Standard error with a line-sized buffer (call `finish` to write it out).
pub fn stderr() -> FdWriter {
    FdWriter::new(STDERR)
}

/// Nanoseconds of `CLOCK_MONOTONIC` (0 if the clock is unavailable, which
/// Linux does not allow).
pub fn monotonic_nanos() -> u64 {
    let mut t = sys::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec for the call.
    let rc = unsafe { sys::clock_gettime(sys::CLOCK_MONOTONIC, &mut t) };
    if rc != 0 {
        return 0;
    }
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000_000).saturating_add(nanos)
}

/// Peak resident set size in KiB: `VmHWM` of /proc/self/status (`None` where
/// there is none). Not `getrusage`: its `ru_maxrss` keeps the high-water
/// mark of the process image before `execve`, i.e. of whoever forked us.
pub fn peak_rss_kib() -> Option<u64> {
    let file = File::open(c"/proc/self/status").ok()?;
    let mut buf = [0u8; 8192];
    let n = file.fd().read_full(&mut buf).ok()?;
    vm_hwm_kib(&buf[..n])
}

/// The number of the `VmHWM:` line of a /proc status text.
fn vm_hwm_kib(status: &[u8]) -> Option<u64> {
    let line = status
        .split(|c| *c == b'\n')
        .find_map(|l| l.strip_prefix(b"VmHWM:"))?;
    let digits = line.trim_ascii_start();
    let end = digits
        .iter()
        .position(|c| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    crate::text::parse_usize(&digits[..end]).map(|v| v as u64)
}

/// The program's arguments (`argv`), each a C string.
#[derive(Debug)]
pub struct Args {
    argv: *const *const c_char,
    len: usize,
    next: usize,
}

impl Args {
    /// The arguments C's `main` received: `argc` entries of `argv`, program
    /// name first; null entries are skipped, and a null `argv` gives none.
    ///
    /// # Safety
    /// `argv` must point to `argc` valid NUL-terminated strings that live,
    /// unchanged, until the process exits (what C's `main` receives).
    pub unsafe fn from_raw(argc: c_int, argv: *const *const c_char) -> Self {
        Args {
            argv,
            len: if argv.is_null() {
                0
            } else {
                usize::try_from(argc).unwrap_or(0)
            },
            next: 0,
        }
    }
}

impl Iterator for Args {
    type Item = &'static CStr;

    fn next(&mut self) -> Option<&'static CStr> {
        while self.next < self.len {
            // SAFETY: `next < argc`, so the slot is inside argv (`from_raw`).
            let p = unsafe { *self.argv.add(self.next) };
            self.next += 1;
            if !p.is_null() {
                // SAFETY: a non-null argv entry is a NUL-terminated string
                // living until exit (`from_raw`).
                return Some(unsafe { CStr::from_ptr(p) });
            }
        }
        None
    }
}

/// The panic handler of a generated program: names the source location
/// (the message would need `core::fmt`) and aborts, as std does with
/// `panic = "abort"`.
pub fn panic_abort(info: &core::panic::PanicInfo) -> ! {
    let mut e = stderr();
    e.str("kiln program panicked");
    if let Some(at) = info.location() {
        e.str(" at ")
            .str(at.file())
            .str(":")
            .num(u64::from(at.line()));
    }
    e.str("\n");
    let _ = e.finish();
    // SAFETY: abort has no preconditions; it ends the process.
    unsafe { sys::abort() }
}

/// The C `main` of a program built with [`linux_main!`](crate::linux_main!): runs `main` on the
/// arguments and returns its exit status.
///
/// # Safety
/// `argc`/`argv` must be what the C runtime passed to `main`.
pub unsafe fn run_main(argc: c_int, argv: *const *const c_char, main: fn(Args) -> u8) -> c_int {
    // SAFETY: forwarded from the caller's contract.
    c_int::from(main(unsafe { Args::from_raw(argc, argv) }))
}

/// Emits the C `main` of a `#![no_std] #![no_main]` Linux program calling
/// `$main(args: Args) -> u8` (the exit status), and its panic handler. The
/// program must be built with `panic = "abort"` (release and dev profiles).
#[macro_export]
macro_rules! linux_main {
    ($main:path) => {
        mod kiln_linux_entry {
            #[unsafe(no_mangle)]
            extern "C" fn main(
                argc: core::ffi::c_int,
                argv: *const *const core::ffi::c_char,
            ) -> core::ffi::c_int {
                // SAFETY: the C runtime calls `main` once with the process's
                // argc/argv, which live until exit.
                unsafe { $crate::linux::run_main(argc, argv, $main) }
            }

            #[panic_handler]
            fn panic(info: &core::panic::PanicInfo) -> ! {
                $crate::linux::panic_abort(info)
            }

            // The pre-built core is compiled for unwinding and names this
            // symbol; with panic = "abort" nothing calls it, but a build
            // without LTO (a debug build) must still resolve it.
            #[unsafe(no_mangle)]
            extern "C" fn rust_eh_personality() {}
        }
    };
}

#[cfg(test)]
mod tests {
    extern crate std;

    use std::ffi::CString;
    use std::io::{Read, Write};
    use std::os::fd::AsRawFd;
    use std::vec::Vec;

    use super::*;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(std::format!("kiln-runtime-{}-{name}", std::process::id()))
    }

    fn c_path(p: &std::path::Path) -> CString {
        CString::new(p.to_str().unwrap()).unwrap()
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_file_reads_back_what_was_written_and_counts_extra_bytes() {
        let path = temp_path("read");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&c_path(&path)).unwrap();
        let mut head = [0u8; 100];
        let total = file.fd().read_to_end_into(&mut head).unwrap();
        assert_eq!(total, data.len());
        assert_eq!(head[..], data[..100]);
        drop(file);

        let file = File::open(&c_path(&path)).unwrap();
        let mut all = std::vec![0u8; 20_000];
        assert_eq!(file.fd().read_to_end_into(&mut all).unwrap(), data.len());
        assert_eq!(all[..data.len()], data[..]);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn opening_a_missing_file_names_the_error() {
        let err = File::open(c"/nonexistent/kiln/input.bin").unwrap_err();
        assert_eq!(err, Errno(2));
        struct S(Vec<u8>);
        impl TextOut for S {
            fn bytes(&mut self, b: &[u8]) -> &mut Self {
                self.0.extend_from_slice(b);
                self
            }
        }
        let mut s = S(Vec::new());
        err.describe(&mut s);
        assert_eq!(s.0, b"No such file or directory (os error 2)");
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn a_writer_flushes_long_text_in_order() {
        let path = temp_path("write");
        let f = std::fs::File::create(&path).unwrap();
        let mut w = FdWriter::new(Fd::from_raw(f.as_raw_fd()));
        let mut want = std::string::String::new();
        for i in 0..300u64 {
            w.str("{\"runs\":")
                .num(i)
                .str(",\"p50_us\":")
                .fixed3(i * 1001)
                .str("}\n");
            want += &std::format!(
                "{{\"runs\":{i},\"p50_us\":{:.3}}}\n",
                (i * 1001) as f64 / 1000.0
            );
        }
        assert!(want.len() > 3 * FdWriter::CAPACITY);
        w.finish().unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn writing_to_a_closed_descriptor_is_an_error() {
        let mut w = FdWriter::new(Fd::from_raw(-1));
        w.str("lost");
        assert_eq!(w.finish(), Err(Errno(9)));
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn write_all_then_read_round_trip_through_a_file() {
        let path = temp_path("roundtrip");
        let bytes: Vec<u8> = (0..70_000u32).map(|i| (i * 7) as u8).collect();
        {
            let f = std::fs::File::create(&path).unwrap();
            Fd::from_raw(f.as_raw_fd()).write_all(&bytes).unwrap();
        }
        let mut back = Vec::new();
        std::fs::File::open(&path)
            .unwrap()
            .read_to_end(&mut back)
            .unwrap();
        assert_eq!(back, bytes);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"!").unwrap();
        let file = File::open(&c_path(&path)).unwrap();
        let mut buf = std::vec![0u8; 70_001];
        assert_eq!(file.fd().read_full(&mut buf).unwrap(), 70_001);
        assert_eq!(buf[70_000], b'!');
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn the_monotonic_clock_does_not_go_back() {
        let a = monotonic_nanos();
        let b = monotonic_nanos();
        assert!(a > 0 && b >= a);
    }

    #[test]
    #[cfg_attr(miri, ignore)]
    fn peak_rss_is_reported_on_linux() {
        let kib = peak_rss_kib().unwrap();
        assert!(kib > 0);
    }

    #[test]
    fn vm_hwm_is_read_from_its_status_line() {
        let status = b"Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t    1234 kB\nVmRSS:\t 1000 kB\n";
        assert_eq!(vm_hwm_kib(status), Some(1234));
        assert_eq!(vm_hwm_kib(b"Name:\tx\n"), None);
        assert_eq!(vm_hwm_kib(b"VmHWM:\t kB\n"), None);
    }

    #[test]
    fn args_yield_each_argument_and_skip_null_entries() {
        let a = CString::new("kiln-model").unwrap();
        let b = CString::new("--bench").unwrap();
        let argv = [a.as_ptr(), core::ptr::null(), b.as_ptr()];
        // SAFETY: the strings outlive `args` (they live to the end of the
        // test, and the test drops nothing before reading).
        let args = unsafe { Args::from_raw(3, argv.as_ptr()) };
        let got: Vec<&CStr> = args.collect();
        assert_eq!(got, [a.as_c_str(), b.as_c_str()]);
        // SAFETY: a null argv with any count yields nothing.
        assert_eq!(unsafe { Args::from_raw(5, core::ptr::null()) }.count(), 0);
    }

    fn exit_seven(args: Args) -> u8 {
        7 + args.count() as u8
    }

    #[test]
    fn run_main_passes_arguments_and_returns_the_status() {
        let a = CString::new("prog").unwrap();
        let argv = [a.as_ptr()];
        // SAFETY: one valid argument, alive for the call.
        assert_eq!(unsafe { run_main(1, argv.as_ptr(), exit_seven) }, 8);
    }
}
