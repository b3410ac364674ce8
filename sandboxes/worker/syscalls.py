"""Thin ctypes wrappers for the Linux calls the worker needs, and the candidates' seccomp filter.

Everything here is a direct system call with its errno turned into ``OSError``; nothing else
happens in this module. The seccomp filter (:func:`candidate_filter`) is a classic BPF program
built from two syscall tables (x86_64, aarch64); on other architectures it is reported missing.
"""

from __future__ import annotations

import ctypes
import errno
import os
import signal

CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACE_FLAGS = (CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER
                   | CLONE_NEWPID | CLONE_NEWNET)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
AT_FDCWD = -100
AT_RECURSIVE = 0x8000
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
PR_SET_PDEATHSIG = 1
PR_SET_DUMPABLE = 4
PR_SET_NAME = 15
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4
CAP_SETPCAP = 8
CAP_SYS_ADMIN = 21
KEYCTL_JOIN_SESSION_KEYRING = 1

MACHINE = os.uname().machine
#: per architecture: audit arch, and the numbers of the calls named below
_TABLES: dict[str, dict[str, int]] = {
    "x86_64": dict(
        _audit_arch=0xC000003E, clone=56, clone3=435, unshare=272, setns=308, mount=165,
        umount2=166, pivot_root=155, open_tree=428, move_mount=429, fsopen=430, fsconfig=431,
        fsmount=432, fspick=433, mount_setattr=442, keyctl=250, add_key=248, request_key=249,
        inotify_init=253, inotify_init1=294, fanotify_init=300, io_uring_setup=425,
        io_uring_enter=426, io_uring_register=427, userfaultfd=323, perf_event_open=298,
        bpf=321, kexec_load=246, kexec_file_load=320, init_module=175, finit_module=313,
        delete_module=176, reboot=169, swapon=167, swapoff=168, acct=163, syslog=103,
        quotactl=179, quotactl_fd=443, open_by_handle_at=304, name_to_handle_at=303,
        lookup_dcookie=212, vhangup=153, sethostname=170, setdomainname=171, uselib=134,
        iopl=172, ioperm=173, ptrace=101, process_vm_readv=310, process_vm_writev=311,
        memfd_secret=447, shmget=29, msgget=68, semget=64, mq_open=240, socket=41,
        seccomp=317, socketpair=53, pipe=22, pipe2=293, memfd_create=319, fadvise64=221,
        readahead=187, mincore=27, cachestat=451, preadv2=327, pwritev2=328, io_setup=206,
        io_destroy=207, io_getevents=208, io_submit=209, io_cancel=210, io_pgetevents=333,
        pidfd_open=434, pidfd_getfd=438, pidfd_send_signal=424, process_madvise=440,
        process_mrelease=448, sysinfo=99, statx=332, statfs=137, fstatfs=138,
        ustat=136, listmount=458, statmount=457, kcmp=312, sync=162, syncfs=306, mmap=9,
        madvise=28, prctl=157, getsockopt=55,
    ),
    "aarch64": dict(
        _audit_arch=0xC00000B7, clone=220, clone3=435, unshare=97, setns=268, mount=40,
        umount2=39, pivot_root=41, open_tree=428, move_mount=429, fsopen=430, fsconfig=431,
        fsmount=432, fspick=433, mount_setattr=442, keyctl=219, add_key=217, request_key=218,
        inotify_init1=26, fanotify_init=262, io_uring_setup=425, io_uring_enter=426,
        io_uring_register=427, userfaultfd=282, perf_event_open=241, bpf=280, kexec_load=104,
        kexec_file_load=294, init_module=105, finit_module=273, delete_module=106, reboot=142,
        swapon=224, swapoff=225, acct=89, syslog=116, quotactl=60, quotactl_fd=443,
        open_by_handle_at=265, name_to_handle_at=264, lookup_dcookie=18, vhangup=58,
        sethostname=161, setdomainname=162, ptrace=117, process_vm_readv=270,
        process_vm_writev=271, memfd_secret=447, shmget=194, msgget=186, semget=190,
        mq_open=180, socket=198, seccomp=277, socketpair=199, pipe2=59, memfd_create=279,
        fadvise64=223, readahead=213, mincore=232, cachestat=451, preadv2=286, pwritev2=287,
        io_setup=0, io_destroy=1, io_submit=2, io_cancel=3, io_getevents=4, io_pgetevents=292,
        pidfd_open=434, pidfd_getfd=438, pidfd_send_signal=424, process_madvise=440,
        process_mrelease=448, sysinfo=179, statx=291, statfs=43, fstatfs=44,
        listmount=458, statmount=457, kcmp=272, sync=81, syncfs=267, mmap=222, madvise=233,
        prctl=167, getsockopt=209,
    ),
}
_TABLES["arm64"] = _TABLES["aarch64"]
NR: dict[str, int] = _TABLES.get(MACHINE, {})

