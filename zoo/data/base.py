"""What every zoo data module shares: loader settings and training loaders that resume exactly."""

from __future__ import annotations

import atexit
import multiprocessing
import os
import signal
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from typing_extensions import override

from zoo.data.facts import DataFacts
from zoo.data.fingerprint import content_of, fingerprint
from zoo.data.sampling import ResumableDataLoader, ResumableSampler
from zoo.errors import ConfigError, UsageError

__all__ = ["ZooDataModule"]


def _kill_daemonic_children() -> None:
    """At exit, kill the daemonic children left (loader workers) instead of letting multiprocessing stop them.

    multiprocessing's own exit handler stops daemonic children with SIGTERM and then joins them; loader workers
    ignore SIGTERM (below), so after a run that ended by an exception, with its loaders' workers never shut
    down, the join would wait forever. Daemonic children are killed at exit by design; this only makes it stick.
    """
    children = [child for child in multiprocessing.active_children() if child.daemon]
    if children and hasattr(signal, "SIGCHLD"):  # torch's handler would report each death as a worker failure
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    for child in children:
        child.kill()


atexit.register(_kill_daemonic_children)  # runs before multiprocessing's handler, registered earlier


def _leave_sigterm_to_the_trainer(worker_id: int) -> None:
    """Loader workers ignore SIGTERM; the training process saves a checkpoint and then stops them.

    Schedulers (and ``timeout``, ``kill -- -PGID``) send SIGTERM to every process of a job. A worker that died
    of it would make the training process raise "DataLoader worker is killed" in the middle of writing its
    preemption checkpoint.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


SAMPLERS = ("random", "balanced")


def check_sampler(sampler: str) -> Literal["random", "balanced"]:
    """``sampler``, checked: ``random`` (a shuffled epoch) or ``balanced`` (classes drawn about equally often).

    Raises:
        ConfigError: Naming the value and the choices.
    """
    if sampler not in SAMPLERS:
        raise ConfigError(f"sampler {sampler!r}: choose one of {', '.join(SAMPLERS)}")
    return sampler  # type: ignore[return-value]


class ZooDataModule(L.LightningDataModule):
    """Base of the zoo data modules: subclasses fill ``train_set``, ``val_set`` and ``test_set`` in ``setup``.

    The training loader resumes mid-epoch exactly (see :mod:`zoo.data.sampling`): a run restored from a
    checkpoint sees the same remaining samples, with the same augmentation, as an uninterrupted one.
    Training datasets receive ``(epoch, index)`` keys; evaluation datasets plain indices.

    Args:
        batch_size: Training batch size per device.
        eval_batch_size: Validation/test batch size per device; defaults to twice ``batch_size``.
        num_workers: Loader worker processes per device; ``None`` picks one fewer than the CPU cores
            available to each device (at most 8).
        pin_memory: Page-locked host batches; ``None`` means "when CUDA is available".
        seed: Seed of the training order and augmentation; ``None`` takes the run's seed (``seed_everything``,
            via ``PL_GLOBAL_SEED``), else 0. Every rank must use the same one.
    """

    dataset: ClassVar[str | None] = None
    """The short name of the one dataset this module reads, if it reads one (see :meth:`dataset_name`)."""
    data_license: ClassVar[str] = ""
    """What the data may be used for, as its source states it; weight cards of models trained on it carry it
    (empty: the user's own data, whose license is theirs to state)."""

    def __init__(
        self,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int | None = None,
        pin_memory: bool | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
        if num_workers is not None and num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0, got {num_workers}")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or 2 * batch_size
        self.num_workers = num_workers
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self._seed = seed
        # Subclasses whose samples are not tensors of one shape (e.g. texts of different lengths) set this.
        self.collate_fn: Callable[[list[Any]], Any] | None = None
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None
        self._fingerprint: dict[str, Any] | None = None
        # "balanced" (set by the modules that take a `sampler` argument) draws classes about uniformly.
        self.sampler: Literal["random", "balanced"] = "random"

    @property
    def seed(self) -> int:
        """The seed of the training order and augmentation (see ``seed`` above)."""
        return self._seed if self._seed is not None else int(os.environ.get("PL_GLOBAL_SEED", 0))

    @classmethod
    def dataset_name(cls, init_args: Mapping[str, Any]) -> str | None:
        """The short name of the dataset that these ``__init__`` arguments select (``cifar10``, ``pubmed``).

        Answered from the arguments alone, before the module exists, so that ``zoo fit`` can file a recipe run
        on other data under that data's name. ``None``: the module does not say (no run is renamed). A module
        of one dataset sets :attr:`dataset`; one that reads several by name overrides this.
        """
        return cls.dataset

    @classmethod
    def license_of(cls, init_args: Mapping[str, Any]) -> str:
        """The license of the data these ``__init__`` arguments select, from the arguments alone.

        Weight cards of models trained on the data carry it (``zoo weights publish`` reads a run's recorded
        arguments). ``""``: the module cannot say (the user's own files). A module of one dataset sets
        :attr:`data_license`; one whose data depends on its arguments overrides this.
        """
        return cls.data_license

    @property
    def data_facts(self) -> DataFacts:
        """What the data tells the model and export: the attributes named like :class:`DataFacts` fields.

        A subclass declares a fact by having the attribute (``num_classes``, ``class_names``, ``mean``, ...,
        ``tokenizer``); one that costs I/O to know is a lazy property, read when the CLI links it into the task
        (not when the module is created).
        """
        return DataFacts.from_attributes(self)

    def fingerprint(self) -> dict[str, Any]:
        """What this module read, once set up: a content hash, split sizes, class counts, pixel statistics.

        See :mod:`zoo.data.fingerprint`. The default describes ``train_set``, ``val_set`` and ``test_set`` through
        their ``content()`` (zoo's datasets) or their type (subsets, image folders, graph lists); a module that
        holds its data otherwise overrides this. Computed once and kept: ``zoo fit`` writes it to ``data.json``,
        every checkpoint and the tracker.
        """
        if self._fingerprint is None:
            splits = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
            self._fingerprint = fingerprint(
                {name: content_of(data) for name, data in splits.items() if data is not None},
                dataset=self.dataset_name(vars(self)) or type(self).__name__,
                sizes={name: len(data) for name, data in splits.items() if hasattr(data, "__len__")},
            )
        return self._fingerprint

    @property
    def has_test_data(self) -> bool:
        """Whether the data has a test split (``zoo fit`` tests after training only then)."""
        return self.test_set is not None

    def _workers(self) -> int:
        if self.num_workers is not None:
            return self.num_workers
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        devices = self.trainer.num_devices if self.trainer is not None else 1
        return max(0, min(8, cpus // max(devices, 1) - 1))

    def _loader(self, dataset: Dataset | None, stage: str, train: bool) -> DataLoader:
        if dataset is None:
            raise UsageError(f"{type(self).__name__}: no {stage} data (no such split, or setup() has not run)")
        workers = self._workers()
        settings = {
            "num_workers": workers,
            "pin_memory": self.pin_memory,
            "persistent_workers": workers > 0,
            # A private generator: creating an iterator then leaves the global random state alone.
            "generator": torch.Generator().manual_seed(self.seed),
            "worker_init_fn": _leave_sigterm_to_the_trainer if workers > 0 else None,
            "collate_fn": self.collate_fn,
        }
        if not train:
            return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, **settings)
        trainer = self.trainer
        sampler = ResumableSampler(
            dataset,
            num_replicas=trainer.world_size if trainer is not None else 1,
            rank=trainer.global_rank if trainer is not None else 0,
            seed=self.seed,
            weights=self._balanced_weights(dataset) if self.sampler == "balanced" else None,
        )
        return ResumableDataLoader(
            dataset,
            sampler=sampler,
            progress=self._training_progress,
            batch_size=self.batch_size,
            drop_last=len(sampler) > self.batch_size,
            **settings,
        )

    def _balanced_weights(self, dataset: Dataset) -> list[float]:
        """``1 / count of its class`` per training sample, so each class is drawn about equally often.

        Raises:
            ConfigError: When the training split does not report its labels.
        """
        content = content_of(dataset)
        if content is None or content.labels is None:
            raise ConfigError(
                f"sampler: balanced needs the training split's labels, which {type(dataset).__name__} does not report"
            )
        labels = np.asarray(content.labels, dtype=np.int64)
        counts = np.bincount(labels)
        return (1.0 / counts[labels]).tolist()

    def _training_progress(self) -> tuple[int, int]:
        """``(epoch, batches trained in it)`` from the trainer's loop, for the loader's checkpoint state."""
        loop = self.trainer.fit_loop
        return loop.epoch_progress.current.processed, loop.epoch_loop.batch_progress.current.processed

    @override
    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, "train", train=True)

    @override
    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, "validation", train=False)

    @override
    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "test", train=False)

    @override
    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, "predict", train=False)
