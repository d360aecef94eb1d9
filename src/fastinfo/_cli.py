"""The ``fastinfo`` command line.

Subcommands::

    fastinfo demo                      known answers on generated data, with peer timings
    fastinfo mi TABLE --target COL     rank the columns of a table by mutual information with COL
    fastinfo logits LOGITS TARGETS     stream large .npy / .safetensors logits (float32/16, bfloat16):
                                       cross-entropy, perplexity, entropy, KL
    fastinfo logits --head HEAD HIDDEN TARGETS    the same from hidden states (logits never stored)
    fastinfo bench [args]              the side-by-side benchmark comparison (fastinfo._bench)

Every subcommand takes ``--format table|json|csv`` (results on stdout) and ``--quiet``
(no progress bar; bars are drawn on stderr with tqdm, and only when stderr is a terminal).
Bad input prints one line ``fastinfo: error: ...`` on stderr and exits with status 2.
"""
import argparse
import csv
import importlib
import io
import json
import math
import mmap
import os
import sys
import time

import numpy as np

EXIT_USAGE = 2

# =============================================================================
# Errors, progress bars and output formats shared by the subcommands
# =============================================================================


class CLIError(Exception):
    """A problem with the user's input, reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line ``fastinfo: error: ...`` (exit 2), no usage dump."""

    def error(self, message):
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        hint = f" (see 'fastinfo {command} --help')" if command else " (see 'fastinfo --help')"
        raise CLIError(f"{message}{hint}")


def _one_line(text):
    return " ".join(str(text).split())


def progress(total, desc, args, unit="it", unit_scale=False):
    """A tqdm bar on stderr; disabled by ``--quiet`` or when stderr is not a terminal.

    ``delay=1`` keeps the bar hidden for work that finishes within about a second.
    """
    from tqdm import tqdm

    disable = bool(getattr(args, "quiet", False)) or not _stderr_is_tty()
    kwargs = dict(total=total, desc=desc, unit=unit, unit_scale=unit_scale, file=sys.stderr,
                  disable=disable, leave=False, dynamic_ncols=True)
    try:
        return tqdm(delay=1.0, **kwargs)
    except TypeError:  # tqdm < 4.60 has no ``delay``
        return tqdm(**kwargs)


def _stderr_is_tty():
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _finite_or_none(value):
    """JSON has no NaN/inf: non-finite floats become null."""
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def fmt_number(value, digits=4):
    """A value for a terminal table: fixed point for ordinary magnitudes, else scientific."""
    if value is None:
        return "-"
    value = float(value)
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if value == 0.0:
        return "0"
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:.{digits}f}"
    return f"{value:.{max(digits - 1, 1)}e}"


