"""``main``: parse the command line, run the command, turn errors into exit status 2."""

from __future__ import annotations

import sys

from ._args import build_parser
from ._commands import _cluster, _demo
from ._common import PROG, CLIError, _one_line, _os_error


def main(argv: list[str] | None = None) -> int:
    """Run the ``skdeepcluster`` command.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None. No
        arguments runs the demo.

    Returns
    -------
    status : int
        0 on success, 2 on a usage, data or input/output error (reported as
        one line ``skdeepcluster: error: ...`` on stderr), 130 when
        interrupted.
    """
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv or ["demo"])
        if args.command is None:  # only options such as --version were given
            args = build_parser().parse_args(["demo"])
        args.argv = argv  # recorded in summary.json
        if args.command == "demo":
            return _demo(args)
        return _cluster(args)
    except (CLIError, OSError) as exc:
        message = _os_error(exc) if isinstance(exc, OSError) else _one_line(exc)
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {message}\n")
        return 2
    except SystemExit as exc:  # --help and --version
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG}: interrupted\n")
        return 130
