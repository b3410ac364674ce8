"""The fork server (``F``): a clean process that makes one candidate child per job.

Forked by the judge before any job (its memory holds no test data), it is pid 1 of its own PID
namespace, in its own network (no interface up), IPC, UTS and mount namespaces; its root is a
tmpfs holding read-only binds of ``/usr`` and the library dirs only (``pivot_root``, then a
chroot: host files are unreachable, and candidates cannot create user namespaces), plus
read-only binds of ``/dev/null`` and a few other device nodes. There is no ``/proc``.

Per job, before the child exists: a fresh tmpfs is mounted on the work dir (``/tmp``; nothing
a job writes, not even an inode number, reaches the next), and the child is created by
``clone(CLONE_NEWPID)``: it is pid 1 of a new PID namespace, so it sees no other process (not
even this server), its pid counter starts afresh, and when it is killed the kernel kills
everything it started. The child goes into this server's memory cgroup leaf, gets a new
session, rlimits, the sandbox uid with no groups (root hosts; each fork server has a uid no
other live sandbox on the host uses) or no capabilities (user-namespace hosts) and a
parent-death signal, writes READY and runs the candidate runner. The seccomp filter is the fork
server's own, installed once at the end of its setup and inherited by every child.

Requests from the judge (a SOCK_SEQPACKET socket, plain bytes):

* ``r`` + 3 fds: prepare the next child on those pipes; reply ``p<pid>`` (or ``e<why>``);
* ``k<pid>`` + 3 fds: kill that child and wait until its namespace is empty; reply
  ``d<wait status>`` at once, then prepare the next child as for ``r``;
* end of file: kill the child and exit.

Without namespaces (no root and no user namespaces, or ``namespaces=False``) each job gets a
fresh dir under the host's temp root, children are plain forks and the server is a child
subreaper that kills every descendant; the judge reports what is missing.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import resource
import signal
import socket
import sys
import time
from typing import Any

from sandboxes.worker import protocol as proto
from sandboxes.worker import runner, sysroot
from sandboxes.worker import syscalls as sc

JOB_FDS = 3  #: fds a prepare request carries: the child's job, reply and output pipes
USERNS_UID = 1000  #: the candidates' uid inside a user namespace (non-root hosts, containers)
WORK_DIR = "/tmp"  #: the job's work dir inside the private root (a fresh tmpfs per job)


def received_fds(anc: list[tuple[int, int, bytes]]) -> list[int]:
    """The file descriptors of an ``SCM_RIGHTS`` message (``socket.recv_fds`` without its
    per-call ``import array``)."""
    fds: list[int] = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            for i in range(0, len(data) - len(data) % 4, 4):
                fds.append(int.from_bytes(data[i:i + 4], sys.byteorder, signed=True))
    return fds


class ForkServer:
    """Runs as ``F``: sets up its namespaces once, then serves the judge's requests."""

    def __init__(self, cfg: dict[str, Any], sock: socket.socket, pid_ns: bool, userns: bool,
                 uid: int, cgroup_fd: int) -> None:
        self.cfg = cfg
        self.sock = sock
        self.pid_ns = pid_ns  # this server is pid 1 of its own pid namespace
        self.userns = userns  # unprivileged host: namespaces through a user namespace
        self.root = os.geteuid() == 0 and not userns  # real root: candidates get their own uid
        self.uid = USERNS_UID if userns else uid
        self.cgroup_fd = cgroup_fd  # cgroup.procs of this server's memory leaf, or -1
        self.mount_ns = False
        self.private_root = False
        self.seccomp: sc.CandidateFilter | None = None
        self.base_vsize = 0
        self.work_parent = ""
        self.own_tmp = ""  # a temp dir this server created (removed when it exits)
        self.jobs = 0
        self.workdir = WORK_DIR
        self.devnull = -1  # /dev/null, kept open at a high fd for the children's stdin
        self.nproc: int | None = None  # the children's RLIMIT_NPROC (None: counted per child)
        self.current = 0  # the newest child (prepared, or running a job)
        self.applied: list[str] = []
        self.missing: list[str] = []
        self.done: list[str] = []  # namespaces made so far (applied once setup is over)
        self.keyring_why = ""  # why no fresh session keyring could be joined ("" if it was)
        self.proc_fd = -1
        self.reexeced = False

    # -- setup ---------------------------------------------------------------
    def setup(self) -> None:
        """Set up this server: namespaces and its private root, then (with the in-memory
        copy of the system files) re-exec the interpreter from that copy and go on in the new
        image (:func:`resume`), else go on in place (:meth:`finish_setup`)."""
        cfg = self.cfg
        os.environ.clear()  # children inherit a clean environment
        os.environ.update({"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
                           "PYTHONIOENCODING": "utf-8"})
        try:  # /proc/<this pid>, kept to read this server's size once its setup is done
            self.proc_fd = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            self.proc_fd = -1
        try:  # nothing below this server inherits the host's session keyring
            sc.join_new_session_keyring()
        except OSError as e:
            self.keyring_why = str(e)
        why = "namespaces=False" if not cfg["namespaces"] else "not root, no user namespaces"
        if (self.root or self.userns) and cfg["namespaces"]:
            self._namespaces()
        else:
            self.missing += [f"network namespace ({why})", f"ipc namespace ({why})",
                             f"uts namespace ({why})", f"mount namespace ({why})",
                             f"private read-only root ({why})"]
        if not self.pid_ns:
            self.missing.append(f"pid namespace per job ({why})")
            try:
                sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            except OSError:
                pass
        if not self.root and not self.userns:
            self.missing.append("dedicated sandbox uid (not root, no user namespaces)")
        if not self.mount_ns:
            # a dir per job under a dir per fork server: the servers never touch each other's
            base = cfg.get("temp_root")
            if not base:  # namespaces were asked for but failed: no host temp root was made
                import tempfile

                base = self.own_tmp = tempfile.mkdtemp(prefix="codegym-fs-")
            self.work_parent = os.path.join(base, f"fs{cfg.get('fs_index', 0)}")
            os.makedirs(self.work_parent, mode=0o711, exist_ok=True)
            self.workdir = os.path.join(self.work_parent, "job")
            self.missing.append(f"fresh tmpfs per job ({why})")
        if self.private_root and cfg.get("_sysroot"):
            self._reexec()  # returns only when it could not
        self.finish_setup()

    def _namespaces(self) -> None:
        """Network, IPC, UTS, time and mount namespaces; the private root."""
        for flag, name in ((sc.CLONE_NEWNET, "network namespace"),
                           (sc.CLONE_NEWIPC, "ipc namespace"),
                           (sc.CLONE_NEWUTS, "uts namespace")):
            try:
                sc.unshare(flag)
                self.done.append(name)
            except OSError as e:
                self.missing.append(f"{name} ({e})")
        if "uts namespace" in self.done:
            try:
                sc.sethostname("sandbox")
            except OSError:
                pass
        try:
            sc.enter_time_namespace()
            self.done.append("time namespace (monotonic and boot clocks start at 0: no host "
                             "uptime)")
        except OSError as e:
            self.missing.append(f"time namespace ({e})")
        try:
            sc.unshare(sc.CLONE_NEWNS)
            sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
            self.mount_ns = True
        except OSError as e:
            self.missing.append(f"mount namespace ({e})")
        if self.mount_ns:
            try:
                self._build_root()
                self.private_root = True
            except OSError as e:
                self.missing.append(f"private read-only root ({e})")

    def _reexec(self) -> None:
        """Run the interpreter again, from the private root (the in-memory copy), and go on
        there (:func:`resume`): a candidate, a fork of this server, then inherits no mapping of
        a host file whose pages it could fault in, evict or time. The worker's sources come
        along through a memfd on stdin, this server's state in its config. Returns only if it
        could not (reported as missing)."""
        boot = getattr(sys.modules.get("__main__"), "_boot", None)
        argv = list(getattr(sys, "orig_argv", []))
        if not isinstance(boot, dict) or "-c" not in argv:
            self.missing.append("interpreter run from the in-memory copy (no boot loader)")
            return
        keep = [self.sock.fileno(), self.cgroup_fd, self.proc_fd]
        state = {"fds": {"sock": keep[0], "cgroup": keep[1], "proc": keep[2]},
                 "pid_ns": self.pid_ns, "userns": self.userns, "uid": self.uid,
                 "attrs": {k: getattr(self, k) for k in _RESUMED}}
        data = json.dumps({"modules": boot["modules"],
                           "config": dict(self.cfg, _resume=state)}).encode()
        try:
            fd = os.memfd_create("codegym-boot", 0)
            proto.write_all(fd, len(data).to_bytes(4, "big") + data)
            os.lseek(fd, 0, os.SEEK_SET)
            if self.userns:  # a non-root uid keeps capabilities across exec only as ambient
                sc.keep_capabilities_across_exec((sc.CAP_SYS_ADMIN, sc.CAP_SETPCAP))
            os.dup2(fd, 0)
            for k in keep:
                if k >= 0:
                    os.set_inheritable(k, True)
            os.execve(os.path.realpath(sys.executable), argv, dict(os.environ))
        except OSError as e:
            self.missing.append(f"interpreter run from the in-memory copy ({e})")

    def finish_setup(self) -> None:
        """Limits, capabilities and the seccomp filter (after which nothing is set up)."""
        cfg = self.cfg
        try:
            fd = os.open("statm", os.O_RDONLY, dir_fd=self.proc_fd) if self.proc_fd >= 0 \
                else os.open("/proc/self/statm", os.O_RDONLY)
            try:
                self.base_vsize = int(os.read(fd, 256).split()[0]) * os.sysconf("SC_PAGE_SIZE")
            finally:
                os.close(fd)
        except (OSError, ValueError, IndexError):
            self.base_vsize = 64 << 20
        if self.proc_fd >= 0:
            os.close(self.proc_fd)
            self.proc_fd = -1
        os.environ["HOME"] = os.environ["TMPDIR"] = self.workdir
        resource.setrlimit(resource.RLIMIT_FSIZE, (cfg["max_file_mb"] << 20,) * 2)
        resource.setrlimit(resource.RLIMIT_NOFILE, (cfg["max_open_files"],) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)  # this server never execs again
        try:
            self.seccomp = sc.CandidateFilter()
        except OSError as e:
            self.missing.append(f"seccomp filter ({e})")
        if self.keyring_why and self.seccomp is None:
            self.missing.append(f"fresh session keyring ({self.keyring_why})")
        if self.root:
            self.nproc = cfg["max_procs"]
        elif self.userns:  # counted per user namespace: this worker's processes only
            self.nproc = cfg["max_procs"] + 4
        if self.userns or self.root:
            sc.drop_inheritable_capabilities()
        if self.seccomp is not None:
            self.seccomp.install()  # inherited by every child
        self.applied += self.done
        if self.mount_ns:
            self.applied.append("mount namespace + fresh tmpfs work dir per job")
        if self.private_root:
            self.applied.append("private read-only root (pivot_root), no /proc, read-only /dev")
        if self.reexeced:
            self.applied.append("fork server runs from the in-memory copy (no host file "
                                "mapped into a job)")
        if self.pid_ns:
            self.applied.append("pid namespace per job")
        if self.root:
            self.applied.append(f"uid {self.uid} (this fork server's alone)")
        if self.userns:
            self.applied.append(f"user namespace (uid {USERNS_UID} inside, no capabilities)")
        if self.seccomp is not None:
            self.applied.append("seccomp filter (no keyrings, namespaces, mounts, inotify, "
                                "io_uring, AIO, SysV IPC, sockets, pipes, memfds, pidfds, "
                                "page-cache probes, host-fact calls, tracing)")
        self.applied += ["session", "rlimits", "clean environment", "no_new_privs"]

    def _bind_ro(self, src: str, dst: str, flags: int) -> None:
        """Bind ``src`` on ``dst`` read-only, every mount below it included."""
        sc.mount(src, dst, None, sc.MS_BIND | (sc.MS_REC if os.path.isdir(src) else 0))
        attrs = sc.MOUNT_ATTR_RDONLY
        for flag, attr in ((sc.MS_NOSUID, sc.MOUNT_ATTR_NOSUID),
                           (sc.MS_NODEV, sc.MOUNT_ATTR_NODEV),
                           (sc.MS_NOEXEC, sc.MOUNT_ATTR_NOEXEC)):
            if flags & flag:
                attrs |= attr
        try:
            sc.mount_setattr_recursive(dst, attrs)
            return
        except OSError:
            pass  # before Linux 5.12: remount each mount of the tree
        for point in sc.mounts_below(dst) or [dst]:
            sc.mount(None, point, None, sc.MS_BIND | sc.MS_REMOUNT | sc.MS_RDONLY | flags)

    def _build_root(self) -> None:
        """tmpfs root holding the system files read-only; ``pivot_root``, then chroot.

        With the worker's in-memory copy (:mod:`sandboxes.worker.sysroot`, the usual case) the
        root holds its entries only: no file of the host's disks is reachable. Without it,
        read-only binds of the host's system dirs. After ``pivot_root`` the host's root is
        unmounted from this namespace. The extra chroot into ``/r`` makes every candidate
        "chrooted" in the kernel's eyes (its root is not the namespace's root), which denies
        it ``unshare(CLONE_NEWUSER)`` -- the door to fake root and to every other namespace
        (the seccomp filter closes it too).
        """
        copy = bool(self.cfg.get("_sysroot"))
        if copy:
            base = sysroot.server_base(int(self.cfg.get("fs_index", 0)))
        else:
            base = "/tmp" if os.path.isdir("/tmp") else "/mnt"
        sc.mount("tmpfs", base, "tmpfs", sc.MS_NOSUID, "size=4m,mode=755")
        new = os.path.join(base, "r")
        os.mkdir(new, 0o755)
        sc.mount("tmpfs", new, "tmpfs", sc.MS_NOSUID, "size=4m,mode=755")  # remountable ro
        if copy:
            self._bind_copy(new)
        else:
            self._bind_host(new)
        for name in ("etc", "dev", "tmp"):
            os.makedirs(os.path.join(new, name), 0o755, exist_ok=True)
        for name in sysroot.ETC_FILES:
            # the copy mirrors the host's real paths (its symlinks point at host paths)
            src = (sysroot.TREE if copy else "") + os.path.realpath(name)
            if os.path.isfile(src):
                dst = new + name
                open(dst, "w").close()
                self._bind_ro(src, dst, sc.MS_NOSUID | sc.MS_NODEV)
        with open(os.path.join(new, "etc", "passwd"), "w") as f:
            f.write(f"root:x:0:0::/:/bin/false\nsandbox:x:{self.uid}:{self.uid}"
                    f"::{WORK_DIR}:/bin/false\n")
        with open(os.path.join(new, "etc", "group"), "w") as f:
            f.write(f"root:x:0:\nsandbox:x:{self.uid}:\n")
        # device nodes: read-only binds (data still flows; their timestamps, owner and mode on
        # the host cannot be changed through them)
        for dev in ("null", "zero", "full", "random", "urandom"):
            src = "/dev/" + dev
            if os.path.exists(src):
                dst = os.path.join(new, "dev", dev)
                open(dst, "w").close()
                self._bind_ro(src, dst, sc.MS_NOSUID | sc.MS_NOEXEC)
        os.chdir(base)
        if sc.pivot_root(b".", b"."):
            sc.check(sc.libc.umount2(b".", sc.MNT_DETACH), "umount old root")
            os.chroot("/r")
        else:
            os.chroot(new)
        os.chdir("/")
        sc.mount(None, "/", None, sc.MS_REMOUNT | sc.MS_BIND | sc.MS_RDONLY | sc.MS_NOSUID)

    def _bind_copy(self, new: str) -> None:
        """The top-level entries of the in-memory copy (``usr``, ``lib64`` -> ``usr/lib64``,
        ...), dirs bound read-only, symlinks recreated."""
        for name in sorted(os.listdir(sysroot.TREE)):
            if name in ("etc", "dev", "tmp", "proc", "r"):
                continue
            src = os.path.join(sysroot.TREE, name)
            dst = os.path.join(new, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            elif os.path.isdir(src):
                os.mkdir(dst, 0o755)
                self._bind_ro(src, dst, sc.MS_NOSUID | sc.MS_NODEV)

    def _bind_host(self, new: str) -> None:
        """Without the copy: read-only binds of the host's system dirs."""
        for name in ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            src = "/" + name
            dst = os.path.join(new, name)
            if os.path.islink(src):
                os.symlink(os.readlink(src), dst)
            elif os.path.isdir(src):
                os.mkdir(dst)
                self._bind_ro(src, dst, sc.MS_NOSUID | sc.MS_NODEV)
        # the worker's own interpreter when it lives elsewhere (pyenv, conda, ...): its stdlib
        # must stay importable for candidates
        system = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "tmp", "proc", "dev")
        for src in sorted({os.path.realpath(sys.base_prefix),
                           os.path.realpath(sys.base_exec_prefix)}):
            if not os.path.isdir(src) or src.strip("/").split("/", 1)[0] in system:
                continue
            dst = new + src
            os.makedirs(dst, 0o755, exist_ok=True)
            self._bind_ro(src, dst, sc.MS_NOSUID | sc.MS_NODEV)

    # -- loop ----------------------------------------------------------------
    def serve(self) -> None:
        # Candidates never see this server (each is pid 1 of a namespace below it); on hosts
        # without pid namespaces they share its uid only where it has no other choice.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        sc.prctl(sc.PR_SET_DUMPABLE, 0)
        self.sock.send(json.dumps({"applied": self.applied, "missing": self.missing}).encode())
        gc.collect()
        gc.freeze()
        sc.libc.malloc_trim(0)  # fewer resident pages: every fork copies their page tables
        # The hot requests and their replies are plain bytes, parsed without json or
        # exceptions: every page the loop touches costs a page fault per job (a fork
        # write-protects them all), so the loop touches few.
        sock = self.sock
        anc_size = socket.CMSG_SPACE(JOB_FDS * 4)
        # fds 0-4 stay taken here, so the pipes a request brings arrive at 5 or above and a
        # child moves them to 1-4 with plain dup2 calls
        devnull = os.open("/dev/null", os.O_RDWR)
        self.devnull = fcntl.fcntl(devnull, fcntl.F_DUPFD_CLOEXEC, 100)
        os.close(devnull)
        for fd in range(5):
            try:
                os.fstat(fd)
            except OSError:
                os.dup2(self.devnull, fd, inheritable=False)
        while True:
            try:
                msg, anc, _flags, _addr = sock.recvmsg(1 << 12, anc_size)
            except OSError:
                msg, anc = b"", []
            fds = received_fds(anc)
            if not msg:
                self._exit()
            op = msg[0]
            if op == 107:  # b"k<pid> <grace ms>": kill that job's tree, say how it ended,
                # then prepare the next child (a grace lets a child that is exiting finish)
                pid, _, grace = msg[1:].partition(b" ")
                status, alive, cpu = self._kill(int(pid), int(grace or 0) / 1000)
                sock.send(b"d%d %d %.3f" % (status, alive, cpu))
            elif op != 114:  # anything but b"r"
                for fd in fds:
                    os.close(fd)
                self._exit()
            if len(fds) != JOB_FDS:
                for fd in fds:
                    os.close(fd)
                sock.send(b"e" + f"a prepare request needs {JOB_FDS} fds".encode())
                continue
            try:
                reply = b"p%d" % self._spawn(fds)
            except OSError as e:
                for fd in fds:
                    os.close(fd)
                reply = b"e" + f"could not prepare a child: {e}".encode()
            sock.send(reply)

    def _exit(self) -> None:
        """Kill every candidate, remove a temp dir this server made itself, exit."""
        if self.current:
            self._kill(self.current)
        if self.own_tmp:
            _rmtree(self.own_tmp)
        os._exit(0)

    def _spawn(self, fds: list[int]) -> int:
        """Make the next candidate child (it waits for its job on fd 3)."""
        self.jobs += 1
        if self.mount_ns:
            try:
                sc.umount(WORK_DIR)
            except OSError:
                pass  # nothing mounted there yet
            sc.mount("tmpfs", WORK_DIR, "tmpfs", sc.MS_NOSUID | sc.MS_NODEV,
                     f"size={self.cfg['tmpfs_mb']}m,nr_inodes={self.cfg['tmpfs_inodes']},"
                     f"mode=0700,uid={self.uid},gid={self.uid}")
        else:
            _rmtree(self.workdir)
            os.mkdir(self.workdir, 0o700)
            if self.root:
                os.chown(self.workdir, self.uid, self.uid)
        parent = os.getpid()
        pid = sc.clone_pid_namespace() if self.pid_ns else os.fork()
        if pid == 0:
            try:
                self._child(fds, parent)
            finally:
                os._exit(70)
        for fd in fds:
            os.close(fd)
        if self.cgroup_fd >= 0:
            try:
                os.write(self.cgroup_fd, b"%d" % pid)
            except OSError as e:
                self._kill(pid)
                raise OSError(e.errno, f"cannot put the child in its memory cgroup: {e}") \
                    from None
        self.current = pid
        return pid

    def _kill(self, pid: int, grace: float = 0.0) -> tuple[int, bool, float]:
        """Kill a child and everything it started: (its wait status (-1: not ours), whether
        it was alive until now, the CPU seconds it and its reaped children used)."""
        if pid != self.current or pid <= 0:
            return -1, False, 0.0
        self.current = 0
        end = time.monotonic() + grace
        while True:
            try:
                wpid, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                return -1, False, 0.0
            if wpid or time.monotonic() >= end:
                break
            time.sleep(0.002)
        alive = wpid == 0
        if not alive:
            if not self.pid_ns:
                self._kill_descendants(pid)
            return status, False, usage.ru_utime + usage.ru_stime
        if self.pid_ns:
            # pid 1 of its namespace: when it dies the kernel kills the rest and waits for
            # them before the child can be reaped
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                _, status, usage = os.wait4(pid, 0)
            except ChildProcessError:
                return -1, True, 0.0
            return status, True, usage.ru_utime + usage.ru_stime
        return self._kill_descendants(pid), True, 0.0

    def _kill_descendants(self, pid: int) -> int:
        """Without a pid namespace: SIGKILL the child's group and every descendant (this
        server is a child subreaper: orphans come back to it) until none is left."""
        status = -1
        for _ in range(100000):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            for k in _children_of(os.getpid()):
                try:
                    os.kill(k, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            try:
                while True:
                    wpid, st = os.waitpid(-1, os.WNOHANG)
                    if wpid == 0:
                        break
                    if wpid == pid:
                        status = st
            except ChildProcessError:
                return status
            time.sleep(0.0005)
        return status

    # -- the candidate child -------------------------------------------------
    def _child(self, fds: list[int], parent: int) -> None:
        """Set up a candidate child (runs after the clone), then serve its job."""
        req_r, rep_w, out_w = fds  # all >= 5 (see serve)
        report_fd = rep_w
        try:
            os.setsid()
            os.chdir(self.workdir)
            os.dup2(self.devnull, 0)
            os.dup2(out_w, 1)
            os.dup2(out_w, 2)
            os.dup2(req_r, 3)
            os.dup2(rep_w, 4)
            report_fd = 4
            os.closerange(5, 1 << 16)
            # RLIMIT_FSIZE/NOFILE/CORE and no_new_privs are inherited from the server
            nproc = self.nproc
            if nproc is None:
                _soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
                want = self.cfg["max_procs"] + _count_user_procs()
                if hard == resource.RLIM_INFINITY or want <= hard:
                    resource.setrlimit(resource.RLIMIT_NPROC, (want, hard))
            else:
                resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
            if self.root:
                os.setgroups([])
                os.setresgid(self.uid, self.uid, self.uid)
                os.setresuid(self.uid, self.uid, self.uid)  # clears every capability
            elif self.userns:
                sc.clear_capabilities()
            sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
            if not self.pid_ns and os.getppid() != parent:
                os._exit(71)  # the fork server died before the death signal was armed
            random = sys.modules.get("random")
            if random is not None:  # what os.fork's at-fork hook would have done
                random.seed()
            signal.signal(signal.SIGINT, signal.default_int_handler)
        except BaseException as e:  # noqa: BLE001 - report any setup failure to the judge
            try:
                etype, msg = proto.describe_exception(e)
                proto.write_all(report_fd, proto.exception_line(proto.SETUP_FAILED, etype, msg))
            finally:
                os._exit(70)
        proto.write_all(4, b"R\n")
        runner.serve(self.cfg["max_result_bytes"], self.base_vsize)
        os._exit(0)


#: the server state that survives its re-exec (:meth:`ForkServer._reexec`, :func:`resume`)
_RESUMED = ("applied", "missing", "done", "keyring_why", "mount_ns", "private_root",
            "workdir", "work_parent", "own_tmp")


def resume(cfg: dict[str, Any]) -> None:
    """Entry point of a fork server after its re-exec (from :func:`sandboxes.worker.main.main`):
    rebuild it from the state in ``cfg["_resume"]``, finish its setup, serve. Never returns."""
    sc.prctl(sc.PR_SET_DUMPABLE, 0)  # exec made it dumpable again
    sc.set_name(b"codegym-sbx")
    state = cfg.pop("_resume")
    fds = state["fds"]
    devnull = os.open("/dev/null", os.O_RDWR)
    os.dup2(devnull, 0)  # stdin was the memfd the sources came through
    os.close(devnull)
    try:
        sock = socket.socket(fileno=fds["sock"])
        os.set_inheritable(sock.fileno(), False)
        for key in ("cgroup", "proc"):
            if fds[key] >= 0:
                os.set_inheritable(fds[key], False)
        fs = ForkServer(cfg, sock, state["pid_ns"], state["userns"], state["uid"],
                        fds["cgroup"])
        for key, value in state["attrs"].items():
            setattr(fs, key, value)
        fs.proc_fd = fds["proc"]
        fs.reexeced = True
        fs.finish_setup()
    except BaseException:  # noqa: BLE001 - tell the judge, which is waiting for the hello
        import traceback

        os.write(fds["sock"], json.dumps({"fatal": traceback.format_exc()}).encode())
        os._exit(1)
    fs.serve()
    os._exit(0)


def enter_user_namespace() -> bool:
    """Unprivileged host: become uid USERNS_UID with capabilities in a new user namespace.

    The capabilities only reach namespaces owned by it (mounts, network, pids); candidates
    drop them all.
    """
    uid, gid = os.getuid(), os.getgid()
    try:
        sc.unshare(sc.CLONE_NEWUSER)
    except OSError:
        return False
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"{USERNS_UID} {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"{USERNS_UID} {gid} 1")
    except OSError:
        return False  # unusable namespace: the fallback (no namespaces) still works
    return True


def _rmtree(path: str) -> None:
    """Remove a dir tree, iteratively (a candidate may nest dirs thousands deep).

    No shutil: importing it would pull compression modules into every fork.
    """
    try:  # the usual case: the job wrote nothing
        os.rmdir(path)
        return
    except FileNotFoundError:
        return
    except OSError:
        pass
    stack: list[tuple[str, bool]] = [(path, False)]
    while stack:
        p, emptied = stack.pop()
        if emptied:
            try:
                os.rmdir(p)
            except OSError:
                pass
            continue
        stack.append((p, True))
        try:
            entries = list(os.scandir(p))
        except PermissionError:  # a candidate removed its own permissions (non-root mode)
            try:
                os.chmod(p, 0o700)
                entries = list(os.scandir(p))
            except OSError:
                entries = []
        except OSError:
            entries = []
        for e in entries:
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append((e.path, False))
                else:
                    os.unlink(e.path)
            except OSError:
                pass


def _children_of(ppid: int) -> list[int]:
    kids = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return kids
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat.rsplit(b")", 1)[-1].split()
        if len(rest) > 1 and int(rest[1]) == ppid:
            kids.append(int(name))
    return kids


def _count_user_procs() -> int:
    uid = os.getuid()
    n = 0
    try:
        names = os.listdir("/proc")
    except OSError:
        return 0
    for name in names:
        if name.isdigit():
            try:
                if os.stat(f"/proc/{name}").st_uid == uid:
                    n += len(os.listdir(f"/proc/{name}/task"))
            except OSError:
                pass
    return n