#: calls a candidate never needs, each denied with EPERM. Namespaces (the door to everything
#: else), kernel keyrings (not namespaced: they outlive jobs and can hold host secrets),
#: inotify/fanotify (would watch files shared with the host), io_uring (runs socket and file
#: operations past this filter), SysV IPC and POSIX message queues (kernel objects with their
#: own id counters), tracing and kernel administration. Then the host-wide state no namespace
#: covers, which a job could otherwise leave for the next one or read about the host:
#:
#: * page-cache residency: ``fadvise64``, ``readahead``, ``mincore``, ``cachestat`` (and
#:   ``preadv2``/``pwritev2`` with ``RWF_NOWAIT``/``RWF_DONTCACHE``, in :data:`ABSENT`);
#: * host-wide inode counters: ``pipe``/``pipe2`` and ``memfd_create`` (every pipe, socket and
#:   memfd takes its inode number from a counter shared by the whole host, which ``fstat``
#:   reads; sockets are refused in :func:`build_filter`); ``kcmp`` (kernel object order);
#: * host facts: ``sysinfo`` (RAM, load, process count, uptime), ``statfs``/``fstatfs``/
#:   ``ustat`` (sizes of host filesystems, and of ``/dev``: half the host's RAM); ``sync``/``syncfs`` (flush every host filesystem: host-wide I/O
#:   that the caller waits for in uninterruptible sleep).
#:
#: ``mount``/``umount2`` and ``clone(CLONE_NEWPID)`` pass: the fork server, which installs the
#: filter on itself once (its children inherit it), needs them for every job; a candidate has
#: no capability, so the kernel refuses them to it.
DENIED = (
    "unshare", "setns", "pivot_root", "open_tree", "move_mount", "fsopen",
    "fsconfig", "fsmount", "fspick", "mount_setattr", "keyctl", "add_key", "request_key",
    "inotify_init", "inotify_init1", "fanotify_init", "io_uring_setup", "io_uring_enter",
    "io_uring_register", "userfaultfd", "perf_event_open", "bpf", "kexec_load",
    "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
    "swapoff", "acct", "syslog", "quotactl", "quotactl_fd", "open_by_handle_at",
    "name_to_handle_at", "lookup_dcookie", "vhangup", "sethostname", "setdomainname", "uselib",
    "iopl", "ioperm", "ptrace", "process_vm_readv", "process_vm_writev", "memfd_secret",
    "shmget", "msgget", "semget", "mq_open",
    "fadvise64", "readahead", "mincore", "cachestat", "pipe", "pipe2", "memfd_create", "kcmp",
    "sysinfo", "statfs", "fstatfs", "ustat", "sync", "syncfs",
)
#: calls that fail with ENOSYS, as on a kernel built without them, so that the C library
#: falls back to an older call where it has one: ``preadv2``/``pwritev2`` (their flags make a
#: read that only succeeds from the page cache, ``RWF_NOWAIT``, or drop what a read cached,
#: ``RWF_DONTCACHE``; glibc falls back to ``preadv`` for flag-less calls), ``statx`` (always
#: reports the mount id, a host-wide counter; glibc falls back to ``fstatat``), Linux AIO
#: (``io_setup`` claims host-wide AIO events; ``io_submit`` does unthrottled direct I/O whose
#: completion delays the job's kill), pidfds (each one's inode number is a host-wide process
#: counter, and it opens the path to namespace inode numbers), ``process_madvise``/
#: ``process_mrelease`` and ``listmount``/``statmount`` (the host's mount table).
ABSENT = (
    "preadv2", "pwritev2", "statx", "io_setup", "io_destroy", "io_getevents", "io_submit",
    "io_cancel", "io_pgetevents", "pidfd_open", "pidfd_getfd", "pidfd_send_signal",
    "process_madvise", "process_mrelease", "listmount", "statmount", "clone3",
)
#: ``socket``/``socketpair`` fail with EAFNOSUPPORT for every family: a job has no network
#: (no interface is up in its namespace), and each socket's inode number would come from the
#: host-wide counter described at :data:`DENIED`.
NO_SOCKETS = ("socket", "socketpair")
CLONE_PIDFD = 0x00001000  #: a clone that returns a pidfd (refused, see :data:`ABSENT`)
MAP_HUGETLB = 0x00040000  #: every hugetlb mapping takes an inode number from the host counter
MADV_MERGEABLE = 12  #: KSM: merged pages tell concurrent jobs (and the host) apart by timing
PR_SET_MEMORY_MERGE = 67  #: KSM for the whole process
SOL_SOCKET = 1
#: socket options that read host-wide ids: SO_COOKIE, SO_NETNS_COOKIE, SO_PEERPIDFD
GLOBAL_ID_OPTIONS = (57, 71, 77)

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                       ctypes.c_char_p]
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                       ctypes.c_ulong]
libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
libc.unshare.argtypes = [ctypes.c_int]
libc.sethostname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
# clone() through PyDLL: the GIL stays held across the call, so the child returns into an
# interpreter whose state is exactly the parent's (one thread, GIL held)
_pylibc = ctypes.PyDLL(None, use_errno=True)
_pylibc.syscall.restype = ctypes.c_long


