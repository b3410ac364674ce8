# ruff: noqa
"""A job that tries to hand a 32-bit value to a later job through host-wide kernel state.

``f(["write", value, nonce])`` leaves ``value`` in every carrier it can reach; ``f(["read",
nonce])`` reads each carrier back and prints ``CARRY {json}``: per carrier the bits it read
(``null`` where the primitive is refused). Carriers:

* page-cache residency of file pages (one page per bit, chosen by ``nonce`` among the large
  files the job can open; the writer reads the page for a 1 and evicts it with
  ``posix_fadvise(DONTNEED)`` for a 0), read back five ways: ``mincore``,
  ``preadv2(RWF_NOWAIT)``, ``cachestat`` (these three on one page set), major-fault counts
  (a second set) and read latency (a third);
* cached "negative" directory entries: the writer looks up 48 missing names per 1 bit in a
  system dir; the reader times those lookups against names nobody looked up;
* host-wide counters, each carrying a few bits as its position: socket cookies
  (``SO_COOKIE``, 8 bits), pidfd inode numbers (the host's process counter, 4 bits), pipe and
  socket inode numbers (4 bits) and memfd inode numbers (4 bits); writer and reader pin
  themselves to CPU 0 where the counters are per CPU.

Standard library only; every primitive is tried through ctypes/os and its failure recorded.
"""
import ctypes, errno, json, mmap, os, resource, socket, struct, time, zlib

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
NR = {"cachestat": 451, "pidfd_open": 434} if os.uname().machine == "x86_64" else {}
PAGE = 4096
BITS = 32
NAMES = 48  # lookups per bit for the directory-entry carrier
ROOTS = ["/usr", "/lib", "/lib64", "/bin", "/opt", "/etc"]
SPOT = "/usr/lib"


def _pin():
    try:
        os.sched_setaffinity(0, {0})
    except OSError:
        pass


