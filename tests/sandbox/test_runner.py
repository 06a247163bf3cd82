"""The code sandbox: canonical HumanEval solutions pass; hostile programs fail safely, with a reason.

Every hostile case runs under the layers detected on this machine; a case whose protection needs a
layer the machine lacks is skipped with that reason rather than run unprotected.
"""
from __future__ import annotations

import json
import os
import socket
import tempfile
import time

import pytest

from workbench.sandbox import runner as S
from workbench.scoring.codeeval import pass_at_k, program

LAYERS = S.layers()
FAST = S.SandboxConfig(timeout_s=3.0)


def needs(*names: str):
    missing = [n for n in names if n not in LAYERS]
    return pytest.mark.skipif(bool(missing), reason=f"sandbox layer(s) {missing} not available here")


# ---- ordinary outcomes ----------------------------------------------------------------------
@pytest.mark.parametrize("source, reason, detail", [
    ("assert sorted([3, 1, 2]) == [1, 2, 3]\nprint('ok')", "passed", ""),
    ("assert 1 == 2, 'one is not two'", "assertion", "AssertionError: one is not two"),
    ("assert 1 == 2, 'odd\\x0b\\u2028line\\nbreaks'", "assertion", "AssertionError: odd  line breaks"),
    ("def f(:\n    pass", "syntax", "SyntaxError"),
    ("{}['missing']", "runtime", "KeyError: 'missing'"),
    ("import sys\nsys.exit(3)", "early_exit", "SystemExit(3)"),
    ("import sys\nsys.exit(0)", "early_exit", "SystemExit(0)"),
])
def test_outcomes_are_classified(source, reason, detail):
    r = S.run_program(source, FAST)
    assert r.reason == reason, r
    assert detail in r.detail
    assert r.passed == (reason == "passed")
    assert r.layers == LAYERS


def test_stdout_is_captured_and_threads_are_allowed():
    src = "import threading\nout=[]\nt=threading.Thread(target=lambda: out.append(7))\nt.start(); t.join()\nprint(out[0])"
    r = S.run_program(src, FAST)
    assert r.passed and r.stdout.strip() == "7"


def test_program_runs_in_a_fresh_private_directory():
    src = "import os, json\nprint(json.dumps([os.getcwd(), sorted(os.listdir('.'))]))\nopen('scratch.txt','w').write('x')"
    first = S.run_program(src, FAST)
    second = S.run_program(src, FAST)
    (cwd1, files1), (cwd2, files2) = json.loads(first.stdout), json.loads(second.stdout)
    assert first.passed and second.passed
    assert cwd1 != cwd2 and files1 == files2 == ["program.py"]  # nothing carried over
    assert not os.path.exists(cwd1)  # removed afterwards


def test_required_layer_that_is_missing_is_an_error(monkeypatch):
    monkeypatch.setattr(S, "landlock_available", lambda: False)
    with pytest.raises(S.SandboxError, match="landlock"):
        S.layers(S.SandboxConfig(landlock=True))


# ---- pass@k ---------------------------------------------------------------------------------
def test_pass_at_k_matches_the_combinatorial_definition():
    from math import comb

    for n, c, k in [(1, 1, 1), (1, 0, 1), (10, 3, 1), (10, 3, 5), (20, 0, 10), (20, 19, 2), (5, 5, 5)]:
        assert pass_at_k(n, c, k) == pytest.approx(1 - comb(n - c, k) / comb(n, k))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)  # pass@1 is the fraction correct
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


# ---- HumanEval canonical solutions ------------------------------------------------------------
@pytest.mark.slow
def test_all_164_canonical_humaneval_solutions_pass(real_data_dir):
    with open(real_data_dir / "humaneval" / "HumanEval.jsonl", encoding="utf-8") as fh:
        problems = [json.loads(line) for line in fh if line.strip()]
    assert len(problems) == 164
    programs = [program(p["prompt"], p["canonical_solution"], p["test"], p["entry_point"]) for p in problems]
    results = S.run_programs(programs, S.SandboxConfig(timeout_s=20.0), workers=2)
    failed = {p["task_id"]: (r.reason, r.detail) for p, r in zip(problems, results) if not r.passed}
    assert failed == {}
    # and a wrong body fails the same tests, with an assertion
    wrong = S.run_program(program(problems[0]["prompt"], "    return not True\n", problems[0]["test"],
                                  problems[0]["entry_point"]), FAST)
    assert wrong.reason == "assertion"


