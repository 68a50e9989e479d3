"""Chinese BERT WordPiece over the bundled 21,128-token vocabulary, on HuggingFace `tokenizers`.

Gives the ids of `transformers.BertTokenizer(vocab, do_lower_case=True)`: text is cleaned of
control characters, lower-cased with accents stripped, split around every CJK character and
punctuation mark, then split into word pieces (words over 100 characters become [UNK]).
"""

from __future__ import annotations

import hashlib
import shutil
from importlib import resources
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def bundled_vocab() -> Path:
    return Path(str(resources.files("albert_zh") / "resources" / "vocab.txt"))


def read_vocab(path: Path) -> dict[str, int]:
    if not path.is_file():
        raise FileNotFoundError(f"vocabulary file not found: {path}")
    vocab: dict[str, int] = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            token = line.rstrip("\r\n")
            if not token:
                raise ValueError(f"{path}:{line_no}: empty token")
            if token in vocab:
                raise ValueError(f"{path}:{line_no}: duplicate token {token!r} (first on line {vocab[token] + 1})")
            vocab[token] = len(vocab)
    if not vocab:
        raise ValueError(f"{path}: the vocabulary is empty")
    missing = [t for t in SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"{path}: the vocabulary lacks the special tokens {', '.join(missing)}")
    return vocab


class ChineseTokenizer:
    """Call it like a HuggingFace tokenizer: tok(text), tok(text_a, text_b), tok([...] , return_tensors="pt")."""

    def __init__(self, vocab_file: str | Path):
        self.vocab_file = Path(vocab_file)
        self.vocab = read_vocab(self.vocab_file)
        self.vocab_hash = hashlib.sha256(self.vocab_file.read_bytes()).hexdigest()
        self.ids_to_tokens = list(self.vocab)
        self.pad_id, self.unk_id, self.cls_id, self.sep_id, self.mask_id = (self.vocab[t] for t in SPECIAL_TOKENS)
        self._tokenizer = Tokenizer(models.WordPiece(self.vocab, unk_token="[UNK]", max_input_chars_per_word=100))
        # strip_accents=None follows lowercase, as BertTokenizer(do_lower_case=True) does
        self._tokenizer.normalizer = normalizers.BertNormalizer(
            clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
        self._tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        self._tokenizer.decoder = decoders.WordPiece()

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def encode_plain(self, texts: list[str]) -> list[list[int]]:
        """Ids without special tokens, batched in Rust (the fast path for data preparation)."""
        return [e.ids for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def encode_with_offsets(self, texts: list[str]) -> list[tuple[list[int], list[tuple[int, int]]]]:
        """Ids without special tokens and each piece's [start, end) in the original text: what the
        normaliser dropped (spaces, control characters) belongs to no piece."""
        return [(e.ids, e.offsets) for e in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def convert_tokens_to_ids(self, tokens: list[str]) -> list[int]:
        return [self.vocab.get(t, self.unk_id) for t in tokens]

    def convert_ids_to_tokens(self, ids) -> list[str]:
        return [self.ids_to_tokens[int(i)] for i in ids]

    def decode(self, ids) -> str:
        """Join pieces; Chinese characters without spaces. [PAD] is skipped."""
        tokens = [t for t in self.convert_ids_to_tokens(ids) if t != "[PAD]"]
        text = self._tokenizer.decoder.decode(tokens)
        # the WordPiece decoder puts a space between every word; CJK characters are words of their own
        out = []
        for i, ch in enumerate(text):
            if ch == " " and 0 < i < len(text) - 1 and (_is_cjk(text[i - 1]) or _is_cjk(text[i + 1])):
                continue
            out.append(ch)
        return "".join(out)

    def encode_pair(self, a: list[int], b: list[int] | None, max_length: int) -> dict[str, list[int]]:
        """[CLS] a [SEP] (b [SEP]) with longest-first truncation to max_length."""
        specials = 3 if b is not None else 2
        if max_length < specials:
            raise ValueError(f"max_length {max_length} leaves no room for the {specials} special tokens")
        room = max_length - specials
        if b is None:
            a = a[:room]
        elif len(a) + len(b) > room:
            # longest first, as HF tokenizers does: the shorter side keeps up to half the room
            short = min(len(a), len(b), room // 2)
            keep_a = short if len(a) <= len(b) else room - short
            a, b = a[:keep_a], b[: room - keep_a]
        ids = [self.cls_id, *a, self.sep_id]
        types = [0] * len(ids)
        if b is not None:
            ids += [*b, self.sep_id]
            types += [1] * (len(b) + 1)
        return {"input_ids": ids, "token_type_ids": types, "attention_mask": [1] * len(ids)}

    def __call__(self, text, text_pair: str | None = None, max_length: int = 512, return_tensors: str | None = None):
        """One example (text, optional text_pair) -> lists; a list of texts or (a, b) pairs -> a batch
        padded to its longest member (torch tensors with return_tensors="pt")."""
        if isinstance(text, str):
            pieces = self.encode_plain([text] + ([text_pair] if text_pair is not None else []))
            example = self.encode_pair(pieces[0], pieces[1] if text_pair is not None else None, max_length)
            return self._as_tensors([example]) if return_tensors == "pt" else example
        pairs = [(t, None) if isinstance(t, str) else tuple(t) for t in text]
        firsts = self.encode_plain([a for a, _ in pairs])
        seconds = self.encode_plain([b for _, b in pairs if b is not None])
        seconds_iter = iter(seconds)
        examples = [self.encode_pair(ids, next(seconds_iter) if b is not None else None, max_length)
                    for ids, (_, b) in zip(firsts, pairs)]
        return self._as_tensors(examples) if return_tensors == "pt" else self._pad(examples)

    def _pad(self, examples: list[dict]) -> dict[str, list[list[int]]]:
        width = max((len(e["input_ids"]) for e in examples), default=0)
        return {key: [e[key] + [self.pad_id if key == "input_ids" else 0] * (width - len(e[key])) for e in examples]
                for key in ("input_ids", "token_type_ids", "attention_mask")}

    def _as_tensors(self, examples: list[dict]) -> dict[str, torch.Tensor]:
        return {key: torch.tensor(value, dtype=torch.long) for key, value in self._pad(examples).items()}

    def save(self, directory: str | Path):
        shutil.copyfile(self.vocab_file, Path(directory) / "vocab.txt")


def _is_cjk(ch: str) -> bool:
    cp = ord(ch)
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or 0x2A700 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def load_tokenizer(path: str | Path | None = None) -> ChineseTokenizer:
    """None: the bundled vocabulary; else a vocab.txt file or a folder holding one."""
    if path is None:
        return ChineseTokenizer(bundled_vocab())
    path = Path(path)
    return ChineseTokenizer(path / "vocab.txt" if path.is_dir() else path)
