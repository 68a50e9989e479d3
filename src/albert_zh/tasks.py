"""Fine-tuning tasks: one table from task name to how its official files are read.

Every task is a `TaskSpec`: the file format (tsv or json lines), where text_a / text_b / label are
found, the label set, the file names of its train/dev/test splits and the name CLUE wants for its
submission file. One reader serves all of them; it yields `Example`s and records every row it
cannot use as a `BadRow` (file, line, why), so a run reports bad rows instead of crashing on them,
and `strict=True` turns the first one into an error.

Named-entity tasks (kind "ner") have entity types for labels, and each `Example` carries its
entities as character spans [start, end) of the text, whatever the file's own convention:
  cluener  the official JSON lines, `{"text", "label": {type: {entity: [[start, end]]}}}`, end inclusive;
  conll    `char<TAB>tag` a line, a blank line between sentences, tags BIO or BIOES (msra_ner);
  spans    JSON lines `{"text", "entities": [{"start", "end", "type"}]}`, end exclusive.
"""

from __future__ import annotations

import csv
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

NLI_LABELS = ("contradiction", "entailment", "neutral")
CLUENER_TYPES = ("address", "book", "company", "game", "government", "movie", "name", "organization", "position",
                 "scene")
MSRA_TYPES = ("LOC", "ORG", "PER")
NER_FORMATS = ("conll", "spans")  # the formats of a user's own entity files (task "ner")
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
    kind: str = "classification"  # | "ner": labels are entity types, examples carry entity spans

    @property
    def metric(self) -> str:
        """The dev score that picks the best epoch and learning rate."""
        return "f1" if self.kind == "ner" else "accuracy"



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
    # named entities
    "cluener": _clue("cluener", "text", None, CLUENER_TYPES, "cluener_predict.json", kind="ner"),
    "msra_ner": TaskSpec("msra_ner", "conll", 0, None, 1, MSRA_TYPES, files=("train.txt", "dev.txt", "test.txt"),
                         kind="ner"),
}
TASK_NAMES = (*TASKS, "custom", "ner")
TASK_FILE = "task.json"  # in a fine-tuned model directory: the task it was trained on


class Entity(NamedTuple):
    start: int
    end: int  # exclusive
    type: str


@dataclass
class Example:
    text_a: str
    text_b: str | None
    label: str | None  # None in unlabelled (test) files
    id: str | int  # the file's own id (id_field), else the 0-based data row (a header not counted)
    where: str  # "file:line", for messages
    entities: tuple[Entity, ...] | None = None  # ner: sorted, not overlapping; None when unlabelled


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


def ner_task(fmt: str) -> TaskSpec:
    """A user's own entity files: conll (token<TAB>tag, BIO or BIOES) or spans (JSON lines)."""
    if fmt not in NER_FORMATS:
        raise ValueError(f"ner format must be conll or spans, got {fmt!r}")
    if fmt == "conll":
        return TaskSpec("ner", "conll", 0, None, 1, None, files=("train.txt", "dev.txt", "test.txt"), kind="ner")
    return TaskSpec("ner", "spans", "text", None, "entities", None, id_field="id", kind="ner")


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of: {', '.join(TASK_NAMES)}")
    return TASKS[name]


def save_task(spec: TaskSpec, model_dir: str | Path):
    """Record in MODEL_DIR/task.json how its training files were read, so that evaluate and predict
    read the same format without being told again: a named task by name, a custom one by its columns."""
    if spec.name in TASKS:
        description = {"task": spec.name}
    elif spec.name == "ner":
        description = {"task": spec.name, "format": spec.format}
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
    if d["task"] == "ner":
        return ner_task(d["format"])
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
    for line_no, row_index, row, problem in _rows(spec, path, labelled, known):
        where = f"{path}:{line_no}"
        if problem is None:
            make = _entity_example if spec.kind == "ner" else _example
            problem, example = make(spec, row, line_no, row_index, where, labelled, known)
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
    if labelled is False and any(e.label is not None or e.entities for e in result.examples):
        log.warning("%s: test file has labels; they are ignored for prediction", path)
    if result.bad_rows:
        log.warning("%s: %s", path, result.summary())
    return result


def _lines(path: Path):
    """Yield (line number, text or None, problem) for each line of a UTF-8 file."""
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for i, line_bytes in enumerate(lines, start=1):
        try:
            line = line_bytes.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            yield i, None, f"invalid UTF-8: byte {e.start}"
            continue
        yield i, line.removeprefix("\ufeff") if i == 1 else line, None


def _rows(spec: TaskSpec, path: Path, labelled: bool | None, known: set[str]):
    """Yield (line number, 0-based data row, row, problem): a row is a dict (jsonl, headed tables) or a
    list; for conll files, a sentence's (text, entities). A header must name the label column of a
    labelled file (else only the text columns)."""
    if spec.format == "conll":
        yield from _conll_sentences(path, labelled, known)
        return
    columns = None
    row_index = -1  # data rows: lines that are neither blank nor the header
    for i, line, problem in _lines(path):
        if problem is not None:
            row_index += 1
            yield i, row_index, None, problem
            continue
        if not line.strip():
            continue
        if spec.format in ("jsonl", "spans"):
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
            needed = (spec.text_a, spec.text_b, spec.label if labelled is True else None)
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


def _conll_sentences(path: Path, labelled: bool | None, known: set[str]):
    """Sentences of `token<TAB>tag` lines between blank lines, as (line, sentence index, (text, entities),
    problem)."""
    block, index = [], 0
    for i, line, problem in [*_lines(path), (0, "", None)]:  # a blank line closes the last sentence
        if problem is None and not line.strip():
            if block:
                line_no, sentence, why = _conll_sentence(block, labelled, known)
                yield line_no, index, sentence, why
                index += 1
            block = []
        else:
            block.append((i, line, problem))


