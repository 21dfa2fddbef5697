"""The ``synther-fast`` command line run in this process (``cli.main(argv)``), its output captured:
the same code as the console script without a cold interpreter start per call. One test
(test_cli.test_version) still starts the installed console script itself."""

from __future__ import annotations

import contextlib
import io
import traceback
from dataclasses import dataclass

from synther_fast.cli import main


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str) -> Result:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:  # tyro's --help and its parse errors
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except Exception:  # what the interpreter does with an uncaught error (--debug re-raises)
            traceback.print_exc()
            code = 1
    return Result(int(code), out.getvalue(), err.getvalue())
