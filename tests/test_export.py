"""ONNX export: parity with PyTorch on shapes it was not traced with, the shared layer stored once, int8."""

import collections
import logging
import sys

import numpy as np
import onnx
import pytest
import torch
from deploy_fixtures import SMALL, TAGS, save_classifier, save_encoder, save_tagger

from albert_zh.backends import load_torch_model, onnx_backend
from albert_zh.cli import main
from albert_zh.export import export_onnx, sample_inputs


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    return save_classifier(tmp_path_factory.mktemp("export") / "classifier")


def torch_outputs(model_dir, arrays):
    model = load_torch_model(model_dir)
    with torch.inference_mode():
        ids, mask, types = (torch.from_numpy(a) for a in arrays)
        if hasattr(model, "classifier"):
            pooled = model.albert(ids, mask, types).pooled_output
            return {"logits": model.classifier(pooled).numpy(), "pooled_output": pooled.numpy()}
        return {"pooled_output": model(ids, mask, types).pooled_output.numpy()}


def test_fp32_matches_pytorch_on_new_shapes_and_stores_the_shared_layer_once(classifier_dir):
    report = export_onnx(classifier_dir, classifier_dir / "model.onnx")
    assert report.max_abs_diff <= 1e-4
    assert report.size_bytes <= 1.1 * (classifier_dir / "model.safetensors").stat().st_size
    run = onnx_backend(classifier_dir / "model.onnx")
    for arrays in sample_inputs(21128, shapes=((1, 5), (4, 100)), seed=1):
        expected, got = torch_outputs(classifier_dir, arrays), run(*arrays)
        assert set(got) == {"logits", "pooled_output"}
        for name in expected:
            np.testing.assert_allclose(got[name], expected[name], atol=1e-4, rtol=0, err_msg=name)


@pytest.mark.parametrize("layout", ["google", "brightmart"])
def test_default_export_fuses_every_attention_block_and_portable_uses_standard_ops(tmp_path, layout):
    model_dir = save_classifier(tmp_path / layout, embedding_layout=layout)
    arrays = sample_inputs(21128, shapes=((3, 40),), seed=4)[0]
    expected = torch_outputs(model_dir, arrays)
    for name, portable in (("fused.onnx", False), ("portable.onnx", True)):
        report = export_onnx(model_dir, tmp_path / name, portable=portable)
        nodes = onnx.load(str(tmp_path / name)).graph.node
        custom = collections.Counter(n.op_type for n in nodes if n.domain == "com.microsoft")
        if portable:
            assert not custom and not report.fused
        else:  # one Attention op per layer application (6 applications of the one shared layer);
            # residual + LayerNorm unfused (onnxruntime's SkipLayerNormalization is slower on CPU)
            assert report.fused and custom["Attention"] == SMALL["num_hidden_layers"], custom
            assert "SkipLayerNormalization" not in custom, custom
        got = onnx_backend(tmp_path / name)(*arrays)
        for output in expected:
            np.testing.assert_allclose(got[output], expected[output], atol=1e-4, rtol=0, err_msg=f"{name} {output}")


def test_encoder_exports_pooled_output(tmp_path):
    model_dir = save_encoder(tmp_path / "encoder")
    export_onnx(model_dir, tmp_path / "encoder.onnx")
    arrays = sample_inputs(21128, shapes=((2, 9),), seed=2)[0]
    got = onnx_backend(tmp_path / "encoder.onnx")(*arrays)
    assert set(got) == {"pooled_output"}
    np.testing.assert_allclose(got["pooled_output"], torch_outputs(model_dir, arrays)["pooled_output"], atol=1e-4)


def test_token_classifier_exports_tag_scores_per_token(tmp_path):
    model_dir = save_tagger(tmp_path / "tagger", use_crf=True)
    report = export_onnx(model_dir, tmp_path / "tagger.onnx")
    assert report.max_abs_diff <= 1e-4
    arrays = sample_inputs(21128, shapes=((3, 57),), seed=5)[0]
    got = onnx_backend(tmp_path / "tagger.onnx")(*arrays)["logits"]
    assert got.shape == (3, 57, len(TAGS))
    model = load_torch_model(model_dir)
    with torch.inference_mode():
        expected = model(*(torch.from_numpy(a) for a in arrays)).logits.numpy()
    real = arrays[1].astype(bool)
    np.testing.assert_allclose(got[real], expected[real], atol=1e-4, rtol=0)
    int8 = export_onnx(model_dir, tmp_path / "tagger.int8.onnx", quantize="int8")
    assert int8.size_bytes < 0.5 * report.size_bytes


def test_int8_is_smaller_and_close(classifier_dir, tmp_path):
    fp32 = export_onnx(classifier_dir, tmp_path / "model.onnx")
    int8 = export_onnx(classifier_dir, tmp_path / "model.int8.onnx", quantize="int8")
    assert int8.size_bytes < 0.5 * fp32.size_bytes
    arrays = sample_inputs(21128, shapes=((16, 24),), seed=3)[0]
    a, b = onnx_backend(tmp_path / "model.onnx")(*arrays), onnx_backend(tmp_path / "model.int8.onnx")(*arrays)
    assert 0 < np.abs(a["logits"] - b["logits"]).max() < 0.25 * np.abs(a["logits"]).max()


def test_bad_requests(classifier_dir, tmp_path):
    with pytest.raises(ValueError, match="only int8"):
        export_onnx(classifier_dir, tmp_path / "x.onnx", quantize="int4")
    with pytest.raises(FileNotFoundError):
        export_onnx(tmp_path / "missing", tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_cli_export_says_each_line_once(classifier_dir, tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    assert main(["export", str(classifier_dir), "--out", str(tmp_path / "model.onnx")]) == 0
    said = capsys.readouterr().out + "".join(record.getMessage() for record in caplog.records)
    assert said.count("max |exported - PyTorch|") == 1 and said.count(f"{tmp_path / 'model.onnx'}: ONNX fp32") == 1


@pytest.mark.parametrize("missing", ["onnx", "onnxruntime"])
def test_export_without_the_deploy_extra_names_it(classifier_dir, tmp_path, monkeypatch, capsys, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # as if not installed
    assert main(["export", str(classifier_dir), "--out", str(tmp_path / "model.onnx")]) == 2
    assert "pip install 'albert_zh[deploy]'" in capsys.readouterr().err
    assert not (tmp_path / "model.onnx").exists()


def test_litert_matches_pytorch(classifier_dir, tmp_path):
    pytest.importorskip("litert_torch", reason="litert-torch not installed (pip install 'albert_zh[litert]', ~2 GB)")
    from albert_zh.backends import litert_backend
    from albert_zh.export import export_litert

    report = export_litert(classifier_dir, tmp_path / "model.tflite", max_seq_length=32)
    assert report.max_abs_diff <= 1e-4
    assert report.size_bytes <= 1.1 * (classifier_dir / "model.safetensors").stat().st_size
    arrays = sample_inputs(21128, shapes=((3, 20),), seed=4)[0]
    got = litert_backend(tmp_path / "model.tflite", ("logits", "pooled_output"))(*arrays)
    expected = torch_outputs(classifier_dir, arrays)
    for name in expected:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-4, err_msg=name)
