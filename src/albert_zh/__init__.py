"""albert_zh: ALBERT (A Lite BERT) for Chinese in PyTorch."""

from albert_zh.inference import Classifier, SentenceSimilarity
from albert_zh.model import (
    AlbertConfig,
    AlbertForPreTraining,
    AlbertForSequenceClassification,
    AlbertModel,
)
from albert_zh.tokenizer import load_tokenizer

__all__ = [
    "AlbertConfig",
    "AlbertModel",
    "AlbertForPreTraining",
    "AlbertForSequenceClassification",
    "load_tokenizer",
    "Classifier",
    "SentenceSimilarity",
]
__version__ = "0.1.0"
