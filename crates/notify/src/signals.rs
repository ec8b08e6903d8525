//! A clean signal slate for a child process.

use std::os::unix::process::CommandExt as _;
use std::process::Command;

/// Linux numbers signals 1 to 64 (`_NSIG` is 65); the kernel rejects the ones that cannot be
/// changed (SIGKILL, SIGSTOP) with `EINVAL`.
const LAST_SIGNAL: libc::c_int = 64;

/// Makes `command` start its program with every signal at its default action (`SIG_DFL`)
/// and an empty signal mask, whatever its parent ignored or blocked.
///
/// A signal handler does not survive `exec`, but an ignored signal (`SIG_IGN`) does, and so
/// does the signal mask; `std::process::Command` itself resets only SIGPIPE and the mask.
/// This resets every signal, SIGPIPE included, and empties the mask in the child between
/// `fork` and `exec`, as systemd does for each service it starts. For a
/// `tokio::process::Command`, pass `command.as_std_mut()`.
///
/// Spawning still reports errors as usual; a signal the kernel does not let us change is
/// skipped.
#[expect(
    unsafe_code,
    reason = "a child's signal dispositions can only be reset between fork and exec"
)]
pub fn reset_signal_dispositions(command: &mut Command) -> &mut Command {
    // SAFETY: the closure runs in the forked child before `exec`, where only
    // async-signal-safe functions may be called. It calls only `sigemptyset`, `sigaction` and
    // `sigprocmask` (all async-signal-safe in POSIX.1-2017, 2.4.3), on stack values; it does not
    // allocate, lock or touch any state shared with the parent.
    unsafe {
        command.pre_exec(|| {
            reset_in_child();
            Ok(())
        })
    }
}

/// Runs in the forked child: every signal to `SIG_DFL`, then an empty mask.
#[expect(unsafe_code, reason = "libc signal calls between fork and exec")]
fn reset_in_child() {
    // SAFETY: `sigaction` and `sigset_t` are plain C structs for which all-zero bytes are a
    // valid value; every pointer passed points to a live stack value; the calls are
    // async-signal-safe. Errors (a signal that cannot be changed) are deliberately ignored.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = libc::SIG_DFL;
        libc::sigemptyset(&raw mut action.sa_mask);
        for signal in 1..=LAST_SIGNAL {
            if !kernel_default(signal) {
                libc::sigaction(signal, &raw const action, std::ptr::null_mut());
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &raw const empty, std::ptr::null_mut());
    }
}

/// Sets `signal` to `SIG_DFL` with the `rt_sigaction` system call itself. The C library's
/// `sigaction` refuses the signals it keeps for its threads (32 and 33 in glibc), yet an
/// ignored one is inherited like any other (CI runners have been seen to pass signal 32
/// ignored). A kernel `struct sigaction` for `SIG_DFL` is all zeros: handler, flags, restorer
/// (where the architecture has one) and mask; the buffer is larger than any layout.
#[cfg(target_os = "linux")]
#[expect(unsafe_code, reason = "a raw system call between fork and exec")]
fn kernel_default(signal: libc::c_int) -> bool {
    let action = [0_u64; 4];
    // The size of the kernel's signal set: 64 signals.
    let set_size: libc::size_t = 8;
    // SAFETY: `syscall` is async-signal-safe; `action` is a live, zeroed buffer at least as
    // large as the kernel's `struct sigaction`; the old action is not requested (null).
    let done = unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            signal,
            action.as_ptr(),
            std::ptr::null_mut::<u64>(),
            set_size,
        )
    };
    done == 0
}

/// Elsewhere the C library's `sigaction` does it all.
#[cfg(not(target_os = "linux"))]
fn kernel_default(_signal: libc::c_int) -> bool {
    false
}
