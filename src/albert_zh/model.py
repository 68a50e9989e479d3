"""ALBERT in one file: config, embeddings, attention, layer, encoder, heads.

The three ALBERT changes to BERT are explicit below:
  1. factorized embedding: tokens live in a small space E and are mapped to the hidden size H
     (V*E + E*H parameters instead of V*H), in `AlbertEmbeddings` / `AlbertTransformer`;
  2. cross-layer parameter sharing: `num_hidden_layers` applications of few stored layers,
     in `AlbertTransformer` (`sharing` and Google's `num_hidden_groups` / `inner_group_num`);
  3. sentence-order prediction: `AlbertSOPHead`.

Two layouts of released checkpoints are supported by one switch, `embedding_layout`:
  google     (Google's albert_*_zh, HuggingFace): embeddings summed and normalised in E space,
             then `embedding_hidden_mapping_in` E->H with bias; MLM transform H->E.
  brightmart (brightmart's albert_*_zh): word embeddings E projected to H without bias *before*
             H-sized position and token-type embeddings are added; MLM transform H->H, then the
             transposed projection H->E, then the tied word embeddings.
and two layer-norm placements, `ln_type` "postln" (BERT) and "preln" (brightmart's xxlarge).

Parameter names follow HuggingFace transformers, so a Google-layout model's state dict is a
valid `transformers.AlbertForPreTraining` checkpoint as it is.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from albert_zh import checkpoint
from albert_zh.crf import CRF

log = logging.getLogger(__name__)

SHARING_MODES = ("all", "attention", "ffn", "none")
PRESETS = {  # preset name -> the released config it reproduces (bundled in resources/configs)
    "tiny": "albert_config_tiny.json",  # brightmart albert_tiny_zh
    "tiny_preln": "albert_config_tiny_preln.json",  # the same with pre-LN: learns sooner from scratch
    "small": "albert_config_small_google.json",  # Google albert_small_zh
    "tiny_google": "albert_config_tiny_google.json",
    "base": "albert_config_base.json",  # brightmart albert_base_zh
    "large": "albert_config_large.json",
    "xlarge": "albert_config_xlarge.json",
    "xxlarge": "albert_config_xxlarge.json",  # pre-LN
}


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """The tanh approximation of GELU, which the original TF code calls "gelu" and HF "gelu_new"."""
    if torch.compiler.is_compiling():
        # The same function, as 0.5 * (1 + tanh(z)) = sigmoid(2z): inductor's CPU kernels compute
        # exp about 3.6x faster than tanh (BENCHMARKS.md, 'Pretraining step').
        return x * torch.sigmoid(2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x))
    return F.gelu(x, approximate="tanh")


ACTIVATIONS = {
    "gelu_new": gelu_tanh,
    "gelu": F.gelu,
    "relu": F.relu,
}


def read_config_json(path: str | Path) -> dict:
    """The JSON object in a config file, with the file named in any error."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"config file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a config (a JSON object is expected)")
    return raw


