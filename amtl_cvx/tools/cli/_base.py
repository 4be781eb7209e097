"""The argument parser classes of the ``amtl-cvx`` command line."""

from __future__ import annotations

import argparse

__all__ = ["_Formatter", "_Parser"]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it is None or a flag's boolean."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)



class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (no usage block)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

