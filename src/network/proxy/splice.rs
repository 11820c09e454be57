//! Zero-copy relaying for a stream no toxic acts on: splice(2) moves the bytes from the
//! source socket into a pipe and from the pipe into the destination socket inside the
//! kernel, so they never pass through the proxy's memory.
//!
//! Only bulk streams splice (see [`super::pump`]): for a small request a splice costs the
//! same two system calls as a read and a write, and a pipe costs two file descriptors,
//! which a thousand idle connections should not hold.

use std::io;
use std::os::fd::OwnedFd;
use std::sync::OnceLock;

use bytes::BytesMut;
use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The pipe capacity asked for: larger than Linux's 64 KiB default, so each splice moves
/// more (the system may refuse; the default then serves).
const PIPE_SIZE: i32 = 256 * 1024;
/// The capacity of a pipe whose size the system would not tell.
const DEFAULT_PIPE_SIZE: usize = 64 * 1024;

/// Turns splicing off for the whole process (`PROVSTEN_NO_SPLICE=1`): the copy path
/// then carries every stream, for comparison or on a kernel that refuses splice.
pub(crate) fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        !std::env::var("PROVSTEN_NO_SPLICE").is_ok_and(|v| !v.is_empty() && v != "0")
    })
}

/// Whether `e` says the sockets or pipe cannot splice at all (rather than that this
/// connection failed): nothing was moved, and the copy path can take over.
pub(crate) fn unsupported(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error().map(Errno::from_raw),
        Some(Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP)
    )
}

/// A pipe between two sockets, and how many bytes it holds.
pub(crate) struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
    cap: usize,
    held: usize,
}

impl Pipe {
    pub(crate) fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        let cap = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_SIZE))
            .or_else(|_| fcntl(&write, FcntlArg::F_GETPIPE_SZ))
            .ok()
            .and_then(|c| usize::try_from(c).ok())
            .unwrap_or(DEFAULT_PIPE_SIZE);
        Ok(Pipe {
            read,
            write,
            cap,
            held: 0,
        })
    }

    /// Bytes in the pipe, not yet passed on.
    pub(crate) fn held(&self) -> usize {
        self.held
    }

    /// Moves what `src` has, as much as the pipe takes, into the pipe: `Ok(0)` is the end
    /// of stream, `WouldBlock` means nothing to read (and clears `src`'s readiness).
    pub(crate) fn fill(&mut self, src: &TcpStream) -> io::Result<usize> {
        let room = self.cap - self.held;
        let n = src.try_io(Interest::READABLE, || {
            Ok(splice(src, None, &self.write, None, room, flags())?)
        })?;
        self.held += n;
        Ok(n)
    }

    /// Moves what the pipe holds, as much as `dst` takes, into `dst`: `WouldBlock` means
    /// `dst` is full (and clears its readiness).
    pub(crate) fn flush(&mut self, dst: &TcpStream) -> io::Result<usize> {
        let held = self.held;
        let n = dst.try_io(Interest::WRITABLE, || {
            Ok(splice(&self.read, None, dst, None, held, flags())?)
        })?;
        self.held -= n;
        Ok(n)
    }

    /// Reads out everything the pipe holds (for the toxics, which need the bytes).
    pub(crate) fn take(&mut self, buf: &mut BytesMut) -> io::Result<()> {
        buf.reserve(self.held);
        let start = buf.len();
        buf.resize(start + self.held, 0);
        let mut got = 0;
        while got < self.held {
            match nix::unistd::read(&self.read, &mut buf[start + got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(Errno::EINTR) => {}
                Err(e) => {
                    buf.truncate(start + got);
                    return Err(e.into());
                }
            }
        }
        buf.truncate(start + got);
        let short = self.held - got;
        self.held = 0;
        if short > 0 {
            return Err(io::Error::other(format!(
                "the pipe gave back {got} of the {} bytes it held",
                got + short
            )));
        }
        Ok(())
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}