@dataclass
class AlbertConfig:
    """Hyper-parameters of an ALBERT model. Field names follow HuggingFace's AlbertConfig."""

    vocab_size: int = 21128
    embedding_size: int = 128  # E: the factorized token-embedding width
    hidden_size: int = 312  # H
    num_hidden_layers: int = 4  # layers applied, whatever is shared
    num_attention_heads: int = 12
    intermediate_size: int = 1248
    hidden_act: str = "gelu_new"  # "gelu_new" = tanh approximation, as in the original TF code
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    num_hidden_groups: int = 1  # Google: layers are split into this many groups of stored weights
    inner_group_num: int = 1  # Google: stored layers per group, each applied in turn
    sharing: str = "all"  # what layers share: all | attention | ffn | none
    embedding_layout: str = "google"  # google | brightmart (see module docstring)
    ln_type: str = "postln"  # postln | preln
    num_labels: int = 2
    pad_token_id: int = 0
    id2label: dict[int, str] | None = None  # a fine-tuned classifier's class names (config.json keys are strings)
    use_crf: bool = False  # token classification: a CRF over the tag scores instead of independent softmaxes

    def __post_init__(self):
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})"
            )
        if self.sharing not in SHARING_MODES:
            raise ValueError(f"sharing must be one of {SHARING_MODES}, got {self.sharing!r}")
        if self.embedding_layout not in ("google", "brightmart"):
            raise ValueError(f"embedding_layout must be 'google' or 'brightmart', got {self.embedding_layout!r}")
        if self.ln_type not in ("postln", "preln"):
            raise ValueError(f"ln_type must be 'postln' or 'preln', got {self.ln_type!r}")
        if self.hidden_act not in ACTIVATIONS:
            raise ValueError(f"hidden_act must be one of {sorted(ACTIVATIONS)}, got {self.hidden_act!r}")
        if self.sharing != "all":
            # Partial or no sharing stores one layer per application.
            if self.inner_group_num != 1:
                raise ValueError(f"sharing={self.sharing!r} needs inner_group_num=1")
            self.num_hidden_groups = self.num_hidden_layers
        if not 1 <= self.num_hidden_groups <= self.num_hidden_layers:
            raise ValueError(
                f"num_hidden_groups ({self.num_hidden_groups}) must be between 1 and "
                f"num_hidden_layers ({self.num_hidden_layers})"
            )
        for name in ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "intermediate_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.id2label is not None:
            self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
            if sorted(self.id2label) != list(range(self.num_labels)):
                raise ValueError(f"id2label must map exactly the ids 0..{self.num_labels - 1} (num_labels), "
                                 f"got {sorted(self.id2label)}")

    @classmethod
    def preset(cls, name: str, **overrides) -> AlbertConfig:
        """The configuration of a released model: tiny, tiny_preln, small, tiny_google, base, large, xlarge, xxlarge."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        path = resources.files("albert_zh") / "resources" / "configs" / PRESETS[name]
        return cls.from_dict(json.loads(path.read_text()), **overrides)

    @classmethod
    def from_json(cls, path: str | Path, **overrides) -> AlbertConfig:
        """Read brightmart's or Google's albert_config*.json, a HuggingFace config.json, or ours."""
        return cls.from_dict(read_config_json(path), **overrides)

    @classmethod
    def from_dict(cls, raw: dict, **overrides) -> AlbertConfig:
        raw = dict(raw)
        if "model_type" not in raw:  # a TF release config: its "gelu" is the tanh approximation
            if raw.get("hidden_act") == "gelu":
                raw["hidden_act"] = "gelu_new"
            # brightmart's configs carry ln_type (absent or null means post-LN); Google's do not.
            raw.setdefault("embedding_layout", "brightmart" if "ln_type" in raw else "google")
            raw["ln_type"] = raw.get("ln_type") or "postln"
        if raw.get("model_type", "albert") != "albert":
            raise ValueError(f"not an ALBERT config: model_type is {raw['model_type']!r}")
        if "id2label" in raw and "num_labels" not in raw:
            raw["num_labels"] = len(raw["id2label"])
        fields = {f.name for f in dataclasses.fields(cls)}
        ignored = sorted(set(raw) - fields)
        if ignored:
            log.debug("config keys not used by the model: %s", ignored)
        return cls(**{**{k: v for k, v in raw.items() if k in fields}, **overrides})

    @property
    def hf_compatible(self) -> bool:
        """Whether transformers' AlbertModel computes the same function from these weights."""
        return self.embedding_layout == "google" and self.ln_type == "postln" and self.sharing == "all"

    def to_dict(self) -> dict:
        return {"model_type": "albert", **dataclasses.asdict(self)}


def _validate_inputs(config: AlbertConfig, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None):
    """Turn the usual shape and range mistakes into messages instead of deep torch errors."""
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, seq_len], got shape {tuple(input_ids.shape)}")
    if input_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"input_ids must be an integer tensor, got {input_ids.dtype}")
    seq_len = input_ids.shape[1]
    if seq_len > config.max_position_embeddings:
        raise ValueError(
            f"sequence length {seq_len} exceeds max_position_embeddings ({config.max_position_embeddings}); "
            "truncate the input"
        )
    if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
        bad = input_ids[(input_ids < 0) | (input_ids >= config.vocab_size)]
        raise ValueError(
            f"token id {int(bad[0])} out of range for vocab_size {config.vocab_size} "
            "(was the input made with another vocabulary?)"
        )
    if token_type_ids is not None and token_type_ids.numel():
        if token_type_ids.shape != input_ids.shape:
            raise ValueError(f"token_type_ids shape {tuple(token_type_ids.shape)} != input_ids shape {tuple(input_ids.shape)}")
        if token_type_ids.min() < 0 or token_type_ids.max() >= config.type_vocab_size:
            raise ValueError(f"token_type_ids must be in [0, {config.type_vocab_size})")