def _files():
    """Large regular files the job can open, in a fixed order (same for writer and reader)."""
    out = []
    for root in ROOTS:
        for d, subdirs, names in os.walk(root):
            subdirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                if st.st_size >= 64 * PAGE and os.access(p, os.R_OK):
                    out.append((p, st.st_size // PAGE))
            if len(out) >= 400:
                return out
    return out


def _pages(nonce, which):
    files = _files()
    if not files:
        return []
    out = []
    for i in range(BITS):
        h = zlib.crc32(f"{nonce}-{which}-{i}".encode())
        path, npages = files[h % len(files)]
        out.append((path, (h >> 8) % npages))
    return out


# ------------------------------------------------------------------ page cache
def _write_pages(bits, pages):
    done = {"read": 0, "evict": 0}
    for bit, (path, page) in zip(bits, pages):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            continue
        try:
            if bit:
                os.pread(fd, 1, page * PAGE)
                done["read"] += 1
            else:
                try:
                    os.posix_fadvise(fd, page * PAGE, PAGE, os.POSIX_FADV_DONTNEED)
                    done["evict"] += 1
                except OSError:
                    pass
        finally:
            os.close(fd)
    return done


def _residency_nondestructive(pages):
    """Three probes of the same pages: mincore, cachestat, then RWF_NOWAIT (a miss starts
    readahead: it goes last)."""
    out = {"mincore": [], "nowait": [], "cachestat": []}
    ok = {"mincore": True, "nowait": True, "cachestat": True}
    for path, page in pages:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            for k in out:
                out[k].append(None)
            continue
        try:
            # mincore on a private writable copy-on-write mapping (reads fault nothing in)
            try:
                m = mmap.mmap(fd, PAGE, flags=mmap.MAP_PRIVATE,
                              prot=mmap.PROT_READ | mmap.PROT_WRITE, offset=page * PAGE)
                addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
                vec = ctypes.create_string_buffer(1)
                r = LIBC.mincore(ctypes.c_void_p(addr), ctypes.c_size_t(PAGE), vec)
                out["mincore"].append(vec.raw[0] & 1 if r == 0 else None)
                del addr
                try:
                    m.close()
                except BufferError:
                    pass
            except (OSError, ValueError):
                out["mincore"].append(None)
            if "cachestat" in NR:
                rng = (ctypes.c_uint64 * 2)(page * PAGE, PAGE)
                st = (ctypes.c_uint64 * 5)()
                r = LIBC.syscall(ctypes.c_long(NR["cachestat"]), ctypes.c_long(fd), rng, st,
                                 ctypes.c_long(0))
                out["cachestat"].append(int(st[0] > 0) if r == 0 else None)
            else:
                out["cachestat"].append(None)
            try:
                os.preadv(fd, [bytearray(1)], page * PAGE, os.RWF_NOWAIT)
                out["nowait"].append(1)
            except BlockingIOError:
                out["nowait"].append(0)
            except (OSError, AttributeError):
                out["nowait"].append(None)
        finally:
            os.close(fd)
    return out


def _majflt(pages):
    bits = []
    for path, page in pages:
        try:
            fd = os.open(path, os.O_RDONLY)
            m = mmap.mmap(fd, PAGE, prot=mmap.PROT_READ, offset=page * PAGE)
        except (OSError, ValueError):
            bits.append(None)
            continue
        before = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
        _ = m[7]
        after = resource.getrusage(resource.RUSAGE_SELF).ru_majflt
        bits.append(int(after == before))
        m.close()
        os.close(fd)
    return bits


def _latency(pages):
    times = []
    for path, page in pages:
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            times.append(None)
            continue
        t = time.perf_counter_ns()
        os.pread(fd, 1, page * PAGE)
        times.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        os.pread(fd, 1, page * PAGE)  # now certainly cached: the reference
        times[-1] = (times[-1], time.perf_counter_ns() - t)
        os.close(fd)
    return [None if t is None else int(t[0] < max(20_000, 8 * t[1])) for t in times]


# ------------------------------------------------------------------ directory entries
def _names(nonce, i):
    return [f"{SPOT}/.cg{nonce}-{i}-{k}" for k in range(NAMES)]


def _lookup(names):
    ts = []
    for n in names:
        t = time.perf_counter_ns()
        try:
            os.stat(n)
        except OSError:
            pass
        ts.append(time.perf_counter_ns() - t)
    ts.sort()
    return ts[len(ts) // 2]


def _write_dentries(bits, nonce):
    for i, bit in enumerate(bits):
        if bit:
            _lookup(_names(nonce, i))


def _read_dentries(nonce):
    out = []
    for i in range(BITS):
        fresh = _lookup(_names(nonce, f"ctl{i}"))
        seen = _lookup(_names(nonce, i))
        out.append(int(seen < 0.7 * fresh))
    return out


# ------------------------------------------------------------------ counters
def _cookie():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        return struct.unpack("Q", s.getsockopt(socket.SOL_SOCKET, 57, 8))[0]
    finally:
        s.close()


def _pipe_ino():
    r, w = os.pipe()
    try:
        return os.fstat(r).st_ino
    finally:
        os.close(r)
        os.close(w)


def _memfd_ino():
    fd = os.memfd_create("cg")
    try:
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _pidfd_ino():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    try:
        fd = os.pidfd_open(pid)
        try:
            return os.fstat(fd).st_ino
        finally:
            os.close(fd)
    finally:
        os.waitpid(pid, 0)


def _fd3_ino():
    return os.fstat(3).st_ino  # the judge's pipe: readable, but no job can move its counter


# (reader of the counter, modulus, spacing, bits carried)
COUNTERS = {
    "so_cookie": (_cookie, 256, 1, 8),
    "pidfd_ino": (_pidfd_ino, 64, 4, 4),
    "pipe_ino": (_pipe_ino, 1024, 64, 4),
    "memfd_ino": (_memfd_ino, 1024, 64, 4),
}


def _value_bits(value, n):
    return [(value >> i) & 1 for i in range(n)]


def _write_counter(name, value):
    read, mod, spacing, nbits = COUNTERS[name]
    target = (value & ((1 << nbits) - 1)) * spacing + spacing // 2
    for _ in range(4 * mod):
        try:
            if read() % mod == target % mod:
                return True
        except OSError:
            return False
    return False


def _read_counter(name):
    read, mod, spacing, nbits = COUNTERS[name]
    try:
        c = read()
    except OSError:
        if name != "pipe_ino":
            return None
        c = _fd3_ino()  # pipes refused: the only inode numbers of that counter a job sees
    v = (((c - 1) % mod) - spacing // 2) // spacing
    return _value_bits(v % (1 << nbits), nbits)


# ------------------------------------------------------------------ entry point
def f(x):
    _pin()
    if x[0] == "write":
        _, value, nonce = x
        bits = _value_bits(value, BITS)
        done = {}
        for which in ("a", "b", "c"):
            done[which] = _write_pages(bits, _pages(nonce, which))
        _write_dentries(bits, nonce)
        for name in COUNTERS:
            done[name] = _write_counter(name, value)
        print("WROTE " + json.dumps(done), flush=True)
        return "written"
    _, nonce = x
    out = _residency_nondestructive(_pages(nonce, "a"))
    out["majflt"] = _majflt(_pages(nonce, "b"))
    out["latency"] = _latency(_pages(nonce, "c"))
    out["dentries"] = _read_dentries(nonce)
    for name in COUNTERS:
        out[name] = _read_counter(name)
    for k, v in list(out.items()):
        if v is not None and (not v or any(b is None for b in v)):
            out[k] = None
    print("CARRY " + json.dumps(out, separators=(",", ":")), flush=True)
    return "read"