def check(ret: int, what: str) -> int:
    """Raise ``OSError`` (with errno) when a libc call returned -1."""
    if ret == -1:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return ret


def unshare(flags: int) -> None:
    check(libc.unshare(flags), f"unshare({flags:#x})")


def mount(src: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    check(libc.mount(src.encode() if src else None, target.encode(),
                     fstype.encode() if fstype else None, flags,
                     data.encode() if data else None), f"mount {target}")


def umount(target: str) -> None:
    check(libc.umount2(target.encode(), MNT_DETACH), f"umount {target}")


def pivot_root(new: bytes, old: bytes) -> bool:
    """``pivot_root(2)``; False where this architecture's number is unknown."""
    nr = NR.get("pivot_root")
    if nr is None:
        return False
    check(libc.syscall(nr, new, old), "pivot_root")
    return True


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr_recursive(target: str, attrs: int) -> None:
    """Set ``MOUNT_ATTR_*`` flags on ``target`` and every mount below it, in one call
    (``mount_setattr(AT_RECURSIVE)``, Linux 5.12+; ENOSYS before)."""
    nr = NR.get("mount_setattr")
    if nr is None:
        raise OSError(errno.ENOSYS, f"mount_setattr: unknown syscall number on {MACHINE}")
    attr = _MountAttr(attrs, 0, 0, 0)
    check(libc.syscall(ctypes.c_long(nr), ctypes.c_long(AT_FDCWD), target.encode(),
                       ctypes.c_ulong(AT_RECURSIVE), ctypes.byref(attr),
                       ctypes.c_size_t(ctypes.sizeof(attr))), f"mount_setattr {target}")


def mounts_below(target: str) -> list[str]:
    """Mount points at or below ``target`` in this mount namespace, outermost first (from
    ``/proc/self/mountinfo``; its octal escapes decoded)."""
    out = []
    prefix = target.rstrip("/") + "/"
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            point = line.split()[4]
            for esc in (b"\\040", b"\\011", b"\\012", b"\\134"):
                point = point.replace(esc, bytes([int(esc[1:], 8)]))
            path = os.fsdecode(point)
            if path == target or path.startswith(prefix):
                out.append(path)
    return out


def enter_time_namespace() -> None:
    """Put this process's future children in a new time namespace whose monotonic and boot
    clocks start near zero (they would otherwise read the host's uptime). Needs ``/proc``."""
    import time

    unshare(CLONE_NEWTIME)
    mono = int(time.clock_gettime(time.CLOCK_MONOTONIC))
    boot = int(time.clock_gettime(time.CLOCK_BOOTTIME))
    # a non-dumpable process's /proc files belong to root, which a user namespace may not map
    dumpable = libc.prctl(3, 0, 0, 0, 0)  # PR_GET_DUMPABLE
    prctl(PR_SET_DUMPABLE, 1)
    try:
        with open("/proc/self/timens_offsets", "w") as f:
            f.write(f"monotonic {-mono} 0\nboottime {-boot} 0\n")
    finally:
        prctl(PR_SET_DUMPABLE, max(dumpable, 0))


def sethostname(name: str) -> None:
    raw = name.encode()
    check(libc.sethostname(raw, len(raw)), "sethostname")


def prctl(option: int, arg: int) -> None:
    check(libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def set_name(name: bytes) -> None:
    """Name this process for ``ps``/``top``/``perf`` (``PR_SET_NAME``; best effort)."""
    libc.prctl(PR_SET_NAME, ctypes.cast(ctypes.c_char_p(name), ctypes.c_void_p).value or 0,
               0, 0, 0)


def join_new_session_keyring() -> int:
    """Give this process a fresh, empty session keyring (so nothing below it inherits the
    host's); returns its serial. Raises OSError where keyrings exist but the join fails."""
    nr = NR.get("keyctl")
    if nr is None:
        return 0
    ret = libc.syscall(nr, KEYCTL_JOIN_SESSION_KEYRING, None)
    if ret == -1 and ctypes.get_errno() == errno.ENOSYS:
        return 0  # a kernel without keys: nothing to inherit
    return check(ret, "keyctl(JOIN_SESSION_KEYRING)")


def clone_pid_namespace() -> int:
    """``fork()`` into a new PID namespace, whose pid 1 the child is: 0 in the child, its pid
    in the parent. When that child dies the kernel kills every process of its namespace.

    A raw ``clone(2)`` (``os.fork`` cannot pass flags): Python's at-fork hooks do not run in
    the child, so a caller that relies on them (``random`` reseeding) runs them itself. Only
    for single-threaded callers.
    """
    nr = NR.get("clone")
    if nr is None:
        raise OSError(errno.ENOSYS, f"clone: unknown syscall number on {MACHINE}")
    return check(_pylibc.syscall(ctypes.c_long(nr), ctypes.c_ulong(CLONE_NEWPID | signal.SIGCHLD),
                                 ctypes.c_long(0), ctypes.c_long(0), ctypes.c_long(0),
                                 ctypes.c_long(0)), "clone(CLONE_NEWPID)")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_CAP_HEADER = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
_NO_CAPS = (_CapData * 2)()


def drop_inheritable_capabilities() -> None:
    """Empty the bounding and ambient sets (what an ``execve`` could regain); the caller keeps
    the capabilities it holds now."""
    cap = 0
    while libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
        cap += 1
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)


def keep_capabilities_across_exec(caps: tuple[int, ...]) -> None:
    """Make ``caps`` (held now) survive an ``execve`` by a non-root uid: add them to the
    inheritable set, then raise them as ambient capabilities."""
    header = _CapHeader(0x20080522, 0)
    data = (_CapData * 2)()
    check(libc.capget(ctypes.byref(header), data), "capget")
    for cap in caps:
        data[cap // 32].inheritable |= 1 << (cap % 32)
    check(libc.capset(ctypes.byref(header), data), "capset")
    for cap in caps:
        check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0), "prctl(ambient)")