def _conll_sentence(block: list, labelled: bool | None, known: set[str]):
    """One sentence; a problem is reported at the line that has it. The tokens are joined without
    separators (Chinese characters); an unlabelled file may give the tokens alone."""
    for i, _, problem in block:
        if problem:
            return i, None, problem
    cells = [line.split("\t", 1) for _, line, _ in block]
    if labelled is False and all(len(c) == 1 for c in cells):
        return block[0][0], ("".join(c[0] for c in cells), None), None
    for (i, _, _), c in zip(block, cells):
        if len(c) == 1:
            return i, None, "no tab between token and tag"
    problem, entities = _entities_from_tags([tag.strip() for _, tag in cells], known)
    if problem:
        index, why = problem
        return block[index][0], None, why
    return block[0][0], ("".join(token for token, _ in cells), entities), None


def _entity_example(spec: TaskSpec, row, line_no: int, row_index: int, where: str, labelled: bool | None,
                    known: set[str]):
    """(problem, example) for one row of an entity file."""
    if spec.format == "conll":
        text, entities = row
        return None, Example(text, None, None, row_index, where, entities)
    text = row.get(spec.text_a)
    if not isinstance(text, str) or not text.strip():
        return f"empty text: {spec.text_a}", None
    row_id = row.get(spec.id_field, row_index) if spec.id_field else row_index
    spans = row.get(spec.label)
    if spans is None:
        if labelled:
            return f"missing label: {spec.label}", None
        return None, Example(text, None, None, row_id, where)
    problem, entities = (_cluener_entities if spec.format == "jsonl" else _span_entities)(text, spans, known)
    if problem is None:
        entities = tuple(sorted(set(entities)))
        problem = next((f"overlapping spans: {a.type} [{a.start}, {a.end}) and {b.type} [{b.start}, {b.end})"
                        for a, b in zip(entities, entities[1:]) if b.start < a.end), None)
    if problem is not None:
        return problem, None
    return None, Example(text, None, None, row_id, where, entities)


def _check_span(text: str, start, end, entity_type, known: set[str], entity_text=None, shown=None) -> str | None:
    """Why the span [start, end) of `text` cannot be an entity, or None. `shown`: the span as the file wrote it."""
    shown = shown or f"[{start}, {end})"
    if known and entity_type not in known:
        return f"unknown type: {entity_type!r} (known: {', '.join(sorted(known))})"
    if not isinstance(entity_type, str) or not (isinstance(start, int) and isinstance(end, int)):
        return f"bad entity: {[start, end, entity_type]!r}"
    if not 0 <= start < end <= len(text):
        return f"span outside the text: {shown} in a text of {len(text)} characters"
    if entity_text is not None and text[start:end] != entity_text:
        return f"span does not match its entity text: {shown} is {text[start:end]!r}, not {entity_text!r}"
    return None


def _cluener_entities(text: str, label, known: set[str]):
    if not isinstance(label, dict):
        return "bad label: not an object of types", None
    entities = []
    for entity_type, found in label.items():
        if not isinstance(found, dict):
            return f"bad label: {entity_type!r} is not an object of entities", None
        for entity_text, spans in found.items():
            for span in spans if isinstance(spans, list) else [spans]:
                if not (isinstance(span, list) and len(span) == 2):
                    return f"bad span: {span!r}", None
                start, last = span  # CLUENER's end is inclusive
                end = last + 1 if isinstance(last, int) else last
                problem = _check_span(text, start, end, entity_type, known, entity_text, shown=f"[{start}, {last}]")
                if problem:
                    return problem, None
                entities.append(Entity(start, end, entity_type))
    return None, entities


def _span_entities(text: str, spans, known: set[str]):
    if not isinstance(spans, list):
        return "bad entities: not a list", None
    entities = []
    for span in spans:
        if not isinstance(span, dict):
            return f"bad entity: {span!r}", None
        problem = _check_span(text, span.get("start"), span.get("end"), span.get("type"), known, span.get("text"))
        if problem:
            return problem, None
        entities.append(Entity(span["start"], span["end"], span["type"]))
    return None, entities


def _entities_from_tags(tags: list[str], known: set[str]):
    """BIO or BIOES tags, one a character -> (None, entities), or ((index of the bad tag, why), None).
    Strict: I-/E- must continue an entity of their type (opened by B-)."""
    entities, open_start, open_type = [], None, None
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, entity_type = tag.partition("-")
        if tag != "O" and (prefix not in ("B", "I", "E", "S") or not entity_type):
            return (i, f"unknown tag: {tag!r}"), None
        if entity_type and known and entity_type not in known:
            return (i, f"unknown type: {entity_type!r} in tag {tag!r} (known: {', '.join(sorted(known))})"), None
        if prefix in ("I", "E"):
            if open_type != entity_type:
                return (i, f"{tag} without its B-{entity_type}"), None
            if prefix == "E":
                entities.append(Entity(open_start, i + 1, entity_type))
                open_start = open_type = None
            continue
        if open_type is not None:  # B, S or O after an entity closes it
            entities.append(Entity(open_start, i, open_type))
        open_start, open_type = (i, entity_type) if prefix == "B" else (None, None)
        if prefix == "S":
            entities.append(Entity(i, i + 1, entity_type))
    return None, tuple(entities)


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
    """The task's labels in a fixed order; a custom task's are the sorted labels (ner: entity types) of
    its training file."""
    if spec.labels is not None:
        return spec.labels
    if spec.kind == "ner":
        found = sorted({e.type for ex in train.examples for e in ex.entities or ()})
        if not found:
            raise ValueError("the training file has no entities")
        return tuple(found)
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