class AlbertEmbeddings(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        # Google sums in E space (mapped to H by the encoder); brightmart projects words to H first.
        width = config.embedding_size if config.embedding_layout == "google" else config.hidden_size
        self.word_embeddings = nn.Embedding(config.vocab_size, config.embedding_size)
        self.embedding_projection = (
            nn.Linear(config.embedding_size, config.hidden_size, bias=False)
            if config.embedding_layout == "brightmart"
            else None
        )
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, width)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, width)
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        x = self.word_embeddings(input_ids)  # (B, T, E)
        if self.embedding_projection is not None:
            x = self.embedding_projection(x)  # (B, T, H)
        x = x + self.position_embeddings.weight[: input_ids.shape[1]]
        if token_type_ids is None:  # all segment 0: add its row without a lookup
            x = x + self.token_type_embeddings.weight[0]
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


class Unpadded(NamedTuple):
    """Where the real tokens of a padded (B, T) batch are. In training the encoder keeps only those,
    (N, H), so the per-token products skip the padding; attention alone needs the (B, T) layout and
    gets it back with zeros at the padded positions, which the mask hides."""

    tokens: torch.Tensor  # (N,) indices of the real tokens in the flattened B * T positions
    batch: int
    seq: int

    @classmethod
    def of(cls, attention_mask: torch.Tensor) -> Unpadded:
        return cls(attention_mask.flatten().nonzero().squeeze(1), *attention_mask.shape)

    def pack(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (N, D)
        return x.flatten(0, 1).index_select(0, self.tokens)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:  # (N, D) -> (B, T, D), zeros where padded
        padded = x.new_zeros(self.batch * self.seq, x.shape[-1]).index_copy(0, self.tokens, x)
        return padded.view(self.batch, self.seq, -1)


class AlbertAttention(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        h = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_size = h // self.num_heads
        self.pre_ln = config.ln_type == "preln"
        self.query, self.key, self.value = nn.Linear(h, h), nn.Linear(h, h), nn.Linear(h, h)
        self.dense = nn.Linear(h, h)
        self.LayerNorm = nn.LayerNorm(h, eps=config.layer_norm_eps)
        self.attention_dropout = config.attention_probs_dropout_prob
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, unpadded: Unpadded | None = None) -> torch.Tensor:
        h = self.LayerNorm(x) if self.pre_ln else x
        q, k, v = (proj(h) if unpadded is None else unpadded.unpack(proj(h)) for proj in (self.query, self.key, self.value))
        B, T, H = q.shape
        q, k, v = (t.view(B, T, self.num_heads, self.head_size).transpose(1, 2) for t in (q, k, v))
        if mask is not None and mask.is_floating_point():
            # Exporters: attention written out with an additive mask, the pattern onnxruntime fuses
            # into its single Attention op (see AlbertModel.forward).
            scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_size) + mask
            y = scores.softmax(-1) @ v
        else:
            y = F.scaled_dot_product_attention(  # (B, nh, T, hs)
                q, k, v, attn_mask=mask, dropout_p=self.attention_dropout if self.training else 0.0
            )
        y = y.transpose(1, 2).reshape(B, T, H)
        if unpadded is not None:
            y = unpadded.pack(y)
        y = self.dropout(self.dense(y)) + x  # this order lets onnxruntime fuse the first layer too
        return y if self.pre_ln else self.LayerNorm(y)


class AlbertLayer(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.pre_ln = config.ln_type == "preln"
        self.attention = AlbertAttention(config)
        self.ffn = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.full_layer_layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, unpadded: Unpadded | None = None) -> torch.Tensor:
        x = self.attention(x, mask, unpadded)
        h = self.full_layer_layer_norm(x) if self.pre_ln else x
        y = x + self.dropout(self.ffn_output(self.activation(self.ffn(h))))
        return y if self.pre_ln else self.full_layer_layer_norm(y)


