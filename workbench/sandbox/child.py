"""Runs inside the sandbox process: lock it down, run the untrusted program, then its tests; report.

Executed as a script (`python -I -S child.py CONFIG_JSON`) by `workbench.sandbox.runner`, so it
imports only the standard library. The kernel guards it installs (Landlock, seccomp) are
irreversible and inherited: once applied, nothing the program does can lift them. The Python-level
prelude (only where seccomp is missing) and the audit-hook guard are not security boundaries.

Protocol with the parent (the threat model is in `workbench.sandbox.runner`):
- fd `token_fd`: a pipe holding two random shares of the sample's completion token; read and
  closed before anything else, so the token is never whole in this process before the end.
- fd `report_fd`: a file outside the work dir. The runner's last act is one line
  `VERDICT TOKEN DETAIL` (TOKEN = hex(share1 XOR share2)), written only when control has come back
  to it after the program and its tests ran (or raised); then `os._exit(0)`. The parent believes a
  verdict only with the right token; every other way the process ends was the program's doing.
Verdicts: passed, assertion, runtime, syntax, memory, early_exit (SystemExit), setup (lock-down failed).
Exit code EXIT_SETUP: no token could be read (nothing of the program ran).
"""
from __future__ import annotations

import builtins
import json
import os
import struct
import sys

EXIT_SETUP = 14
TOKEN_BYTES = 16
VERDICTS = ("passed", "assertion", "runtime", "syntax", "memory", "early_exit", "setup")

# ---- Landlock: writes only beneath the work dir, no TCP, no signals out of the sandbox --------
_SYS_LANDLOCK_CREATE, _SYS_LANDLOCK_ADD_RULE, _SYS_LANDLOCK_RESTRICT = 444, 445, 446
_PR_SET_NO_NEW_PRIVS = 38
_FS_WRITE_V1 = (1 << 1) | sum(1 << b for b in range(4, 13))  # WRITE_FILE, REMOVE_*, MAKE_*
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_FILE_RIGHTS = (1 << 1) | _FS_TRUNCATE  # the only handled rights that apply to a file (not a dir)


def _libc():
    import ctypes  # imported here, not at module level, so the guard can take it away from the program

    return ctypes.CDLL(None, use_errno=True)


def landlock_abi() -> int:
    """The kernel's Landlock ABI version, 0 where Landlock is absent or disabled."""
    import ctypes

    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    v = libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE), None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(int(v), 0)


