from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest
import torch

from zoo.data import MotifGraphsDataModule, PlanetoidDataModule, TUDataModule
from zoo.tasks import GraphClassifier, NodeClassifier


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture
def cora(shared_data: Path) -> PlanetoidDataModule:
    return PlanetoidDataModule(name="Cora")  # root from $ZOO_DATA


def test_cora_is_read_locally_with_the_standard_split(shared_data: Path) -> None:
    before = _snapshot(shared_data / "planetoid")
    data = PlanetoidDataModule(name="Cora")
    graph = data.graph
    assert (graph.num_nodes, graph.num_edges, data.in_channels, data.num_classes) == (2708, 10556, 1433, 7)
    assert [int(graph[m].sum()) for m in ("train_mask", "val_mask", "test_mask")] == [140, 500, 1000]
    assert torch.allclose(graph.x.sum(dim=1)[graph.x.sum(dim=1) > 0], torch.tensor(1.0))  # row-normalised
    assert _snapshot(shared_data / "planetoid") == before  # processed files go to the cache, not the data folder


def test_missing_raw_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "Cora" / "raw").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"Cora raw files not found: .*ind\.cora\.x.*download=True"):
        PlanetoidDataModule(name="Cora", root=str(tmp_path))


def test_node_classifier_learns_cora_full_batch(cora: PlanetoidDataModule, trainer_factory) -> None:
    task = NodeClassifier("gcn", in_channels=cora.in_channels, num_classes=cora.num_classes,
                          optimizer=partial(torch.optim.Adam, lr=0.01, weight_decay=5e-4))  # fmt: skip
    trainer = trainer_factory(max_epochs=30, log_every_n_steps=1)
    trainer.fit(task, cora)
    result = trainer.test(task, cora, verbose=False)[0]
    assert result["test/acc1"] > 0.6  # chance is about 0.3 (the largest class)


def test_node_classifier_with_neighbour_sampling(shared_data: Path, trainer_factory) -> None:
    data = PlanetoidDataModule(name="Cora", loader="neighbor", num_neighbors=[5, 5], batch_size=32)
    batch = next(iter(data.train_dataloader()))
    assert batch.batch_size == 32 and batch.num_nodes > 32 and not hasattr(batch, "train_mask")
    task = NodeClassifier("graphsage", in_channels=data.in_channels, num_classes=data.num_classes)
    trainer = trainer_factory(max_epochs=3, log_every_n_steps=1)
    trainer.fit(task, data)
    assert trainer.global_step == 15  # 140 training seeds in batches of 32
    assert torch.isfinite(trainer.callback_metrics["val/loss"])


def test_motif_graphs_are_balanced_reproducible_and_learnable(trainer_factory, tmp_path: Path) -> None:
    import numpy as np
    from lightning.pytorch.callbacks import ModelCheckpoint

    state, numpy_state = torch.get_rng_state(), np.random.get_state()[1].copy()
    data = MotifGraphsDataModule(num_graphs=300, batch_size=32)
    assert torch.equal(torch.get_rng_state(), state)  # generation leaves the global generators alone
    assert np.array_equal(np.random.get_state()[1], numpy_state)
    again = MotifGraphsDataModule(num_graphs=300)
    assert all(torch.equal(a.edge_index, b.edge_index) for a, b in zip(data.graphs, again.graphs, strict=True))
    assert torch.bincount(data._labels()).tolist() == [100, 100, 100]
    torch.manual_seed(0)
    task = GraphClassifier("gin", in_channels=1, num_classes=3, optimizer=partial(torch.optim.Adam, lr=0.01))
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/loss")  # as the recipe, test the best epoch:
    trainer = trainer_factory(max_epochs=15, callbacks=[best], enable_checkpointing=True)  # the last one varies
    trainer.fit(task, data)
    # 30 test graphs, chance 1/3: 0.7 is far out of chance's reach (0.8 to 1.0 over seeds 0-5).
    assert trainer.test(task, data, ckpt_path="best", verbose=False)[0]["test/acc1"] > 0.7


def test_tu_format_files_and_fold_splits(tmp_path: Path, trainer_factory) -> None:
    raw = tmp_path / "TOY" / "raw"
    raw.mkdir(parents=True)
    # 12 graphs: triangles (label 1) and 3-node paths (label 0), 3 nodes each.
    edges, indicator, labels = [], [], []
    for g in range(12):
        base = 3 * g + 1
        pairs = [(0, 1), (1, 2)] + ([(2, 0)] if g % 2 else [])
        for a, b in pairs:
            edges += [(base + a, base + b), (base + b, base + a)]
        indicator += [g + 1] * 3
        labels.append(g % 2)
    (raw / "TOY_A.txt").write_text("".join(f"{a}, {b}\n" for a, b in edges))
    (raw / "TOY_graph_indicator.txt").write_text("".join(f"{g}\n" for g in indicator))
    (raw / "TOY_graph_labels.txt").write_text("".join(f"{y}\n" for y in labels))
    data = TUDataModule(name="TOY", root=str(tmp_path), folds=3, fold=1, batch_size=4)
    assert data.in_channels == 1 and data.num_classes == 2  # constant features for a featureless set
    data.setup()
    sizes = (len(data.train_set), len(data.val_set), len(data.test_set))
    assert sizes == (4, 4, 4)
    assert sorted(int(g.y) for g in data.test_set) == [0, 0, 1, 1]  # stratified folds
    with pytest.raises(FileNotFoundError, match="TU dataset NOPE not found"):
        TUDataModule(name="NOPE", root=str(tmp_path))


