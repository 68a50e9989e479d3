"""The CRF against brute force: every tag path of small cases enumerated and scored by hand."""

import itertools
import math

import torch

from albert_zh.crf import CRF


def random_crf(num_tags, seed):
    torch.manual_seed(seed)
    crf = CRF(num_tags)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    return crf


def path_score(crf, emissions, path):
    """The score of one path of one sequence, summed term by term."""
    s = crf.start_transitions[path[0]] + crf.end_transitions[path[-1]]
    s = s + sum(emissions[i, t] for i, t in enumerate(path))
    return s + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))


def case(batch=3, length=4, tags=3, seed=0):
    crf = random_crf(tags, seed)
    emissions = torch.randn(batch, length, tags, generator=torch.Generator().manual_seed(seed + 1))
    lengths = [length, 1, length - 1][:batch]  # full, a single position, padded
    mask = torch.arange(length)[None, :] < torch.tensor(lengths)[:, None]
    return crf, emissions, mask, lengths


def test_log_likelihood_equals_brute_force_over_all_paths():
    crf, emissions, mask, lengths = case()
    gold = torch.tensor([[0, 2, 1, 1], [2, 0, 0, 0], [1, 1, 0, 0]])
    with torch.no_grad():
        got = crf.log_likelihood(emissions, gold, mask)
    for b, n in enumerate(lengths):
        scores = [float(path_score(crf, emissions[b], p)) for p in itertools.product(range(3), repeat=n)]
        log_z = math.log(sum(math.exp(s) for s in scores))
        expected = float(path_score(crf, emissions[b], gold[b, :n].tolist())) - log_z
        assert math.isclose(float(got[b]), expected, rel_tol=0, abs_tol=1e-4)


def test_probabilities_of_all_paths_sum_to_one():
    crf, emissions, mask, _ = case(batch=1, length=3, tags=4, seed=5)
    paths = torch.tensor(list(itertools.product(range(4), repeat=3)))
    with torch.no_grad():
        ll = crf.log_likelihood(emissions.expand(len(paths), -1, -1), paths, mask.expand(len(paths), -1))
    assert math.isclose(float(ll.exp().sum()), 1.0, abs_tol=1e-4)


def test_viterbi_finds_the_best_path_by_enumeration():
    for seed in range(5):
        crf, emissions, mask, lengths = case(length=5, tags=3, seed=seed)
        decoded = crf.decode(emissions, mask)
        for b, n in enumerate(lengths):
            best = max(itertools.product(range(3), repeat=n), key=lambda p: float(path_score(crf, emissions[b], p)))
            assert decoded[b, :n].tolist() == list(best)
            assert decoded[b, n:].eq(0).all()


def test_gradient_raises_the_gold_path():
    crf, emissions, mask, _ = case(batch=1, length=4)
    gold = torch.tensor([[1, 0, 2, 2]])
    optimizer = torch.optim.SGD(crf.parameters(), lr=0.5)
    before = float(crf.log_likelihood(emissions, gold, mask))
    for _ in range(20):
        optimizer.zero_grad()
        (-crf.log_likelihood(emissions, gold, mask).sum()).backward()
        optimizer.step()
    assert float(crf.log_likelihood(emissions, gold, mask)) > before + 1
    assert crf.decode(emissions, mask)[0].tolist() == [1, 0, 2, 2]
