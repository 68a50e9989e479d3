"""`prepare-data`: raw Chinese text -> masked-LM + sentence-order instances in memory-mapped shards.

The corpus is streamed: documents are read lazily, grouped into chunks of about
`CHUNK_CHARS` characters, and each chunk is segmented, tokenized and turned into instances by a
worker. Every document draws from its own generator seeded by (seed, document index), and
results are written in document order, so the shards are byte-identical whatever `--workers`
is. A shard is written under a temporary name and renamed when complete; `progress.json`
records what is done so an interrupted run resumes, and `manifest.json` is written last.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import logging
import multiprocessing
import os
import re
import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
from tqdm import tqdm

from albert_zh.checkpoint import write_atomic
from albert_zh.data import FORMAT, MANIFEST, SHARD_PATTERN, PretrainingDataset, record_dtype
from albert_zh.masking import JiebaSegmenter, MaskingOptions, WholeWordEncoder, mask_batch
from albert_zh.tokenizer import load_tokenizer

log = logging.getLogger(__name__)

CHUNK_CHARS = 20_000  # work unit of one worker; fixed, so the output does not depend on --workers
MAX_DOCUMENT_CHARS = 1_000_000  # a longer document (e.g. a file without blank lines) is cut, to bound memory
PROGRESS = "progress.json"
MAX_EXAMPLES = 10  # file:line locations kept per skip reason


@dataclass(frozen=True)
class PrepareConfig:
    inputs: tuple[str, ...]
    out: str
    max_seq_length: int = 512
    max_predictions: int = 20
    masked_lm_prob: float = 0.15
    dupe_factor: int = 1
    short_seq_prob: float = 0.1
    ngram: int = 3
    whole_word: bool = True
    task: str = "sop"
    masking: str = "dynamic"
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 12345
    user_dict: str | None = None
    vocab: str | None = None
    jieba_hmm: bool = False
    shard_size: int = 50_000
    overwrite: bool = False

    def __post_init__(self):
        problems = []
        if not self.inputs:
            problems.append("no INPUT given")
        if not 8 <= self.max_seq_length <= 65535:
            problems.append(f"--max-seq-length {self.max_seq_length} is outside 8..65535")
        if not 1 <= self.max_predictions <= self.max_seq_length:
            problems.append(f"--max-predictions {self.max_predictions} is outside 1..max-seq-length")
        if not 0 < self.masked_lm_prob < 1:
            problems.append(f"--masked-lm-prob {self.masked_lm_prob} is outside (0, 1)")
        if not 0 <= self.short_seq_prob <= 1:
            problems.append(f"--short-seq-prob {self.short_seq_prob} is outside [0, 1]")
        for name in ("dupe_factor", "ngram", "workers", "shard_size"):
            if getattr(self, name) < 1:
                problems.append(f"--{name.replace('_', '-')} must be at least 1")
        if self.seed < 0:
            problems.append("--seed must not be negative")
        if self.task not in ("sop", "nsp"):
            problems.append(f"--task {self.task!r}: choose sop or nsp")
        if self.masking not in ("static", "dynamic"):
            problems.append(f"--masking {self.masking!r}: choose static or dynamic")
        if problems:
            raise ValueError("; ".join(problems))

    def output_options(self) -> dict:
        """The options that decide the shards' contents (not where they go, nor how many workers)."""
        return {k: v for k, v in asdict(self).items() if k not in ("inputs", "out", "workers", "overwrite", "vocab")}


# ---------------------------------------------------------------- reading the corpus

_CONTROL = {c: None for c in (*range(0x20), *range(0x7F, 0xA0)) if c != 0x09} | {0x09: " "}
_SENTENCE = re.compile(r"(?:[^。！？!?；;…\.]|\.(?!\s|$))*(?:(?:[。！？!?；;…]+|\.(?=\s|$))[”’\"」』）)]*|$)")


def split_sentences(text: str) -> list[str]:
    """Cut a paragraph at line breaks and Chinese and English sentence punctuation (the end mark
    stays, with closing quotes)."""
    return [s.strip() for line in text.splitlines() for s in _SENTENCE.findall(line) if s.strip()]


