"""The GNN CPU speed-ups: input dropout that draws only for non-zero features, GCN normalisation cached per graph."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from zoo.models.gnn.dropout import FeatureDropout


def _sparse_features(nodes: int = 400, features: int = 300, share: float = 0.015) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(nodes, features, generator=generator) + 0.5
    return values * (torch.rand(nodes, features, generator=generator) < share)


@pytest.mark.parametrize("p", [0.5, 0.8])
def test_same_mean_and_variance_as_dense_dropout_and_zeros_stay_zero(p: float) -> None:
    x = _sparse_features()
    dropout = FeatureDropout(p).train()
    torch.manual_seed(0)
    sparse = torch.stack([dropout(x) for _ in range(400)])
    dense = torch.stack([F.dropout(x, p, True) for _ in range(400)])
    assert dropout._nonzero is not None and dropout._nonzero.numel() == int((x != 0).sum())  # the sparse draw ran
    assert not sparse[:, x == 0].any()  # a zero stays zero
    nonzero = x != 0
    for draws in (sparse, dense):
        ratio = draws[:, nonzero] / x[nonzero]  # each entry is 0 or 1 / (1 - p) times its value
        assert ((ratio == 0) | torch.isclose(ratio, torch.tensor(1 / (1 - p)))).all()
        assert ratio.mean().item() == pytest.approx(1.0, abs=0.02)  # unbiased
        assert ratio.var().item() == pytest.approx(p / (1 - p), rel=0.05)  # Bernoulli(1 - p) / (1 - p)
    kept_sparse, kept_dense = (sparse[:, nonzero] != 0).float().mean(), (dense[:, nonzero] != 0).float().mean()
    assert kept_sparse.item() == pytest.approx(kept_dense.item(), abs=0.01)


def test_dense_input_uses_dense_dropout_and_evaluation_is_the_identity() -> None:
    x = torch.randn(50, 20)
    dropout = FeatureDropout(0.5).train()
    torch.manual_seed(1)
    ours = dropout(x)
    torch.manual_seed(1)
    assert torch.equal(ours, F.dropout(x, 0.5, True)) and dropout._nonzero is None
    assert dropout.eval()(x) is x


def test_the_positions_are_found_once_per_tensor_and_again_after_an_in_place_change() -> None:
    x = _sparse_features()
    dropout = FeatureDropout(0.5).train()
    dropout(x)
    first = dropout._nonzero
    dropout(x)
    assert dropout._nonzero is first
    x[0, :10] = 1.0  # new non-zeros: the cached positions no longer cover them
    dropped = torch.stack([dropout(x) for _ in range(50)])
    assert dropout._nonzero is not first and bool((dropped[:, 0, :10] != 0).any())
    grads = x.clone().requires_grad_()
    dropout(grads).sum().backward()  # differentiable where the input needs gradients
    assert grads.grad is not None and not grads.grad[x == 0].any()


def test_the_sparse_output_holds_the_same_draw_and_trains_the_layers_that_take_it() -> None:
    from torch_geometric.nn import GATConv, GCNConv

    x = _sparse_features()
    torch.manual_seed(2)
    dense = FeatureDropout(0.5).train()(x)
    torch.manual_seed(2)
    sparse = FeatureDropout(0.5, sparse_output=True).train()(x)
    assert sparse.is_sparse and torch.equal(sparse.to_dense(), dense)
    edges = torch.randint(0, x.shape[0], (2, 1000), generator=torch.Generator().manual_seed(0))
    for conv in (GCNConv(x.shape[1], 8), GATConv(x.shape[1], 4, heads=2)):
        torch.manual_seed(0)
        from_sparse = conv(sparse, edges)
        torch.manual_seed(0)
        from_dense = conv(dense, edges)
        assert torch.allclose(from_sparse, from_dense, atol=1e-5)
        from_sparse.sum().backward()
        assert all(p.grad is not None for p in conv.parameters())


def test_gcn_normalises_each_edge_tensor_once_and_again_for_another() -> None:
    import copy
    import pickle

    from torch_geometric.nn import GCNConv

    from zoo.models.gnn.caching import GraphCachingGCNConv

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=generator)
    edges = torch.randint(0, 50, (2, 200), generator=generator)
    plain, caching = GCNConv(6, 4), GraphCachingGCNConv(6, 4)
    caching.load_state_dict(plain.state_dict())
    assert torch.allclose(caching(x, edges), plain(x, edges))
    first = caching._cached_edge_index
    assert first is not None and torch.allclose(caching(x, edges), plain(x, edges))
    assert caching._cached_edge_index is first  # the same tensor again: reused
    other = torch.randint(0, 50, (2, 120), generator=generator)
    assert torch.allclose(caching(x, other), plain(x, other)) and caching._cached_edge_index is not first
    edges_copy = edges.clone()  # equal values, another tensor: computed again, not trusted
    assert torch.allclose(caching(x, edges_copy), plain(x, edges_copy))
    edges_copy[0, 0] = 3  # changed in place: computed again
    assert torch.allclose(caching(x, edges_copy), plain(x, edges_copy))
    assert torch.allclose(caching(x[:40], edges_copy.clamp(max=39)), plain(x[:40], edges_copy.clamp(max=39)))
    for clone in (copy.deepcopy(caching), pickle.loads(pickle.dumps(caching))):
        assert clone._cached_edge_index is None and torch.allclose(clone(x, edges), plain(x, edges))
    traced = torch.jit.trace(caching, (x, edges), check_trace=False)  # traced: nothing cached becomes a constant
    assert torch.allclose(traced(x, other), plain(x, other))
