"""Fine-tuning tasks: one table from task name to how its official files are read.

Every task is a `TaskSpec`: the file format (tsv or json lines), where text_a / text_b / label are
found, the label set, the file names of its train/dev/test splits and the name CLUE wants for its
submission file. One reader serves all of them; it yields `Example`s and records every row it
cannot use as a `BadRow` (file, line, why), so a run reports bad rows instead of crashing on them,
and `strict=True` turns the first one into an error.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

NLI_LABELS = ("contradiction", "entailment", "neutral")
# TNEWS codes 100..116; 105 and 111 are not used by the dataset.
TNEWS_LABELS = tuple(str(c) for c in range(100, 117) if c not in (105, 111))


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's fields live. Columns are names (json lines, tsv with header) or numbers (tsv without)."""

    name: str
    format: str  # "tsv" | "jsonl" | "csv"
    text_a: str | int
    text_b: str | int | None
    label: str | int | None  # None: an unlabelled custom file, for prediction
    labels: tuple[str, ...] | None  # None: learnt from the training file (custom tasks)
    header: bool = False  # tsv/csv: the first line names the columns
    files: tuple[str, str, str] = ("train.json", "dev.json", "test.json")
    submission: str | None = None  # CLUE 1.1 submission file name
    id_field: str | None = None  # the test files' example id
    skip_labels: tuple[str, ...] = ()  # labels meaning "annotators disagreed": such rows are dropped quietly


def _clue(name, text_a, text_b, labels, submission, **kw) -> TaskSpec:
    return TaskSpec(name, "jsonl", text_a, text_b, "label", labels, submission=submission, id_field="id", **kw)


TASKS: dict[str, TaskSpec] = {
    # LCQMC and BQ: text_a<TAB>text_b<TAB>label, no header (the seed's LCQMC/BQ processors)
    "lcqmc": TaskSpec("lcqmc", "tsv", 0, 1, 2, ("0", "1"), files=("train.txt", "dev.txt", "test.txt")),
    "bq": TaskSpec("bq", "tsv", 0, 1, 2, ("0", "1"), files=("train.txt", "dev.txt", "test.txt")),
    # ChnSentiCorp: label<TAB>text_a with a header line
    "chnsenticorp": TaskSpec("chnsenticorp", "tsv", "text_a", None, "label", ("0", "1"), header=True,
                             files=("train.tsv", "dev.tsv", "test.tsv")),
    # CLUE: json lines with the official field names; test files are unlabelled and carry "id"
    "afqmc": _clue("afqmc", "sentence1", "sentence2", ("0", "1"), "afqmc_predict.json"),
    "tnews": _clue("tnews", "sentence", None, TNEWS_LABELS, "tnews11_predict.json"),
    "iflytek": _clue("iflytek", "sentence", None, tuple(str(i) for i in range(119)), "iflytek_predict.json"),
    "cmnli": _clue("cmnli", "sentence1", "sentence2", NLI_LABELS, "cmnli_predict.json", skip_labels=("-",)),
    "ocnli": _clue("ocnli", "sentence1", "sentence2", NLI_LABELS, "ocnli_50k_predict.json", skip_labels=("-",)),
    # WSC: text_a is the text, text_b asks whether the pronoun (span2) refers to the noun (span1)
    "cluewsc2020": _clue("cluewsc2020", "text", "target", ("false", "true"), "cluewsc11_predict.json"),
    # CSL: the keywords joined by spaces against the abstract
    "csl": _clue("csl", "keyword", "abst", ("0", "1"), "csl_predict.json"),
    "xnli": _clue("xnli", "premise", "hypo", NLI_LABELS, None, skip_labels=("-",)),
}
TASK_NAMES = (*TASKS, "custom")
TASK_FILE = "task.json"  # in a fine-tuned model directory: the task it was trained on


@dataclass
class Example:
    text_a: str
    text_b: str | None
    label: str | None  # None in unlabelled (test) files
    id: str | int  # the file's own id (id_field), else the 0-based data row (a header not counted)
    where: str  # "file:line", for messages