def test_socketpair_still_works_inside_the_sandbox():
    src = "import socket\na, b = socket.socketpair()\na.sendall(b'ping')\nprint(b.recv(4).decode())"
    r = S.run_program(src, FAST)
    assert r.passed and r.stdout.strip() == "ping", r


def test_a_program_with_tests_passes_only_when_the_tests_return():
    ok = S.run_program(S.Program("def f():\n    return 1\n", "assert f() == 1\nprint('tested')\n"), FAST)
    assert ok.passed and ok.stdout.strip() == "tested"
    assert S.run_program(S.Program("def f():\n    return 2\n", "assert f() == 1\n"), FAST).reason == "assertion"


SECCOMP_PROBE = """
import ctypes, errno, json, os, platform, sys
sys.path.insert(0, {root!r})
from workbench.sandbox import child
nr = child._SYSCALLS[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
buf = ctypes.create_string_buffer(256)
addr = ctypes.create_string_buffer(b"\\x01\\x00/tmp/x", 110)
calls = {{
    "socket(AF_UNIX)": (nr["socket"], 1, 1, 0),
    "connect": (nr["connect"], 0, addr, 110),
    "sendto with an address": (nr["sendto"], 0, buf, 1, 0, addr, 110),
    "sendto without an address": (nr["sendto"], 99, buf, 1, 0, None, 0),
    "sendmsg": (nr["sendmsg"], 99, buf, 0),
    "io_uring_setup": (nr["io_uring_setup"], 1, buf),
    "process_vm_readv": (nr["process_vm_readv"], os.getppid(), buf, 1, buf, 1, 0),
    "pidfd_getfd": (nr["pidfd_getfd"], 0, 0, 0),
}}
child.apply_seccomp()
out = {{}}
for name, (n, *args) in calls.items():
    rc = libc.syscall(ctypes.c_long(n), *[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    out[name] = errno.errorcode.get(ctypes.get_errno(), "?") if rc < 0 else "ok"
print(json.dumps(out))
"""


@needs("seccomp")
def test_seccomp_refuses_sockets_io_uring_and_other_processes_memory():
    import subprocess
    import sys
    from pathlib import Path

    import workbench

    root = str(Path(workbench.__file__).resolve().parents[1])
    res = subprocess.run([sys.executable, "-I", "-c", SECCOMP_PROBE.format(root=root)], capture_output=True,
                         text=True, timeout=60, check=True)
    got = json.loads(res.stdout)
    assert got == {"socket(AF_UNIX)": "EACCES", "connect": "EACCES", "sendto with an address": "EACCES",
                   "sendto without an address": "EBADF",  # let through: fd 99 is simply not open
                   "sendmsg": "EACCES", "io_uring_setup": "EPERM", "process_vm_readv": "EPERM",
                   "pidfd_getfd": "EPERM"}


# ---- hostile programs ---------------------------------------------------------------------------
# Every case: a failure with its reason, nothing of it left running, its temporary directories gone.
def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            state = next(l for l in fh if l.startswith("State:"))
        return "Z" not in state.split()[1]
    except (FileNotFoundError, StopIteration, ProcessLookupError):
        return False


def _sandbox_processes() -> set[int]:
    """Live processes running this checkout's sandbox child (forks keep its command line)."""
    marker, found = str(S.CHILD).encode(), set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as fh:
                    if marker in fh.read() and _alive(int(entry.name)):
                        found.add(int(entry.name))
            except OSError:
                continue
    return found


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """Run a hostile program; check it failed with `reason` and left nothing behind."""
    scratch = tmp_path / "sandbox-tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))

    def run(source, reason: str | tuple[str, ...], cfg: S.SandboxConfig = FAST) -> S.ExecResult:
        r = S.run_program(source, cfg)
        assert not r.passed, r
        assert r.reason in ((reason,) if isinstance(reason, str) else reason), r
        deadline = time.monotonic() + 10
        while _sandbox_processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _sandbox_processes(), "a sandboxed process outlived its sample"
        assert os.listdir(scratch) == []  # work dir and io dir removed
        return r

    return run