def _clean(line: str, stats: ReadStats) -> str:
    """Control characters out (tabs become spaces), surrounding whitespace off."""
    cleaned = line.translate(_CONTROL)
    if len(cleaned) != len(line) - line.endswith("\n") - line.endswith("\r\n"):
        stats.notes["lines with control characters (removed)"] += 1
    return cleaned.strip()


def expand_inputs(inputs) -> list[Path]:
    """Files, globs and folders (searched recursively for .txt, .jsonl and their .gz) -> files, in order."""
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(f for f in path.rglob("*") if f.is_file() and _is_corpus_file(f))
            if not found:
                raise FileNotFoundError(f"{item}: no .txt, .jsonl or .gz files in this folder")
        elif path.is_file():
            found = [path]
        elif glob.has_magic(item):
            found = sorted(Path(f) for f in glob.glob(item, recursive=True) if Path(f).is_file())
            if not found:
                raise FileNotFoundError(f"{item}: no file matches this pattern")
        else:
            raise FileNotFoundError(f"input not found: {item}")
        files += [f for f in found if f not in files]
    return files


def _is_corpus_file(path: Path) -> bool:
    name = path.name.removesuffix(".gz")
    return not path.name.startswith(".") and name.endswith((".txt", ".jsonl"))


@dataclass
class ReadStats:
    bytes: int = 0
    skipped: Counter = field(default_factory=Counter)  # reason -> lines or documents left out
    examples: dict = field(default_factory=dict)  # reason -> ["file:line", ...]
    notes: Counter = field(default_factory=Counter)  # things changed but kept

    def skip(self, reason: str, path: Path, line_no: int):
        self.skipped[reason] += 1
        where = self.examples.setdefault(reason, [])
        if len(where) < MAX_EXAMPLES:
            where.append(f"{path}:{line_no}")


def read_documents(paths: list[Path], stats: ReadStats) -> Iterator[list[str]]:
    """Documents as lists of sentences. Text: one sentence per line, a blank line between
    documents. JSONL: one document per line in its `text` field, cut into sentences."""
    for path in paths:
        yield from _documents(_sentences(path, stats), stats)


