"""Whole-word segmentation and n-gram masking for masked-LM pretraining, shared by data
preparation (static masking) and the data loader (dynamic masking).

A sentence becomes token ids plus a boolean `word_starts` array: True on the first piece of
each word, False on the pieces that continue it. Words come from jieba's dictionary, so a
Chinese word's characters after the first are continuation pieces and masking treats the word
as one unit. Masking follows Google's ALBERT: spans of 1..n whole words with p(n) ~ 1/n, at
most `max_predictions` tokens, and each chosen token becomes [MASK] 80% of the time, a random
token 10% and stays unchanged 10%.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import string
import tempfile
import unicodedata
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# jieba's own block split: runs it segments with its dictionary, everything else goes char by char
_HAN_BLOCK = re.compile("([\u4E00-\u9FD5a-zA-Z0-9+#&\\._%\\-]+)")
_SKIP = re.compile(r"(\r\n|\s)")
_ASCII_ALNUM = frozenset(string.ascii_letters + string.digits)
_CJK_WORD = re.compile("[\u4E00-\u9FFF]+")
_MISSING = object()  # not even a prefix of a dictionary word

# ranges BERT treats as CJK characters (each one is a word of its own for WordPiece)
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2CEAF),
               (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def _inside_bert_word(ch: str) -> bool:
    """True for characters BERT's pre-tokenizer keeps glued to their neighbours (letters,
    digits, symbols such as ℃), False for whitespace, punctuation and CJK characters."""
    cp = ord(ch)
    if ch.isspace() or any(lo <= cp <= hi for lo, hi in _CJK_RANGES):
        return False
    if ch in string.punctuation:
        return False
    return not unicodedata.category(ch).startswith(("P", "C"))


class JiebaSegmenter:
    """jieba's maximum-probability segmentation (its route through the dictionary DAG).

    With `hmm=False` this gives exactly `jieba.lcut(text, HMM=False)` about 2.5x faster: one
    backward pass with precomputed log-probabilities instead of jieba's DAG dict, `log` calls
    and per-character regex. With `hmm=True` it calls jieba itself, whose HMM joins
    out-of-dictionary characters into new words (the seed's choice; twice as slow).
    """

    def __init__(self, user_dict: str | Path | None = None, hmm: bool = False):
        import jieba

        jieba.setLogLevel(logging.WARNING)
        if user_dict is not None and not Path(user_dict).is_file():
            raise FileNotFoundError(f"jieba user dictionary not found: {user_dict}")
        self.hmm = hmm
        if hmm:
            self._jieba = _jieba_tokenizer(user_dict)
        else:
            self._log_prob, total = _load_log_probs(user_dict)
            self._unknown_log_prob = -math.log(total)  # jieba scores a character outside the dictionary as frequency 1

    def cut(self, text: str) -> list[str]:
        if self.hmm:
            return self._jieba.lcut(text, HMM=True)
        words: list[str] = []
        for k, block in enumerate(_HAN_BLOCK.split(text)):
            if not block:
                continue
            if k % 2:  # re.split puts the captured (dictionary) blocks at odd indexes
                words += self._cut_block(block)
            else:
                for piece in _SKIP.split(block):
                    if _SKIP.match(piece):
                        words.append(piece)
                    else:
                        words += piece
        return words

    def _cut_block(self, s: str) -> list[str]:
        n = len(s)
        get = self._log_prob.get
        best = [0.0] * (n + 1)  # best[i]: log-probability of the best segmentation of s[i:]
        end = list(range(1, n + 2))  # end[i]: where the first word of that segmentation ends
        for i in range(n - 1, -1, -1):
            lp = get(s[i], _MISSING)
            if lp is _MISSING:
                best[i] = self._unknown_log_prob + best[i + 1]
                continue
            score = None if lp is None else lp + best[i + 1]
            j = i + 2
            while j <= n:
                lp = get(s[i:j], _MISSING)
                if lp is _MISSING:
                    break
                # >= : on a tie jieba keeps the longer word
                if lp is not None and (score is None or lp + best[j] >= score):
                    score, end[i] = lp + best[j], j
                j += 1
            best[i] = self._unknown_log_prob + best[i + 1] if score is None else score
        words, i, letters = [], 0, ""
        while i < n:
            j = end[i]
            if j - i == 1 and s[i] in _ASCII_ALNUM:  # jieba glues single ASCII letters and digits together
                letters += s[i]
            else:
                if letters:
                    words.append(letters)
                    letters = ""
                words.append(s[i:j])
            i = j
        if letters:
            words.append(letters)
        return words


def _jieba_tokenizer(user_dict):
    import jieba

    # a private jieba.Tokenizer so a user dictionary never leaks into the global one
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    if user_dict is not None:
        tokenizer.load_userdict(str(user_dict))
    return tokenizer


def _load_log_probs(user_dict) -> tuple[dict, int]:
    """word -> log-probability (None for prefixes of longer words) and jieba's total frequency.

    Cached in the temp folder as a word list and a float array: that loads in a third of the
    time jieba takes for its own cache, which matters for every worker process started."""
    import jieba

    key = hashlib.sha256(jieba.__version__.encode() + (Path(user_dict).read_bytes() if user_dict else b"")).hexdigest()
    cache = Path(tempfile.gettempdir()) / f"albert_zh-jieba-{key[:16]}"
    words_file, probs_file = cache.with_suffix(".words"), cache.with_suffix(".npy")
    try:
        words = words_file.read_text(encoding="utf-8").split("\n")
        probs = np.load(probs_file)
        if len(words) == len(probs) - 1:  # the last value is the total frequency
            return dict(zip(words, [None if p != p else p for p in probs[:-1].tolist()])), int(probs[-1])
    except (OSError, ValueError):
        pass
    tokenizer = _jieba_tokenizer(user_dict)
    log_total = math.log(tokenizer.total)
    log_prob = {word: (math.log(freq) - log_total if freq else None) for word, freq in tokenizer.FREQ.items()}
    # written under temporary names and renamed, so concurrent workers never read half a file
    tmp = f".{os.getpid()}.tmp"
    Path(str(words_file) + tmp).write_text("\n".join(log_prob), encoding="utf-8")
    with open(str(probs_file) + tmp, "wb") as f:
        np.save(f, np.array([np.nan if p is None else p for p in log_prob.values()] + [tokenizer.total]))
    os.replace(str(words_file) + tmp, words_file)
    os.replace(str(probs_file) + tmp, probs_file)
    return log_prob, tokenizer.total


class WholeWordEncoder:
    """Sentences -> token ids and word-start flags, batched.

    Each word is tokenized on its own (cached: a corpus has far fewer distinct words than
    words), which gives the ids of tokenizing the sentence whole because words that BERT's
    pre-tokenizer would glue together (`55` + `℃`) are joined first. With `whole_word=False`
    sentences are tokenized plainly and every token starts a word.
    """

    max_cached_words = 500_000  # bounds memory on huge corpora; the cache only saves time

    def __init__(self, tokenizer, segmenter: JiebaSegmenter | None):
        self.tokenizer = tokenizer
        self.segmenter = segmenter
        self._pieces: dict[str, tuple[tuple[int, ...], tuple[bool, ...]]] = {}
        self._joins: dict[str, bool] = {}

    def encode(self, sentences: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Returns (ids int32, word_starts bool, offsets int64) with sentence s at offsets[s]:offsets[s+1]."""
        if self.segmenter is None:
            encoded = self.tokenizer.encode_plain(sentences)
            lengths = [len(ids) for ids in encoded]
            ids = np.fromiter((i for seq in encoded for i in seq), dtype=np.int32, count=sum(lengths))
            return ids, np.ones(len(ids), dtype=bool), np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        sentence_words = [self._join_bert_words(self.segmenter.cut(s)) for s in sentences]
        self._learn({w for words in sentence_words for w in words if w not in self._pieces})
        ids: list[int] = []
        starts: list[bool] = []
        offsets = [0]
        pieces = self._pieces
        for words in sentence_words:
            for w in words:
                word_ids, word_starts = pieces[w]
                ids += word_ids
                starts += word_starts
            offsets.append(len(ids))
        return np.array(ids, dtype=np.int32), np.array(starts, dtype=bool), np.array(offsets, dtype=np.int64)

    def _learn(self, words: set[str]):
        if len(self._pieces) + len(words) > self.max_cached_words:
            self._pieces.clear()
        # a word of CJK unified ideographs is one token per character (normalisation leaves them
        # alone), so a dictionary lookup gives its ids; encode_batch costs ~10 us a word
        vocab, unk = self.tokenizer.vocab, self.tokenizer.unk_id
        other = []
        for word in words:
            if _CJK_WORD.fullmatch(word):
                self._pieces[word] = (tuple(vocab.get(ch, unk) for ch in word), (True,) + (False,) * (len(word) - 1))
            else:
                other.append(word)
        other.sort()
        for word, ids in zip(other, self.tokenizer.encode_plain(other)):
            self._pieces[word] = (tuple(ids), (True,) + (False,) * (len(ids) - 1) if ids else ())

    def _join_bert_words(self, words: list[str]) -> list[str]:
        joined: list[str] = []
        joins = self._joins
        for w in words:
            if joined:
                prev = joined[-1]
                a, b = prev[-1], w[0]
                ja = joins.get(a)
                if ja is None:
                    ja = joins[a] = _inside_bert_word(a)
                if ja:
                    jb = joins.get(b)
                    if jb is None:
                        jb = joins[b] = _inside_bert_word(b)
                    if jb:
                        joined[-1] = prev + w
                        continue
            joined.append(w)
        return joined


@dataclass(frozen=True)
class MaskingOptions:
    masked_lm_prob: float = 0.15
    max_predictions: int = 20
    ngram: int = 3
    mask_id: int = 103
    vocab_size: int = 21128
    special_ids: tuple[int, ...] = (0, 100, 101, 102, 103)  # never drawn as random replacements

    @cached_property
    def span_cdf(self) -> np.ndarray:
        return np.cumsum(ngram_probabilities(self.ngram))

    @cached_property
    def replacement_ids(self) -> np.ndarray:
        return np.setdiff1d(np.arange(self.vocab_size, dtype=np.int32), np.array(self.special_ids, dtype=np.int32))

    def budget(self, num_candidates: int) -> int:
        """Tokens to predict: masked_lm_prob of the maskable tokens, at least 1, at most max_predictions."""
        return max(1, min(self.max_predictions, int(num_candidates * self.masked_lm_prob + 0.5)))


def ngram_probabilities(ngram: int) -> np.ndarray:
    """p(n) for span lengths n = 1..ngram, proportional to 1/n (Google's ALBERT)."""
    weights = 1.0 / np.arange(1, ngram + 1)
    return weights / weights.sum()


@dataclass
class MaskedBatch:
    input_ids: np.ndarray  # (k, T) ids after replacement
    positions: np.ndarray  # (k, max_predictions) sorted positions of the predicted tokens, 0 after `counts`
    labels: np.ndarray  # (k, max_predictions) original ids at those positions, 0 after `counts`
    counts: np.ndarray  # (k,) predicted tokens per instance
    span_lengths: list[int]  # words in each chosen span


def mask_batch(tokens: np.ndarray, word_starts: np.ndarray, maskable: np.ndarray, options: MaskingOptions,
               rng: np.random.Generator) -> MaskedBatch:
    """Mask k instances (rows of `tokens`, padded) with one generator.

    maskable is False at [CLS], [SEP] and padding; spans never cross those. Each instance gets a
    budget of masked_lm_prob of its maskable tokens. Span lengths are drawn n ~ 1/n, and each is
    placed whole at the first of the instance's words, in random order, where it fits the budget
    without overlapping an earlier span; masking stops at the first length that fits nowhere.
    (Shrinking or skipping spans that do not fit, as Google's code does, favours short spans:
    there 1-word spans come out about 8 points above 1/n.) An instance still without a masked
    token gets one single word.
    """
    k, width = tokens.shape
    budgets = np.clip(np.floor(maskable.sum(1) * options.masked_lm_prob + 0.5), 1, options.max_predictions)
    # word = a maskable start up to the next boundary (a start, a special token, padding, a row's end)
    edges = word_starts | ~maskable
    edges[:, 0] = True
    boundaries = np.append(np.flatnonzero(edges.ravel()), k * width)
    is_word = maskable.ravel()[boundaries[:-1]]
    begins, ends = boundaries[:-1][is_word], boundaries[1:][is_word]
    rows = begins // width
    # words with nothing in between form a run (a segment); a span stays inside one run
    run_last = np.flatnonzero(np.append((ends[:-1] != begins[1:]) | (rows[:-1] != rows[1:]), True))
    run_last = run_last[np.searchsorted(run_last, np.arange(len(begins)))]  # each word's run's last word
    # the words of each row in random order: shuffle all, then a stable (radix) sort by row
    shuffled = rng.permutation(len(begins))
    order = shuffled[np.argsort(rows[shuffled].astype(np.int16 if k < 1 << 15 else np.int64), kind="stable")]
    lengths = np.searchsorted(options.span_cdf, rng.random(len(begins)), side="right") + 1
    first_word = np.searchsorted(rows, np.arange(k + 1)).tolist()
    begins_l, ends_l, run_last_l, order_l = begins.tolist(), ends.tolist(), run_last.tolist(), order.tolist()
    lengths_l = lengths.tolist()
    chosen = bytearray(k * width)
    spans: list[int] = []
    for r in range(k):
        row_words = order_l[first_word[r]:first_word[r + 1]]
        budget, count = int(budgets[r]), 0
        next_length = first_word[r]
        for single_word in (False, True):
            n = 1 if single_word else lengths_l[next_length]
            for w in row_words:
                if n > budget - count:  # every word has at least one token
                    break
                last = w + n - 1
                if last > run_last_l[w]:
                    continue
                lo, hi = begins_l[w], ends_l[last]
                if hi - lo + count > budget or chosen.find(1, lo, hi) != -1:
                    continue
                chosen[lo:hi] = b"\x01" * (hi - lo)
                count += hi - lo
                spans.append(n)
                if single_word or count >= budget:
                    break
                next_length += 1
                n = lengths_l[next_length]
            if count:
                break
    chosen_mask = np.frombuffer(bytes(chosen), dtype=bool).reshape(k, width)
    counts = chosen_mask.sum(1)
    slots = np.arange(options.max_predictions) < counts[:, None]
    chosen_first = np.argsort(~chosen_mask, axis=1, kind="stable")[:, :options.max_predictions]
    chosen_first = np.pad(chosen_first, ((0, 0), (0, options.max_predictions - chosen_first.shape[1])))
    positions = np.where(slots, chosen_first, 0)
    labels = np.where(slots, np.take_along_axis(tokens, positions, axis=1), 0)
    return MaskedBatch(replace_tokens(tokens, positions, slots, options, rng), positions, labels, counts, spans)


def replace_tokens(tokens: np.ndarray, positions: np.ndarray, slots: np.ndarray, options: MaskingOptions,
                   rng: np.random.Generator) -> np.ndarray:
    """At the chosen positions: 80% [MASK], 10% a random non-special token, 10% unchanged."""
    out = tokens.copy()
    draw = rng.random(positions.shape)
    rows = np.broadcast_to(np.arange(len(tokens))[:, None], positions.shape)
    to_mask = slots & (draw < 0.8)
    out[rows[to_mask], positions[to_mask]] = options.mask_id
    to_random = slots & (draw >= 0.9)
    random_ids = options.replacement_ids[rng.integers(0, len(options.replacement_ids), positions.shape)]
    out[rows[to_random], positions[to_random]] = random_ids[to_random]
    return out