def apply_landlock(workdir: str) -> int:
    """Restrict writes to `workdir` (and /dev/null); deny TCP (ABI>=4) and outward signals (ABI>=6)."""
    import ctypes

    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    abi = landlock_abi()
    if abi < 1:
        raise OSError("landlock unavailable")
    fs = _FS_WRITE_V1 | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    net = 0b11 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP, with no rule allowing any port
    scoped = 0b11 if abi >= 6 else 0  # ABSTRACT_UNIX_SOCKET | SIGNAL
    attr = struct.pack("<QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    fd = libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE), buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    try:
        for path, rights in ((workdir, fs), ("/dev/null", _FILE_RIGHTS & fs)):
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = ctypes.create_string_buffer(struct.pack("<Qi", rights, pfd), 12)
                if libc.syscall(ctypes.c_long(_SYS_LANDLOCK_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(1), rule,
                                ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule({path}) failed")
            finally:
                os.close(pfd)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
        if libc.syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT), ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    finally:
        os.close(fd)
    return abi


# ---- seccomp: no new processes, no exec, no signals to others, no sockets but socketpair, no rlimit changes
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_SYSCALLS = {  # name -> number, per architecture
    "x86_64": dict(fork=57, vfork=58, clone=56, clone3=435, execve=59, execveat=322, kill=62, tkill=200,
                   tgkill=234, socket=41, connect=42, sendto=44, sendmsg=46, sendmmsg=307, ptrace=101,
                   setrlimit=160, prlimit64=302, process_vm_readv=310, process_vm_writev=311,
                   pidfd_send_signal=424, pidfd_getfd=438, rt_sigqueueinfo=129, rt_tgsigqueueinfo=297,
                   io_uring_setup=425, io_uring_enter=426, io_uring_register=427),
    "aarch64": dict(clone=220, clone3=435, execve=221, execveat=281, kill=129, tkill=130, tgkill=131,
                    socket=198, connect=203, sendto=206, sendmsg=211, sendmmsg=269, ptrace=117, setrlimit=164,
                    prlimit64=261, process_vm_readv=270, process_vm_writev=271, pidfd_send_signal=424,
                    pidfd_getfd=438, rt_sigqueueinfo=138, rt_tgsigqueueinfo=240, io_uring_setup=425,
                    io_uring_enter=426, io_uring_register=427),
}
_RET_ALLOW, _RET_ERRNO, _RET_KILL = 0x7FFF0000, 0x00050000, 0x80000000
_EPERM, _EACCES, _ENOSYS = 1, 13, 38
# Refused outright. Sockets: socket() for every family (AF_UNIX included: Landlock does not cover
# connecting to a pathname socket, and BPF cannot read the address a pointer argument points to),
# connect(), and sendmsg/sendmmsg (their msghdr may carry an address); socketpair() stays allowed.
# io_uring would run socket and file operations past this filter.
_DENY = {**dict.fromkeys(("fork", "vfork", "execve", "execveat", "tkill", "ptrace", "setrlimit", "prlimit64",
                          "process_vm_readv", "process_vm_writev", "pidfd_send_signal", "pidfd_getfd",
                          "rt_sigqueueinfo", "rt_tgsigqueueinfo", "io_uring_setup", "io_uring_enter",
                          "io_uring_register"), _EPERM),
         **dict.fromkeys(("socket", "connect", "sendmsg", "sendmmsg"), _EACCES)}
_CLONE_THREAD = 0x00010000


def seccomp_supported() -> bool:
    import platform

    return platform.machine() in _AUDIT_ARCH


def _bpf_filter(pid: int) -> bytes:
    """A classic-BPF seccomp program (struct sock_filter[]) over seccomp_data {nr, arch, ip, args[6]}."""
    import platform

    arch = platform.machine()
    nr = _SYSCALLS[arch]
    LD, JEQ, JSET, JGE, RET = 0x20, 0x15, 0x45, 0x35, 0x06  # BPF_LD|W|ABS, JMP|JEQ|K, JSET, JGE, RET|K
    prog: list[tuple[int, int, int, int]] = []

    def ins(code: int, jt: int, jf: int, k: int) -> None:
        prog.append((code, jt, jf, k))

    def arg(i: int, high: bool = False) -> int:  # offsetof(seccomp_data, args[i]), little-endian halves
        return 16 + 8 * i + (4 if high else 0)

    ins(LD, 0, 0, 4)
    ins(JEQ, 1, 0, _AUDIT_ARCH[arch])
    ins(RET, 0, 0, _RET_KILL)
    ins(LD, 0, 0, 0)
    if arch == "x86_64":  # the x32 ABI aliases syscalls above 0x40000000
        ins(JGE, 0, 1, 0x40000000)
        ins(RET, 0, 0, _RET_ERRNO | _EPERM)
    for name, errno in _DENY.items():
        if name in nr:
            ins(JEQ, 0, 1, nr[name])
            ins(RET, 0, 0, _RET_ERRNO | errno)
    ins(JEQ, 0, 1, nr["clone3"])  # glibc falls back to clone(), whose flags BPF can inspect
    ins(RET, 0, 0, _RET_ERRNO | _ENOSYS)
    # clone: threads only (CLONE_THREAD set); a new process is refused.
    ins(JEQ, 0, 4, nr["clone"])
    ins(LD, 0, 0, arg(0))
    ins(JSET, 0, 1, _CLONE_THREAD)
    ins(RET, 0, 0, _RET_ALLOW)
    ins(RET, 0, 0, _RET_ERRNO | _EPERM)
    # kill(pid, sig) / tgkill(tgid, ...): only this process (or its own group, pid 0).
    for name in ("kill", "tgkill"):
        ins(LD, 0, 0, 0)
        ins(JEQ, 0, 5, nr[name])
        ins(LD, 0, 0, arg(0))
        ins(JEQ, 2, 0, pid)
        ins(JEQ, 1, 0, 0 if name == "kill" else pid)  # kill(0, sig): its own process group
        ins(RET, 0, 0, _RET_ERRNO | _EPERM)
        ins(RET, 0, 0, _RET_ALLOW)
    # sendto(fd, buf, len, flags, dest_addr, addrlen): only without an address (send() on a socketpair).
    ins(LD, 0, 0, 0)
    ins(JEQ, 0, 6, nr["sendto"])
    ins(LD, 0, 0, arg(4))
    ins(JEQ, 0, 2, 0)
    ins(LD, 0, 0, arg(4, high=True))
    ins(JEQ, 1, 0, 0)
    ins(RET, 0, 0, _RET_ERRNO | _EACCES)
    ins(RET, 0, 0, _RET_ALLOW)
    ins(RET, 0, 0, _RET_ALLOW)
    return b"".join(struct.pack("<HBBI", *i) for i in prog)


def apply_seccomp() -> None:
    """Install the filter (after PR_SET_NO_NEW_PRIVS, so no privilege is needed)."""
    import ctypes

    libc = _libc()
    code = _bpf_filter(os.getpid())
    n = len(code) // 8
    filt = ctypes.create_string_buffer(code, len(code))

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    prog = SockFprog(n, ctypes.cast(filt, ctypes.c_void_p))
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS failed")
    if libc.prctl(22, 2, ctypes.byref(prog), 0, 0) != 0:  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER
        raise OSError(ctypes.get_errno(), "PR_SET_SECCOMP failed")


# ---- prelude: Python-level refusals where no kernel guard exists (NOT a security boundary) --------
def apply_prelude() -> None:
    import socket
    import subprocess

    me = os.getpid()

    def refuse(*_a, **_k):
        raise PermissionError("blocked by the workbench sandbox prelude")

    def kill(pid, sig):
        if pid not in (0, me):
            refuse()
        return _kill(pid, sig)

    _kill = os.kill
    for name in ("fork", "forkpty", "system", "popen", "execv", "execve", "execvp", "execvpe", "spawnv",
                 "spawnve", "posix_spawn", "posix_spawnp", "killpg", "setsid", "setpgid"):
        if hasattr(os, name):
            setattr(os, name, refuse)
    os.kill = kill
    subprocess.Popen = refuse  # type: ignore[misc]
    socket.socket = refuse  # type: ignore[misc]
    socket.create_connection = refuse
    import resource

    resource.setrlimit = refuse


# ---- guard: Python-level refusals of the usual in-process tricks (an audit hook; NOT a boundary) --
_GUARDED_EVENTS = frozenset({"sys.settrace", "sys.setprofile", "sys.addaudithook", "gc.get_objects",
                             "gc.get_referrers", "gc.get_referents"})
_GUARDED_MODULES = frozenset({"ctypes", "_ctypes"})


def install_guard() -> None:
    """Refuse trace/profile hooks (they can skip a test's lines), further audit hooks, walks of the
    object graph, and ctypes (raw memory); take the already imported ctypes out of `sys.modules`."""
    for name in [n for n in sys.modules if n.split(".")[0] in _GUARDED_MODULES]:
        del sys.modules[name]

    # Everything the hook uses is bound here, so a program cannot rebind a name to disarm it.
    def guard(event: str, args: tuple, _deny=_GUARDED_EVENTS, _mods=_GUARDED_MODULES, _err=PermissionError) -> None:
        if event in _deny or event[:7] == "ctypes.":
            raise _err(f"{event} is refused by the workbench sandbox")
        if event == "import" and args[0].split(".")[0] in _mods:
            raise _err(f"importing {args[0]} is refused by the workbench sandbox")

    sys.addaudithook(guard)


# ---- the run ------------------------------------------------------------------------------------
def _read_shares(fd: int) -> tuple[bytes, bytes]:
    data = b""
    try:
        while len(data) < 2 * TOKEN_BYTES:
            chunk = os.read(fd, 2 * TOKEN_BYTES - len(data))
            if not chunk:
                break
            data += chunk
    finally:
        os.close(fd)
    if len(data) != 2 * TOKEN_BYTES:
        raise OSError(f"expected {2 * TOKEN_BYTES} token bytes, got {len(data)}")
    return data[:TOKEN_BYTES], data[TOKEN_BYTES:]


def _describe(exc: BaseException) -> str:
    """`Type: message` of an exception the program raised (its __str__ is the program's code)."""
    import traceback

    try:
        text = traceback.format_exception_only(type(exc), exc)[-1]
        return "".join([text]).strip()[:300]  # join: an exact str, never a subclass
    except BaseException:
        return "an exception whose message could not be formatted"


def _verdict(cfg: dict, err) -> tuple[str, str]:
    """Lock down, compile, run the program, restore builtins, run the tests: (verdict, detail)."""
    import traceback

    # Bound before the program runs: it may rebind builtins or this module's names, not these locals.
    run, describe, print_exc = exec, _describe, traceback.print_exception
    A, M, X, B, T, R = AssertionError, MemoryError, SystemExit, BaseException, type, repr
    bdict, bmod = builtins.__dict__, builtins
    try:
        with open(cfg["program"], encoding="utf-8") as fh:
            sources = [("program.py", fh.read())]
        if cfg.get("test"):
            with open(cfg["test"], encoding="utf-8") as fh:
                sources.append(("test.py", fh.read()))
            os.unlink(cfg["test"])  # its path is on the command line: the program is not to read its tests there
        if cfg.get("landlock"):
            apply_landlock(cfg["workdir"])
        if cfg.get("seccomp"):
            apply_seccomp()
        if cfg.get("prelude"):
            apply_prelude()
    except Exception as exc:
        return "setup", f"sandbox set-up failed: {exc}"
    try:  # each part on its own: no text in the program can reach into the tests' syntax
        codes = [compile(text, name, "exec") for name, text in sources]
    except (SyntaxError, ValueError) as exc:
        return "syntax", describe(exc)
    except MemoryError:
        return "memory", ""
    except Exception as exc:  # e.g. RecursionError on absurd nesting
        return "runtime", describe(exc)
    saved = dict(bdict)
    install_guard()
    namespace = {"__name__": "__main__", "__builtins__": bmod}

    def traceback_to(err_: object, exc: BaseException) -> None:
        try:
            print_exc(exc, file=err_)
        except B:  # the exception's own code may raise anything
            pass

    for i, code in enumerate(codes):
        if i:  # the tests: real builtins, and globals of their own that the program's code cannot rebind
            bdict.clear()
            bdict.update(saved)
            namespace = {k: v for k, v in namespace.items() if T(k) is str and (k not in saved or k[:2] == "__")}
            namespace.update(__name__="__main__", __builtins__=dict(saved))
        try:
            run(code, namespace)
        except A as exc:
            traceback_to(err, exc)
            return "assertion", describe(exc)
        except M:
            return "memory", ""
        except X as exc:
            code_ = exc.code
            shown = R(code_) if code_ is None or T(code_) in (int, str) else T(code_).__name__
            return "early_exit", f"SystemExit({shown[:100]}) raised in {'the tests' if i else 'the program'}"
        except B as exc:
            traceback_to(err, exc)
            return "runtime", describe(exc)
    return "passed", ""


def _run(cfg: dict) -> None:
    """Read the token, run everything, write the report line; never returns."""
    write, exit_, err, to_int = os.write, os._exit, sys.stderr, int
    try:
        a, b = _read_shares(cfg["token_fd"])
    except OSError as exc:
        print(f"sandbox set-up failed: no completion token ({exc})", file=err)
        exit_(EXIT_SETUP)
    fd = cfg["report_fd"]
    verdict, detail = _verdict(cfg, err)
    detail = "".join(c if c.isprintable() else " " for c in detail)  # one line, whatever the message held
    token = (to_int.from_bytes(a, "big") ^ to_int.from_bytes(b, "big")).to_bytes(TOKEN_BYTES, "big").hex()
    write(fd, f"{verdict} {token} {detail}\n".encode("utf-8", "replace"))
    for stream in (sys.__stdout__, sys.__stderr__):
        try:
            stream.flush()
        except BaseException:
            pass
    exit_(0)


def _supervise_as_init(cfg: dict) -> None:
    """As PID 1 of a fresh PID namespace, run the program in a child and mirror how it ended.

    PID 1 ignores signals it has no handler for (SIGXFSZ, a self-SIGKILL), and when it exits the
    kernel kills every process left in the namespace: so the program runs as PID 2, and this
    process exits with its status (128+N for signal N), taking any stray descendants with it.
    """
    pid = os.fork()
    if pid == 0:
        _run(cfg)
    os.close(cfg["token_fd"])  # the token and the report are the program process's alone
    os.close(cfg["report_fd"])
    _, status = os.waitpid(pid, 0)
    os._exit(128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))


def main() -> None:
    cfg = json.loads(sys.argv[1])
    sys.stdout.flush()
    if os.getpid() == 1:
        _supervise_as_init(cfg)
    _run(cfg)


if __name__ == "__main__":
    main()
