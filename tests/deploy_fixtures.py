"""Small saved models shared by the deployment tests (export, inference, serve)."""

from pathlib import Path

import torch

from albert_zh.model import AlbertConfig, AlbertForSequenceClassification, AlbertModel

# Layers outweigh the embeddings here, so an export that copied the shared layer per layer
# would be several times the size of model.safetensors.
SMALL = dict(vocab_size=21128, embedding_size=16, hidden_size=128, num_attention_heads=4, intermediate_size=512,
             num_hidden_layers=6, max_position_embeddings=128)

PAIRS = [("我喜欢妈妈做的汤", "妈妈做的汤我很喜欢喝"), ("今天天气怎么样", "今天股市怎么样"),
         ("短", "一个长一点的句子，在这里结束。"), ("怎么去北京火车站", "去北京火车站怎么走")]


def save_classifier(path: Path, seed: int = 0, **config) -> Path:
    torch.manual_seed(seed)
    model = AlbertForSequenceClassification(AlbertConfig(**{**SMALL, **config}))
    with torch.no_grad():  # a visible decision, not logits near zero
        model.classifier.weight.mul_(20)
    model.save_pretrained(path)
    return path


def save_encoder(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    AlbertModel(AlbertConfig(**SMALL)).save_pretrained(path)
    return path