class AlbertLayerGroup(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList(AlbertLayer(config) for _ in range(config.inner_group_num))


# The AlbertLayer parts that sharing="attention" / "ffn" keep in common across layers.
SHARED_PARTS = {"attention": ("attention",), "ffn": ("ffn", "ffn_output", "full_layer_layer_norm")}


class AlbertTransformer(nn.Module):
    """num_hidden_layers applications of num_hidden_groups stored groups of layers."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.num_layers = config.num_hidden_layers
        self.embedding_hidden_mapping_in = (
            nn.Linear(config.embedding_size, config.hidden_size) if config.embedding_layout == "google" else None
        )
        self.albert_layer_groups = nn.ModuleList(AlbertLayerGroup(config) for _ in range(config.num_hidden_groups))
        # Partial sharing: one layer per application, whose shared part is the same module object.
        first = self.albert_layer_groups[0].albert_layers[0]
        for group in self.albert_layer_groups[1:]:
            for part in SHARED_PARTS.get(config.sharing, ()):
                setattr(group.albert_layers[0], part, getattr(first, part))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, unpadded: Unpadded | None = None) -> torch.Tensor:
        """x: (B, T, E or H), or with `unpadded` its real tokens (N, E or H); returns the same layout in H."""
        if self.embedding_hidden_mapping_in is not None:
            x = self.embedding_hidden_mapping_in(x)  # E -> H
        num_groups = len(self.albert_layer_groups)
        for i in range(self.num_layers):
            for layer in self.albert_layer_groups[i * num_groups // self.num_layers].albert_layers:
                x = layer(x, mask, unpadded)
        return x


class AlbertOutput(NamedTuple):
    sequence_output: torch.Tensor  # (B, T, H)
    pooled_output: torch.Tensor | None  # (B, H): tanh(dense(first token)); None without a pooler


class PreTrainingOutput(NamedTuple):
    loss: torch.Tensor | None  # mlm_loss + sop_loss, of those whose labels were given
    mlm_logits: torch.Tensor  # (B, P, V) at masked_positions; (N, V) at labels != -100; else (B, T, V)
    sop_logits: torch.Tensor  # (B, 2); label 1 = segments swapped
    mlm_loss: torch.Tensor | None
    sop_loss: torch.Tensor | None


class ClassifierOutput(NamedTuple):
    loss: torch.Tensor | None
    logits: torch.Tensor  # (B, num_labels)


@torch.no_grad()
def _truncated_normal_(weight: torch.Tensor, std: float):
    """Normal(0, std) cut at 2 std, by redrawing the values outside: exact, and much faster than
    nn.init.trunc_normal_ on CPU."""
    weight.normal_(0, std)
    if weight.is_meta:
        return
    while (outside := weight.abs() > 2 * std).any():
        weight[outside] = torch.randn(int(outside.sum()), dtype=weight.dtype, device=weight.device) * std


class AlbertPreTrainedModel(nn.Module):
    """Weight init and the self-describing checkpoint directory (config.json + model.safetensors + vocab.txt)."""

    base_model_prefix = "albert"

    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.config = config

    def init_weights(self, *modules: nn.Module):
        """Initialise `modules` (default: all) as the TF code does: truncated normal, zero bias, unit LayerNorm."""
        std = self.config.initializer_range
        for module in (m for root in (modules or (self,)) for m in root.modules()):
            if isinstance(module, (nn.Linear, nn.Embedding)):
                _truncated_normal_(module.weight, std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def num_parameters(self, embeddings: bool = True) -> int:
        """Stored parameters (shared ones counted once)."""
        params = {id(p): p for n, p in self.named_parameters() if embeddings or "embeddings." not in n}
        return sum(p.numel() for p in params.values())

    def save_pretrained(self, path: str | Path, vocab_file: str | Path | None = None):
        """Write config.json + model.safetensors + vocab.txt (the bundled one unless given)."""
        checkpoint.save_directory(self, path, vocab_file=vocab_file)

    @classmethod
    def from_pretrained(cls, path: str | Path, **config_overrides):
        """Load our directory or a HuggingFace ALBERT directory (config.json + weights)."""
        config = AlbertConfig.from_json(checkpoint.config_path(path), **config_overrides)
        model = cls(config)
        checkpoint.load_into(model, path)
        return model


class AlbertModel(AlbertPreTrainedModel):
    base_model_prefix = ""

    def __init__(self, config: AlbertConfig, add_pooling_layer: bool = True):
        super().__init__(config)
        self.embeddings = AlbertEmbeddings(config)
        self.encoder = AlbertTransformer(config)
        # token classifiers have no pooler, as in transformers, so their checkpoints load there as they are
        self.pooler = nn.Linear(config.hidden_size, config.hidden_size) if add_pooling_layer else None
        self.init_weights()

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> AlbertOutput:
        # Exporters (ONNX, LiteRT) trace one graph for all inputs: no data-dependent checks or
        # shortcuts there; the exported graph always applies the mask.
        tracing = torch.jit.is_tracing() or torch.compiler.is_compiling()
        if not tracing:
            _validate_inputs(self.config, input_ids, token_type_ids)
        mask = None
        if attention_mask is not None and tracing:  # (B, 1, 1, T): 0 where keys may be attended, else -10000
            mask = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
        elif attention_mask is not None and not bool(attention_mask.all()):
            mask = attention_mask[:, None, None, :].bool()  # (B, 1, 1, T): True where keys may be attended
        x = self.embeddings(input_ids, token_type_ids)
        if self.training and mask is not None and not tracing:
            # no loss reads a padded position: skip them (their outputs are zeros); in eval they are
            # computed as transformers does, and traced graphs keep one path for all inputs
            unpadded = Unpadded.of(attention_mask)
            x = unpadded.unpack(self.encoder(unpadded.pack(x), mask, unpadded))
        else:
            x = self.encoder(x, mask)
        return AlbertOutput(x, torch.tanh(self.pooler(x[:, 0])) if self.pooler is not None else None)


class AlbertMLMHead(nn.Module):
    """Masked-LM head; its output layer is the (tied) word embedding matrix."""

    def __init__(self, config: AlbertConfig):
        super().__init__()
        width = config.embedding_size if config.embedding_layout == "google" else config.hidden_size
        self.dense = nn.Linear(config.hidden_size, width)
        self.activation = ACTIVATIONS[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, x: torch.Tensor, embeddings: AlbertEmbeddings, vocab_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Scores of every vocabulary id (..., V), or of `vocab_ids` only (..., len(vocab_ids))."""
        x = self.LayerNorm(self.activation(self.dense(x)))
        if embeddings.embedding_projection is not None:
            x = x @ embeddings.embedding_projection.weight  # brightmart: back from H to E
        weight, bias = embeddings.word_embeddings.weight, self.bias
        if vocab_ids is not None:
            weight, bias = weight[vocab_ids], bias[vocab_ids]
        return F.linear(x, weight, bias)


class AlbertSOPHead(nn.Module):
    def __init__(self, config: AlbertConfig):
        super().__init__()
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, 2)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(pooled))