def clear_capabilities() -> None:
    """Empty the effective, permitted and inheritable sets (one ``capset``)."""
    check(libc.capset(ctypes.byref(_CAP_HEADER), _NO_CAPS), "capset")


# --------------------------------------------------------------------------- seccomp

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_JSET_K = 0x45
_BPF_RET_K = 0x06
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4
_X32_BIT = 0x40000000


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _arg_low(i: int) -> int:
    """Offset of the low 32 bits of syscall argument ``i`` in ``struct seccomp_data``."""
    return 16 + 8 * i


def build_filter(table: dict[str, int]) -> list[tuple[int, int, int, int]]:
    """The candidates' filter as ``(code, jt, jf, k)`` instructions for one syscall table.

    A call from another architecture (e.g. the 32-bit ``int 0x80`` entry) kills the process;
    x32 calls and the calls in :data:`ABSENT` fail with ENOSYS, those in :data:`DENIED` with
    EPERM, sockets with EAFNOSUPPORT. Five calls are judged by an argument, checked first
    (``mmap`` is frequent; every other allowed call is a constant verdict the kernel caches
    and never runs this program for): ``mmap`` with ``MAP_HUGETLB``, ``madvise`` with
    ``MADV_MERGEABLE``, ``clone`` with a namespace flag other than ``CLONE_NEWPID`` or with
    ``CLONE_PIDFD``, ``prctl(PR_SET_MEMORY_MERGE)`` fail with EPERM, and ``getsockopt`` of the
    options in :data:`GLOBAL_ID_OPTIONS` with ENOPROTOOPT; everything else is allowed.
    """
    prog: list[list[object]] = []  # [code, jt-label, jf-label, k]

    def emit(code: int, k: int, jt: object = 0, jf: object = 0) -> None:
        prog.append([code, jt, jf, k])

    emit(_BPF_LD_W_ABS, 4)  # seccomp_data.arch
    emit(_BPF_JEQ_K, table["_audit_arch"], jt=1, jf=0)
    emit(_BPF_RET_K, _RET_KILL_PROCESS)
    emit(_BPF_LD_W_ABS, 0)  # seccomp_data.nr
    if table is _TABLES["x86_64"]:
        emit(_BPF_JGE_K, _X32_BIT, jt="enosys")
    checked = ("mmap", "madvise", "clone", "prctl", "getsockopt")
    for name in checked:
        emit(_BPF_JEQ_K, table[name], jt=name)
    for names, label in ((ABSENT, "enosys"), (DENIED, "eperm"), (NO_SOCKETS, "eafnosupport")):
        for name in names:
            if name in table:
                emit(_BPF_JEQ_K, table[name], jt=label)
    emit(_BPF_RET_K, _RET_ALLOW)
    labels: dict[str, int] = {}
    labels["mmap"] = len(prog)
    emit(_BPF_LD_W_ABS, _arg_low(3))  # flags
    emit(_BPF_JSET_K, MAP_HUGETLB, jt="eperm")
    emit(_BPF_RET_K, _RET_ALLOW)
    labels["madvise"] = len(prog)
    emit(_BPF_LD_W_ABS, _arg_low(2))  # advice
    emit(_BPF_JEQ_K, MADV_MERGEABLE, jt="eperm")
    emit(_BPF_RET_K, _RET_ALLOW)
    labels["clone"] = len(prog)
    emit(_BPF_LD_W_ABS, _arg_low(0))  # flags
    emit(_BPF_JSET_K, (NAMESPACE_FLAGS & ~CLONE_NEWPID) | CLONE_PIDFD, jt="eperm")
    emit(_BPF_RET_K, _RET_ALLOW)
    labels["prctl"] = len(prog)
    emit(_BPF_LD_W_ABS, _arg_low(0))  # option
    emit(_BPF_JEQ_K, PR_SET_MEMORY_MERGE, jt="eperm")
    emit(_BPF_RET_K, _RET_ALLOW)
    labels["getsockopt"] = len(prog)
    emit(_BPF_LD_W_ABS, _arg_low(1))  # level
    emit(_BPF_JEQ_K, SOL_SOCKET, jt=0, jf="allow")
    emit(_BPF_LD_W_ABS, _arg_low(2))  # option name
    for option in GLOBAL_ID_OPTIONS:
        emit(_BPF_JEQ_K, option, jt="enoprotoopt")
    emit(_BPF_RET_K, _RET_ALLOW)
    for label, err in (("eperm", errno.EPERM), ("enosys", errno.ENOSYS),
                       ("eafnosupport", errno.EAFNOSUPPORT),
                       ("enoprotoopt", errno.ENOPROTOOPT)):
        labels[label] = len(prog)
        emit(_BPF_RET_K, _RET_ERRNO | err)
    labels["allow"] = len(prog)
    emit(_BPF_RET_K, _RET_ALLOW)
    out = []
    for i, (code, jt, jf, k) in enumerate(prog):
        offs = []
        for target in (jt, jf):
            off = labels[target] - i - 1 if isinstance(target, str) else int(target)  # type: ignore[arg-type]
            if not 0 <= off <= 255:
                raise ValueError(f"seccomp jump out of range at instruction {i}")
            offs.append(off)
        out.append((int(code), offs[0], offs[1], int(k)))  # type: ignore[arg-type]
    return out


