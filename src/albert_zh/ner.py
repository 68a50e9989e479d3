"""Named entities between character spans and word-piece tags: encoding, windows, decoding, the metric.

The tokenizer does not keep one piece per character: digit and Latin runs become one piece
(`2013年` -> `2013`, `年`), spaces vanish, unknown characters become [UNK]. Each piece knows its
[start, end) in the original text, so entities go on and come back by character offsets:
  training: a piece starting an entity is tagged B-type, the following pieces of it I-type, others O;
  prediction: B (or an I that does not continue an entity, as conlleval reads it) opens an entity at
  its piece's start, the entity ends at its last piece's end, so the span is exact in the original text.
An entity whose edge falls inside a piece cannot be tagged; `piece_tags` reports it as lost.
Texts longer than a window are cut into overlapping windows; each piece takes its tag from the
window where it sits farthest from an edge, so nothing is cut off.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from albert_zh.tasks import Entity, Example
from albert_zh.tokenizer import ChineseTokenizer

OUTSIDE = "O"


def tag_set(types: tuple[str, ...]) -> tuple[str, ...]:
    """The model's tags: O, then B- and I- per entity type."""
    return (OUTSIDE, *(f"{prefix}-{t}" for t in types for prefix in ("B", "I")))


def types_of(tags: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(tag[2:] for tag in tags if tag.startswith("B-"))


def piece_tags(offsets: list[tuple[int, int]], entities: tuple[Entity, ...]) -> tuple[list[str], list[Entity]]:
    """The tag of each piece, and the entities that no run of whole pieces covers exactly (lost)."""
    tags = [OUTSIDE] * len(offsets)
    lost = []
    for entity in entities:
        inside = [i for i, (start, end) in enumerate(offsets) if entity.start <= start and end <= entity.end]
        # a piece across an edge would leave the first or last whole piece short of that edge
        if not inside or offsets[inside[0]][0] != entity.start or offsets[inside[-1]][1] != entity.end:
            lost.append(entity)
            continue
        tags[inside[0]] = f"B-{entity.type}"
        for i in inside[1:]:
            tags[i] = f"I-{entity.type}"
    return tags, lost


def spans_from_tags(tags: list[str], offsets: list[tuple[int, int]]) -> list[Entity]:
    """Entities from piece tags, read as conlleval does: B-X opens, I-X continues an X (else opens one)."""
    entities, current = [], None  # current: [start, end, type]
    for tag, (start, end) in zip(tags, offsets):
        prefix, _, entity_type = tag.partition("-")
        if prefix == "I" and current is not None and current[2] == entity_type:
            current[1] = end
            continue
        if current is not None:
            entities.append(Entity(*current))
        current = [start, end, entity_type] if prefix in ("B", "I") else None
    if current is not None:
        entities.append(Entity(*current))
    return entities


def window_stride(max_seq_length: int, stride: int | None) -> int:
    """Pieces shared by consecutive windows; by default half a window, so that every piece is read
    with at least a quarter window of context on either side (except at the text's ends)."""
    return (max_seq_length - 2) // 2 if stride is None else stride


def windows(length: int, room: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) piece windows of at most `room` pieces covering `length`, consecutive ones
    sharing `stride` pieces."""
    if length <= room:
        return [(0, length)]
    step = room - stride
    starts = list(range(0, length - room, step)) + [length - room]
    return [(s, s + room) for s in starts]


@dataclass
class EncodedEntities:
    """A file's texts as windows of piece ids (each with [CLS] ... [SEP]) and, when labelled, tags."""

    examples: list[Example]
    offsets: list[list[tuple[int, int]]]  # per example, each piece's character span
    input_ids: list[list[int]]  # per window
    token_type_ids: list[list[int]]
    labels: list[list[int]] | None  # per window, -100 on [CLS] and [SEP]
    window_of: list[tuple[int, int, int]]  # per window: example index, first piece, end piece
    lost: list[tuple[str, Entity]]  # (where, entity) that no piece run covers

    def __len__(self):
        return len(self.input_ids)


def encode_entities(examples: list[Example], tokenizer: ChineseTokenizer, tag2id: dict[str, int],
                    max_seq_length: int, stride: int, labelled: bool = True) -> EncodedEntities:
    room = max_seq_length - 2
    if not 0 <= stride < room:
        raise ValueError(f"the window stride must be in [0, {room}) for --max-seq-length {max_seq_length}, got {stride}")
    labelled = labelled and all(e.entities is not None for e in examples)
    data = EncodedEntities(examples, [], [], [], [] if labelled else None, [], [])
    for index, (example, (ids, offsets)) in enumerate(zip(examples, tokenizer.encode_with_offsets(
            [e.text_a for e in examples]))):
        data.offsets.append(offsets)
        if labelled:
            tags, lost = piece_tags(offsets, example.entities)
            data.lost += [(example.where, entity) for entity in lost]
        for start, end in windows(len(ids), room, stride) if ids else ():
            data.input_ids.append([tokenizer.cls_id, *ids[start:end], tokenizer.sep_id])
            data.token_type_ids.append([0] * (end - start + 2))
            data.window_of.append((index, start, end))
            if labelled:
                data.labels.append([-100, *(tag2id[t] for t in tags[start:end]), -100])
    return data


def merge_windows(data: EncodedEntities, window_tags: list[list[int]], id2tag: dict[int, str]) -> list[list[Entity]]:
    """Entities per example from the tag ids of each window ([CLS] first): each piece takes its tag
    from the window where it has the most context on its nearer side."""
    best = defaultdict(dict)  # example -> piece -> (context, tag)
    for (index, start, end), tags in zip(data.window_of, window_tags):
        for piece in range(start, end):
            context = min(piece - start, end - 1 - piece)
            if piece not in best[index] or context > best[index][piece][0]:
                best[index][piece] = (context, id2tag[tags[piece - start + 1]])
    entities = []
    for index, offsets in enumerate(data.offsets):
        tags = [best[index][p][1] for p in range(len(offsets))]
        entities.append(spans_from_tags(tags, offsets))
    return entities


def entity_dicts(text: str, entities: list[Entity]) -> list[dict]:
    """Entities as the commands and the service write them (end exclusive)."""
    return [{"type": e.type, "start": e.start, "end": e.end, "text": text[e.start:e.end]} for e in entities]


def entity_scores(gold: list[tuple[Entity, ...]], predicted: list[list[Entity]]) -> dict:
    """Entity-level precision, recall and F1 (exact span and type): micro over all, and per type."""
    counts = defaultdict(lambda: [0, 0, 0])  # type -> [true positives, predicted, gold]
    for g, p in zip(gold, predicted, strict=True):
        g, p = set(g), set(p)
        for e in g & p:
            counts[e.type][0] += 1
        for e in p:
            counts[e.type][1] += 1
        for e in g:
            counts[e.type][2] += 1

    def prf(tp, n_pred, n_gold):
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "support": n_gold}

    total = [sum(c[i] for c in counts.values()) for i in range(3)]
    return {**prf(*total), "per_type": {t: prf(*counts[t]) for t in sorted(counts)}, "examples": len(gold)}


def entity_table(scores: dict) -> str:
    """The per-type scores as a markdown table."""
    rows = [f"| {t} | {s['precision']:.4f} | {s['recall']:.4f} | {s['f1']:.4f} | {s['support']} |"
            for t, s in [*scores["per_type"].items(), ("micro", scores)]]
    return "| type | precision | recall | F1 | gold |\n|---|---:|---:|---:|---:|\n" + "\n".join(rows) + "\n"