@dataclass
class BadRow:
    file: str
    line: int
    reason: str

    def __str__(self):
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class ReadResult:
    examples: list[Example]
    bad_rows: list[BadRow] = field(default_factory=list)
    skipped: int = 0  # rows with a skip label ("-")

    def summary(self, limit: int = 5) -> str:
        reasons = Counter(b.reason.split(":")[0] for b in self.bad_rows)
        head = "; ".join(f"{n} x {r}" for r, n in reasons.most_common())
        return f"{len(self.bad_rows)} bad rows ({head}), e.g.\n  " + "\n  ".join(map(str, self.bad_rows[:limit]))


def custom_task(fmt: str, text_a: str, text_b: str | None, label: str | None, header: bool) -> TaskSpec:
    """A user's own csv/tsv/jsonl file. Columns are names, or 0-based numbers for files without a header;
    label None for a file to predict."""
    if fmt not in ("csv", "tsv", "jsonl"):
        raise ValueError(f"custom format must be csv, tsv or jsonl, got {fmt!r}")

    def column(c):
        if c is None or fmt == "jsonl" or header:
            return c
        if not str(c).isdigit():
            raise ValueError(f"column {c!r} must be a number for a {fmt} file without a header (or pass --header)")
        return int(c)

    return TaskSpec("custom", fmt, column(text_a), column(text_b), column(label), None,
                    header=header and fmt != "jsonl")


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    return TASKS[name]


def save_task(spec: TaskSpec, model_dir: str | Path):
    """Record in MODEL_DIR/task.json how its training files were read, so that evaluate and predict
    read the same format without being told again: a named task by name, a custom one by its columns."""
    if spec.name in TASKS:
        description = {"task": spec.name}
    else:
        description = {"task": spec.name, "format": spec.format, "text_a": spec.text_a, "text_b": spec.text_b,
                       "label": spec.label, "header": spec.header}
    (Path(model_dir) / TASK_FILE).write_text(json.dumps(description, ensure_ascii=False, indent=2) + "\n",
                                            encoding="utf-8")


def load_task(model_dir: str | Path) -> TaskSpec:
    """The task a fine-tuned model was trained on (MODEL_DIR/task.json)."""
    path = Path(model_dir) / TASK_FILE
    if not path.is_file():
        raise ValueError(f"{model_dir} does not say which task it was fine-tuned on (no {TASK_FILE}): pass --task")
    d = json.loads(path.read_text(encoding="utf-8"))
    if d["task"] != "custom":
        return get_task(d["task"])
    return TaskSpec("custom", d["format"], d["text_a"], d["text_b"], d["label"], None, header=d["header"])