class CandidateFilter:
    """The seccomp filter; the fork server installs it on itself, so every child inherits it
    (one install per fork server: the kernel's per-syscall verdict cache is built once)."""

    def __init__(self) -> None:
        if not NR:
            raise OSError(errno.ENOSYS, f"no syscall table for {MACHINE}")
        insns = build_filter(NR)
        self._array = (_SockFilter * len(insns))(*[_SockFilter(*x) for x in insns])
        self._prog = _SockFprog(len(insns), self._array)
        self._ptr = ctypes.byref(self._prog)
        self._nr = NR["seccomp"]
        self.flags = _SECCOMP_FILTER_FLAG_SPEC_ALLOW

    def install(self) -> None:
        """Install in the calling process (needs ``no_new_privs`` or CAP_SYS_ADMIN).

        ``SPEC_ALLOW`` keeps the kernel from forcing the speculative-store-bypass mitigation
        on the candidate (a slowdown that protects nothing here: the candidate has no secret
        of ours in its address space); kernels without the flag get a plain filter.
        """
        if libc.syscall(self._nr, _SECCOMP_SET_MODE_FILTER, self.flags, self._ptr) == 0:
            return
        if ctypes.get_errno() == errno.EINVAL and self.flags:
            self.flags = 0
            check(libc.syscall(self._nr, _SECCOMP_SET_MODE_FILTER, 0, self._ptr), "seccomp")
            return
        e = ctypes.get_errno()
        raise OSError(e, f"seccomp: {os.strerror(e)}")
