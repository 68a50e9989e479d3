"""Runtime backends: the outputs follow the model's kind, and the torch backend computes what the model does."""

import numpy as np
import torch
from deploy_fixtures import save_classifier, save_encoder

from albert_zh.backends import ModelOutputs, load_torch_model, output_names, torch_backend
from albert_zh.export import sample_inputs
from albert_zh.model import AlbertForSequenceClassification, AlbertModel


def test_outputs_follow_the_kind_named_in_config(tmp_path):
    classifier, encoder = save_classifier(tmp_path / "classifier"), save_encoder(tmp_path / "encoder")
    assert output_names(classifier) == ("logits", "pooled_output")
    assert output_names(encoder) == ("pooled_output",)
    assert type(load_torch_model(classifier)) is AlbertForSequenceClassification
    assert type(load_torch_model(encoder)) is AlbertModel
    assert ModelOutputs(load_torch_model(classifier)).names == output_names(classifier)


def test_torch_backend_returns_the_models_own_outputs(tmp_path):
    model_dir = save_classifier(tmp_path / "classifier", num_labels=3)
    arrays = sample_inputs(21128, shapes=((3, 11),), seed=5)[0]
    got = torch_backend(model_dir)(*arrays)
    model = load_torch_model(model_dir)
    with torch.inference_mode():
        tensors = [torch.from_numpy(a) for a in arrays]
        logits = model(*tensors).logits.numpy()
        pooled = model.albert(*tensors).pooled_output.numpy()
    assert got["logits"].shape == (3, 3) and got["pooled_output"].shape == (3, 128)
    np.testing.assert_allclose(got["logits"], logits, atol=1e-5)
    np.testing.assert_allclose(got["pooled_output"], pooled, atol=1e-5)
