"""The ``amtl-cvx`` command line (entry point :func:`main`).

Modules: :mod:`~amtl_cvx.tools.cli.main` (the parser and :func:`main`),
:mod:`~amtl_cvx.tools.cli.fitting` (``demo``, ``fit``) with
:mod:`~amtl_cvx.tools.cli.grid` (their options and model selection) and
:mod:`~amtl_cvx.tools.cli.report` (what they print and draw),
:mod:`~amtl_cvx.tools.cli.checks` (``verify``, ``bench``); ``compare`` is
:func:`amtl_cvx.lbtw.compare_cli.add_compare_parser`.
"""

from amtl_cvx.tools.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
