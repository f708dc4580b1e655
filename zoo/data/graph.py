"""Graph data modules: Planetoid citation graphs, TU graph-classification sets, and generated motif graphs.

PyTorch Geometric is imported when a module is created, not when :mod:`zoo.data` is.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader as TorchDataLoader
from torch.utils.data import DistributedSampler
from typing_extensions import override

from zoo.data.base import ZooDataModule
from zoo.data.fingerprint import SplitContent, fingerprint, graph_checksum
from zoo.data.paths import cache_dir, cache_lock, data_root
from zoo.errors import ConfigError, DataError, MissingFileError
from zoo.rng import private_rng

__all__ = ["GraphClassificationDataModule", "MotifGraphsDataModule", "PlanetoidDataModule", "TUDataModule"]

_PLANETOID_FILES = ("x", "tx", "allx", "y", "ty", "ally", "graph", "test.index")


def _cache_root(raw: Path, kind: str, name: str) -> Path:
    """The cache folder for a copy of a read-only ``raw`` folder, keyed by its files' names and contents.

    Keyed on content, so a raw file replaced by another of the same size is processed again (these raw
    folders are a few megabytes; hashing them costs milliseconds).
    """
    key = hashlib.sha256()
    for path in sorted(p for p in raw.iterdir() if p.is_file()):
        key.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return cache_dir(kind, f"{name}-{key.hexdigest()[:16]}")


def _copy_to_cache(raw: Path, root: Path, name: str) -> None:
    """Copy ``raw`` to ``root/name/raw`` (PyG writes ``processed/`` beside it), whole or not at all.

    The copy is made in a temporary folder and renamed into place, so a process that dies mid-copy leaves
    nothing a later run would mistake for the data. Call under :func:`zoo.data.paths.cache_lock`.
    """
    target = root / name / "raw"
    if target.is_dir():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".raw."))
    try:
        shutil.copytree(raw, staging, dirs_exist_ok=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _checked_planetoid(root: Path, name: str, transform: Any) -> Any:
    """PyG's ``Planetoid``, which first checks that the raw files it is about to unpickle hold only data.

    Planetoid's raw files are pickles that PyG opens with plain ``pickle.load`` when it processes them; the
    check runs on the very files it reads (zoo's cache copy, or the download), just before.
    """
    from torch_geometric.datasets import Planetoid

    from zoo.data.safe_pickle import CONTAINER_GLOBALS, NUMPY_GLOBALS, SCIPY_SPARSE_GLOBALS, check_pickle

    class CheckedPlanetoid(Planetoid):
        def process(self) -> None:
            for path in self.raw_paths:
                if not path.endswith(".test.index"):  # test.index is text
                    check_pickle(path, NUMPY_GLOBALS | SCIPY_SPARSE_GLOBALS | CONTAINER_GLOBALS)
            super().process()

    return CheckedPlanetoid(str(root), name, split="public", transform=transform)


def whole_graph_loader(graph: Any, trainer: Any, seed: int) -> TorchDataLoader:
    """One batch per epoch, on every rank: the graph object itself (the task applies the split masks).

    Collating the graph into a ``Batch`` would copy every feature each epoch, and the model's input dropout finds
    the non-zero features once per tensor. On an accelerator the first transfer moves the graph there, and later
    ones find it in place.
    """
    return TorchDataLoader([graph], batch_size=None, sampler=_rank_sampler(trainer, 1, False, seed), collate_fn=_as_is)


def _lower_name(init_args: Mapping[str, Any]) -> str | None:
    """The ``name`` argument of a module that reads datasets by name, lower-cased (``PubMed`` -> ``pubmed``)."""
    name = init_args.get("name")
    return str(name).lower() if name else None


def _as_is(item: Any) -> Any:
    return item


def _rank_sampler(trainer: Any, size: int, shuffle: bool, seed: int) -> DistributedSampler:
    """This rank's share of ``range(size)``; a ``DistributedSampler``, so Lightning neither wraps nor replaces it."""
    return DistributedSampler(
        range(size),
        num_replicas=trainer.world_size if trainer is not None else 1,
        rank=trainer.global_rank if trainer is not None else 0,
        shuffle=shuffle,
        seed=seed,
    )


class PlanetoidDataModule(ZooDataModule):
    """Cora, CiteSeer or PubMed with the standard (Planetoid) split.

    The split has 20 training nodes per class, 500 validation and 1,000 test nodes.

    The raw files (``ind.<name>.x``, ``.tx``, ``.allx``, ``.y``, ``.ty``, ``.ally``, ``.graph``, ``.test.index``)
    are looked for in ``root/planetoid/<name>/raw``, ``root/<name>/raw`` and ``root/raw``. They are copied to
    ``$ZOO_CACHE`` and read there by ``torch_geometric.datasets.Planetoid``, which writes its processed files
    beside them (one process at a time); the data folder is never written into. With ``download=True`` and no
    raw files, PyG downloads them into the cache. Creating the module only looks for the files; the graph is
    read when its feature and class counts are first asked for (``zoo fit`` links them into the task), or in
    ``prepare_data`` and ``setup``.

    Args:
        name: ``"Cora"``, ``"CiteSeer"`` or ``"PubMed"``.
        root: Folder to look in (default ``$ZOO_DATA``, else ``~/.cache/zoo``).
        normalize_features: Scale each node's features to sum to one (as GCN and GAT do).
        loader: ``"full"``: every batch is the whole graph and the task uses the split masks; ``"neighbor"``:
            mini-batches of seed nodes from the split with sampled neighbourhoods (PyG's ``NeighborLoader``, or
            the same batches from :mod:`zoo.data.neighbor_sampling` where PyG's compiled sampler is missing).
        num_neighbors: Neighbours sampled per layer with ``loader="neighbor"``.
        batch_size: Seed nodes per mini-batch with ``loader="neighbor"``.
        download: Download the raw files when they are not found.
        num_workers, pin_memory, seed: See :class:`zoo.data.base.ZooDataModule` (workers default to 0).

    Raises:
        FileNotFoundError: If the raw files are not found and ``download`` is off.
        ValueError: For an unknown name, or a split without training nodes.
    """

    data_license = "Planetoid citation graphs (Sen et al., 2008; Yang et al., 2016): research use, cite them"

    def __init__(
        self,
        name: Literal["Cora", "CiteSeer", "PubMed"] = "Cora",
        root: str | None = None,
        normalize_features: bool = True,
        loader: Literal["full", "neighbor"] = "full",
        num_neighbors: list[int] | None = None,
        batch_size: int = 512,
        download: bool = False,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(batch_size, batch_size, num_workers, pin_memory, seed)
        if name not in ("Cora", "CiteSeer", "PubMed"):
            raise ConfigError(f"name must be 'Cora', 'CiteSeer' or 'PubMed', got {name!r}")
        if loader not in ("full", "neighbor"):
            raise ConfigError(f"loader must be 'full' or 'neighbor', got {loader!r}")
        self.name = name
        self.loader = loader
        self.num_neighbors = list(num_neighbors or [10, 10])
        self.normalize_features = normalize_features
        self.download = download
        self._raw = self._find_raw(data_root(root))

    @classmethod
    @override
    def dataset_name(cls, init_args: Mapping[str, Any]) -> str | None:
        return _lower_name(init_args)

    def _find_raw(self, root: Path) -> Path | None:
        """The folder holding the raw files; ``None`` to download them. Checks names only, reads nothing."""
        wanted = [f"ind.{self.name.lower()}.{suffix}" for suffix in _PLANETOID_FILES]
        candidates = [root / "planetoid" / self.name / "raw", root / self.name / "raw", root / "raw"]
        raw = next((c for c in candidates if all((c / f).is_file() for f in wanted)), None)
        partial = next((c for c in candidates if any((c / f).is_file() for f in wanted)), None)
        if raw is None and partial is not None and not self.download:
            missing = [f for f in wanted if not (partial / f).is_file()]
            raise MissingFileError(f"{self.name} raw files incomplete: {partial} lacks {', '.join(missing)}")
        if raw is None and not self.download:
            raise MissingFileError(
                f"{self.name} raw files not found: looked in {', '.join(map(str, candidates))} for "
                f"{', '.join(wanted)}. Point root (or $ZOO_DATA) at the folder that holds them, or pass download=True."
            )
        return raw

    @cached_property
    def graph(self) -> Any:
        """The graph with its split masks: copied to the cache and processed by PyG once, then read."""
        from torch_geometric.transforms import NormalizeFeatures

        raw = self._raw
        root = cache_dir("planetoid", "downloaded") if raw is None else _cache_root(raw, "planetoid", self.name)
        transform = NormalizeFeatures() if self.normalize_features else None
        with cache_lock(root):  # DDP ranks: one copies and processes, the others wait and read
            if raw is not None:
                _copy_to_cache(raw, root, self.name)
            graph = _checked_planetoid(root, self.name, transform)[0]
        if not bool(graph.train_mask.any()):
            raise DataError(f"{self.name}: the split's train_mask selects no node")
        return graph

    @property
    def in_channels(self) -> int:
        """Node feature size (linked into the task; reading it reads the graph)."""
        return int(self.graph.num_features)

    @property
    def num_classes(self) -> int:
        """Number of classes (linked into the task)."""
        return int(self.graph.y.max()) + 1

    def prepare_data(self) -> None:
        """Copy and process the raw files into the cache (once per node, before every rank's ``setup``)."""
        _ = self.graph

    def setup(self, stage: str | None = None) -> None:
        """Read the processed graph."""
        _ = self.graph

    @override
    def fingerprint(self) -> dict[str, Any]:
        """One graph: its features, edges, labels and split masks; splits and class counts are node counts."""
        if self._fingerprint is None:
            graph = self.graph
            masks = ("x", "edge_index", "y", "train_mask", "val_mask", "test_mask")
            whole = np.array([graph_checksum(graph, masks)], dtype=np.uint64)
            labels = graph.y.numpy()
            splits = {
                split: SplitContent(whole, labels[getattr(graph, f"{split}_mask").numpy()])
                for split in ("train", "val", "test")
            }
            record = fingerprint(splits, dataset=self.dataset_name(vars(self)))
            record["splits"] = {split: int(getattr(graph, f"{split}_mask").sum()) for split in splits}
            self._fingerprint = record
        return self._fingerprint

    def _graph_loader(self, stage: str) -> Any:
        from zoo.data.neighbor_sampling import neighbor_loader

        trainer = self.trainer
        if self.loader == "full":  # one batch, the whole graph, on every rank; the task applies the masks
            return whole_graph_loader(self.graph, trainer, self.seed)
        seeds = getattr(self.graph, {"train": "train_mask", "val": "val_mask", "test": "test_mask"}[stage])
        nodes = seeds.nonzero().view(-1)
        shuffle = stage == "train"
        graph = self.graph.clone()
        for mask in ("train_mask", "val_mask", "test_mask"):
            del graph[mask]  # the task reads the seed nodes (first batch_size) instead
        return neighbor_loader(
            graph,
            self.num_neighbors,
            nodes,
            seed=self.seed,
            batch_size=self.batch_size,
            sampler=_rank_sampler(trainer, len(nodes), shuffle, self.seed),
            num_workers=self._workers(),
        )

    @override
    def train_dataloader(self) -> Any:
        return self._graph_loader("train")

    @override
    def val_dataloader(self) -> Any:
        return self._graph_loader("val")

    @override
    def test_dataloader(self) -> Any:
        return self._graph_loader("test")

    @property
    @override
    def has_test_data(self) -> bool:
        return True


class GraphClassificationDataModule(ZooDataModule):
    """Batches of whole graphs with one label each, split into train, validation and test.

    Subclasses set ``self.graphs`` (a list or PyG dataset of ``Data`` with ``x``, ``edge_index`` and ``y``).
    The split is stratified by label and seeded (``split_seed``), or a fold of a stratified k-fold split
    (``folds``, ``fold``), in which case the fold is the test set and the next fold the validation set.

    Args:
        val_fraction: Share of graphs for validation (stratified split).
        test_fraction: Share of graphs for testing (stratified split).
        folds: Number of folds for a k-fold split, or ``None``.
        fold: Which fold is the test set.
        split_seed: Seed of the split.
        batch_size, eval_batch_size, num_workers, pin_memory, seed: See :class:`zoo.data.base.ZooDataModule`.
    """

    graphs: Any

    def __init__(
        self,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        folds: int | None = None,
        fold: int = 0,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(batch_size, eval_batch_size, num_workers, pin_memory, seed)
        if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
            raise ConfigError(
                f"val_fraction and test_fraction must be shares in [0, 1) that leave graphs for training, got "
                f"{val_fraction} and {test_fraction}"
            )
        if folds is not None and not 0 <= fold < folds:
            raise ConfigError(f"fold must be in [0, folds={folds}), got {fold}")
        self.val_fraction, self.test_fraction = val_fraction, test_fraction
        self.folds, self.fold, self.split_seed = folds, fold, split_seed

    def _labels(self) -> torch.Tensor:
        return torch.tensor([int(g.y) for g in self.graphs])

    def _split(self) -> tuple[list[int], list[int], list[int]]:
        """Stratified ``(train, val, test)`` indices."""
        labels = self._labels()
        generator = torch.Generator().manual_seed(self.split_seed)
        if self.folds is not None:
            assignment = torch.empty(len(labels), dtype=torch.long)
            for label in labels.unique():
                members = (labels == label).nonzero().view(-1)
                members = members[torch.randperm(len(members), generator=generator)]
                assignment[members] = torch.arange(len(members)) % self.folds
            test = (assignment == self.fold).nonzero().view(-1).tolist()
            val = (assignment == (self.fold + 1) % self.folds).nonzero().view(-1).tolist()
            train = sorted(set(range(len(labels))) - set(test) - set(val))
            return train, sorted(val), sorted(test)
        train, val, test = [], [], []
        for label in labels.unique():
            members = (labels == label).nonzero().view(-1)
            members = members[torch.randperm(len(members), generator=generator)].tolist()
            n_val, n_test = round(self.val_fraction * len(members)), round(self.test_fraction * len(members))
            val += members[:n_val]
            test += members[n_val : n_val + n_test]
            train += members[n_val + n_test :]
        return sorted(train), sorted(val), sorted(test)

    def setup(self, stage: str | None = None) -> None:
        """Split the graphs."""
        train, val, test = self._split()
        if not train:
            raise DataError(f"{type(self).__name__}: the split leaves no training graph")
        self.train_set = [self.graphs[i] for i in train]
        self.val_set = [self.graphs[i] for i in val]
        self.test_set = [self.graphs[i] for i in test]

    def _graph_loader(self, graphs: list[Any], train: bool) -> Any:
        from torch_geometric.loader import DataLoader

        return DataLoader(
            graphs,
            batch_size=self.batch_size if train else self.eval_batch_size,
            sampler=_rank_sampler(self.trainer, len(graphs), train, self.seed),
            num_workers=self._workers(),
            drop_last=train and len(graphs) > self.batch_size,
        )

    @override
    def train_dataloader(self) -> Any:
        return self._graph_loader(self.train_set, train=True)

    @override
    def val_dataloader(self) -> Any:
        return self._graph_loader(self.val_set, train=False)

    @override
    def test_dataloader(self) -> Any:
        return self._graph_loader(self.test_set, train=False)


class MotifGraphsDataModule(GraphClassificationDataModule):
    """Generated graphs to tell apart by the motif they contain, for offline graph classification.

    Each graph is a Barabási-Albert tree (``base_nodes`` nodes, one edge per new node) with one motif attached
    to a random node by one edge; the label is the motif: a house (5 nodes, 6 edges, a triangle on a square), a
    5-cycle (5 nodes, 5 edges) or a 4-clique (4 nodes, 6 edges). Every node has the same single feature, so a
    model must read the structure; the classes are balanced, so chance is one in three. The graphs are a
    function of ``generator_seed`` alone. In the spirit of the BA-2Motifs benchmark (Luo et al., 2020).

    Args:
        num_graphs: Number of graphs (a third of each class).
        base_nodes: Nodes of the base tree.
        generator_seed: Seed of the generation.
        val_fraction, test_fraction, folds, fold, split_seed, batch_size, eval_batch_size, num_workers, pin_memory,
            seed: See :class:`GraphClassificationDataModule`.
    """

    MOTIFS = ("house", "cycle5", "clique4")

    dataset = "motifs"
    data_license = "graphs generated by zoo at run time: no third-party data, Apache-2.0 like zoo"

    def __init__(
        self,
        num_graphs: int = 900,
        base_nodes: int = 20,
        generator_seed: int = 0,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        folds: int | None = None,
        fold: int = 0,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            val_fraction,
            test_fraction,
            folds,
            fold,
            split_seed,
            batch_size,
            eval_batch_size,
            num_workers,
            pin_memory,
            seed,
        )
        if num_graphs < 3 * 3:
            raise ConfigError(f"num_graphs must be at least 9 (three per motif), got {num_graphs}")
        self.num_graphs, self.base_nodes, self.generator_seed = num_graphs, base_nodes, generator_seed
        self.in_channels, self.num_classes = 1, len(self.MOTIFS)
        self.class_names = self.MOTIFS

    @cached_property
    def graphs(self) -> list[Any]:
        """The generated graphs (made on first use, in ``setup``)."""
        return _motif_graphs(self.num_graphs, self.base_nodes, self.generator_seed)


def _motif_graphs(num_graphs: int, base_nodes: int, seed: int) -> list[Any]:
    from torch_geometric.data import Data
    from torch_geometric.utils import barabasi_albert_graph, to_undirected

    motifs = {
        "house": [(0, 1), (1, 2), (2, 3), (3, 0), (0, 4), (1, 4)],
        "cycle5": [(0, 1), (1, 2), (2, 3), (3, 4), (4, 0)],
        "clique4": [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)],
    }
    generator = torch.Generator().manual_seed(seed)
    graphs = []
    for index in range(num_graphs):
        label = index % len(motifs)
        edges = list(motifs.values())[label]
        size = 1 + max(max(e) for e in edges)
        with private_rng(seed, index):  # PyG's generator draws from NumPy's and torch's global generators
            base = barabasi_albert_graph(base_nodes, 1)
        motif = torch.tensor(edges).t() + base_nodes
        anchor = int(torch.randint(0, base_nodes, (1,), generator=generator))
        link = torch.tensor([[anchor], [base_nodes + int(torch.randint(0, size, (1,), generator=generator))]])
        edge_index = to_undirected(torch.cat([base, motif, link], dim=1), num_nodes=base_nodes + size)
        graphs.append(Data(x=torch.ones(base_nodes + size, 1), edge_index=edge_index, y=torch.tensor(label)))
    return graphs


class TUDataModule(GraphClassificationDataModule):
    """A TU graph-classification benchmark (MUTAG, PROTEINS, ENZYMES, IMDB-BINARY, ...).

    The TU-format raw files (``<name>_A.txt``, ``_graph_indicator.txt``, ``_graph_labels.txt``, ...) are looked
    for in ``root/TUDataset/<name>/raw`` and ``root/<name>/raw``, copied to ``$ZOO_CACHE`` and read by
    ``torch_geometric.datasets.TUDataset``; with ``download=True`` and no local copy, PyG downloads them into the
    cache. Graphs without node features get a constant feature.

    Args:
        name: The dataset's TU name.
        root: Folder to look in (default ``$ZOO_DATA``, else ``~/.cache/zoo``).
        download: Download when not found locally.
        val_fraction, test_fraction, folds, fold, split_seed, batch_size, eval_batch_size, num_workers, pin_memory,
            seed: See :class:`GraphClassificationDataModule`.

    Raises:
        FileNotFoundError: If the raw files are not found and ``download`` is off.
    """

    @classmethod
    @override
    def dataset_name(cls, init_args: Mapping[str, Any]) -> str | None:
        return _lower_name(init_args)

    def __init__(
        self,
        name: str = "MUTAG",
        root: str | None = None,
        download: bool = False,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        folds: int | None = None,
        fold: int = 0,
        split_seed: int = 0,
        batch_size: int = 64,
        eval_batch_size: int | None = None,
        num_workers: int | None = 0,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(
            val_fraction,
            test_fraction,
            folds,
            fold,
            split_seed,
            batch_size,
            eval_batch_size,
            num_workers,
            pin_memory,
            seed,
        )
        base = data_root(root)
        self.name = name
        candidates = [base / "TUDataset" / name / "raw", base / name / "raw"]
        self._raw = next((c for c in candidates if (c / f"{name}_A.txt").is_file()), None)
        if self._raw is None and not download:
            raise MissingFileError(
                f"TU dataset {name} not found: looked for {name}_A.txt in {', '.join(map(str, candidates))}. "
                "Point root (or $ZOO_DATA) at it, or pass download=True."
            )

    @cached_property
    def graphs(self) -> Any:
        """The dataset: copied to the cache and processed by PyG once (one process at a time), then read."""
        from torch_geometric.datasets import TUDataset
        from torch_geometric.transforms import Constant

        raw = self._raw
        root = cache_dir("tu", "downloaded") if raw is None else _cache_root(raw, "tu", self.name)
        with cache_lock(root):  # DDP ranks: one copies and processes, the others wait and read
            if raw is not None:
                _copy_to_cache(raw, root, self.name)
            dataset = TUDataset(str(root), self.name)
        return dataset if dataset.num_features else TUDataset(str(root), self.name, transform=Constant())

    @property
    def in_channels(self) -> int:
        """Node feature size (linked into the task; reading it loads the dataset)."""
        return int(self.graphs.num_features)

    @property
    def num_classes(self) -> int:
        """Number of graph classes (linked into the task)."""
        return int(self.graphs.num_classes)

    def prepare_data(self) -> None:
        """Copy and process the raw files into the cache (once per node, before every rank's ``setup``)."""
        _ = self.graphs
