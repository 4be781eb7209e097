"""The ``amtl-cvx`` command line.

``amtl-cvx demo``    fit single-task and AMTL models on a generated planted-graph problem.
``amtl-cvx fit``     fit AMTL on a ``.mat`` file in the original release's layout.
``amtl-cvx verify``  solve one subproblem with the fast (and first-order) solvers and every CVXPY backend.
``amtl-cvx bench``   time the fast solvers against the CVXPY backends.
``amtl-cvx compare`` AMTL vs single-task and multi-task networks (LBTW, GradNorm, ...).
"""

from __future__ import annotations

import argparse
import logging
import sys

from amtl_cvx.tools.cli._base import _Parser
from amtl_cvx.tools.cli.checks import add_bench_parser, add_verify_parser
from amtl_cvx.tools.cli.fitting import add_demo_parser, add_fit_parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="amtl-cvx", description=__doc__.replace("``", ""),
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log the algorithms' progress")
    sub = parser.add_subparsers(dest="command", required=True)
    add_demo_parser(sub)
    add_fit_parser(sub)

    from amtl_cvx.lbtw.compare_cli import add_compare_parser

    add_compare_parser(sub)
    add_verify_parser(sub)
    add_bench_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``amtl-cvx``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(name)s: %(message)s")
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"amtl-cvx: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if not isinstance(exc, _exact_errors()):
            raise
        print(f"amtl-cvx: error: {exc}", file=sys.stderr)
        return 1


def _exact_errors() -> tuple[type, ...]:
    """The exact layer's errors (a statement refused for memory, a solver that failed).

    Looked up among the imported modules: importing them would import CVXPY, and an
    error of theirs can only come from a run that imported them.
    """
    errors: list[type] = []
    for module, name in (("amtl_cvx.problems.exact", "ExactSolveError"),
                         ("amtl_cvx.problems.memory", "ExactMemoryError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
    return tuple(errors)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
