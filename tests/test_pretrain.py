"""Pretraining: LAMB against the paper's rule worked by hand, exact resume after SIGKILL,
torchrun on 2 CPU processes equal to 1 process with the double batch, and bad input."""

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from test_prepare import write_built_corpus

from albert_zh import pretrain as pretrain_module
from albert_zh.cli import main
from albert_zh.data import PretrainingDataset
from albert_zh.model import AlbertConfig, AlbertForPreTraining, PreTrainingOutput
from albert_zh.optim import Lamb, adamw, muon_adamw, parameter_groups
from albert_zh.prepare import PrepareConfig, prepare_data
from albert_zh.pretrain import CheckpointSaveError, PretrainConfig, Processes, list_checkpoints, pretrain, train_step

# small enough for seconds per run; no dropout, so 1 and 2 processes compute the same function
SMALL_MODEL = {"vocab_size": 21128, "embedding_size": 16, "hidden_size": 32, "num_attention_heads": 2,
               "intermediate_size": 64, "num_hidden_layers": 2, "max_position_embeddings": 64,
               "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "classifier_dropout_prob": 0.0}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretrain")
    write_built_corpus(root / "corpus.txt", documents=150)
    prepare_data(PrepareConfig(inputs=(str(root / "corpus.txt"),), out=str(root / "data"), max_seq_length=32,
                               max_predictions=5, workers=1))
    (root / "small.json").write_text(json.dumps(SMALL_MODEL))
    return root


def cli_args(setup, out, *extra) -> list[str]:
    return ["pretrain", "--data", str(setup / "data"), "--config", str(setup / "small.json"), "--out", str(out),
            "--batch-size", "8", "--lr", "1e-3", *extra]


def train_losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if r["split"] == "train"}


