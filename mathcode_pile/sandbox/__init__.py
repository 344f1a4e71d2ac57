"""The one sandbox of the project: run untrusted, model-written Python in isolation.

Two ways in, one mechanism underneath:

(a) Snippets with fresh state (MathCode-Pile verification)::

        from mathcode_pile.sandbox import SandboxLimits, SandboxPool

        with SandboxPool(workers=4, limits=SandboxLimits(timeout_s=5)) as pool:
            result = pool.run("from fractions import Fraction\\nprint(Fraction(3, 4))")
            result.status, result.stdout          # ('ok', '3/4\\n')
            results = pool.run_many(snippets)     # every worker busy, results in input order
            result = await pool.arun(code)        # from asyncio

(b) A stateful session per problem (MathCoder LCE inference)::

        from mathcode_pile.sandbox import PythonSession

        with PythonSession(limits=SandboxLimits(timeout_s=10)) as session:   # or PythonSession(pool=pool)
            session.run_cell("import sympy as sp\\nx = sp.Symbol('x')")
            session.run_cell("sp.solve(x**2 - 4, x)").stdout                 # '[-2, 2]\\n'

Every call returns an :class:`ExecResult` ``(status, stdout, stderr, exit_code, reason, duration_s, truncated)``;
``status`` is one of ``ok, error, timeout, memory_limit, output_limit, killed, sandbox_error``. Nothing the code does
raises in the caller.

How it works
------------
A :class:`SandboxPool` starts ``workers`` processes (``python -m mathcode_pile.sandbox.worker``) with a scrubbed
environment. Each worker sets up its isolation once, imports the math stack once (sympy, numpy, scipy, fractions,
math, ...; see ``DEFAULT_PRELOAD``), runs a warm-up of common sympy calls (``DEFAULT_WARMUP``: their first call
imports submodules and fills caches), and then, per snippet, forks a child. The child starts from the worker's
pre-warmed state, which it shares copy-on-write, so ``import sympy`` costs nothing and no state survives a run. A
session is such a child that is kept alive between cells.

Each child, before running anything (:func:`.child.enter_sandbox`):

- gets its own process group, stdin from ``/dev/null``, stdout / stderr into files that ``RLIMIT_FSIZE`` caps (a
  snippet printing 100 MB hits the cap and fails with ``output_limit``; the parent reads only head + tail of them,
  with ANSI codes stripped);
- gets a fresh private working directory (also ``HOME`` and ``TMPDIR``), removed after the run;
- gets an environment of a few fixed variables: tokens and keys of the parent (``HF_TOKEN`` ...) are not there;
- gets ``RLIMIT_CPU`` (soft, then SIGKILL one second later), ``RLIMIT_AS`` (``memory_mb`` on top of the preloaded
  state), ``RLIMIT_FSIZE``, ``RLIMIT_NOFILE``, ``RLIMIT_NPROC`` and no core dumps;
- as root (``isolation="namespaces"``, chosen automatically): runs in the worker's network namespace (no interface
  up, so no network at all, 127.0.0.1 of the host included) and mount namespace (private tmpfs for ``/tmp``,
  ``/var/tmp``, ``/dev/shm``; home folders on the way to the interpreter hidden), under a user id of its own with
  ``no_new_privs``: it cannot write the host's files, signal or inspect other processes, and its process count limit
  is exact;
- installs an audit hook (:mod:`.guard`) that refuses non-Unix sockets, ``ctypes``, running programs, writes outside
  its directory, reading other processes' ``/proc`` entries and signalling outside its process group;
- dies with its worker (``PR_SET_PDEATHSIG``).

The worker enforces the wall timeout (SIGKILL), and, being a child subreaper, kills every process a run left behind,
even one that called ``setsid``. A worker that dies is replaced and the run reports ``sandbox_error``.

What it does not protect against
--------------------------------
- Kernel exploits: this is process isolation (namespaces, uids, rlimits), not a virtual machine or gVisor. Code that
  gains a kernel bug gets out.
- Without root (``isolation="process"``): no network namespace and no separate user id. Then network, writes outside
  the working directory and signals are refused only by the audit hook, which native code can bypass (an extension
  module making system calls directly); the process count limit is shared with the user's other processes; the code
  can read every file the user can read, including ``/proc`` entries of the user's other processes by native means.
  Processes a run leaves behind are killed while their worker lives, but not if the worker itself is killed with
  SIGKILL (no PID namespace to take them down). Root with ``isolation="process"`` gets no process count limit from
  the kernel, so the audit hook refuses ``fork`` altogether there.
- Reading: even as root, files readable by everyone (``/etc``, the repository, the installed packages) stay readable.
- Resource use within the limits: a snippet may burn its full CPU and memory budget; CPU time of a session is a
  budget for the whole session, not per cell; page cache and tmpfs use count towards the host's memory.
- Timing and side channels, and denial of service through the kernel (e.g. exhausting inotify watches).
"""

from mathcode_pile.sandbox.limits import DEFAULT_PRELOAD, DEFAULT_WARMUP, SandboxLimits
from mathcode_pile.sandbox.pool import SandboxError, SandboxPool, WorkerInfo
from mathcode_pile.sandbox.result import EXEC_STATUSES, ExecResult, ExecStatus
from mathcode_pile.sandbox.session import PythonSession

__all__ = [
    "DEFAULT_PRELOAD",
    "DEFAULT_WARMUP",
    "EXEC_STATUSES",
    "ExecResult",
    "ExecStatus",
    "PythonSession",
    "SandboxError",
    "SandboxLimits",
    "SandboxPool",
    "WorkerInfo",
]