def fmt_seconds(seconds):
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def render_table(headers, rows, align):
    """Plain-text table: ``align`` holds '<' or '>' per column; ``rows`` are lists of strings."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row)]

    def line(cells):
        return "  ".join(f"{c:{a}{w}}" for c, a, w in zip(cells, align, widths)).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(row) for row in rows)
    return "\n".join(out)


def write_csv(fieldnames, records, stream):
    writer = csv.DictWriter(stream, fieldnames=fieldnames, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for record in records:
        writer.writerow({k: ("" if v is None else (repr(float(v)) if isinstance(v, (float, np.floating)) else v))
                         for k, v in record.items()})


def write_json(payload, stream):
    json.dump(_finite_or_none(payload), stream, indent=2, allow_nan=False)
    stream.write("\n")


def _add_common_options(parser):
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table",
                        help="output format on stdout (default: table)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="no progress bar on stderr")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _int(text):
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (value > 0.0) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


# =============================================================================
# fastinfo mi: rank the columns of a table by mutual information with a target
# =============================================================================


def read_table(path):
    """Columns of a CSV / .npy / .npz / Parquet file as ``(names, columns)``.

    Columns are 1-D NumPy arrays: numeric dtypes where the file says so, strings
    (CSV cells, Parquet strings) otherwise; conversion is left to :func:`_column_values`.
    """
    if not os.path.exists(path):
        raise CLIError(f"table file not found: {path}")
    if os.path.isdir(path):
        raise CLIError(f"table path is a directory, not a file: {path}")
    lower = path.lower()
    if lower.endswith(".npy"):
        return _read_npy_table(path)
    if lower.endswith(".npz"):
        return _read_npz_table(path)
    if lower.endswith((".parquet", ".pq")):
        return _read_parquet_table(path)
    return _read_csv_table(path)


def _read_csv_table(path):
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            sample = handle.read(64 * 1024)
            handle.seek(0)
            if path.lower().endswith(".tsv"):
                delimiter = "\t"
            else:
                try:
                    delimiter = csv.Sniffer().sniff(sample, delimiters=",;\t").delimiter
                except csv.Error:
                    delimiter = ","
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            if header is None:
                raise CLIError(f"{path} is empty (expected a header row naming the columns)")
            header = [name.strip() for name in header]
            if len(set(header)) != len(header):
                dup = sorted({n for n in header if header.count(n) > 1})
                raise CLIError(f"{path}: duplicate column names in the header: {', '.join(map(repr, dup))}")
            cells = [[] for _ in header]
            for line_no, row in enumerate(reader, start=2):
                if not row or (len(row) == 1 and not row[0].strip()):
                    continue  # blank line
                if len(row) != len(header):
                    raise CLIError(f"{path}, line {line_no}: {len(row)} fields, but the header has {len(header)}")
                for column, cell in zip(cells, row):
                    column.append(cell.strip())
    except UnicodeDecodeError as exc:
        raise CLIError(f"{path} is not a UTF-8 text (CSV) file: {exc.reason}") from None
    except csv.Error as exc:
        raise CLIError(f"{path} is not a readable CSV file: {exc}") from None
    if not cells or not cells[0]:
        raise CLIError(f"{path} has a header but no data rows")
    # Line numbers for messages: data row i sits on line i + 2 (header is line 1) when no blanks.
    return header, [np.array(column, dtype=str) for column in cells], "line", 2


def _read_npy_table(path):
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npy array: {_one_line(exc)}") from None
    if arr.dtype.names:  # structured array: one field per column
        if arr.ndim != 1:
            raise CLIError(f"{path}: a structured array must be 1-D; got shape {arr.shape}")
        return list(arr.dtype.names), [np.asarray(arr[name]) for name in arr.dtype.names], "row", 0
    if arr.ndim != 2:
        raise CLIError(f"{path} must hold a 2-D array (rows, columns); got shape {arr.shape}")
    return [str(j) for j in range(arr.shape[1])], [arr[:, j] for j in range(arr.shape[1])], "row", 0


def _read_npz_table(path):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as a .npz archive: {_one_line(exc)}") from None
    if not arrays:
        raise CLIError(f"{path} holds no arrays")
    if len(arrays) == 1:
        (only,) = arrays.values()
        if only.ndim == 2:
            return [str(j) for j in range(only.shape[1])], [only[:, j] for j in range(only.shape[1])], "row", 0
    lengths = {}
    for name, arr in arrays.items():
        if arr.ndim != 1:
            raise CLIError(f"{path}: array {name!r} must be 1-D (one array per column); got shape {arr.shape}")
        lengths[name] = arr.shape[0]
    if len(set(lengths.values())) > 1:
        desc = ", ".join(f"{name!r} has {n}" for name, n in lengths.items())
        raise CLIError(f"{path}: columns have different numbers of rows: {desc}")
    return list(arrays), list(arrays.values()), "row", 0


def _read_parquet_table(path):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CLIError("reading Parquet files needs pyarrow (pip install pyarrow); "
                       "or save the table as CSV, .npy or .npz") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own exception types
        raise CLIError(f"cannot read {path} as Parquet: {_one_line(exc)}") from None
    columns = []
    for name in table.column_names:
        values = table.column(name).to_numpy(zero_copy_only=False)
        if values.dtype == object:
            values = np.array(["" if v is None else str(v) for v in values], dtype=str)
        columns.append(values)
    return [str(n) for n in table.column_names], columns, "row", 0


def _column_values(name, values, discrete, where, first):
    """One column as float64: numbers as they are; a discrete column of strings as label codes."""
    kind = values.dtype.kind
    if discrete:
        if kind in "biuf":
            out = values.astype(np.float64)
            bad = np.flatnonzero(~np.isfinite(out))
            if bad.size:
                raise CLIError(f"column {name!r} holds {values[bad[0]]!r} at {where} {bad[0] + first}; "
                               "discrete labels must be finite")
            return out
        if kind not in "USO":
            raise CLIError(f"column {name!r} has unsupported dtype {values.dtype}")
        _, codes = np.unique(values.astype(str), return_inverse=True)
        return codes.astype(np.float64)
    if kind in "biuf":
        out = values.astype(np.float64)
    elif kind in "USO":
        try:
            out = values.astype(np.float64)
        except (ValueError, TypeError):
            for i, cell in enumerate(values):
                try:
                    float(cell)
                except (ValueError, TypeError):
                    shown = "an empty cell" if str(cell) == "" else repr(str(cell))
                    raise CLIError(f"column {name!r} is not numeric ({shown} at {where} {i + first}); "
                                   f"list it in --discrete to treat it as categorical labels") from None
            raise CLIError(f"column {name!r} is not numeric") from None
    else:
        raise CLIError(f"column {name!r} is not numeric (dtype {values.dtype}); "
                       "list it in --discrete to treat it as categorical labels")
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise CLIError(f"column {name!r} holds {out[bad[0]]} at {where} {bad[0] + first}; "
                       "the estimators need finite values (drop or impute missing values first)")
    return out


def command_mi(args):
    import fastinfo as fi

    names, columns, where, first = read_table(args.table)
    if args.target not in names:
        raise CLIError(f"unknown target column {args.target!r}; {_available(names)}")
    discrete = set()
    if args.discrete:
        for name in (n.strip() for n in args.discrete.split(",")):
            if not name:
                continue
            if name not in names:
                raise CLIError(f"unknown column {name!r} in --discrete; {_available(names)}")
            discrete.add(name)
    features = [n for n in names if n != args.target]
    if not features:
        raise CLIError(f"{args.table} has no column besides the target {args.target!r}")
    n_rows = len(columns[0])
    target_index = names.index(args.target)
    y = _column_values(args.target, columns[target_index], args.target in discrete, where, first)
    X = np.empty((n_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        X[:, j] = _column_values(name, columns[names.index(name)], name in discrete, where, first)
    mask = np.array([name in discrete for name in features], dtype=bool)
    target_discrete = args.target in discrete
    if not 1 <= args.k < n_rows:
        raise CLIError(f"--k must satisfy 1 <= k < number of rows = {n_rows}; got k={args.k}")

    started = time.perf_counter()
    bar = progress(len(features), "mutual information", args, unit="col")
    if bar.disable:
        mi = np.asarray(fi.mutual_info_features(X, y, k=args.k, discrete_features=mask,
                                                discrete_target=target_discrete), dtype=np.float64)
    else:  # one column per call so the bar moves; every column's estimate is independent
        mi = np.empty(len(features))
        for j in range(len(features)):
            mi[j] = fi.mutual_info_features(X[:, j:j + 1], y, k=args.k, discrete_features=mask[j:j + 1],
                                            discrete_target=target_discrete)[0]
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - started

    order = sorted(range(len(features)), key=lambda j: (-mi[j] if not math.isnan(mi[j]) else math.inf, j))
    if args.top is not None:
        order = order[:args.top]
    records = [
        {"rank": rank, "column": features[j], "kind": "discrete" if mask[j] else "continuous",
         "mi_nats": float(mi[j]), "mi_bits": float(mi[j]) / math.log(2.0)}
        for rank, j in enumerate(order, start=1)
    ]
    out = sys.stdout
    if args.format == "json":
        write_json({"table": args.table, "target": args.target,
                    "target_kind": "discrete" if target_discrete else "continuous",
                    "rows": n_rows, "k": args.k, "seconds": seconds, "columns": records}, out)
    elif args.format == "csv":
        write_csv(["rank", "column", "kind", "mi_nats", "mi_bits"], records, out)
    else:
        kind = "discrete" if target_discrete else "continuous"
        out.write(f"Mutual information with {args.target!r} ({kind}) - {n_rows} rows, "
                  f"{len(features)} columns, k={args.k}, {fmt_seconds(seconds)}\n\n")
        rows = [[str(r["rank"]), r["column"], r["kind"], fmt_number(r["mi_nats"]), fmt_number(r["mi_bits"])]
                for r in records]
        out.write(render_table(["rank", "column", "kind", "MI (nats)", "MI (bits)"], rows,
                               [">", "<", "<", ">", ">"]) + "\n")
    return 0


def _available(names, limit=12):
    shown = ", ".join(map(repr, names[:limit]))
    more = f", ... ({len(names)} in all)" if len(names) > limit else ""
    return f"columns are {shown}{more}"


# =============================================================================
# fastinfo logits: stream memory-mapped .npy / .safetensors logits in row chunks
# =============================================================================

_DEFAULT_CHUNK_BYTES = 64 * 1024 * 1024


def _check_file(path, what):
    if not os.path.exists(path):
        raise CLIError(f"{what} file not found: {path}")
    if os.path.isdir(path):
        raise CLIError(f"{what} path is a directory, not a file: {path}")


def _load_array(path, what, key=None, key_option="--key", key_is_for_this_file=True):
    """A memory-mapped array of a .npy or .safetensors file, as ``(array, half)``.

    ``half`` is ``FLOAT16`` or ``BFLOAT16`` when the array holds the bits of half-precision values
    (uint16; a bfloat16 array needs no ml_dtypes), else 0. ``key`` picks a tensor of a .safetensors
    file; given for a .npy file it is an error unless it was meant for another file as well.
    """
    _check_file(path, what)
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
    except OSError as exc:
        raise CLIError(f"cannot open {what} {path}: {exc.strerror or exc}") from None
    if magic[:6] == b"\x93NUMPY":
        if key is not None and key_is_for_this_file:
            raise CLIError(f"{key_option} picks a tensor of a .safetensors file; {what} {path} is a .npy file")
        return _load_npy(path, what)
    if path.lower().endswith(".safetensors") or _looks_like_safetensors(magic):
        return _load_safetensors(path, what, key, key_option)
    if magic[:4] == b"PK\x03\x04":
        raise CLIError(f"{what} {path} is an .npz archive; expected a single .npy array or a .safetensors file")
    raise CLIError(f"{what} {path} is not a .npy file (save arrays with numpy.save) or a .safetensors file")


def _load_npy(path, what):
    from ._validation import BFLOAT16, half_code

    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"cannot read {what} {path} as a .npy array: {_one_line(exc)}") from None
    half = half_code(arr.dtype)
    if arr.dtype.kind == "V" and arr.dtype.itemsize == 2 and not arr.dtype.names and not half:
        half = BFLOAT16  # numpy.save writes an ml_dtypes.bfloat16 array with dtype V2
    if half:
        return arr.view(np.uint16), half
    if arr.dtype.names or arr.dtype.kind not in "biuf":
        raise CLIError(f"{what} {path} must hold numbers; got dtype {arr.dtype}")
    return arr, 0


# safetensors: an 8-byte little-endian header length N, N bytes of JSON mapping each tensor name to
# {"dtype", "shape", "data_offsets": [begin, end]} (offsets into the byte buffer after the header;
# an optional "__metadata__" entry), then the buffer. Read here directly, memory-mapped: the
# safetensors package copies tensors out and has no NumPy bfloat16.
_SAFETENSORS_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<u2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"), "U32": np.dtype("<u4"), "U16": np.dtype("<u2"), "U8": np.dtype("u1"),
}
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


def _looks_like_safetensors(first8):
    if len(first8) < 8:
        return False
    return 2 <= int.from_bytes(first8, "little") <= _SAFETENSORS_MAX_HEADER


def _load_safetensors(path, what, key, key_option):
    from ._validation import BFLOAT16, FLOAT16

    size = os.path.getsize(path)
    try:
        with open(path, "rb") as handle:
            prefix = handle.read(8)
            n_header = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 2 <= n_header <= min(_SAFETENSORS_MAX_HEADER, size - 8):
                raise CLIError(f"{what} {path} is not a .safetensors file (bad header length)")
            header = json.loads(handle.read(n_header).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CLIError(f"{what} {path} is not a .safetensors file (its header is not JSON: {_one_line(exc)})") from None
    except OSError as exc:
        raise CLIError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    if not isinstance(header, dict):
        raise CLIError(f"{what} {path} is not a .safetensors file (its header is not a JSON object)")
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    if key is None:
        if len(tensors) != 1:
            names = ", ".join(map(repr, sorted(tensors)[:12])) or "none"
            raise CLIError(f"{what} {path} holds {len(tensors)} tensors ({names}); pick one with {key_option} NAME")
        (key,) = tensors
    elif key not in tensors:
        names = ", ".join(map(repr, sorted(tensors)[:12])) or "none"
        raise CLIError(f"{what} {path} has no tensor {key!r} ({key_option}); it holds {names}")
    info = tensors[key]
    try:
        dtype_name, shape, (begin, end) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
        shape = tuple(int(d) for d in shape)
        begin, end = int(begin), int(end)
    except (KeyError, TypeError, ValueError):
        raise CLIError(f"{what} {path}: tensor {key!r} has a malformed header entry") from None
    if dtype_name not in _SAFETENSORS_DTYPES:
        raise CLIError(f"{what} {path}: tensor {key!r} has dtype {dtype_name}; fastinfo reads "
                       f"{', '.join(_SAFETENSORS_DTYPES)}")
    dtype = _SAFETENSORS_DTYPES[dtype_name]
    data_start = 8 + n_header
    if any(d < 0 for d in shape) or not 0 <= begin <= end or end - begin != math.prod(shape) * dtype.itemsize \
            or data_start + end > size:
        raise CLIError(f"{what} {path}: tensor {key!r} of shape {shape} and dtype {dtype_name} does not fit "
                       f"its data offsets [{begin}, {end}] in a file of {size} bytes")
    half = {"F16": FLOAT16, "BF16": BFLOAT16}.get(dtype_name, 0)
    if math.prod(shape) == 0:
        return np.empty(shape, dtype=dtype), half
    try:
        arr = np.memmap(path, dtype=dtype, mode="r", offset=data_start + begin, shape=shape)
    except (ValueError, OSError) as exc:
        raise CLIError(f"cannot map {what} {path}: {_one_line(exc)}") from None
    return arr, half


def _argmax_rows(chunk, half):
    """Index of the largest value of each row (the first NaN's, like numpy.argmax), of half bits too."""
    from ._validation import BFLOAT16

    if half == BFLOAT16:
        # bfloat16 patterns ordered as their values: flip the magnitude of negatives; NaN above all
        bits = chunk.view(np.int16)
        key = bits ^ ((bits >> 15) & np.int16(0x7fff))
        key[(chunk & 0x7fff) > 0x7f80] = np.iinfo(np.int16).max
        return np.argmax(key, axis=-1)
    return np.argmax(chunk.view(np.float16) if half else chunk, axis=-1)


class _RowSource:
    """Rows ``[start, stop)`` of an array viewed as ``(rows, *tail)`` in C order, chunk by chunk.

    A C-contiguous memmap is reshaped for free, so chunks are views of the file and the pages of
    a finished chunk are handed back to the kernel (``madvise(MADV_DONTNEED)``), keeping the
    resident size bounded by the chunk size even for files larger than RAM.
    """

    def __init__(self, arr, tail_ndim):
        self.arr = arr
        self.tail_shape = arr.shape[arr.ndim - tail_ndim:]
        self.flat = arr.reshape((-1,) + self.tail_shape) if arr.flags.c_contiguous else None
        self._mmap = getattr(arr, "_mmap", None) if self.flat is not None else None
        offset = getattr(arr, "offset", None)
        self._base = None if offset is None else offset % mmap.ALLOCATIONGRANULARITY
        self._row_bytes = arr.itemsize * math.prod(self.tail_shape)

    def release(self, start, stop):
        if self._mmap is None or self._base is None or not hasattr(self._mmap, "madvise"):
            return
        begin = self._base + start * self._row_bytes
        end = self._base + stop * self._row_bytes
        begin -= begin % mmap.PAGESIZE
        try:
            end = min(end, len(self._mmap))
            if end > begin:
                self._mmap.madvise(mmap.MADV_DONTNEED, begin, end - begin)
        except (AttributeError, OSError, ValueError):
            self._mmap = None  # best effort only


def _chunks(sources, batch_shape, chunk_rows):
    """Yield ``(start, stop, [rows start:stop of each source as (rows, *tail)])`` in row order."""
    n_rows = math.prod(batch_shape)
    if all(s.flat is not None or s.arr.ndim == len(s.tail_shape) + 1 for s in sources):
        views = [s.flat if s.flat is not None else s.arr for s in sources]
        for start in range(0, n_rows, chunk_rows):
            stop = min(start + chunk_rows, n_rows)
            yield start, stop, [v[start:stop] for v in views]
        return
    # Some array is an N-D non-C-contiguous file (np.save of a Fortran array): step along the
    # leading axis, copying one chunk at a time into C order.
    inner = math.prod(batch_shape[1:])
    step = max(1, chunk_rows // max(inner, 1))
    for lead in range(0, batch_shape[0], step):
        stop_lead = min(lead + step, batch_shape[0])
        parts = [np.reshape(s.arr.reshape(batch_shape + s.tail_shape)[lead:stop_lead], (-1,) + s.tail_shape)
                 for s in sources]
        yield lead * inner, stop_lead * inner, parts


def _check_targets_shape(targets, batch_shape, what, shape, path):
    n_rows = math.prod(batch_shape)
    if targets.dtype.kind not in "iu":
        raise CLIError(f"targets must hold integer class indices; got dtype {targets.dtype} from {path}")
    if targets.shape != batch_shape:
        if targets.ndim == 1 and targets.shape[0] == n_rows:
            return targets.reshape(batch_shape) if targets.flags.c_contiguous else targets
        also = f" or ({n_rows},)" if len(batch_shape) > 1 else ""
        raise CLIError(f"targets shape {targets.shape} does not match the {what}: {what} of shape {shape} "
                       f"need targets of shape {batch_shape}{also}")
    return targets


def _logits_chunk_values(fi, parts, ignore, temperature, other, half=0, other_half=0):
    """Per-row values of the kept (non-ignored) rows of one chunk of logits (half: bits read as they are)."""
    from ._validation import DenseArray

    raw_chunk, target = parts[0], parts[1]
    chunk = DenseArray(raw_chunk, half) if half else raw_chunk
    loss = np.asarray(fi.softmax_cross_entropy(chunk, target, reduction="none", ignore_index=ignore,
                                               temperature=temperature), dtype=np.float64).reshape(-1)
    keep = None if ignore is None else np.asarray(target).reshape(-1) != ignore
    values = {"cross_entropy": loss}
    if keep is not None and not keep.any():
        return {"cross_entropy": loss[:0]}
    values["entropy"] = np.asarray(fi.softmax_entropy(chunk, temperature=temperature),
                                   dtype=np.float64).reshape(-1)
    if other:
        other_chunk = DenseArray(parts[2], other_half) if other_half else parts[2]
        values["cross_entropy_q"] = np.asarray(fi.softmax_cross_entropy(
            other_chunk, target, reduction="none", ignore_index=ignore, temperature=temperature),
            dtype=np.float64).reshape(-1)
        values["kl_pq"] = np.asarray(fi.softmax_kl_divergence(chunk, other_chunk, temperature=temperature),
                                     dtype=np.float64).reshape(-1)
        values["kl_qp"] = np.asarray(fi.softmax_kl_divergence(other_chunk, chunk, temperature=temperature),
                                     dtype=np.float64).reshape(-1)
        values["same_argmax"] = (_argmax_rows(raw_chunk, half) == _argmax_rows(parts[2], other_half)).reshape(-1)
    if keep is not None:
        values = {name: v[keep] for name, v in values.items()}
    return values


def _hidden_chunk_values(parts, heads, ignore, temperature, other):
    """Per-row values of the kept rows of one chunk of hidden states (one pass over the vocabulary)."""
    from ._linear import linear_report

    head, bias, other_head, other_bias = heads
    hidden, target = parts[0], parts[1]
    if other:
        return linear_report(hidden, head, target, bias=bias, hidden_q=parts[2], head_q=other_head,
                             bias_q=other_bias, temperature=temperature, ignore_index=ignore)
    return linear_report(hidden, head, target, bias=bias, temperature=temperature, ignore_index=ignore)


def _typed_half(bits, half, what, path):
    """Half-precision bits as a float16 or ml_dtypes.bfloat16 array (a view; for the linear kernels)."""
    from ._validation import BFLOAT16

    if half != BFLOAT16:
        return bits.view(np.float16)
    try:
        import ml_dtypes
    except ImportError:
        raise CLIError(f"{what} {path} hold bfloat16 values: with --head they need ml_dtypes "
                       "(pip install \"fastinfo[half]\")") from None
    return bits.view(ml_dtypes.bfloat16)


def _load_head(path, what, width, hidden_path):
    _check_file(path, what)
    head, half = _load_npy(path, what)
    if half:
        head = _typed_half(head, half, what, path)
    if head.ndim != 2:
        raise CLIError(f"{what} must be 2-D (vocab, d); got shape {head.shape} from {path}")
    if head.shape[1] != width:
        raise CLIError(f"{what} {path} has shape {head.shape} (d = {head.shape[1]}), but the hidden states "
                       f"{hidden_path} have d = {width}")
    if head.shape[0] == 0:
        raise CLIError(f"{what} {path} has no rows (an empty vocabulary)")
    return head


def _load_bias(path, what, n_vocab):
    if path is None:
        return None
    _check_file(path, what)
    bias, half = _load_npy(path, what)
    if half:
        bias = _typed_half(bias, half, what, path)
    if bias.shape != (n_vocab,):
        raise CLIError(f"{what} {path} must have shape ({n_vocab},), one entry per row of the head; "
                       f"got {bias.shape}")
    return np.asarray(bias)


def command_logits(args):
    import fastinfo as fi

    fused = args.head is not None
    for option in ("bias", "against_head", "against_bias"):
        if getattr(args, option) is not None and not fused:
            raise CLIError(f"--{option.replace('_', '-')} needs --head (the input is then hidden states)")
    if (args.against_head is not None or args.against_bias is not None) and args.against is None:
        raise CLIError("--against-head / --against-bias need --against (the second model's hidden states)")
    what = "hidden states" if fused else "logits"
    logits, half = _load_array(args.logits, what, args.key)
    targets, targets_half = _load_array(args.targets, "targets", args.targets_key, "--targets-key")
    if fused and half:  # the linear kernels take float16 / bfloat16 arrays and widen them per block
        logits, half = _typed_half(logits, half, what, args.logits), 0
    if logits.ndim < 2:
        shape = "(tokens, d)" if fused else "(tokens, vocab) with the class axis last"
        raise CLIError(f"{what} must be at least 2-D {shape}; got shape {logits.shape} from {args.logits}")
    heads = None
    if fused:
        head = _load_head(args.head, "--head", logits.shape[-1], args.logits)
        n_classes = head.shape[0]
        heads = [head, _load_bias(args.bias, "--bias", n_classes), None, None]
    else:
        n_classes = logits.shape[-1]
        if n_classes == 0:
            raise CLIError(f"logits have no classes (last axis has length 0) in {args.logits}")
    batch_shape = logits.shape[:-1]
    n_rows = math.prod(batch_shape)
    if targets_half:
        got = {1: "float16", 2: "bfloat16"}.get(targets_half, "half precision")
        raise CLIError(f"targets must hold integer class indices; got dtype {got} from {args.targets}")
    targets = _check_targets_shape(targets, batch_shape, what, logits.shape, args.targets)
    other, other_half = None, 0
    if args.against is not None:
        other, other_half = _load_array(args.against, f"--against {what}", args.key, key_is_for_this_file=False)
        if fused:
            if other_half:
                other, other_half = _typed_half(other, other_half, f"--against {what}", args.against), 0
            if other.ndim < 2 or other.shape[:-1] != batch_shape:
                raise CLIError(f"--against hidden states shape {other.shape} does not have the rows of the hidden "
                               f"states {logits.shape} (same shape but for the last axis, d)")
            if args.against_head is None and other.shape[-1] != head.shape[1]:
                raise CLIError(f"--against hidden states {args.against} have d = {other.shape[-1]}, the --head "
                               f"{head.shape[1]}: give the second model's head with --against-head")
            other_head = head if args.against_head is None else _load_head(
                args.against_head, "--against-head", other.shape[-1], args.against)
            if other_head.shape[0] != n_classes:
                raise CLIError(f"--against-head has {other_head.shape[0]} rows, --head {n_classes}: the two models "
                               "must share the vocabulary")
            heads[2] = other_head
            heads[3] = _load_bias(args.against_bias, "--against-bias", n_classes) if args.against_head else (
                heads[1] if args.against_bias is None else _load_bias(args.against_bias, "--against-bias",
                                                                      n_classes))
        elif other.shape != logits.shape:
            raise CLIError(f"--against logits shape {other.shape} differs from the logits shape {logits.shape}")
    if args.chunk_rows is not None:
        chunk_rows = args.chunk_rows
    else:
        row_bytes = logits.shape[-1] * logits.itemsize
        chunk_rows = max(1, _DEFAULT_CHUNK_BYTES // max(1, row_bytes))

    sources = [_RowSource(logits, 1), _RowSource(targets, 0)]
    if other is not None:
        sources.append(_RowSource(other, 1))
    ignore = args.ignore_index
    temperature = args.temperature

    count = 0
    loss_sum = 0.0
    shift = None  # losses are accumulated around a shift so the variance does not cancel
    shifted_sum = shifted_sq = 0.0
    entropy_sum = 0.0
    other_loss_sum = kl_pq_sum = kl_qp_sum = 0.0
    agree = 0
    started = time.perf_counter()
    bar = progress(n_rows, what, args, unit="row", unit_scale=True)
    for start, stop, parts in _chunks(sources, batch_shape, chunk_rows):
        try:
            if fused:
                values = _hidden_chunk_values(parts, heads, ignore, temperature, other is not None)
            else:
                values = _logits_chunk_values(fi, parts, ignore, temperature, other is not None, half, other_half)
        except ValueError as exc:
            raise CLIError(f"rows {start}-{stop - 1} of {args.targets}: {_one_line(exc)}") from None
        kept_loss = values["cross_entropy"]
        n_keep = kept_loss.shape[0]
        if n_keep:
            if shift is None:
                shift = float(np.mean(kept_loss))
                if not math.isfinite(shift):
                    shift = 0.0
            centred = kept_loss - shift
            shifted_sum += float(np.sum(centred))
            shifted_sq += float(np.dot(centred, centred))
            loss_sum += float(np.sum(kept_loss))
            entropy_sum += float(np.sum(values["entropy"]))
            if other is not None:
                other_loss_sum += float(np.sum(values["cross_entropy_q"]))
                kl_pq_sum += float(np.sum(values["kl_pq"]))
                kl_qp_sum += float(np.sum(values["kl_qp"]))
                agree += int(np.count_nonzero(values["same_argmax"]))
        count += n_keep
        for source in sources:
            source.release(start, stop)
        bar.update(stop - start)
    bar.close()
    seconds = time.perf_counter() - started

    nan = float("nan")
    mean = loss_sum / count if count else nan
    if count > 1:
        variance = max(shifted_sq - shifted_sum * shifted_sum / count, 0.0) / (count - 1)
        se = math.sqrt(variance / count)
    else:
        se = nan
    report = {
        "logits": args.logits,
    }
    if fused:
        report.update({"hidden": args.logits, "head": args.head, "bias": args.bias, "hidden_size": logits.shape[-1]})
        del report["logits"]
    report.update({
        "targets": args.targets,
        "rows": n_rows,
        "classes": n_classes,
        "tokens": count,
        "ignored": n_rows - count,
        "temperature": temperature,
        "cross_entropy": mean,
        "cross_entropy_se": se,
        "cross_entropy_bits": mean / math.log(2.0),
        "perplexity": _exp(mean),
        "perplexity_low": _exp(mean - 1.96 * se),
        "perplexity_high": _exp(mean + 1.96 * se),
        "entropy": entropy_sum / count if count else nan,
    })
    if other is not None:
        other_mean = other_loss_sum / count if count else nan
        report.update({
            "against": args.against,
            "against_cross_entropy": other_mean,
            "against_perplexity": _exp(other_mean),
            "kl_logits_against": kl_pq_sum / count if count else nan,
            "kl_against_logits": kl_qp_sum / count if count else nan,
            "top1_agreement": agree / count if count else nan,
        })
        if fused:
            report["against_head"] = args.against_head if args.against_head is not None else args.head
    report["seconds"] = seconds
    _write_logits_report(report, args)
    return 0


def _exp(value):
    try:
        return math.exp(value)
    except OverflowError:
        return math.inf


def _write_logits_report(report, args):
    out = sys.stdout
    if args.format == "json":
        write_json(report, out)
        return
    if args.format == "csv":
        write_csv(["quantity", "value"], [{"quantity": k, "value": v} for k, v in report.items()], out)
        return
    if "hidden" in report:
        lines = [
            ("hidden states", f"{report['hidden']}  ({report['rows']} rows x d = {report['hidden_size']})"),
            ("head", f"{report['head']}  ({report['classes']} classes)"
                     + (f", bias {report['bias']}" if report["bias"] else "")),
        ]
    else:
        lines = [("logits", f"{report['logits']}  ({report['rows']} rows x {report['classes']} classes)")]
    lines += [
        ("targets", report["targets"]),
        ("tokens", f"{report['tokens']}" + (f"  ({report['ignored']} ignored)" if report["ignored"] else "")),
    ]
    if report["temperature"] != 1.0:
        lines.append(("temperature", fmt_number(report["temperature"])))
    lines += [
        ("cross-entropy", f"{fmt_number(report['cross_entropy'])} +- {fmt_number(report['cross_entropy_se'])} nats"
                          f"  ({fmt_number(report['cross_entropy_bits'])} bits/token)"),
        ("perplexity", f"{fmt_number(report['perplexity'])}  (95% interval {fmt_number(report['perplexity_low'])}"
                       f" .. {fmt_number(report['perplexity_high'])})"),
        ("predictive entropy", f"{fmt_number(report['entropy'])} nats"),
    ]
    if "against" in report:
        lines += [
            ("against", report["against"] + (f"  (head {report['against_head']})" if "against_head" in report else "")),
            ("  its cross-entropy", f"{fmt_number(report['against_cross_entropy'])} nats"
                                    f"  (perplexity {fmt_number(report['against_perplexity'])})"),
            ("  KL(logits || against)", f"{fmt_number(report['kl_logits_against'])} nats"),
            ("  KL(against || logits)", f"{fmt_number(report['kl_against_logits'])} nats"),
            ("  top-1 agreement", f"{fmt_number(100.0 * report['top1_agreement'], 2)} %"),
        ]
    lines.append(("time", fmt_seconds(report["seconds"])))
    width = max(len(label) for label, _ in lines)
    for label, value in lines:
        out.write(f"{label:<{width}}  {value}\n")


# =============================================================================
# fastinfo demo and fastinfo bench
# =============================================================================


def command_demo(args):
    from . import _demo

    return _demo.run(args)


_BENCH_HELP = """\
usage: fastinfo bench [args ...]

Run the side-by-side benchmark comparison (fastinfo against SciPy, scikit-learn,
PyTorch, ... when installed). All arguments are passed to fastinfo._bench.main;
'fastinfo bench --help' shows its options when the benchmark module is installed.
"""


def command_bench(argv):
    try:
        bench = importlib.import_module("fastinfo._bench")
    except ModuleNotFoundError as exc:
        if exc.name not in ("fastinfo._bench",):
            raise
        if any(a in ("-h", "--help") for a in argv):
            sys.stdout.write(_BENCH_HELP)
            return 0
        raise CLIError("the benchmark module fastinfo._bench is not available in this installation") from None
    status = bench.main(list(argv))
    return 0 if status is None else int(status)


# =============================================================================
# Argument parsing and the entry point
# =============================================================================


def build_parser():
    from ._config import __version__

    parser = _Parser(
        prog="fastinfo",
        description="Fast information theory on large arrays: softmax cross-entropy / KL kernels "
                    "and kNN mutual-information estimators.",
        epilog="Run 'fastinfo COMMAND --help' for the options of a command. "
               "Start with 'fastinfo demo'.",
    )
    parser.add_argument("--version", action="version", version=f"fastinfo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser(
        "demo", help="known answers on generated data, timed against SciPy / scikit-learn",
        description="Run fastinfo's estimators and softmax kernels on generated data whose answers are "
                    "known (correlated Gaussians with analytic mutual information, Gaussian entropy, "
                    "LM-like logits with known entropy and KL) and print quantity, true value, "
                    "fastinfo's estimate and time, and the time of SciPy / scikit-learn when installed. Takes a few seconds.",
        epilog="Example: fastinfo demo --format json > demo.json",
    )
    demo.add_argument("--samples", type=_positive_int, default=4000, metavar="N",
                      help="samples for the estimators (default: 4000)")
    demo.add_argument("--tokens", type=_positive_int, default=1024, metavar="N",
                      help="rows of the logits matrix (default: 1024)")
    demo.add_argument("--vocab", type=_positive_int, default=8192, metavar="C",
                      help="classes of the logits matrix (default: 8192)")
    demo.add_argument("--repeats", type=_positive_int, default=3, metavar="R",
                      help="timing repeats, the minimum is shown (default: 3)")
    demo.add_argument("--seed", type=_int, default=0, help="random seed (default: 0)")
    demo.add_argument("--no-peers", action="store_true", help="do not time SciPy / scikit-learn")
    _add_common_options(demo)
    demo.set_defaults(handler=command_demo)

    mi = sub.add_parser(
        "mi", help="rank the columns of a table by mutual information with a target column",
        description="Rank the columns of TABLE by their mutual information with the target column "
                    "(fastinfo.mutual_info_features: KSG for continuous pairs, Ross's estimator for "
                    "continuous/discrete pairs, plug-in for discrete pairs). TABLE is a CSV file with a "
                    "header row, a .npy 2-D array (columns named 0, 1, ...), a .npz archive (one 1-D "
                    "array per column, or one 2-D array), or Parquet (needs pyarrow).",
        epilog="Example: fastinfo mi houses.csv --target price --discrete city,rooms --top 10",
    )
    mi.add_argument("table", metavar="TABLE", help="CSV, .npy, .npz or .parquet file")
    mi.add_argument("--target", required=True, metavar="COL", help="name of the target column")
    mi.add_argument("--k", type=_positive_int, default=3, help="neighbours for the kNN estimators (default: 3)")
    mi.add_argument("--discrete", metavar="COL,...", default="",
                    help="comma-separated discrete (categorical) columns; may include the target; "
                         "such columns may hold strings")
    mi.add_argument("--top", type=_positive_int, metavar="N", help="show only the N highest-ranked columns")
    _add_common_options(mi)
    mi.set_defaults(handler=command_mi)

    logits = sub.add_parser(
        "logits", help="cross-entropy, perplexity, entropy and KL of large .npy / .safetensors logits, streamed",
        description="Stream memory-mapped .npy or .safetensors logits (tokens, vocab) - or N-D with the class "
                    "axis last; float32, float64, float16 or bfloat16, read as they are (a .npy of dtype V2, "
                    "which is how numpy.save stores an ml_dtypes.bfloat16 array, is read as bfloat16) - "
                    "with their integer targets in row chunks, so files larger than RAM work, and report "
                    "the token count, mean cross-entropy with its standard error (sample std / "
                    "sqrt(tokens)), perplexity with its 95% interval exp(mean +- 1.96 se), the mean "
                    "entropy of the predictive distribution and, with --against, the mean KL divergence "
                    "in both directions and the top-1 agreement of the two models. Means are over "
                    "positions whose target is not --ignore-index. With --head HEAD.npy the input is the "
                    "model's last hidden states (tokens, d) and the same report is computed from the logits "
                    "hidden @ head.T + bias without ever storing them (one pass over the vocabulary per "
                    "chunk; --against then takes the second model's hidden states, with --against-head).",
        epilog="Examples: fastinfo logits val_logits.npy val_targets.npy --ignore-index -100 "
               "--against small_model_logits.npy;  fastinfo logits eval.safetensors eval.safetensors "
               "--key logits --targets-key labels --ignore-index -100;  "
               "fastinfo logits --head lm_head.npy hidden.npy targets.npy --against small_hidden.npy "
               "--against-head small_lm_head.npy",
    )
    logits.add_argument("logits", metavar="LOGITS",
                        help="logits (.npy or .safetensors), class axis last (with --head: hidden states, last axis d)")
    logits.add_argument("targets", metavar="TARGETS",
                        help="integer class indices (.npy or .safetensors), shape of LOGITS without its last axis")
    logits.add_argument("--ignore-index", type=_int, metavar="I", help="target value to ignore (e.g. -100)")
    logits.add_argument("--temperature", type=_positive_float, default=1.0, metavar="T",
                        help="apply every softmax to logits / T, --against logits too (default: 1)")
    logits.add_argument("--against", metavar="OTHER", help="logits of a second model (.npy or .safetensors), same shape")
    logits.add_argument("--key", metavar="NAME",
                        help="the tensor to read from a .safetensors LOGITS (and OTHER) file "
                             "(default: the file's only tensor)")
    logits.add_argument("--targets-key", metavar="NAME",
                        help="the tensor to read from a .safetensors TARGETS file (default: its only tensor)")
    logits.add_argument("--chunk-rows", type=_positive_int, metavar="R",
                        help="rows per chunk (default: about 64 MiB of logits, or of hidden states)")
    logits.add_argument("--head", metavar="HEAD.npy",
                        help="unembedding matrix (vocab, d): the input is then the model's last hidden states and "
                             "the logits hidden @ head.T + bias are never stored (fastinfo.linear_* kernels)")
    logits.add_argument("--bias", metavar="B.npy", help="with --head: the output bias (vocab,)")
    logits.add_argument("--against-head", metavar="HEAD.npy",
                        help="with --head and --against: the second model's head (default: --head)")
    logits.add_argument("--against-bias", metavar="B.npy",
                        help="with --against-head: the second model's bias (default: none; without "
                             "--against-head, the --bias)")
    _add_common_options(logits)
    logits.set_defaults(handler=command_logits)

    sub.add_parser("bench", help="side-by-side benchmark comparison against peers (fastinfo._bench)",
                   add_help=False, description=_BENCH_HELP)
    return parser


def main(argv=None):
    """Entry point of the ``fastinfo`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            if argv and argv[0] == "bench":
                return command_bench(argv[1:])
            parser = build_parser()
            args = parser.parse_args(argv)
            if getattr(args, "handler", None) is None:
                parser.print_help()
                return EXIT_USAGE
            return args.handler(args)
        except CLIError as exc:
            return _fail(str(exc))
        except (ValueError, TypeError) as exc:  # the library's messages name the argument and value
            return _fail(str(exc))
        except MemoryError:
            return _fail("out of memory (try a smaller --chunk-rows or fewer samples)")
        except OSError as exc:
            if isinstance(exc, BrokenPipeError):
                raise
            where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
            return _fail(f"{exc.strerror or exc}{where}")
        except KeyboardInterrupt:
            sys.stderr.write("\nfastinfo: interrupted\n")
            return 130
    except BrokenPipeError:  # e.g. `fastinfo mi ... | head`
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        return 0


def _fail(message):
    sys.stdout.flush()
    sys.stderr.write(f"fastinfo: error: {_one_line(message)}\n")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