def run_cli(args, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    return subprocess.Popen([sys.executable, "-m", "albert_zh.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


# ---------------------------------------------------------------- LAMB


def test_one_lamb_step_by_hand():
    """You et al. 2019, Algorithm 2, first step (t = 1), worked out for these numbers:
    m = 0.1 g, v = 0.001 g^2, so the bias-corrected ratio is r = g / (|g| + eps) = sign(g) (0 where g = 0).
    dense.weight  W = [[3, 0], [0, 4]], g = [[1, -2], [0, 0.5]]: r = [[1, -1], [0, 1]] (eps 1e-6 aside)
                  u = r + 0.1 W = [[1.3, -1], [0, 1.4]], ||W|| = 5, ||u|| = sqrt(1.69 + 1 + 1.96) = sqrt(4.65)
                  W' = W - lr * (5 / sqrt(4.65)) * u
    LayerNorm.weight (excluded: no decay, no trust ratio) w = [2, -1], g = [-3, 0]: w' = w - lr * [-1, 0]"""
    model = torch.nn.Module()
    model.dense = torch.nn.Linear(2, 2, bias=False)
    model.LayerNorm = torch.nn.LayerNorm(2, elementwise_affine=True, bias=False)
    with torch.no_grad():
        model.dense.weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
        model.LayerNorm.weight.copy_(torch.tensor([2.0, -1.0]))
    model.dense.weight.grad = torch.tensor([[1.0, -2.0], [0.0, 0.5]])
    model.LayerNorm.weight.grad = torch.tensor([-3.0, 0.0])
    groups = parameter_groups(model, weight_decay=0.1)
    assert [len(g["params"]) for g in groups] == [1, 1] and groups[1]["params"][0] is model.LayerNorm.weight
    lr = 0.01
    Lamb(groups, lr=lr, betas=(0.9, 0.999), eps=1e-6).step()

    u = np.array([[1.3, -1.0], [0.0, 1.4]])
    expected_w = np.array([[3.0, 0.0], [0.0, 4.0]]) - lr * (5 / np.sqrt(4.65)) * u
    np.testing.assert_allclose(model.dense.weight.detach().numpy(), expected_w, atol=1e-5)
    np.testing.assert_allclose(model.LayerNorm.weight.detach().numpy(), [2.0 + lr, -1.0], atol=1e-6)


def test_biases_and_layer_norms_are_exempt_in_the_real_model():
    model = AlbertForPreTraining(AlbertConfig(**SMALL_MODEL))
    names = {id(p): n for n, p in model.named_parameters()}
    decayed, exempt = ([names[id(p)] for p in g["params"]] for g in parameter_groups(model, 0.01))
    assert all(n.endswith("bias") or "LayerNorm" in n or "layer_norm" in n for n in exempt)
    assert not any(n.endswith("bias") or "LayerNorm" in n for n in decayed)
    assert "albert.embeddings.word_embeddings.weight" in decayed


def test_muon_moves_the_layer_matrices_by_orthogonal_steps_and_adamw_the_rest():
    """--optimizer muon: PyTorch's Muon for the layers' weight matrices, whose first step is lr x
    sqrt(max(1, rows / cols)) times an orthogonalised gradient (singular values near 1; Newton-Schulz
    leaves them within about 0.7..1.2); AdamW, whose first step is lr x g / (|g| + eps), for everything else."""
    torch.manual_seed(0)
    model = AlbertForPreTraining(AlbertConfig(**SMALL_MODEL))
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    lr, muon_lr = 1e-3, 0.02
    optimizer = muon_adamw(model, lr, muon_lr, weight_decay=0.0, eps=1e-6)
    optimizer.step()
    muon_names = {n for n, p in model.named_parameters() if ".albert_layers." in n and p.ndim == 2}
    assert len(muon_names) == 6  # query, key, value, dense, ffn, ffn_output of the one shared layer
    for name, p in model.named_parameters():
        step = before[name] - p.detach()
        if name in muon_names:
            rows, cols = p.shape
            singular = torch.linalg.svdvals(step / (muon_lr * max(1, rows / cols) ** 0.5))
            assert 0.6 < singular.min() and singular.max() < 1.3, name
        else:
            torch.testing.assert_close(step, lr * p.grad / (p.grad.abs() + 1e-6), atol=1e-7, rtol=1e-4)

    # a resumed run's schedule scales the groups that loading the state put in place
    resumed = muon_adamw(model, lr, muon_lr, weight_decay=0.0, eps=1e-6)
    resumed.load_state_dict(optimizer.state_dict())
    for group in resumed.param_groups:
        group["lr"] = 0.0
    assert all(g["lr"] == 0.0 for o in resumed.optimizers for g in o.param_groups)
    with pytest.raises(ValueError, match="another optimizer"):
        resumed.load_state_dict(adamw(model, lr, 0.0).state_dict())


# ---------------------------------------------------------------- resume and distributed


def test_resume_after_sigkill_gives_the_same_losses(setup, tmp_path):
    whole = tmp_path / "whole"
    assert main(cli_args(setup, whole, "--max-steps", "16", "--save-every", "4")) == 0
    expected = train_losses(whole)

    killed = tmp_path / "killed"
    process = run_cli(cli_args(setup, killed, "--max-steps", "16", "--save-every", "4"))
    first = killed / "checkpoints" / "step-0000004.pt"
    while not first.exists() and process.poll() is None:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, process.stderr.read()
    assert not (killed / "model").exists()  # it really died before the end
    assert main(cli_args(setup, killed, "--max-steps", "16", "--save-every", "4", "--resume")) == 0
    resumed = train_losses(killed)
    assert sorted(resumed) == list(range(1, 17))
    np.testing.assert_allclose([resumed[s] for s in range(1, 17)], [expected[s] for s in range(1, 17)],
                               rtol=0, atol=1e-6)


def test_torchrun_two_processes_equal_one_with_double_batch(setup, tmp_path):
    one = tmp_path / "one"
    assert main(["pretrain", "--data", str(setup / "data"), "--config", str(setup / "small.json"), "--out", str(one),
                 "--batch-size", "8", "--max-steps", "20", "--save-every", "100", "--lr", "1e-3"]) == 0
    two = tmp_path / "two"
    process = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29571",
         "-m", "albert_zh.cli", "pretrain", "--data", str(setup / "data"), "--config", str(setup / "small.json"),
         "--out", str(two), "--batch-size", "4", "--max-steps", "20", "--save-every", "100", "--lr", "1e-3"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"})
    assert process.returncode == 0, process.stderr[-3000:]
    summary = [json.loads(line) for line in (two / "metrics.jsonl").read_text().splitlines()][-1]
    assert summary["processes"] == 2 and summary["global_batch"] == 8
    a, b = train_losses(one), train_losses(two)
    np.testing.assert_allclose([b[s] for s in range(1, 21)], [a[s] for s in range(1, 21)], rtol=0, atol=1e-4)
    assert a[20] < a[1]  # and it is learning


# ---------------------------------------------------------------- bad input


def test_missing_data_and_resume_without_checkpoint(setup, tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")]) == 2
    assert "--data folder not found" in capsys.readouterr().err
    (tmp_path / "texts").mkdir()  # a folder, but not prepare-data's output
    assert main(["pretrain", "--data", str(tmp_path / "texts"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "not a prepared data directory" in err and "albert-zh prepare-data" in err
    assert main(cli_args(setup, tmp_path / "r", "--resume")) == 2
    assert "no complete checkpoint" in capsys.readouterr().err


def test_vocabulary_mismatch_is_refused(setup, tmp_path, capsys):
    vocab = tmp_path / "vocab.txt"
    lines = (Path(__file__).resolve().parents[1] / "src/albert_zh/resources/vocab.txt").read_text(encoding="utf-8")
    lines = lines.split("\n")  # not splitlines(): some tokens are characters it would split at
    lines[200] = "[unused_changed]"
    vocab.write_text("\n".join(lines), encoding="utf-8")
    prepare_data(PrepareConfig(inputs=(str(setup / "corpus.txt"),), out=str(tmp_path / "other"), max_seq_length=32,
                               workers=1, vocab=str(vocab)))
    model_dir = tmp_path / "model"
    AlbertForPreTraining(AlbertConfig(**SMALL_MODEL)).save_pretrained(model_dir)
    assert main(["pretrain", "--data", str(tmp_path / "other"), "--init-from", str(model_dir),
                 "--out", str(tmp_path / "r")]) == 2
    assert "another vocabulary" in capsys.readouterr().err


def test_truncated_shard_is_refused(setup, tmp_path, capsys):
    import shutil
    shutil.copytree(setup / "data", tmp_path / "data")
    shard = tmp_path / "data" / "shard-00000.npy"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    assert main(["pretrain", "--data", str(tmp_path / "data"), "--config", str(setup / "small.json"),
                 "--out", str(tmp_path / "r")]) == 2
    assert "damaged or truncated" in capsys.readouterr().err


def test_checkpoint_of_another_config_is_refused(setup, tmp_path, capsys):
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "2")) == 0
    (setup / "wider.json").write_text(json.dumps({**SMALL_MODEL, "intermediate_size": 96}))
    assert main(["pretrain", "--data", str(setup / "data"), "--config", str(setup / "wider.json"),
                 "--out", str(tmp_path / "r"), "--max-steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another model config" in err and "intermediate_size" in err


def test_full_disk_keeps_the_previous_checkpoint(setup, tmp_path, monkeypatch):
    real_save = torch.save
    saves = []

    def save_then_fail(obj, f, *args, **kwargs):
        saves.append(1)
        if len(saves) == 2:
            Path(f).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(pretrain_module.torch, "save", save_then_fail)
    config = PretrainConfig(data=str(setup / "data"), out=str(tmp_path / "r"), config=str(setup / "small.json"),
                            batch_size=8, max_steps=10, save_every=3)
    with pytest.raises(CheckpointSaveError, match="No space left.*step-0000003.pt"):
        pretrain(config)
    assert [p.name for p in list_checkpoints(tmp_path / "r")] == ["step-0000003.pt"]
    assert not list((tmp_path / "r" / "checkpoints").glob("*.tmp"))
    monkeypatch.setattr(pretrain_module.torch, "save", real_save)
    resumed = pretrain(PretrainConfig(**{**config.__dict__, "resume": True}))
    assert (resumed / "model.safetensors").is_file()


def test_off_a_terminal_progress_is_a_line_per_tenth_of_the_run(setup, tmp_path, capsys, caplog):
    caplog.set_level("INFO")
    pretrain(PretrainConfig(data=str(setup / "data"), out=str(tmp_path / "r"), config=str(setup / "small.json"),
                            batch_size=8, max_steps=20))
    assert "\r" not in capsys.readouterr().err  # pytest's capture is no terminal, as a log file or a pipe is not
    steps = [r.getMessage().split(":")[0] for r in caplog.records if r.getMessage().startswith("step ")]
    assert steps == [f"step {s}/20" for s in range(2, 21, 2)]
    # the data's masks are dynamic: the default rate for training is 40%, not the manifest's 15%; its spans as prepared
    assert "training masks: 40% of the tokens, up to 13 per sequence, longest span 3 word(s) (dynamic)" in caplog.messages


def test_curves_say_where_the_evaluation_was_measured_and_no_checkpoints_is_an_option(setup, tmp_path):
    shutil.copytree(setup / "data", tmp_path / "held_out")  # the same instances, but another folder
    for eval_data, measured in ((setup / "data", "eval on training data"), (tmp_path / "held_out", "held-out")):
        run = tmp_path / measured
        pretrain(PretrainConfig(data=str(setup / "data"), out=str(run), config=str(setup / "small.json"), batch_size=8,
                                max_steps=4, eval_every=2, eval_data=str(eval_data), keep_checkpoints=0))
        assert not list_checkpoints(run) and (run / "model" / "model.safetensors").is_file()
        figure = pretrain_module.curves_figure(run)
        labels = [t.get_text() for ax in figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        assert f"{measured} sop accuracy" in labels and f"{measured} mlm loss" in labels
        assert f"{measured} mlm context accuracy" in labels  # what only reading the context gets right
        assert "most frequent token where the input was changed" in labels
        assert [ax.get_title() for ax in figure.axes] == ["MLM and SOP loss", "MLM and SOP accuracy", "learning rate"]
        assert pretrain_module.plot_run(run).read_bytes()[:4] == b"\x89PNG"


def test_a_time_limited_run_warms_up_and_decays_within_its_minutes(setup, tmp_path, monkeypatch):
    """--max-minutes with the default 10,000 steps: the learning rate must still rise to its peak
    in the first tenth of the time and fall to about 0 by its end (a clock that ticks a second at
    each reading makes the run take three seconds a step, 20 steps in the minute)."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(pretrain_module, "time", type("Clock", (), {"perf_counter": lambda: float(next(ticks))}))
    run = tmp_path / "timed"
    config = PretrainConfig(data=str(setup / "data"), out=str(run), config=str(setup / "small.json"), batch_size=8,
                            max_minutes=1, keep_checkpoints=0)
    pretrain(config)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["split"] == "train"]
    assert 19 <= len(lrs) <= 21
    peak = max(lrs)
    assert peak > 0.8 * config.lr and lrs.index(peak) <= 3  # warmed up within the first tenth of the minute
    assert lrs[-1] < 0.1 * peak and all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_loader_workers_give_the_same_batches_across_epochs_and_resume(setup):
    dataset = PretrainingDataset(setup / "data")
    procs = Processes(0, 1, torch.device("cpu"))
    per_epoch = len(dataset) // 8
    plain = pretrain_module.BatchStream(dataset, 8, procs, seed=3)
    expected = [plain.next() for _ in range(per_epoch + 3)]  # into the second epoch, masked anew
    assert plain.position() == {"epoch": 1, "offset": 24}
    ahead = pretrain_module.BatchStream(PretrainingDataset(setup / "data"), 8, procs, seed=3, workers=2)
    got = [ahead.next() for _ in range(per_epoch + 3)]
    assert ahead.position() == plain.position()
    resumed = pretrain_module.BatchStream(PretrainingDataset(setup / "data"), 8, procs, seed=3, epoch=0,
                                          offset=8 * (per_epoch - 1), workers=2)
    got_resumed = [resumed.next() for _ in range(4)]
    for want, have in zip(expected + expected[-4:], got + got_resumed):
        assert want.keys() == have.keys()
        for name in want:
            assert torch.equal(want[name], have[name]), name
    assert not torch.equal(expected[0]["input_ids"], expected[per_epoch]["input_ids"])


def test_grouping_by_length_sorts_within_pools_and_keeps_every_instance():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 129, 1000)
    order = rng.permutation(1000)
    grouped = pretrain_module.grouped_by_length(order, lengths, 8, np.random.default_rng(1), pool_batches=10)
    assert sorted(grouped) == list(range(1000))
    np.testing.assert_array_equal(
        grouped, pretrain_module.grouped_by_length(order, lengths, 8, np.random.default_rng(1), pool_batches=10))
    for start in range(0, 1000, 80):  # instances stay in their pool of 10 batches
        assert set(grouped[start:start + 80]) == set(order[start:start + 80])
        batches = sorted(lengths[grouped[start:start + 80]].reshape(-1, 8).tolist())
        assert all(a[-1] <= b[0] for a, b in zip(batches, batches[1:]))  # each batch one stretch of the sorted pool
    assert not np.array_equal(lengths[grouped], np.sort(lengths[grouped]))  # the batches themselves are shuffled


def test_grouped_batches_pad_less_and_resume_exactly(setup):
    dataset = PretrainingDataset(setup / "data")
    assert dataset.lengths().tolist() == [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    procs = Processes(0, 1, torch.device("cpu"))
    per_epoch = len(dataset) // 8
    plain = pretrain_module.BatchStream(dataset, 8, procs, seed=3)
    grouped = pretrain_module.BatchStream(PretrainingDataset(setup / "data"), 8, procs, seed=3, group_by_length=True)
    plain_batches = [plain.next() for _ in range(per_epoch)]
    grouped_batches = [grouped.next() for _ in range(per_epoch + 2)]
    def padded(batches):
        return sum(int((1 - b["attention_mask"]).sum()) for b in batches)
    assert padded(grouped_batches[:per_epoch]) < padded(plain_batches) / 2
    resumed = pretrain_module.BatchStream(PretrainingDataset(setup / "data"), 8, procs, seed=3, epoch=0,
                                          offset=8 * (per_epoch - 1), group_by_length=True)
    for want in grouped_batches[-3:]:
        have = resumed.next()
        for name in want:
            assert torch.equal(want[name], have[name]), name


def test_sop_weight_scales_the_sentence_order_gradient_only(setup):
    dataset = PretrainingDataset(setup / "data")
    batch = dataset.collate([dataset[i] for i in range(8)])
    procs = Processes(rank=0, world=1, device=torch.device("cpu"))
    changes = {}
    for weight in (0.0, 1.0, 3.0):
        torch.manual_seed(0)
        model = AlbertForPreTraining(AlbertConfig(**SMALL_MODEL))
        before = {k: v.clone() for k, v in model.named_parameters()}
        sgd = torch.optim.SGD(model.parameters(), lr=0.1)  # plain SGD: each change is -lr x its gradient
        train_step(model, sgd, [batch], procs, max_grad_norm=1e9, sop_weight=weight)
        changes[weight] = {k: v.detach() - before[k] for k, v in model.named_parameters()}
    sop_head, mlm_head = "sop_classifier.classifier.weight", "predictions.bias"
    assert changes[0.0][sop_head].abs().max() == 0  # no SOP loss, no SOP head update
    assert changes[1.0][sop_head].abs().max() > 0
    torch.testing.assert_close(changes[3.0][sop_head], 3 * changes[1.0][sop_head])
    torch.testing.assert_close(changes[3.0][mlm_head], changes[1.0][mlm_head])  # the MLM head sees no SOP loss
    with pytest.raises(ValueError, match="--sop-weight"):
        PretrainConfig(data="d", out="o", sop_weight=-1)


def test_from_scratch_default_is_google_layout_tiny():
    # the layout whose word signal is not drowned by the position embeddings at initialisation
    model, _ = pretrain_module.build_model(PretrainConfig(data="unused", out="unused"))
    assert model.config == AlbertConfig.preset("tiny_google")
    assert model.config.embedding_layout == "google"


@pytest.mark.parametrize("preset", ["tiny_google", "tiny"])
def test_local_init_points_each_head_at_its_neighbour(preset):
    # the first layer's attention probabilities, computed from the module's own weights
    torch.manual_seed(0)
    model = AlbertForPreTraining(AlbertConfig.preset(preset))
    pretrain_module.local_init(model)
    ids = torch.randint(1000, 8000, (1, 48))
    x = model.albert.embeddings(ids, None)
    if model.albert.encoder.embedding_hidden_mapping_in is not None:
        x = model.albert.encoder.embedding_hidden_mapping_in(x)
    attention = model.albert.encoder.albert_layer_groups[0].albert_layers[0].attention
    heads, size = attention.num_heads, attention.head_size
    q, k = (proj(x).view(1, 48, heads, size).transpose(1, 2) for proj in (attention.query, attention.key))
    probs = (q @ k.transpose(-1, -2) / size**0.5).softmax(-1)[0]  # (heads, 48, 48)
    positions = torch.arange(8, 40)
    for h in range(heads):
        looked_at = probs[h, positions].argmax(-1) - positions
        assert (looked_at == pretrain_module.LOCAL_OFFSETS[h]).all(), (h, looked_at)
    assert torch.equal(model.predictions.LayerNorm.weight, torch.full_like(model.predictions.LayerNorm.weight, 8.0))


def test_standard_init_is_the_plain_model_and_local_is_the_default():
    torch.manual_seed(7)
    plain = AlbertForPreTraining(AlbertConfig.preset("tiny_google"))
    torch.manual_seed(7)
    standard, _ = pretrain_module.build_model(PretrainConfig(data="unused", out="unused", init="standard"))
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), standard.state_dict().values()))
    torch.manual_seed(7)
    local, _ = pretrain_module.build_model(PretrainConfig(data="unused", out="unused"))
    changed = [n for n, p in local.state_dict().items() if not torch.equal(p, plain.state_dict()[n])]
    assert "albert.embeddings.position_embeddings.weight" in changed and "predictions.LayerNorm.weight" in changed
    # words as well as positions reach the hidden layers at full strength: the E->H mapping gains an identity
    mapping, random_mapping = (m.albert.encoder.embedding_hidden_mapping_in.weight for m in (local, plain))
    torch.testing.assert_close(mapping[:128] - random_mapping[:128], torch.eye(128))
    torch.testing.assert_close(mapping[128:], random_mapping[128:])
    assert PretrainConfig(data="d", out="o").optimizer == "muon" and PretrainConfig(data="d", out="o").lr == 7e-4
    assert PretrainConfig(data="d", out="o", init_from="m").optimizer == "adamw"  # Muon measured from scratch only
    assert PretrainConfig(data="d", out="o", optimizer="adamw").lr == 7e-4
    assert PretrainConfig(data="d", out="o", optimizer="lamb").lr == 1.76e-3
    # the loss scores the data's ids from scratch, every id of a trained model with --init-from
    assert PretrainConfig(data="d", out="o").mlm_vocab == "data"
    assert PretrainConfig(data="d", out="o", init_from="m").mlm_vocab == "all"
    with pytest.raises(ValueError, match="--init"):
        PretrainConfig(data="d", out="o", init="sinusoidal")


def test_compiled_training_computes_the_same_steps(setup, tmp_path):
    eager, compiled = tmp_path / "eager", tmp_path / "compiled"
    assert main(cli_args(setup, eager, "--max-steps", "3", "--save-every", "3")) == 0
    torch._dynamo.reset()
    torch._dynamo.utils.counters.clear()
    assert main(cli_args(setup, compiled, "--max-steps", "3", "--save-every", "3", "--compile")) == 0
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # it was compiled, not run eagerly
    expected, got = train_losses(eager), train_losses(compiled)
    assert sorted(got) == [1, 2, 3]
    np.testing.assert_allclose([got[s] for s in expected], list(expected.values()), rtol=1e-4)
    # checkpoint and export hold the plain module's names, loadable without compiling
    state = torch.load(list_checkpoints(compiled)[-1], weights_only=True)
    assert not any(name.startswith("_orig_mod") for name in state["model"])
    AlbertForPreTraining.from_pretrained(compiled / "model")


def test_the_loss_scores_only_the_ids_the_data_holds(setup, tmp_path, caplog):
    dataset = PretrainingDataset(setup / "data")
    scored = dataset.label_ids()
    vocab = pretrain_module.scored_vocab(scored, SMALL_MODEL["vocab_size"], torch.device("cpu"))
    torch.manual_seed(0)
    model = AlbertForPreTraining(AlbertConfig(**SMALL_MODEL))
    batch = dataset.collate([dataset[i] for i in range(8)])
    got = pretrain_module.forward_sums(model, batch, contextlib.nullcontext(), vocab)
    # by hand: the full scores' columns of the scored ids, the labels' places among them
    full = model(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"],
                 masked_positions=batch["masked_positions"]).mlm_logits
    labels = batch["masked_labels"][batch["masked_labels"] != -100]
    logits = full[batch["masked_labels"] != -100][:, torch.from_numpy(scored)]
    targets = torch.searchsorted(torch.from_numpy(scored), labels)
    torch.testing.assert_close(got[0], torch.nn.functional.cross_entropy(logits, targets, reduction="sum"))
    assert got[2] == (logits.argmax(-1) == targets).sum()

    # from scratch, the ids never scored end far below the lowest bias of the scored ones; "all" trains every id
    assert main(cli_args(setup, tmp_path / "data", "--max-steps", "3")) == 0
    assert main(cli_args(setup, tmp_path / "all", "--max-steps", "3", "--mlm-vocab", "all")) == 0
    bias = {run: AlbertForPreTraining.from_pretrained(tmp_path / run / "model").predictions.bias.detach()
            for run in ("data", "all")}
    unscored = torch.ones(SMALL_MODEL["vocab_size"], dtype=torch.bool)
    unscored[torch.from_numpy(scored)] = False
    assert (bias["data"][unscored] == bias["data"][~unscored].min() - pretrain_module.UNSCORED_BIAS_MARGIN).all()
    assert (bias["data"][~unscored] != 0).all() and (bias["all"] != 0).all()

    # resuming a run of the other setting says so (runs from before the default changed scored every id)
    caplog.set_level("WARNING")
    assert main(cli_args(setup, tmp_path / "all", "--max-steps", "4", "--resume")) == 0
    assert "trained with --mlm-vocab all and resumes with data" in caplog.text


def test_resuming_with_another_optimizer_stops_and_says_which(setup, tmp_path):
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "2", "--optimizer", "adamw")) == 0
    with pytest.raises(SystemExit, match="trained with --optimizer adamw: pass --optimizer adamw"):
        main(cli_args(setup, tmp_path / "r", "--max-steps", "3", "--resume"))  # the default is muon
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "3", "--resume", "--optimizer", "adamw")) == 0


def test_resuming_a_run_of_other_masked_spans_says_so(setup, tmp_path, caplog):
    caplog.set_level("WARNING")
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "2", "--ngram", "1")) == 0
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "3", "--resume", "--ngram", "1")) == 0
    assert "masked spans" not in caplog.text  # same spans: nothing to say
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "4", "--resume")) == 0
    assert "trained with masked spans of up to 1 words and resumes with 3: pass --ngram 1" in caplog.text
    # a run that saved no ngram (started before the option) masked the data's spans
    saved = tmp_path / "r" / "pretrain_config.json"
    saved.write_text(json.dumps({k: v for k, v in json.loads(saved.read_text()).items() if k != "ngram"}))
    caplog.clear()
    assert main(cli_args(setup, tmp_path / "r", "--max-steps", "5", "--resume")) == 0
    assert "masked spans" not in caplog.text


class CopyingModel(torch.nn.Module):
    """Predicts, at each masked position, the token it was given there: reads no context."""

    def __init__(self):
        super().__init__()
        self.config = AlbertConfig(**SMALL_MODEL)

    def forward(self, input_ids, attention_mask, token_type_ids, masked_positions):
        given = input_ids.gather(1, masked_positions)
        mlm_logits = torch.nn.functional.one_hot(given, self.config.vocab_size).float()
        return PreTrainingOutput(None, mlm_logits, torch.zeros(len(input_ids), 2), None, None)


def test_evaluation_separates_copying_from_reading_context(setup):
    dataset = PretrainingDataset(setup / "data")
    procs = Processes(rank=0, world=1, device=torch.device("cpu"))
    result = pretrain_module.evaluate(CopyingModel(), dataset, 16, procs)
    # about a tenth of the masked positions keep their token: copying scores there and nowhere else
    assert 0.03 < result["mlm_accuracy"] < 0.2
    assert result["mlm_context_accuracy"] == 0
    assert result["mlm_context_most_frequent_accuracy"] > 0
    # the no-context baseline is copying plus the best single guess elsewhere: never below copying alone
    assert result["mlm_copy_or_most_frequent_accuracy"] > result["mlm_accuracy"]
