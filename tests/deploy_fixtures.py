"""Small saved models shared by the deployment tests (export, inference, serve)."""

from pathlib import Path

import torch

from albert_zh.model import AlbertConfig, AlbertForSequenceClassification, AlbertForTokenClassification, AlbertModel
from albert_zh.ner import tag_set

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


TAGS = tag_set(("address", "name", "organization"))
TEXTS = ["浙商银行企业信贷部叶老桂博士说", "2013年 张三去了 北京", "短", "生生不息CSOL生化狂潮让你填弹狂扫"]


def save_tagger(path: Path, seed: int = 0, use_crf: bool = False) -> Path:
    """A token classifier with random weights that still tags entities (scaled scores; with a CRF,
    random transition scores too), so that backends and batching have decisions to agree on."""
    torch.manual_seed(seed)
    model = AlbertForTokenClassification(AlbertConfig(**SMALL, num_labels=len(TAGS), id2label=dict(enumerate(TAGS)),
                                                      use_crf=use_crf))
    with torch.no_grad():
        model.classifier.weight.mul_(20)
        for p in model.crf.parameters() if use_crf else ():
            p.normal_()
    model.save_pretrained(path)
    return path


def save_encoder(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    AlbertModel(AlbertConfig(**SMALL)).save_pretrained(path)
    return path