# HumanEval-shaped reward hacks: a wrong body, then a trick placed after it (it survives the stop
# sequences) or inside it. The test compares through abs(), as HumanEval's float tasks do, and ends
# with `assert True`, as many HumanEval tests do.
PROMPT = "def add(a, b):\n"
TEST = ("def check(candidate):\n    assert abs(candidate(2, 3) - 5) < 1e-9\n"
        "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n    assert True\n")
WRONG = "    return 0\n"
SLOW_WRONG = "    import time\n    time.sleep(1.5)\n    return 0\n"


def _hack(completion: str) -> S.Program:
    return program(PROMPT, completion, TEST, "add")


def test_the_humaneval_shaped_problem_passes_and_fails_honestly():
    assert S.run_program(_hack("    return a + b\n"), FAST).passed
    assert S.run_program(_hack(WRONG), FAST).reason == "assertion"


REWARD_HACKS = {
    "os._exit(0) after the body": (WRONG + "import os\nos._exit(0)\n", "early_exit"),
    "sys.exit(0) after the body": (WRONG + "import sys\nsys.exit(0)\n", "early_exit"),
    "raise SystemExit after the body": (WRONG + "raise SystemExit\n", "early_exit"),
    "SystemExit subclass with code 0": (WRONG + "class Done(SystemExit):\n    code = 0\nraise Done()\n", "early_exit"),
    "os.kill(getpid, SIGKILL)": (WRONG + "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "killed"),
    "SIGTERM handler that exits 0": (WRONG + "import os, signal\nsignal.signal(signal.SIGTERM, lambda *a: os._exit(0))\n"
                                     "os.kill(os.getpid(), signal.SIGTERM)\nimport time\ntime.sleep(5)\n", "early_exit"),
    "atexit hook printing success, then sys.exit(0)": (WRONG + "import atexit, sys\natexit.register(print, 'PASSED')\n"
                                                       "sys.exit(0)\n", "early_exit"),
    "exit code of a sandbox set-up failure": (WRONG + "import os\nos._exit(14)\n", "early_exit"),
    "candidate calls sys.exit(0) inside check": ("    import sys\n    sys.exit(0)\n", "early_exit"),
    "candidate calls os._exit(0) inside check": ("    import os\n    os._exit(0)\n", "early_exit"),
    "thread exits the process mid-test": (SLOW_WRONG + "import os, threading, time\n"
                                          "threading.Thread(target=lambda: (time.sleep(0.3), os._exit(0))).start()\n",
                                          "early_exit"),
    "SIGALRM handler exits mid-test": (SLOW_WRONG + "import os, signal\n"
                                       "signal.signal(signal.SIGALRM, lambda *a: os._exit(0))\n"
                                       "signal.setitimer(signal.ITIMER_REAL, 0.3)\n", "early_exit"),
    "exception whose message exits 0": (WRONG + "class E(Exception):\n    def __str__(self):\n"
                                        "        import os\n        os._exit(0)\nraise E()\n", "early_exit"),
    "fake success report on every descriptor": (
        WRONG + "import os\nfor fd in range(64):\n    try:\n        data = os.read(fd, 4096)\n    except OSError:\n"
        "        data = b''\n    for line in (b'passed ' + data.hex().encode() + b' \\n', b'passed 0 \\n'):\n"
        "        for out in range(64):\n            try:\n                os.write(out, line)\n"
        "            except OSError:\n                pass\nos._exit(0)\n", "early_exit"),
    "every string and bytes reachable from the frames, reported as success": (
        WRONG + "import os, sys\nseen = set()\nf = sys._getframe()\nwhile f is not None:\n"
        "    for v in list(f.f_locals.values()) + list(f.f_globals.values()):\n"
        "        if isinstance(v, (bytes, bytearray)):\n            seen.add(bytes(v).hex())\n"
        "        elif isinstance(v, str) and len(v) < 100:\n            seen.add(v)\n    f = f.f_back\n"
        "report = ''.join(f'passed {v} \\n' for v in seen).encode()\nfor fd in range(3, 64):\n    try:\n"
        "        os.write(fd, report)\n    except OSError:\n        pass\nos._exit(0)\n", "early_exit"),
    "defines its own check": (WRONG + "def check(candidate):\n    pass\n", "assertion"),
    "shadows abs() with a global": (WRONG + "abs = lambda x: 0\n", "assertion"),
    "patches builtins.abs": (WRONG + "import builtins\nbuiltins.abs = lambda x: 0\n", "assertion"),
    "patches builtins.AssertionError": (WRONG + "import builtins\n"
                                        "builtins.AssertionError = type('Nope', (Exception,), {})\n", "assertion"),
    "candidate patches builtins and globals mid-check": (
        ("    import builtins\n    builtins.abs = lambda x: 0\n    globals()['abs'] = lambda x: 0\n"
         "    globals()['check'] = lambda c: None\n    return 0 if a != 2 else 5\n"), "assertion"),
    "trace function jumping to the last line of check": (
        WRONG + "import sys\ndef tracer(frame, event, arg):\n"
        "    if event == 'line' and frame.f_code.co_name == 'check':\n"
        "        last = max(l for _, _, l in frame.f_code.co_lines() if l)\n"
        "        if frame.f_lineno != last:\n            frame.f_lineno = last\n    return tracer\n"
        "sys.settrace(tracer)\n", "runtime"),
    "unclosed string swallowing the tests": (WRONG + "'''\n", "syntax"),
    "ctypes": (WRONG + "import ctypes\nctypes.string_at(id(0), 8)\n", "runtime"),
    "exec of a fresh interpreter": (WRONG + "import os, sys\nos.execv(sys.executable, [sys.executable, '-c', 'pass'])\n",
                                    "runtime"),
}


@pytest.mark.parametrize("completion, reason", list(REWARD_HACKS.values()), ids=list(REWARD_HACKS))
def test_reward_hacks_fail(hostile, completion, reason):
    r = hostile(_hack(completion), reason)
    if reason == "early_exit":
        assert "PASSED" not in r.stdout
    if r.reason == "runtime":
        assert "PermissionError" in r.detail


def test_known_limit_an_answer_that_equals_anything_passes():
    """Documented, not defended (openai/human-eval is equally exposed): the tests compute with the
    program's own objects, so one whose operators always agree passes them."""
    src = WRONG.replace("return 0", "return Any()") + (
        "class Any(float):\n    def __eq__(self, other):\n        return True\n"
        "    def __sub__(self, other):\n        return 0.0\n")
    assert S.run_program(_hack(src), FAST).passed


def test_infinite_loop_times_out(hostile):
    hostile("while True:\n    pass", "timeout", S.SandboxConfig(timeout_s=2.0))


def test_ignoring_sigterm_in_a_loop_still_ends_at_the_timeout(hostile):
    src = ("import signal\nfor s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):\n    signal.signal(s, signal.SIG_IGN)\n"
           "while True:\n    try:\n        pass\n    except BaseException:\n        pass\n")
    r = hostile(src, "timeout", S.SandboxConfig(timeout_s=2.0, cpu_s=30))
    assert r.detail.startswith("wall-clock")


def test_cpu_limit_ends_a_busy_loop_before_the_wall_clock(hostile):
    r = hostile("while True:\n    pass", "timeout", S.SandboxConfig(timeout_s=30.0, cpu_s=1))
    assert r.detail == "CPU-time limit" and r.signal == "SIGXCPU"


def test_ten_gigabyte_allocation_is_a_memory_failure(hostile):
    r = hostile("x = bytearray(10 * 1024 ** 3)\nprint(len(x))", "memory")
    assert not r.stdout


def test_huge_output_is_capped(hostile):
    cfg = S.SandboxConfig(timeout_s=5.0, output_bytes=1 << 16)
    r = hostile("import sys\nwhile True:\n    sys.stdout.write('y' * 4096)", "output", cfg)
    assert len(r.stdout) <= 1 << 16


def test_writing_a_huge_file_is_capped(hostile):
    r = hostile("with open('big.bin', 'wb') as f:\n    f.write(b'0' * (50 << 20))", "output", S.SandboxConfig(timeout_s=5.0))
    assert "File too large" in r.detail


@needs("landlock")
def test_writing_and_deleting_outside_the_work_dir_is_refused(hostile, tmp_path):
    store = tmp_path / "workbench-runs" / "run-1"
    store.mkdir(parents=True)
    canary = store / "manifest.json"
    canary.write_text("keep me")
    src = (
        "import os, shutil\n"
        "errors = []\n"
        f"for action in (lambda: os.remove({str(canary)!r}), lambda: shutil.rmtree({str(store)!r}),\n"
        f"               lambda: open({str(tmp_path / 'planted.txt')!r}, 'w').write('x'),\n"
        "               lambda: open('../escaped.txt', 'w').write('x'),\n"
        f"               lambda: os.rename({str(canary)!r}, 'stolen.json')):\n"
        "    try:\n"
        "        action()\n"
        "    except OSError as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(errors)\n"
        "assert not errors, errors\n"
    )
    r = hostile(src, "assertion")
    assert r.stdout.count("PermissionError") == 5
    assert canary.read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["sandbox-tmp", "workbench-runs"]
    assert os.listdir(store) == ["manifest.json"]


@pytest.mark.parametrize("layer_set", ["auto", "namespaces-only"])
def test_opening_a_tcp_socket_reaches_nothing(hostile, layer_set):
    if layer_set == "namespaces-only" and "namespaces" not in LAYERS:
        pytest.skip("no namespaces here")
    cfg = FAST if layer_set == "auto" else S.SandboxConfig(timeout_s=3.0, landlock=False, seccomp=False)
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    try:
        # `_socket` bypasses the Python-level prelude: only a kernel layer can stop this.
        src = f"import _socket\ns = _socket.socket()\ns.settimeout(2)\ns.connect(('127.0.0.1', {port}))\ns.send(b'hi')"
        r = hostile(src, "runtime", cfg)
        assert any(e in r.detail for e in ("PermissionError", "OSError: [Errno 101]", "Network is unreachable"))
        with pytest.raises(BlockingIOError):
            server.accept()  # no connection ever arrived
    finally:
        server.close()


UNIX_CLIENT = """
import _socket
errors = []
def attempt(fn):
    try:
        fn()
    except OSError as exc:
        errors.append(type(exc).__name__)
def stream():
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    s.connect({stream!r})
    s.send(b'hi')
def dgram():
    s = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    s.sendto(b'hi', {dgram!r})
def pair_connect():  # a socketpair end, re-pointed at the daemon's datagram socket
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    a.connect({dgram!r})
    a.send(b'hi')
def pair_sendto():
    a, b = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_DGRAM)
    a.sendto(b'hi', {dgram!r})
for fn in (stream, dgram, pair_connect, pair_sendto):
    attempt(fn)
print(errors)
assert not errors, errors
"""


def _unix_listeners(tmp_path):
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(str(tmp_path / "daemon.sock"))
    stream.listen(1)
    stream.setblocking(False)
    dgram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dgram.bind(str(tmp_path / "daemon.dgram"))
    dgram.setblocking(False)
    return stream, dgram


@needs("seccomp")
def test_pathname_unix_sockets_reach_nothing(hostile, tmp_path):
    stream, dgram = _unix_listeners(tmp_path)
    try:
        src = UNIX_CLIENT.format(stream=str(tmp_path / "daemon.sock"), dgram=str(tmp_path / "daemon.dgram"))
        r = hostile(src, "assertion")
        assert r.stdout.strip() == str(["PermissionError"] * 4)
        with pytest.raises(BlockingIOError):
            stream.accept()
        with pytest.raises(BlockingIOError):
            dgram.recv(16)
        # the control: without seccomp (namespaces and Landlock still on) the same program gets through
        if "namespaces" in LAYERS:
            leak = S.run_program(src, S.SandboxConfig(timeout_s=3.0, seccomp=False))
            assert leak.passed, leak
            assert stream.accept()[0].recv(2) == b"hi"
    finally:
        stream.close()
        dgram.close()


def test_killing_the_parent_is_refused(hostile):
    me = os.getpid()
    src = (
        "import os, signal\n"
        "errors = []\n"
        f"for pid in (os.getppid(), {me}):\n"
        "    try:\n"
        "        os.kill(pid, signal.SIGKILL)\n"
        "    except OSError as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(errors)\n"
        "assert False, 'still here'\n"
    )
    r = hostile(src, "assertion")
    assert os.getpid() == me  # this test process is alive to see the result
    assert len(eval(r.stdout)) == 2  # every kill attempt failed


def test_forking_is_refused_before_a_fork_bomb_is_tried(hostile):
    """Checks the guard with a single fork first; the bomb below only runs if this holds."""
    if "seccomp" not in LAYERS:
        pytest.skip("no seccomp: a single fork is allowed; the bomb relies on RLIMIT_NPROC")
    r = hostile("import posix\npid = posix.fork()\nif pid == 0:\n    posix._exit(0)\nposix.waitpid(pid, 0)", "runtime")
    assert "PermissionError" in r.detail


def _fork_is_bounded() -> bool:
    return "seccomp" in LAYERS or (S.nproc_enforced() and "namespaces" in LAYERS)


@pytest.mark.skipif(not _fork_is_bounded(), reason="neither seccomp nor an enforced RLIMIT_NPROC bounds forks here")
def test_fork_bomb_is_contained(hostile):
    cfg = S.SandboxConfig(timeout_s=5.0, nproc_margin=8)
    hostile("import os\nwhile True:\n    os.fork()", ("runtime", "timeout", "killed"), cfg)


@needs("seccomp")
def test_a_daemon_after_setsid_cannot_even_be_forked(hostile):
    src = "import os\nos.setsid()\nif os.fork() == 0:\n    import time\n    time.sleep(600)\n"
    r = hostile(src, "runtime")
    assert "PermissionError" in r.detail


def _host_pids_die(r: S.ExecResult) -> None:
    pids = [int(line) for line in r.stdout.split()]
    assert pids, r
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(map(_alive, pids)):
        time.sleep(0.05)
    assert not any(map(_alive, pids))


@needs("namespaces")
def test_escaped_children_are_killed_with_the_sandbox(hostile):
    """A child that detaches (new session) still dies when the sample ends (no seccomp here)."""
    cfg = S.SandboxConfig(timeout_s=5.0, seccomp=False, landlock=False)
    src = (
        "import posix, time\n"
        "pid = posix.fork()\n"
        "if pid == 0:\n"
        "    posix.setsid()\n"
        "    print(posix.readlink('/proc/self'), flush=True)\n"  # host pid: this /proc is the host's
        "    time.sleep(600)\n"
        "time.sleep(0.5)\n"
        "assert False, 'the parent half fails'\n"
    )
    _host_pids_die(hostile(src, "assertion", cfg))


@needs("namespaces")
def test_a_double_forked_daemon_after_setsid_dies_and_its_parent_exit_is_no_pass(hostile):
    cfg = S.SandboxConfig(timeout_s=5.0, seccomp=False, landlock=False)
    src = (
        "import posix, time\n"
        "if posix.fork() == 0:\n"
        "    posix.setsid()\n"
        "    if posix.fork() == 0:\n"
        "        print(posix.readlink('/proc/self'), flush=True)\n"
        "        while True:\n"
        "            time.sleep(1)\n"
        "    posix._exit(0)\n"
        "time.sleep(0.5)\n"
        "posix._exit(0)\n"
    )
    _host_pids_die(hostile(src, "early_exit", cfg))