class AlbertForPreTraining(AlbertPreTrainedModel):
    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.predictions = AlbertMLMHead(config)
        self.sop_classifier = AlbertSOPHead(config)
        self.init_weights(self.predictions, self.sop_classifier)  # self.albert initialised itself

    def forward(
        self,
        input_ids,
        attention_mask=None,
        token_type_ids=None,
        labels=None,
        sentence_order_label=None,
        masked_positions=None,
        vocab_ids=None,
    ) -> PreTrainingOutput:
        """MLM logits are computed only where they are needed, as the original TF code does:
        at `masked_positions` (B, P) if given (then `labels` is (B, P), -100 on padding), else at
        the positions where `labels` (B, T) is not -100, else (no labels) at every position.
        With `vocab_ids` (K,) they score only those ids, and labels are indices into vocab_ids."""
        sequence_output, pooled_output = self.albert(input_ids, attention_mask, token_type_ids)
        if masked_positions is not None:
            index = masked_positions.long().unsqueeze(-1).expand(-1, -1, sequence_output.shape[-1])
            at_masks = sequence_output.gather(1, index)  # (B, P, H)
            targets = labels
        elif labels is not None:
            selected = labels != -100
            at_masks, targets = sequence_output[selected], labels[selected]  # (N, H), (N,)
        else:
            at_masks, targets = sequence_output, None
        mlm_logits = self.predictions(at_masks, self.albert.embeddings, vocab_ids)
        sop_logits = self.sop_classifier(pooled_output)

        mlm_loss = sop_loss = None
        if targets is not None:
            flat_logits = mlm_logits.reshape(-1, mlm_logits.shape[-1]).float()
            mlm_loss = F.cross_entropy(flat_logits, targets.reshape(-1), ignore_index=-100)
        if sentence_order_label is not None:
            sop_loss = F.cross_entropy(sop_logits.float(), sentence_order_label.reshape(-1))
        losses = [l for l in (mlm_loss, sop_loss) if l is not None]
        loss = sum(losses) if losses else None
        return PreTrainingOutput(loss, mlm_logits, sop_logits, mlm_loss, sop_loss)