def test_bad_graph_inputs_are_named(cora: PlanetoidDataModule, trainer_factory) -> None:
    from torch_geometric.data import Data
    from torch_geometric.loader import DataLoader

    task = NodeClassifier("gcn", in_channels=cora.in_channels, num_classes=cora.num_classes)
    graph = cora.graph.clone()
    graph.edge_index = graph.edge_index.clone()
    graph.edge_index[0, 5] = graph.num_nodes + 3
    with pytest.raises(ValueError, match=r"edge_index refers to node 2711, but the graph has 2708 nodes"):
        trainer_factory(max_steps=1).fit(task, DataLoader([graph]))
    narrow = Data(x=torch.ones(4, 7), edge_index=torch.tensor([[0, 1], [1, 2]]), y=torch.zeros(4, dtype=torch.long))
    narrow.train_mask = torch.ones(4, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"node features of shape \(4, 7\), but 'gcn' expects \(N, 1433\)"):
        trainer_factory(max_steps=1).fit(task, DataLoader([narrow]))
    empty = cora.graph.clone()
    empty.train_mask = torch.zeros_like(empty.train_mask)
    with pytest.raises(ValueError, match="train_mask selects no node"):
        trainer_factory(max_steps=1).fit(task, DataLoader([empty]))


def _write_planetoid_raw(root: Path, name: str, num_features: int, num_classes: int) -> None:
    """Write a small graph in the raw Planetoid format (pickled scipy/numpy arrays, as the real files are).

    Planetoid puts the 500 validation nodes right after the labelled training nodes, so ``allx`` needs at
    least ``len(y) + 500`` rows. Features carry the class so the graph is learnable.
    """
    import pickle

    import numpy as np
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    num_train, num_all, num_test = 2 * num_classes, 2 * num_classes + 520, 60
    labels = rng.integers(0, num_classes, num_all + num_test)
    labels[:num_train] = np.arange(num_train) % num_classes
    features = (rng.random((num_all + num_test, num_features)) < 0.05).astype(np.float32)
    features[np.arange(len(labels)), labels] = 1.0
    one_hot = np.eye(num_classes, dtype=np.int64)[labels]
    graph = {i: [int(j) for j in rng.choice(len(labels), 3) if labels[j] == labels[i]] for i in range(len(labels))}
    arrays = {
        "x": sp.csr_matrix(features[:num_train]), "allx": sp.csr_matrix(features[:num_all]),
        "tx": sp.csr_matrix(features[num_all:]), "y": one_hot[:num_train], "ally": one_hot[:num_all],
        "ty": one_hot[num_all:], "graph": graph,
    }  # fmt: skip
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    for key, value in arrays.items():
        (raw / f"ind.{name.lower()}.{key}").write_bytes(pickle.dumps(value))
    (raw / f"ind.{name.lower()}.test.index").write_text("".join(f"{i}\n" for i in range(num_all, len(labels))))


@pytest.mark.parametrize("recipe", ["recipes/cora/gcn.yaml", "recipes/cora/gat.yaml", "recipes/cora/sage.yaml"])
@pytest.mark.parametrize(("name", "num_features", "num_classes"), [("CiteSeer", 37, 6), ("PubMed", 50, 3)])
def test_cora_recipes_take_other_planetoid_sets_by_name(
    recipe: str, name: str, num_features: int, num_classes: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zoo.lightning_cli import ZooLightningCLI

    _write_planetoid_raw(tmp_path / "data", name, num_features, num_classes)
    monkeypatch.chdir(tmp_path)
    repo = Path(__file__).resolve().parents[2]
    args = ["fit", "--config", str(repo / recipe), "--data.init_args.name", name,
            "--data.init_args.root", str(tmp_path / "data"), "--trainer.max_epochs", "3",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]  # fmt: skip
    cli = ZooLightningCLI(args=args)
    assert (cli.model.hparams.in_channels, cli.model.hparams.num_classes) == (num_features, num_classes)
    assert cli.trainer.current_epoch == 3
    assert torch.isfinite(cli.trainer.callback_metrics["test/loss"])


class _Payload:
    """A pickle that, when read, writes a marker file: what a crafted data file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "ran"))


def test_a_data_pickle_that_names_code_is_refused_before_anything_runs(tmp_path: Path) -> None:
    import pickle

    from zoo.data.safe_pickle import UnsafePickleError

    _write_planetoid_raw(tmp_path / "data", "CiteSeer", 12, 3)
    marker = tmp_path / "marker.txt"
    (tmp_path / "data" / "CiteSeer" / "raw" / "ind.citeseer.graph").write_bytes(pickle.dumps(_Payload(marker)))
    data = PlanetoidDataModule("CiteSeer", root=str(tmp_path / "data"))
    with pytest.raises(UnsafePickleError, match=r"ind\.citeseer\.graph is a pickle that asks to import pathlib"):
        _ = data.num_classes
    assert not marker.exists()


def test_a_raw_file_replaced_by_one_of_the_same_size_is_processed_again(tmp_path: Path) -> None:
    import pickle

    import numpy as np

    _write_planetoid_raw(tmp_path / "data", "PubMed", 20, 3)
    first = PlanetoidDataModule("PubMed", root=str(tmp_path / "data")).graph
    labels = tmp_path / "data" / "PubMed" / "raw" / "ind.pubmed.ally"
    size, ally = labels.stat().st_size, pickle.loads(labels.read_bytes())
    labels.write_bytes(pickle.dumps(np.roll(ally, 1, axis=1)))  # other classes, the same number of bytes
    assert labels.stat().st_size == size
    second = PlanetoidDataModule("PubMed", root=str(tmp_path / "data")).graph
    assert not torch.equal(first.y, second.y)