def _sentences(path: Path, stats: ReadStats) -> Iterator[str | None]:
    """A file's sentences in order, None where a document ends."""
    jsonl = path.name.removesuffix(".gz").endswith(".jsonl")
    with (gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")) as f:
        for line_no, raw in enumerate(f, 1):
            stats.bytes += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                stats.skip("invalid UTF-8", path, line_no)
                continue
            if jsonl:
                yield from _jsonl_sentences(line, path, line_no, stats)
                yield None
            else:
                yield _clean(line, stats) or None
    yield None


def _documents(sentences: Iterator[str | None], stats: ReadStats) -> Iterator[list[str]]:
    """Sentences grouped into documents; one longer than MAX_DOCUMENT_CHARS (a file without blank
    lines, say) is cut there, so memory stays bounded."""
    document, size = [], 0
    for sentence in sentences:
        if sentence is not None:
            document.append(sentence)
            size += len(sentence)
            if size >= MAX_DOCUMENT_CHARS:
                stats.notes[f"documents cut at {MAX_DOCUMENT_CHARS:,} characters"] += 1
        if document and (sentence is None or size >= MAX_DOCUMENT_CHARS):
            yield document
            document, size = [], 0


def _jsonl_sentences(line: str, path: Path, line_no: int, stats: ReadStats) -> list[str]:
    if not line.strip():
        return []
    try:
        record = json.loads(line, strict=False)  # raw control characters are cleaned below, not fatal
    except json.JSONDecodeError:
        stats.skip("invalid JSON", path, line_no)
        return []
    if not isinstance(record, dict) or not isinstance(record.get("text"), str):
        stats.skip("JSON line without a text string", path, line_no)
        return []
    sentences = [s for s in (_clean(s, stats) for s in split_sentences(record["text"])) if s]
    if not sentences:
        stats.skip("empty documents", path, line_no)
    return sentences


def chunk_documents(documents: Iterator[list[str]], stats: ReadStats) -> Iterator[tuple[int, list[list[str]], int]]:
    """(index of the first document, documents, bytes read for them), CHUNK_CHARS characters at a time."""
    first, batch, size, bytes_before = 0, [], 0, 0
    for document in documents:
        batch.append(document)
        size += sum(map(len, document))
        if size >= CHUNK_CHARS:
            yield first, batch, stats.bytes - bytes_before
            first, batch, size, bytes_before = first + len(batch), [], 0, stats.bytes
    if batch:
        yield first, batch, stats.bytes - bytes_before


# ---------------------------------------------------------------- instances


class InstanceMaker:
    """Documents -> fixed-width instance records (runs inside each worker)."""

    def __init__(self, config: PrepareConfig):
        self.config = config
        tokenizer = load_tokenizer(config.vocab)
        segmenter = JiebaSegmenter(config.user_dict, config.jieba_hmm) if config.whole_word else None
        self.encoder = WholeWordEncoder(tokenizer, segmenter)
        self.cls_id, self.sep_id, self.pad_id = tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
        self.masking = masking_options_for(config, tokenizer)
        self.dtype = record_dtype(config.max_seq_length, config.max_predictions, config.masking, tokenizer.vocab_size)
        self.max_tokens = config.max_seq_length - 3  # room left by [CLS] A [SEP] B [SEP]

    def make(self, first_index: int, documents: list[list[str]]) -> tuple[np.ndarray, Counter]:
        stats = Counter(documents=len(documents))
        ids, starts, offsets = self.encoder.encode([s for document in documents for s in document])
        sentence_bounds = []  # per document: token offsets of its sentences
        first_sentence = 0
        for document in documents:
            bounds = offsets[first_sentence:first_sentence + len(document) + 1]
            first_sentence += len(document)
            sentence_bounds.append(self._sentence_bounds(bounds, starts, stats))
        nonempty = [k for k, bounds in enumerate(sentence_bounds) if len(bounds) >= 2]
        parts = []
        for k, bounds in enumerate(sentence_bounds):
            stats["sentences"] += max(0, len(bounds) - 1)
            if len(bounds) < 3:
                stats["skipped: empty documents" if len(bounds) < 2 else "skipped: one-sentence documents"] += 1
                continue
            rng = np.random.default_rng([self.config.seed, first_index + k])
            others = [sentence_bounds[j] for j in nonempty if j != k] if self.config.task == "nsp" else []
            pairs = [pair for _ in range(self.config.dupe_factor) for pair in self._pairs(bounds, others, rng)]
            if pairs:
                parts.append(self._records(ids, starts, pairs, rng, stats))
        return (np.concatenate(parts) if parts else np.zeros(0, self.dtype)), stats

    def _sentence_bounds(self, bounds: np.ndarray, starts: np.ndarray, stats: Counter) -> list[int]:
        """Token offsets of a document's sentences, without empty ones; a sentence longer than
        max_tokens is cut at word starts into pieces of at most max_tokens / 2 so two fit a pair."""
        out = [int(bounds[0])]
        piece = max(1, self.max_tokens // 2)
        for end in bounds[1:].tolist():
            begin = out[-1]
            if end == begin:
                continue
            if end - begin > self.max_tokens:
                stats["over-long sentences cut"] += 1
                word_begins = np.flatnonzero(starts[begin:end]) + begin
                while end - begin > piece:
                    k = np.searchsorted(word_begins, begin + piece, side="right") - 1
                    cut = int(word_begins[k]) if k >= 0 and word_begins[k] > begin else begin + piece
                    out.append(cut)
                    begin = cut
            out.append(end)
        return out

    def _pairs(self, bounds: list[int], others: list[list[int]], rng: np.random.Generator):
        """(A token range, B token range, label) per instance of one document, as the seed does:
        sentences are gathered up to a target length (and at least two of them), then split at a
        random sentence boundary; a last lone sentence is left out."""
        target = self.max_tokens
        if rng.random() < self.config.short_seq_prob:
            target = int(rng.integers(2, self.max_tokens + 1))
        num_sentences = len(bounds) - 1
        chunk_begin, i = 0, 0
        while i < num_sentences:
            count = i + 1 - chunk_begin
            if count >= 2 and (i == num_sentences - 1 or bounds[i + 1] - bounds[chunk_begin] >= target):
                a_end = chunk_begin + int(rng.integers(1, count))
                a = (bounds[chunk_begin], bounds[a_end])
                b = (bounds[a_end], bounds[i + 1])
                if self.config.task == "sop":
                    yield (b, a, 1) if rng.random() < 0.5 else (a, b, 0)
                elif others and rng.random() < 0.5:
                    yield a, self._random_next(others, target - (a[1] - a[0]), rng), 1
                    i = a_end - 1  # the sentences not used for B start the next chunk
                else:
                    yield a, b, 0
                chunk_begin = i + 1
            i += 1

    @staticmethod
    def _random_next(others: list[list[int]], length: int, rng: np.random.Generator) -> tuple[int, int]:
        """BERT's next-sentence negative: consecutive sentences of another document of the chunk."""
        bounds = others[int(rng.integers(len(others)))]
        start = int(rng.integers(len(bounds) - 1))
        end = start + 1
        while end < len(bounds) - 1 and bounds[end] - bounds[start] < length:
            end += 1
        return bounds[start], bounds[end]

    def _records(self, ids: np.ndarray, starts: np.ndarray, pairs: list[tuple], rng: np.random.Generator,
                 stats: Counter) -> np.ndarray:
        """One document's instances, assembled and masked together."""
        a = np.array([pair[0] for pair in pairs])
        b = np.array([pair[1] for pair in pairs])
        labels = np.array([pair[2] for pair in pairs])
        a_begin, a_len, b_begin, b_len = truncate_pairs(a, b, self.max_tokens, rng)
        tokens, word_starts, maskable = self._assemble(ids, starts, a_begin, a_len, b_begin, b_len)
        masked = mask_batch(tokens, word_starts, maskable, self.masking, rng)
        records = np.zeros(len(pairs), dtype=self.dtype)
        records["length"], records["a_length"], records["sop_label"] = a_len + b_len + 3, a_len + 2, labels
        if self.config.masking == "static":
            records["input_ids"] = masked.input_ids
            records["num_masked"] = masked.counts
            records["masked_positions"] = masked.positions
            records["masked_labels"] = masked.labels
        else:
            records["input_ids"] = tokens
            records["word_starts"] = np.packbits(word_starts, axis=1)
        stats["instances"] += len(pairs)
        stats["tokens"] += int(maskable.sum())
        stats["masked"] += int(masked.counts.sum())
        stats["sop_label_1"] += int(labels.sum())
        stats.update(f"span_{n}" for n in masked.span_lengths)
        return records

    def _assemble(self, ids, starts, a_begin, a_len, b_begin, b_len):
        """[CLS] A [SEP] B [SEP] rows padded to max_seq_length, their word starts (a segment
        begins a word, whatever truncation cut) and the maskable (text) positions."""
        pos = np.arange(self.config.max_seq_length)
        la, lb = a_len[:, None], b_len[:, None]
        in_a = (pos >= 1) & (pos <= la)
        in_b = (pos >= la + 2) & (pos < la + lb + 2)
        text = in_a | in_b
        source = np.where(text, np.where(in_a, a_begin[:, None] + pos - 1, b_begin[:, None] + pos - la - 2), 0)
        tokens = np.where(text, ids[source], self.pad_id)
        rows = np.arange(len(a_len))
        tokens[:, 0] = self.cls_id
        tokens[rows, a_len + 1] = self.sep_id
        tokens[rows, a_len + b_len + 2] = self.sep_id
        word_starts = text & starts[source]
        word_starts[:, 1] = True
        word_starts[rows, a_len + 2] = True
        return tokens, word_starts, text


def truncate_pairs(a: np.ndarray, b: np.ndarray, max_tokens: int, rng: np.random.Generator):
    """Longest-first truncation of (begin, end) ranges to max_tokens together, each removed token
    from the front or the back at random (the seed's token-by-token loop, drawn at once).
    Returns (a_begin, a_len, b_begin, b_len)."""
    la, lb = a[:, 1] - a[:, 0], b[:, 1] - b[:, 0]
    fits = la + lb <= max_tokens
    only_longer = 2 * np.minimum(la, lb) <= max_tokens  # else both meet in the middle, B cut first on a tie
    keep_a = np.where(fits, la, np.where(only_longer, np.where(la < lb, la, max_tokens - lb), (max_tokens + 1) // 2))
    keep_b = np.where(fits, lb, np.where(only_longer, np.where(la < lb, max_tokens - la, lb), max_tokens // 2))
    front_a = rng.binomial(la - keep_a, 0.5)
    front_b = rng.binomial(lb - keep_b, 0.5)
    return a[:, 0] + front_a, keep_a, b[:, 0] + front_b, keep_b


def masking_options_for(config: PrepareConfig, tokenizer) -> MaskingOptions:
    specials = (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    return MaskingOptions(masked_lm_prob=config.masked_lm_prob, max_predictions=config.max_predictions,
                          ngram=config.ngram, mask_id=tokenizer.mask_id, vocab_size=tokenizer.vocab_size,
                          special_ids=specials)


_MAKER: InstanceMaker | None = None  # one per worker process


def _start_worker(config: PrepareConfig):
    global _MAKER
    _MAKER = InstanceMaker(config)


def _make_chunk(first_index: int, documents: list[list[str]]) -> tuple[np.ndarray, Counter]:
    return _MAKER.make(first_index, documents)


def _results_in_order(config: PrepareConfig, chunks) -> Iterator[tuple[np.ndarray, Counter, int, int]]:
    """(records, stats, documents done, bytes) per chunk, in corpus order, with at most
    2 x workers chunks in flight so memory stays bounded however large the corpus."""
    if config.workers == 1:
        maker = InstanceMaker(config)
        for first, documents, size in chunks:
            yield *maker.make(first, documents), first + len(documents), size
        return
    with multiprocessing.Pool(config.workers, initializer=_start_worker, initargs=(config,)) as pool:
        pending = deque()
        for first, documents, size in chunks:
            pending.append((pool.apply_async(_make_chunk, (first, documents)), first + len(documents), size))
            if len(pending) >= 2 * config.workers:
                result, done, chunk_bytes = pending.popleft()
                yield *result.get(), done, chunk_bytes
        while pending:
            result, done, chunk_bytes = pending.popleft()
            yield *result.get(), done, chunk_bytes


# ---------------------------------------------------------------- output directory


def _fingerprint(config: PrepareConfig, paths: list[Path], vocab_hash: str) -> dict:
    inputs = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    return {"format": FORMAT, **config.output_options(), "vocab_hash": vocab_hash, "inputs": inputs}


def _our_files(out: Path) -> list[Path]:
    return [p for p in out.iterdir() if re.fullmatch(r"shard-\d{5}\.npy(\.tmp)?", p.name)
            or p.name in (MANIFEST, PROGRESS, "vocab.txt", MANIFEST + ".tmp", PROGRESS + ".tmp")]


def _differences(old: dict, new: dict) -> str:
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    return ", ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" if k != "inputs" else "input files" for k in keys)


def _write_json(path: Path, value: dict):
    write_atomic(path, lambda tmp: Path(tmp).write_text(json.dumps(value, indent=1, ensure_ascii=False)))


def _resume_state(out: Path, fingerprint: dict, overwrite: bool) -> dict | None:
    """None for a fresh start; else the finished manifest or the progress of an interrupted run
    with the same options. Another run's files are refused unless overwrite."""
    if not out.exists():
        return None
    if not out.is_dir():
        raise FileExistsError(f"--out {out} is a file, not a folder")
    ours = _our_files(out)
    if overwrite:
        for path in ours:
            path.unlink()
        return None
    for name in (MANIFEST, PROGRESS):
        if (out / name).exists():
            state = json.loads((out / name).read_text())
            if state.get("fingerprint") == fingerprint:
                return state
            changed = _differences(state.get("fingerprint", {}), fingerprint)
            raise FileExistsError(f"{out} holds another run's shards ({changed}); "
                                  "pass --overwrite to replace them or choose another --out")
    if any(p.name.startswith("shard-") for p in ours):
        raise FileExistsError(f"{out} holds shards of an unknown run; pass --overwrite to replace them")
    return None


# ---------------------------------------------------------------- summary


@dataclass
class PrepareSummary:
    out: str
    masking: str
    task: str
    documents: int = 0
    sentences: int = 0
    instances: int = 0
    tokens: int = 0
    masked: int = 0
    sop_label_1: int = 0
    span_lengths: list[int] = field(default_factory=list)  # spans of 1, 2, ... words
    shards: int = 0
    seconds: float = 0.0
    skipped: dict = field(default_factory=dict)
    skipped_examples: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    @property
    def masked_fraction(self) -> float:
        return self.masked / self.tokens if self.tokens else 0.0

    @property
    def sop_balance(self) -> float:
        return self.sop_label_1 / self.instances if self.instances else 0.0

    def lines(self) -> list[str]:
        label = "swapped (label 1)" if self.task == "sop" else "random next (label 1)"
        spans = sum(self.span_lengths) or 1
        masked = "masked" if self.masking == "static" else "masked (as sampled here; the loader re-masks each epoch)"
        out = [f"{self.instances:,} instances in {self.shards} shard(s) in {self.out} ({self.seconds:.1f} s)",
               f"{self.documents:,} documents, {self.sentences:,} sentences, {self.tokens:,} tokens",
               f"{masked}: {self.masked_fraction:.2%} of tokens; {label}: {self.sop_balance:.2%}",
               "span lengths (words): " + ", ".join(f"{n + 1}: {c / spans:.1%}" for n, c in enumerate(self.span_lengths))]
        for reason, count in self.skipped.items():
            where = self.skipped_examples.get(reason)
            out.append(f"skipped {count:,} {reason}" + (f" (e.g. {', '.join(where)})" if where else ""))
        out += [f"{count:,} {note}" for note, count in self.notes.items()]
        return out


def _summary(config: PrepareConfig, worker: Counter, reader: ReadStats, shards: int, seconds: float) -> PrepareSummary:
    skipped = {k.removeprefix("skipped: "): v for k, v in worker.items() if k.startswith("skipped: ")}
    for reason, count in reader.skipped.items():
        skipped[reason] = skipped.get(reason, 0) + count
    notes = dict(reader.notes)
    if worker["over-long sentences cut"]:
        notes[f"sentences longer than {config.max_seq_length - 3} tokens cut into pieces"] = worker["over-long sentences cut"]
    return PrepareSummary(out=config.out, masking=config.masking, task=config.task, documents=worker["documents"],
                          sentences=worker["sentences"], instances=worker["instances"], tokens=worker["tokens"],
                          masked=worker["masked"], sop_label_1=worker["sop_label_1"],
                          span_lengths=[worker[f"span_{n}"] for n in range(1, config.ngram + 1)], shards=shards,
                          seconds=seconds, skipped=skipped, skipped_examples=dict(reader.examples), notes=notes)


# ---------------------------------------------------------------- entry points


def prepare_data(config: PrepareConfig) -> PrepareSummary:
    """Prepare the corpus into config.out; resumes an interrupted run with the same options."""
    start = time.perf_counter()
    paths = expand_inputs(config.inputs)  # a missing input fails here, before any work
    if config.user_dict is not None and not Path(config.user_dict).is_file():
        raise FileNotFoundError(f"--user-dict not found: {config.user_dict}")
    tokenizer = load_tokenizer(config.vocab)
    out = Path(config.out)
    fingerprint = _fingerprint(config, paths, tokenizer.vocab_hash)
    state = _resume_state(out, fingerprint, config.overwrite)
    if state is not None and "summary" in state:
        log.info("%s already holds this data (same inputs and options); nothing to do", out)
        return PrepareSummary(**state["summary"])
    created = not out.exists()  # a run that yields nothing removes the folder it made
    out.mkdir(parents=True, exist_ok=True)
    # one worker = one core: tokenizers' own thread pool would blur the --workers figures
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    shards = list(state["shards"]) if state else []
    worker_stats = Counter(state["stats"]) if state else Counter()
    documents_done = state["documents_done"] if state else 0
    if state:
        log.info("resuming %s after %d shard(s), %d documents", out, len(shards), documents_done)

    reader = ReadStats()
    chunks = chunk_documents(read_documents(paths, reader), reader)
    total_bytes = None if any(p.name.endswith(".gz") for p in paths) else sum(p.stat().st_size for p in paths)
    bar = tqdm(total=total_bytes, unit="B", unit_scale=True, desc="prepare-data", disable=None)

    def todo():
        for first, documents, size in chunks:
            if first + len(documents) <= documents_done:
                bar.update(size)
            else:
                yield first, documents, size

    buffered: list[np.ndarray] = []
    run_stats = Counter()
    for records, stats, done, size in _results_in_order(config, todo()):
        worker_stats.update(stats)
        run_stats.update(stats)
        buffered.append(records)
        elapsed = time.perf_counter() - start
        bar.update(size)
        bar.set_postfix_str(f"{run_stats['documents'] / elapsed:,.0f} docs/s, {run_stats['instances'] / elapsed:,.0f} inst/s, "
                            f"{run_stats['tokens'] / elapsed:,.0f} tok/s", refresh=False)
        if sum(map(len, buffered)) >= config.shard_size:
            shards.append(_write_shard(out, len(shards), buffered))
            buffered = []
            _write_json(out / PROGRESS, {"fingerprint": fingerprint, "documents_done": done, "shards": shards,
                                         "stats": dict(worker_stats)})
    if sum(map(len, buffered)):
        shards.append(_write_shard(out, len(shards), buffered))
    bar.close()

    if not worker_stats["instances"]:
        for path in _our_files(out):
            path.unlink()
        if created:
            out.rmdir()
        raise ValueError(f"no training instances from {len(paths)} input file(s): {worker_stats['documents']} documents, "
                         f"{worker_stats['skipped: one-sentence documents']} of one sentence, "
                         f"{worker_stats['skipped: empty documents']} empty, {sum(reader.skipped.values())} lines skipped "
                         "(a document needs at least two sentences: lines separated by a blank line between documents)")
    summary = _summary(config, worker_stats, reader, len(shards), time.perf_counter() - start)
    tokenizer.save(out)
    manifest = {"format": FORMAT, "masking": config.masking, "task": config.task,
                "max_seq_length": config.max_seq_length, "max_predictions": config.max_predictions,
                "masked_lm_prob": config.masked_lm_prob, "ngram": config.ngram, "whole_word": config.whole_word,
                "seed": config.seed, "vocab_size": tokenizer.vocab_size, "vocab_hash": tokenizer.vocab_hash,
                "pad_id": tokenizer.pad_id, "mask_id": tokenizer.mask_id,
                "special_ids": list(masking_options_for(config, tokenizer).special_ids),
                "instances": summary.instances, "shards": shards, "fingerprint": fingerprint,
                "summary": asdict(summary)}
    _write_json(out / MANIFEST, manifest)  # last: its presence means the run is complete
    (out / PROGRESS).unlink(missing_ok=True)
    return summary


def _write_shard(out: Path, index: int, buffered: list[np.ndarray]) -> dict:
    name = SHARD_PATTERN.format(index)
    records = np.concatenate(buffered)

    def save(tmp: str):
        with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a name
            np.save(f, records)

    write_atomic(out / name, save)
    return {"file": name, "instances": len(records)}


def inspect_data(directory: str | Path, num: int = 5, as_json: bool = False) -> Iterator[str]:
    """Decoded instances of a prepared directory, one string each (for dynamic masking, the
    masking the loader applies in epoch 0)."""
    dataset = PretrainingDataset(directory)
    tokenizer = load_tokenizer(Path(directory) / "vocab.txt")
    dataset.check_vocabulary(tokenizer.vocab_hash)
    for index in range(min(num, len(dataset))):
        item = dataset[index]
        tokens = tokenizer.convert_ids_to_tokens(item["input_ids"])
        segment_ids = [0] * item["a_length"] + [1] * (len(tokens) - item["a_length"])
        positions = item["masked_positions"].tolist()
        labels = tokenizer.convert_ids_to_tokens(item["masked_labels"])
        if as_json:
            yield json.dumps({"tokens": tokens, "segment_ids": segment_ids, "masked_positions": positions,
                              "masked_labels": labels, "sop_label": item["sentence_order_label"]}, ensure_ascii=False)
        else:
            yield (f"instance {index}  sop_label {item['sentence_order_label']}\n"
                   f"  A: {' '.join(tokens[:item['a_length']])}\n  B: {' '.join(tokens[item['a_length']:])}\n"
                   f"  masked: {' '.join(f'{p}:{t}' for p, t in zip(positions, labels))}")


# ---------------------------------------------------------------- command line


def add_prepare_arguments(parser: argparse.ArgumentParser):
    d = PrepareConfig(inputs=("-",), out="-")
    parser.add_argument("inputs", nargs="+", metavar="INPUT",
                        help="text files (one sentence per line, a blank line between documents), .jsonl files "
                             "(one document per line in a 'text' field), .gz of either, globs or folders")
    parser.add_argument("--out", required=True, help="output folder for the shards, manifest.json and vocab.txt")
    parser.add_argument("--max-seq-length", type=int, default=d.max_seq_length,
                        help=f"tokens per instance, [CLS] and [SEP]s included (default: {d.max_seq_length})")
    parser.add_argument("--max-predictions", type=int, default=d.max_predictions,
                        help=f"at most this many masked tokens per instance (default: {d.max_predictions})")
    parser.add_argument("--masked-lm-prob", type=float, default=d.masked_lm_prob,
                        help=f"fraction of tokens to mask (default: {d.masked_lm_prob})")
    parser.add_argument("--dupe-factor", type=int, default=d.dupe_factor,
                        help=f"passes over the corpus, each with new pairs and masks (default: {d.dupe_factor}; "
                             "the seed used 10 with static masking)")
    parser.add_argument("--short-seq-prob", type=float, default=d.short_seq_prob,
                        help=f"probability of a shorter target length for a document (default: {d.short_seq_prob})")
    parser.add_argument("--ngram", type=int, default=d.ngram,
                        help=f"mask spans of 1..N whole words, p(n) ~ 1/n (default: {d.ngram}; 1 = single words)")
    parser.add_argument("--no-wwm", dest="whole_word", action="store_false",
                        help="mask single tokens instead of jieba words (for text that is not Chinese)")
    parser.add_argument("--task", choices=["sop", "nsp"], default=d.task,
                        help="sop: sentence order (ALBERT, label 1 = swapped); nsp: BERT's next sentence "
                             "(label 1 = random) (default: sop)")
    parser.add_argument("--masking", choices=["static", "dynamic"], default=d.masking,
                        help="dynamic: store words and mask anew each epoch in the loader; static: store the "
                             "masks, as the seed did (default: dynamic)")
    parser.add_argument("--workers", type=int, default=d.workers,
                        help=f"processes; the output is the same for any number (default: all {d.workers} cores)")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    parser.add_argument("--user-dict", help="jieba user dictionary (lines of 'word [freq] [tag]')")
    parser.add_argument("--vocab", help="vocab.txt (default: the bundled 21,128-token Chinese vocabulary)")
    parser.add_argument("--jieba-hmm", action="store_true",
                        help="let jieba's HMM join characters missing from its dictionary into words "
                             "(the seed's choice; about twice as slow)")
    parser.add_argument("--shard-size", type=int, default=d.shard_size,
                        help=f"instances per shard, about (default: {d.shard_size:,})")
    parser.add_argument("--overwrite", action="store_true", help="replace another run's shards in --out")


def prepare_config_from_args(args: argparse.Namespace) -> PrepareConfig:
    names = {f.name for f in fields(PrepareConfig)}
    values = {k: v for k, v in vars(args).items() if k in names}
    values["inputs"] = tuple(values["inputs"])
    return PrepareConfig(**values)


def add_inspect_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("dir", metavar="DIR", help="a folder written by prepare-data")
    parser.add_argument("--num", type=int, default=5, help="instances to show (default: 5)")
    parser.add_argument("--json", action="store_true",
                        help='one JSON object per line: {"tokens", "segment_ids", "masked_positions", '
                             '"masked_labels", "sop_label"}')