def read_examples(spec: TaskSpec, path: str | Path, labelled: bool | None = True, strict: bool = False,
                  labels: tuple[str, ...] | None = None) -> ReadResult:
    """Read one file of `spec`'s format.

    labelled: True for train/dev (a row without a known label is bad), False for test files (a
    label present is warned about once), None to take labels where present (evaluation of a file
    whose kind is unknown). `labels` overrides the spec's label set (a fine-tuned model's map).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{spec.name} file not found: {path}")
    known = set(labels or spec.labels or ())
    result = ReadResult([])
    for line_no, row_index, row, problem in _rows(spec, path, need_label=labelled is True):
        where = f"{path}:{line_no}"
        if problem is None:
            problem, example = _example(spec, row, line_no, row_index, where, labelled, known)
            if example is not None and example.label in spec.skip_labels:
                result.skipped += 1
                continue
        if problem is not None:
            bad = BadRow(str(path), line_no, problem)
            if strict:
                raise ValueError(f"{bad} (without --strict such rows are skipped and counted)")
            result.bad_rows.append(bad)
            continue
        result.examples.append(example)
    if labelled is False and any(e.label is not None for e in result.examples):
        log.warning("%s: test file has labels; they are ignored for prediction", path)
    if result.bad_rows:
        log.warning("%s: %s", path, result.summary())
    return result


def _rows(spec: TaskSpec, path: Path, need_label: bool):
    """Yield (line number, 0-based data row, row, problem): a row is a dict (jsonl, headed tables) or a
    list. need_label: a header must name the label column (else only the text columns)."""
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    columns = None
    row_index = -1  # data rows: lines that are neither blank nor the header
    for i, line_bytes in enumerate(lines, start=1):
        try:
            line = line_bytes.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            row_index += 1
            yield i, row_index, None, f"invalid UTF-8: byte {e.start}"
            continue
        if i == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        if spec.format == "jsonl":
            row_index += 1
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                yield i, row_index, None, f"not JSON: {e.msg}"
                continue
            yield (i, row_index, row, None) if isinstance(row, dict) else (i, row_index, None, "not a JSON object")
            continue
        cells = next(csv.reader([line], delimiter="\t" if spec.format == "tsv" else ",",
                                quoting=csv.QUOTE_NONE if spec.format == "tsv" else csv.QUOTE_MINIMAL))
        if spec.header and columns is None:
            columns = cells
            needed = (spec.text_a, spec.text_b, spec.label if need_label else None)
            missing = [c for c in needed if c is not None and c not in cells]
            if missing:
                raise ValueError(f"{path}:{i}: header {cells} lacks the column(s) {missing}")
            continue
        row_index += 1
        if columns is not None:
            if len(cells) != len(columns):
                yield i, row_index, None, f"wrong column count: {len(cells)} columns, header has {len(columns)}"
                continue
            yield i, row_index, dict(zip(columns, cells)), None
        else:
            yield i, row_index, cells, None


def _field(row, key):
    if key is None:
        return None
    if isinstance(row, dict):
        return row.get(key)
    return row[key] if key < len(row) else None


def _example(spec: TaskSpec, row, line_no: int, row_index: int, where: str, labelled: bool | None, known: set[str]):
    """(problem, example) for one parsed row."""
    if isinstance(row, list):
        needed = max(c for c in (spec.text_a, spec.text_b, spec.label) if c is not None) + 1
        with_label = needed if labelled is not False else needed - (spec.label == needed - 1)
        if len(row) not in (needed, with_label):
            return f"wrong column count: {len(row)} columns, expected {needed}", None
    text_a, text_b = _texts(spec, row)
    if not isinstance(text_a, str) or not text_a.strip():
        return f"empty text: {spec.text_a}", None
    if spec.text_b is not None and (not isinstance(text_b, str) or not text_b.strip()):
        return f"empty text: {spec.text_b}", None
    label = _field(row, spec.label)
    label = None if label is None else str(label).strip()
    if labelled and label is None:
        return f"missing label: {spec.label}", None
    if label is not None and known and label not in known | set(spec.skip_labels):
        if line_no == 1 and spec.format != "jsonl" and not spec.header:
            return f"unknown label: {label!r} (a header line where none is expected?)", None
        if labelled is not False:
            return f"unknown label: {label!r} (known: {', '.join(sorted(known))})", None
    row_id = row.get(spec.id_field, row_index) if isinstance(row, dict) and spec.id_field else row_index
    return None, Example(text_a.strip(), text_b.strip() if text_b is not None else None, label, row_id, where)


def _texts(spec: TaskSpec, row) -> tuple:
    a, b = _field(row, spec.text_a), _field(row, spec.text_b) if spec.text_b is not None else None
    if spec.name == "csl" and isinstance(a, list):
        a = " ".join(map(str, a))
    if spec.name == "cluewsc2020":
        if not isinstance(b, dict) or not all(isinstance(b.get(k), str) for k in ("span1_text", "span2_text")):
            return a, None
        b = f"{b['span2_text']}指的是{b['span1_text']}"
    return a, b


def label_set(spec: TaskSpec, train: ReadResult) -> tuple[str, ...]:
    """The task's labels in a fixed order; a custom task's are the sorted labels of its training file."""
    if spec.labels is not None:
        return spec.labels
    found = sorted({e.label for e in train.examples if e.label is not None})
    if len(found) < 2:
        raise ValueError(f"the training file has {len(found)} distinct label(s); a classifier needs at least 2")
    return tuple(found)


def task_files(spec: TaskSpec, data_dir: str | Path) -> dict[str, Path | None]:
    """The train/dev/test files of a task folder; train and dev must exist, test may not."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise FileNotFoundError(f"task folder not found: {data_dir}")
    files = dict(zip(("train", "dev", "test"), (data_dir / f for f in spec.files)))
    for split in ("train", "dev"):
        if not files[split].is_file():
            raise FileNotFoundError(f"{data_dir} has no {split} file ({files[split].name}) for task {spec.name}")
    if not files["test"].is_file():
        files["test"] = None
    return files