class AlbertForSequenceClassification(AlbertPreTrainedModel):
    """Single sentences or sentence pairs -> num_labels classes, from the pooled output."""

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.init_weights(self.classifier)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> ClassifierOutput:
        pooled_output = self.albert(input_ids, attention_mask, token_type_ids).pooled_output
        logits = self.classifier(self.dropout(pooled_output))
        loss = F.cross_entropy(logits.float(), labels) if labels is not None else None
        return ClassifierOutput(loss, logits)


class TokenClassifierOutput(NamedTuple):
    loss: torch.Tensor | None
    logits: torch.Tensor  # (B, T, num_labels)


class AlbertForTokenClassification(AlbertPreTrainedModel):
    """A tag per token from the sequence output (named entities), with an optional CRF on top.

    Positions labelled -100 ([CLS], [SEP], padding) are left out of the loss. With `use_crf` the
    CRF runs over the word pieces between [CLS] and [SEP] of each (right-padded) row.
    """

    def __init__(self, config: AlbertConfig):
        super().__init__(config)
        self.albert = AlbertModel(config, add_pooling_layer=False)
        self.dropout = nn.Dropout(config.classifier_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.crf = CRF(config.num_labels) if config.use_crf else None
        self.init_weights(self.classifier)

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None) -> TokenClassifierOutput:
        sequence_output = self.albert(input_ids, attention_mask, token_type_ids).sequence_output
        logits = self.classifier(self.dropout(sequence_output))
        loss = None
        if labels is not None and self.crf is not None:
            pieces = piece_mask(attention_mask if attention_mask is not None else torch.ones_like(input_ids))
            tags = labels[:, 1:-1].clamp(min=0)  # -100 only outside the pieces, where the mask hides it
            loss = -self.crf.log_likelihood(logits[:, 1:-1], tags, pieces).mean()
        elif labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1), ignore_index=-100)
        return TokenClassifierOutput(loss, logits)

    def decode(self, logits: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return decode_tags(logits, attention_mask, self.crf)


def piece_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T-2) bool: True at positions 1..n-2 of a row of n real tokens ([CLS] pieces [SEP]).
    Position 1 is always in, so an empty row still has a path (its one tag is ignored)."""
    mask = attention_mask[:, 2:].bool()
    mask[:, 0] = True
    return mask


def decode_tags(logits: torch.Tensor, attention_mask: torch.Tensor, crf: CRF | None = None) -> torch.Tensor:
    """The tag id of every position (B, T) from a token classifier's scores: the argmax, or with a
    CRF its best path over the pieces (right-padded rows)."""
    if crf is None:
        return logits.argmax(-1)
    tags = torch.zeros(logits.shape[:2], dtype=torch.long, device=logits.device)
    tags[:, 1:-1] = crf.decode(logits[:, 1:-1], piece_mask(attention_mask))
    return tags


def closed_form_parameter_count(config: AlbertConfig) -> dict[str, int]:
    """Parameter counts from the shapes alone, an independent check on the module code."""
    V, E, H, I, P, S = (config.vocab_size, config.embedding_size, config.hidden_size,
                        config.intermediate_size, config.max_position_embeddings, config.type_vocab_size)
    if config.embedding_layout == "google":
        embeddings = V * E + (P + S) * E + 2 * E + (E * H + H)  # + embedding_hidden_mapping_in
    else:
        embeddings = V * E + E * H + (P + S) * H + 2 * H
    attention = 4 * (H * H + H) + 2 * H
    ffn = H * I + I + I * H + H + 2 * H
    stored = {"all": config.num_hidden_groups * config.inner_group_num * (attention + ffn),
              "attention": attention + config.num_hidden_layers * ffn,
              "ffn": config.num_hidden_layers * attention + ffn,
              "none": config.num_hidden_layers * (attention + ffn)}[config.sharing]
    encoder = embeddings + stored + (H * H + H)  # + pooler
    width = E if config.embedding_layout == "google" else H
    mlm = H * width + width + 2 * width + V
    return {"embeddings": embeddings, "layers": stored, "model": encoder, "pretraining": encoder + mlm + 2 * H + 2}

