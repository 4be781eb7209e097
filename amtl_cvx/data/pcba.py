r"""PCBA-style multi-task data: the file layout of the LBTW release, a loader and a generator.

Layout (Liu, Liang & Gitter, AAAI 2019, PubChem BioAssay data): k comma-separated files,
optionally gzip-compressed (``.csv.gz``), one per fold, each with a header row and one row
per molecule:

- a ``Fingerprints`` column holding the fingerprint as a string of ``0``/``1``
  characters (1024 bits by default);
- one column per task holding ``0``, ``1`` or nothing (missing label). ``0.0`` and
  ``1.0`` (what pandas writes for a column with missing values) are read as 0 and 1;
- optional identifier columns (``smiles``, ``mol_id``, ``molecule_id``, any case) are
  ignored.

Every column needs a distinct, nonempty name (an unnamed pandas index column or a
repeated task name is an error naming the file and the column); a UTF-8 byte-order mark
is ignored. Rows with no label for any task are dropped, as the release does
(``pcba_model.py``, ``PCBADataset``: ``dropna(subset=task_list, how='all')``). The
release reads ``file_0.csv.gz`` ... ``file_4.csv.gz`` (``pcba_run.py``, ``load_data``:
folds 0-2 train, 3 validation, 4 test); :func:`write_pcba_folds` names its files so.

With k folds, the first k - 2 are the training split, fold k - 2 the validation split
and fold k - 1 the test split. Files are taken in the order given, or for a directory
in the natural order of their names (``fold_2`` before ``fold_10``).

Labels come back as float arrays (n, T) with ``NaN`` for a missing label, the form the
networks of :mod:`amtl_cvx.lbtw.network` take. :meth:`PCBAData.to_multitask` gives
AMTL its data: task t uses only the rows labelled for t (``X_t`` = those rows), labels
mapped to {-1, +1}.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from amtl_cvx._validation import check_scalar
from amtl_cvx.data.container import MultiTaskData, MultiTaskDataset

__all__ = [
    "PCBAData",
    "load_pcba_folds",
    "make_pcba_like",
    "write_pcba_folds",
    "FINGERPRINT_COLUMN",
    "ID_COLUMNS",
]

FINGERPRINT_COLUMN = "Fingerprints"
ID_COLUMNS = ("smiles", "mol_id", "molecule_id")
_LABELS = {"": np.nan, "0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0}


@dataclass(frozen=True)
class PCBAData:
    """Train / validation / test splits of PCBA-style data.

    Attributes
    ----------
    X_train, X_val, X_test : numpy.ndarray of uint8, shape (n, n_bits)
        Fingerprint bits.
    Y_train, Y_val, Y_test : numpy.ndarray of float, shape (n, T)
        Labels 0/1, ``NaN`` where missing.
    task_names : tuple of str
    files : tuple of pathlib.Path
        The fold files in the order used (train folds, validation, test).
    dropped : tuple of int
        Rows dropped from each file for having no label at all.
    """

    X_train: np.ndarray
    Y_train: np.ndarray
    X_val: np.ndarray
    Y_val: np.ndarray
    X_test: np.ndarray
    Y_test: np.ndarray
    task_names: tuple[str, ...]
    files: tuple[Path, ...] = field(default=())
    dropped: tuple[int, ...] = field(default=())

    @property
    def n_tasks(self) -> int:
        """Number of tasks T."""
        return self.Y_train.shape[1]

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(X, Y)`` of ``"train"``, ``"val"`` or ``"test"``."""
        if name not in ("train", "val", "test"):
            raise ValueError(f"name must be 'train', 'val' or 'test', got {name!r}")
        return getattr(self, f"X_{name}"), getattr(self, f"Y_{name}")

    def to_multitask(
        self,
        *,
        add_bias: bool = True,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> MultiTaskDataset:
        """AMTL's view: task t uses the rows labelled for t, labels in {-1, +1}.

        Parameters
        ----------
        add_bias : bool, default=True
            Append a column of ones (see :class:`amtl_cvx.data.MultiTaskData`).
        transform : callable, optional
            Applied to every split's fingerprint matrix first (e.g. a projection on
            principal components fitted on the training split) to keep AMTL tractable.

        Raises
        ------
        ValueError
            If a task has no labelled row in some split.
        """
        splits = {}
        for name in ("train", "val", "test"):
            X, Y = self.split(name)
            F = np.asarray(transform(X) if transform is not None else X, dtype=np.float64)
            Xs, ys = [], []
            for t in range(Y.shape[1]):
                rows = np.flatnonzero(~np.isnan(Y[:, t]))
                if rows.size == 0:
                    raise ValueError(f"task {self.task_names[t]!r} has no labelled row in the {name} split")
                Xs.append(F[rows])
                ys.append(2.0 * Y[rows, t] - 1.0)
            splits[name] = MultiTaskData(Xs, ys, add_bias=add_bias, task_names=self.task_names)
        return MultiTaskDataset(**splits, loss="logistic", name="pcba")


# --------------------------------------------------------------------------- loader
def _natural_key(path: Path) -> list:
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def _resolve_files(files: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    if isinstance(files, (str, os.PathLike)):
        root = Path(files)
        if not root.is_dir():
            raise ValueError(f"files must be a directory or a sequence of files, {str(root)!r} is not a directory")
        paths = sorted([p for p in root.iterdir() if p.name.endswith((".csv", ".csv.gz"))], key=_natural_key)
        if not paths:
            raise ValueError(f"files: directory {str(root)!r} holds no .csv or .csv.gz file")
    else:
        paths = [Path(p) for p in files]
    if len(paths) < 3:
        raise ValueError(f"files must name at least 3 folds (train, validation, test), got {len(paths)}")
    for p in paths:
        if not p.is_file():
            raise ValueError(f"files: {str(p)!r} is not a file")
    return paths


def _open_text(path: Path) -> io.TextIOBase:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    # utf-8-sig strips a byte-order mark (written by some spreadsheet programs)
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, "r", encoding="utf-8-sig", newline="")


def _check_header(path: Path, header: list[str]) -> None:
    for j, h in enumerate(header):
        if not h:
            raise ValueError(
                f"{path}, line 1: column {j + 1} has an empty name (an unnamed index column, as pandas "
                f"writes with index=True?); every column needs a name"
            )
    seen: dict[str, int] = {}
    for j, h in enumerate(header):
        if h in seen:
            raise ValueError(f"{path}, line 1: column name {h!r} appears twice (columns {seen[h] + 1} and {j + 1})")
        seen[h] = j


def _read_fold(
    path: Path, n_bits: int | None, fp_col: str, task_columns: Sequence[str] | None, id_columns: Sequence[str],
    drop_unlabelled: bool = True,
) -> tuple[np.ndarray, np.ndarray, list[str], int]:
    try:
        fh = _open_text(path)
        with fh:
            reader = csv.reader(fh)
            try:
                header = next(reader)
            except StopIteration:
                raise ValueError(f"{path}: the file is empty (no header line)") from None
            header = [h.strip() for h in header]
            _check_header(path, header)
            if fp_col not in header:
                raise ValueError(f"{path}, line 1: no {fp_col!r} column in the header")
            fp_idx = header.index(fp_col)
            ids = {c.lower() for c in id_columns}
            if task_columns is None:
                names = [h for h in header if h != fp_col and h.lower() not in ids]
            else:
                names = list(task_columns)
                missing = [c for c in names if c not in header]
                if missing:
                    raise ValueError(f"{path}, line 1: task columns {missing} not in the header")
            if not names:
                raise ValueError(f"{path}, line 1: no task column")
            t_idx = [header.index(c) for c in names]
            bits: list[np.ndarray] = []
            labels: list[list[float]] = []
            dropped = 0
            for row in reader:
                line = reader.line_num
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue
                if len(row) != len(header):
                    raise ValueError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
                fp = row[fp_idx].strip()
                if n_bits is None:
                    n_bits = len(fp)
                if len(fp) != n_bits:
                    raise ValueError(
                        f"{path}, line {line}: fingerprint has {len(fp)} characters, expected {n_bits}"
                    )
                b = np.frombuffer(fp.encode("latin-1", errors="replace"), dtype=np.uint8) - 48
                if np.any(b > 1):
                    bad = fp[int(np.argmax(b > 1))]
                    raise ValueError(f"{path}, line {line}: fingerprint holds {bad!r}; only 0 and 1 are allowed")
                vals = []
                for name, j in zip(names, t_idx):
                    cell = row[j].strip()
                    if cell not in _LABELS:
                        raise ValueError(
                            f"{path}, line {line}: label {cell!r} in column {name!r}; expected 0, 1 or empty"
                        )
                    vals.append(_LABELS[cell])
                if drop_unlabelled and all(v != v for v in vals):  # no label at all: NaN != NaN
                    dropped += 1
                    continue
                bits.append(b)
                labels.append(vals)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{path}: could not be read as a (gzip-compressed) CSV file: {exc}") from exc
    if not bits:
        raise ValueError(f"{path}: no data row" + (f" with a label ({dropped} rows without any)" if dropped else ""))
    return np.vstack(bits).astype(np.uint8), np.array(labels, dtype=np.float64), names, dropped


def load_pcba_folds(
    files: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    n_bits: int | None = 1024,
    fingerprint_column: str = FINGERPRINT_COLUMN,
    task_columns: Sequence[str] | None = None,
    id_columns: Sequence[str] = ID_COLUMNS,
    drop_unlabelled: bool = True,
) -> PCBAData:
    """Load k fold files in the LBTW release's PCBA layout (see the module docstring).

    Parameters
    ----------
    files : path or sequence of paths
        A directory (every ``*.csv`` / ``*.csv.gz`` in it, natural name order) or the
        fold files in order. At least 3.
    n_bits : int or None, default=1024
        Fingerprint length; ``None`` takes the length of the first row.
    fingerprint_column : str, default="Fingerprints"
    task_columns : sequence of str, optional
        The task columns, in this order; default every column except the fingerprint
        and the identifier columns.
    id_columns : sequence of str
        Columns to ignore (compared case-insensitively).
    drop_unlabelled : bool, default=True
        Drop rows with no label for any of the task columns read, as the release does
        (``pcba_model.py``: ``dropna(subset=task_list, how='all')``); their number per
        file is in :attr:`PCBAData.dropped`.

    Returns
    -------
    PCBAData
        Train = folds ``0 .. k-3``, validation = fold ``k-2``, test = fold ``k-1``.

    Raises
    ------
    ValueError
        Naming the file (and line) on an unreadable file, a missing column, an empty or
        duplicated column name, a row with a wrong number of fields, a fingerprint of the wrong length or with a character other
        than 0/1, a label other than 0/1/empty, or folds with different task columns.
    """
    paths = _resolve_files(files)
    if n_bits is not None and (isinstance(n_bits, bool) or int(n_bits) != n_bits or n_bits < 1):
        raise ValueError(f"n_bits must be a positive integer or None, got {n_bits!r}")
    folds = []
    names0 = None
    dropped = []
    for p in paths:
        X, Y, names, nd = _read_fold(p, n_bits, fingerprint_column, task_columns, id_columns, bool(drop_unlabelled))
        dropped.append(nd)
        if n_bits is None:
            n_bits = X.shape[1]
        if names0 is None:
            names0 = names
        elif names != names0:
            raise ValueError(f"{p}, line 1: task columns differ from those of {paths[0]}")
        folds.append((X, Y))
    train = folds[:-2]
    return PCBAData(
        np.vstack([f[0] for f in train]), np.vstack([f[1] for f in train]),
        folds[-2][0], folds[-2][1], folds[-1][0], folds[-1][1],
        tuple(names0), tuple(paths), tuple(dropped),
    )


# --------------------------------------------------------------------------- generator
def make_pcba_like(
    n_molecules: int = 20000,
    n_tasks: int = 128,
    n_bits: int = 1024,
    *,
    n_groups: int = 8,
    group_size: int = 12,
    positive_rate: tuple[float, float] = (0.01, 0.05),
    observed: tuple[float, float] = (0.25, 0.75),
    n_scaffolds: int = 60,
    sharpness: float = 4.0,
    random_state: int | np.random.Generator | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Seeded PCBA-like data: binary fingerprints, rare positives, many missing labels.

    - Molecules belong to ``n_scaffolds`` clusters; each cluster switches on its own ~30
      bits with probability 0.6, and every bit is also on with probability ~0.02 (about
      4-5 % of the bits set, like ECFP).
    - Task t scores a molecule by a sparse linear function of its bits. ``n_groups``
      groups of ``group_size`` **related** tasks share a group direction (plus a
      task-specific part of a third of its size); the remaining tasks are **unrelated**
      (their own direction only). ``n_groups * group_size`` must not exceed ``n_tasks``.
    - Labels: ``y ~ Bernoulli(sigmoid(sharpness * standardised score + b_t))`` with
      ``b_t`` set so that the positive rate is ``U(positive_rate)``.
    - Each task is observed on a random ``U(observed)`` fraction of the molecules; the
      other labels are missing (``NaN``).

    Returns
    -------
    X : numpy.ndarray of uint8, shape (n_molecules, n_bits)
    Y : numpy.ndarray of float, shape (n_molecules, n_tasks)
        0/1 labels, NaN where missing.
    info : dict
        ``"group"`` (T,) group index per task (-1 for unrelated tasks),
        ``"positive_rate"`` (T,) and ``"observed"`` (T,) the drawn rates.
    """
    for name, val, lo in (("n_molecules", n_molecules, 10), ("n_tasks", n_tasks, 1), ("n_bits", n_bits, 8),
                          ("n_groups", n_groups, 0), ("group_size", group_size, 1), ("n_scaffolds", n_scaffolds, 1)):
        if isinstance(val, bool) or int(val) != val or val < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {val!r}")
    if n_groups * group_size > n_tasks:
        raise ValueError(f"n_groups * group_size = {n_groups * group_size} exceeds n_tasks = {n_tasks}")
    for name, pair in (("positive_rate", positive_rate), ("observed", observed)):
        if len(pair) != 2 or not 0 < pair[0] <= pair[1] <= 1:
            raise ValueError(f"{name} must be a pair 0 < lo <= hi <= 1, got {pair!r}")
    sharpness = check_scalar(sharpness, "sharpness", strict=True)
    rng = np.random.default_rng(random_state)
    n, T, d = int(n_molecules), int(n_tasks), int(n_bits)

    k_on = min(30, d)
    proto = np.zeros((n_scaffolds, d))
    for c in range(n_scaffolds):
        proto[c, rng.choice(d, size=k_on, replace=False)] = 0.6
    scaffold = rng.integers(0, n_scaffolds, size=n)
    prob = np.maximum(proto[scaffold], 0.02)
    X = (rng.random((n, d)) < prob).astype(np.uint8)

    def direction(k: int) -> np.ndarray:
        w = np.zeros(d)
        w[rng.choice(d, size=k, replace=False)] = rng.standard_normal(k)
        return w

    k_w = max(2, min(40, d // 4))
    group = np.full(T, -1)
    W = np.zeros((d, T))
    t = 0
    for g in range(n_groups):
        base = direction(k_w)
        for _ in range(group_size):
            W[:, t] = base + 0.5 * direction(max(1, k_w // 3))
            group[t] = g
            t += 1
    for t in range(t, T):
        W[:, t] = direction(k_w)
    perm = rng.permutation(T)  # related tasks are not adjacent
    W, group = W[:, perm], group[perm]

    S = X.astype(np.float64) @ W
    S = (S - S.mean(axis=0)) / np.maximum(S.std(axis=0), 1e-12)
    rates = rng.uniform(*positive_rate, size=T)
    Y = np.empty((n, T))
    for t in range(T):
        z = sharpness * S[:, t]
        lo, hi = -40.0, 40.0
        for _ in range(60):  # bisection on the intercept for the target positive rate
            mid = 0.5 * (lo + hi)
            if np.mean(1.0 / (1.0 + np.exp(-(z + mid)))) < rates[t]:
                lo = mid
            else:
                hi = mid
        p = 1.0 / (1.0 + np.exp(-(z + 0.5 * (lo + hi))))
        Y[:, t] = (rng.random(n) < p).astype(np.float64)
    obs = rng.uniform(*observed, size=T)
    Y[rng.random((n, T)) >= obs] = np.nan
    return X, Y, {"group": group, "positive_rate": rates, "observed": obs}


def write_pcba_folds(
    directory: str | os.PathLike,
    X: np.ndarray,
    Y: np.ndarray,
    *,
    n_folds: int = 5,
    task_names: Sequence[str] | None = None,
    compress: bool = True,
    prefix: str = "file",
) -> list[Path]:
    """Write ``(X, Y)`` as ``n_folds`` files in the PCBA layout (rows split in order).

    Parameters
    ----------
    directory : path
        Created if absent.
    X : array_like of 0/1, shape (n, n_bits)
    Y : array_like, shape (n, T)
        0/1 labels, NaN for missing (written as an empty field).
    n_folds : int, default=5
        At least 3.
    task_names : sequence of str, optional
        Default ``"PCBA-0"``, ``"PCBA-1"``, ...
    compress : bool, default=True
        gzip the files (``.csv.gz``).
    prefix : str, default="file"
        Files are ``<prefix>_<k>.csv[.gz]``: ``file_0.csv.gz`` ... as the release reads
        them (``pcba_run.py``, ``load_data``: ``'file_{}.csv.gz'.format(i)``).

    Returns
    -------
    list of pathlib.Path
        The files, fold 0 first.
    """
    X = np.asarray(X)
    Y = np.asarray(Y, dtype=np.float64)
    if X.ndim != 2 or not np.all(np.isin(X, (0, 1))):
        raise ValueError("X must be a 2-dimensional array of 0/1 bits")
    if Y.ndim != 2 or Y.shape[0] != X.shape[0]:
        raise ValueError(f"Y must have shape ({X.shape[0]}, T), got {Y.shape}")
    if not np.all(np.isnan(Y) | np.isin(Y, (0.0, 1.0))):
        raise ValueError("Y must hold 0, 1 or NaN")
    if isinstance(n_folds, bool) or int(n_folds) != n_folds or not 3 <= n_folds <= X.shape[0]:
        raise ValueError(f"n_folds must be an integer in 3..{X.shape[0]}, got {n_folds!r}")
    T = Y.shape[1]
    names = [f"PCBA-{t}" for t in range(T)] if task_names is None else [str(s) for s in task_names]
    if len(names) != T:
        raise ValueError(f"task_names has {len(names)} names for {T} tasks")
    if any(not n.strip() or n.strip() != n or "," in n or '"' in n for n in names):
        raise ValueError("task_names must be nonempty, without surrounding spaces, commas or quotes")
    if len(set(names) | {FINGERPRINT_COLUMN}) != T + 1:
        raise ValueError(f"task_names must be distinct and differ from {FINGERPRINT_COLUMN!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    bits = X.astype(np.uint8) + 48
    cells = np.where(np.isnan(Y), "", np.where(Y == 1.0, "1", "0"))
    bounds = np.linspace(0, X.shape[0], int(n_folds) + 1).astype(int)
    out = []
    for k in range(int(n_folds)):
        path = directory / f"{prefix}_{k}.csv{'.gz' if compress else ''}"
        lines = [",".join([FINGERPRINT_COLUMN] + names)]
        for i in range(bounds[k], bounds[k + 1]):
            lines.append(bits[i].tobytes().decode("ascii") + "," + ",".join(cells[i]))
        text = "\n".join(lines) + "\n"
        if compress:
            with gzip.open(path, "wt", encoding="utf-8", compresslevel=4) as fh:
                fh.write(text)
        else:
            path.write_text(text, encoding="utf-8")
        out.append(path)
    return out
