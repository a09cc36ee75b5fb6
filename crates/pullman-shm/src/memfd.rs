//! Anonymous shared memory: memfds, their seals, read-only reopening, and mappings.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use bytes::BytesMut;
use parking_lot::Mutex;

/// Seals every arena carries: its size is fixed for good, so the peer can never shrink it
/// under our mapping (which would turn our reads into SIGBUS).
pub(crate) const SIZE_SEALS: libc::c_int = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW;

/// Live mappings (start, length), so tests and the SDK can tell whether bytes lie in shared
/// memory. A few entries per link; a linear scan is fine.
static MAPPINGS: Mutex<Vec<(usize, usize)>> = Mutex::new(Vec::new());

/// Whether `ptr` points into a shared-memory mapping of this process.
pub fn is_shared_memory(ptr: *const u8) -> bool {
    let p = ptr as usize;
    MAPPINGS
        .lock()
        .iter()
        .any(|&(start, len)| p >= start && p < start + len)
}

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A new sealable memfd of `len` bytes.
pub(crate) fn create(name: &str, len: usize) -> io::Result<OwnedFd> {
    let name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `name` is a valid C string; the result is checked.
    let fd = check(unsafe {
        libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
    })?;
    // SAFETY: the kernel just returned `fd`; nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain syscall on a descriptor we own.
    check(unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) })?;
    Ok(fd)
}

/// Adds `seals` to a memfd.
pub(crate) fn seal(fd: BorrowedFd<'_>, seals: libc::c_int) -> io::Result<()> {
    // SAFETY: plain fcntl on a live descriptor.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) }).map(drop)
}

/// The seals a memfd carries.
pub(crate) fn seals(fd: BorrowedFd<'_>) -> io::Result<libc::c_int> {
    // SAFETY: plain fcntl on a live descriptor.
    check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GET_SEALS) })
}

/// The size of the file behind `fd`.
pub(crate) fn size(fd: BorrowedFd<'_>) -> io::Result<u64> {
    // SAFETY: `st` is plain old data that fstat fills in.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is a live, writable stat struct.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st.st_size as u64)
}

/// A second descriptor for the same memory, opened read-only: a mapping with `PROT_WRITE`
/// through it fails with `EACCES`, whatever its holder does.
pub(crate) fn reopen_read_only(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    let path = CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `path` is a valid C string; the result is checked.
    let ro = check(unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) })?;
    // SAFETY: the kernel just returned `ro`; nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(ro) })
}

/// A shared mapping of a whole memfd, read-only or read-write. Unmapped on drop.
#[derive(Debug)]
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the mapping is plain memory shared with another process; this type hands out only
// atomics and raw copies, never references that assume no one else writes.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `fd`, shared, read-only or read-write.
    pub(crate) fn map(fd: impl AsFd, len: usize, writable: bool) -> io::Result<Mapping> {
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping chosen by the kernel; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd.as_fd().as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        MAPPINGS.lock().push((ptr.as_ptr() as usize, len));
        Ok(Mapping { ptr, len, writable })
    }

    /// Start of the mapping.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Length of the mapping.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The u64 at `offset` (8-aligned, in bounds: offsets come from `layout`, never from the
    /// peer).
    pub(crate) fn u64_at(&self, offset: usize) -> &AtomicU64 {
        assert!(offset % 8 == 0 && offset + 8 <= self.len);
        // SAFETY: in bounds and aligned (the mapping is page aligned); AtomicU64 has the
        // layout of u64, and all access to shared memory goes through atomics.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU64>() }
    }

    /// The u32 at `offset`.
    pub(crate) fn u32_at(&self, offset: usize) -> &AtomicU32 {
        assert!(offset % 4 == 0 && offset + 4 <= self.len);
        // SAFETY: as in `u64_at`.
        unsafe { &*self.ptr.as_ptr().add(offset).cast::<AtomicU32>() }
    }

    /// `n` u64 words from `offset`.
    pub(crate) fn words(&self, offset: usize, n: usize) -> &[AtomicU64] {
        assert!(offset % 8 == 0 && offset + n * 8 <= self.len);
        // SAFETY: as in `u64_at`, for `n` consecutive words.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr().add(offset).cast(), n) }
    }

    /// Copies `data` in at `offset`. Only the owner writes, and only into regions the peer
    /// is not reading (the allocator's business).
    pub(crate) fn write(&self, offset: usize, data: &[u8]) {
        assert!(self.writable, "write to a read-only mapping");
        assert!(offset
            .checked_add(data.len())
            .is_some_and(|end| end <= self.len));
        // SAFETY: in bounds (checked above); source and destination cannot overlap, as the
        // source is private memory.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        }
    }

    /// Appends `len` bytes from `offset` to `out` (bounds checked by the caller against
    /// values it validated; checked again here).
    pub(crate) fn copy_out(&self, offset: usize, len: usize, out: &mut BytesMut) {
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len));
        out.reserve(len);
        // SAFETY: in bounds; `reserve` made room for `len` bytes past `out.len()`, which the
        // copy fills before `set_len` exposes them. The peer may be writing the same bytes
        // (it owns them), which yields arbitrary bytes in our private copy; we validate the
        // copy, never the source.
        unsafe {
            let at = out.len();
            std::ptr::copy_nonoverlapping(
                self.ptr.as_ptr().add(offset),
                out.as_mut_ptr().add(at),
                len,
            );
            out.set_len(at + len);
        }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        let start = self.ptr.as_ptr() as usize;
        MAPPINGS.lock().retain(|&(s, _)| s != start);
        // SAFETY: unmaps exactly what `map` mapped; no reference into it outlives `self`
        // (borrowed regions hold an `Arc<Mapping>`).
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
