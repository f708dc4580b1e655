"""The contract every task keeps, checked on every task (in the style of diffusers' ``ModelTesterMixin``).

A case supplies a tiny task and a batch in its data module's format; it inherits the checks: a real Lightning
save and a load through ``zoo.checkpoints`` give back the same network, signature and data facts; two runs under
one seed train to the same weights; ``predict_step`` returns what the signature says; the signature counts the
batch's samples and the export built from it verifies. A task without a case here fails the meta-test below.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

import zoo.tasks
from export.formats import write
from export.specs import export_spec
from export.verify import verify_artifact
from zoo.checkpoints import load_checkpoint
from zoo.data.facts import DataFacts
from zoo.data.tokenizers import CharTokenizer
from zoo.tasks import (
    DiffusionModel,
    GraphClassifier,
    ImageClassifier,
    LanguageModel,
    NodeClassifier,
    TextClassifier,
    ZooTask,
)

CLASSES = ("ant", "bee", "cat")


class TaskContract:
    """What a case supplies; every ``test_*`` method below runs for each case."""

    task_class: ClassVar[type[ZooTask]]
    facts: ClassVar[DataFacts] = DataFacts()
    sizes: ClassVar[dict[str, int]]  # the symbolic sizes of the case's batch
    samples: ClassVar[int]  # the training samples in it

    def make_task(self) -> ZooTask:
        raise NotImplementedError

    def make_batch(self) -> Any:
        raise NotImplementedError

    def _fit(self, tmp_path: Path, steps: int = 2) -> tuple[ZooTask, L.Trainer]:
        L.seed_everything(0, verbose=False)
        task = self.make_task()
        task.adopt_data_facts(self.facts)
        loader = DataLoader([self.make_batch()], batch_size=None, collate_fn=lambda batch: batch)
        trainer = L.Trainer(
            max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        )  # fmt: skip
        trainer.fit(task, train_dataloaders=loader)
        return task, trainer

    def test_save_and_load_through_zoo_checkpoints(self, tmp_path: Path) -> None:
        task, trainer = self._fit(tmp_path)
        trainer.save_checkpoint(tmp_path / "task.ckpt")
        loaded = load_checkpoint(tmp_path / "task.ckpt", task_class=f"zoo.tasks.{self.task_class.__name__}")
        assert type(loaded.task) is self.task_class and loaded.metadata.data == self.facts
        assert loaded.task.inference_signature().to_dict() == task.inference_signature().to_dict()
        inputs = task.example_inputs(task.inference_signature().example_sizes, torch.Generator().manual_seed(1))
        with torch.no_grad():
            expected = task.inference_module().eval()(*inputs)
            torch.testing.assert_close(loaded.task.inference_module()(*inputs), expected)

    def test_one_seed_trains_to_the_same_weights(self, tmp_path: Path) -> None:
        first, _ = self._fit(tmp_path / "a")
        second, _ = self._fit(tmp_path / "b")
        for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
            assert torch.equal(a, b), name

    def test_predict_step_gives_what_the_signature_says(self) -> None:
        torch.manual_seed(0)
        task = self.make_task().eval()
        signature = task.inference_signature()
        assert signature.task == task.registry_task and signature.check_sizes and signature.example_sizes
        with torch.no_grad():
            output = task.predict_step(self.make_batch(), 0)
        spec = signature.outputs[0]
        assert tuple(output.shape) == spec.resolve(self.sizes)
        assert str(output.dtype).removeprefix("torch.") == spec.dtype

    def test_the_example_input_array_runs_through_forward(self) -> None:
        """Lightning's model summary feeds it to the task; it must give the signature's output shape."""
        task = self.make_task().eval()
        signature = task.inference_signature()
        with torch.no_grad():
            output = task(*task.example_input_array)
        assert tuple(output.shape) == signature.outputs[0].resolve(signature.example_sizes)

    def test_the_task_counts_its_samples_and_flops(self) -> None:
        task = self.make_task()
        assert int(task.count_samples(self.make_batch())) == self.samples
        flops = task.training_flops(self.make_batch())
        assert flops is None or flops > 0

    def test_the_export_built_from_the_signature_verifies(self, tmp_path: Path) -> None:
        torch.manual_seed(0)
        task = self.make_task()
        task.adopt_data_facts(self.facts)
        spec = export_spec(task)
        for sizes in (spec.export_sizes, *spec.check_sizes):  # the example inputs have the declared shapes
            made = spec.make_inputs(sizes)
            for tensor, declared in zip(made, spec.inputs, strict=True):
                assert tuple(tensor.shape) == declared.resolve({**sizes, **_free(tensor)})
        write("exported_program", spec, {"model_name": task.backbone_name}, tmp_path / "task.pt2")
        result = verify_artifact("exported_program", tmp_path / "task.pt2", spec)
        assert result.passed, result.message


def _free(tensor: torch.Tensor) -> dict[str, int]:
    """Sizes an example may choose itself (edges kept inside graphs): read off the tensor."""
    return {"edges": tensor.shape[-1]} if tensor.ndim == 2 and tensor.shape[0] == 2 else {}


class TestImageClassifier(TaskContract):
    task_class = ImageClassifier
    facts = DataFacts(3, CLASSES, 3, 32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    sizes, samples = {"batch": 4}, 4

    def make_task(self) -> ZooTask:
        return ImageClassifier(
            "speedrun_net_tiny", num_classes=3, backbone_kwargs={"widths": [8, 8, 8], "stem_width": 8}
        )

    def make_batch(self) -> Any:
        generator = torch.Generator().manual_seed(0)
        return torch.randn(4, 3, 32, 32, generator=generator), torch.tensor([0, 1, 2, 1])


class TestTextClassifier(TaskContract):
    task_class = TextClassifier
    facts = DataFacts(num_classes=3, class_names=CLASSES, vocab_size=50, max_length=16)
    sizes, samples = {"batch": 4, "tokens": 10}, 4
    tiny = {"num_hidden_layers": 1, "hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2}

    def make_task(self) -> ZooTask:
        return TextClassifier("bert_tiny", num_classes=3, vocab_size=50, backbone_kwargs=self.tiny)

    def make_batch(self) -> Any:
        ids = torch.randint(5, 50, (4, 10), generator=torch.Generator().manual_seed(0))
        mask = torch.ones_like(ids)
        mask[1, 6:] = 0
        return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([0, 1, 2, 0])}


class TestLanguageModel(TaskContract):
    task_class = LanguageModel
    tokenizer = CharTokenizer("abcdefghij ,.!?")
    facts = DataFacts(vocab_size=tokenizer.vocab_size, block_size=16, tokenizer=tokenizer)
    sizes, samples = {"batch": 4, "tokens": 16}, 4

    def make_task(self) -> ZooTask:
        tiny = {"n_layer": 1, "n_embd": 16, "n_head": 2, "dropout": 0.0}
        return LanguageModel("gpt_nano", vocab_size=self.tokenizer.vocab_size, block_size=16, backbone_kwargs=tiny)

    def make_batch(self) -> Any:
        tokens = torch.randint(0, self.tokenizer.vocab_size, (4, 17), generator=torch.Generator().manual_seed(0))
        return tokens[:, :-1], tokens[:, 1:]


def _graph(nodes: int, features: int, generator: torch.Generator) -> Any:
    from torch_geometric.data import Data

    edges = torch.randint(0, nodes, (2, 3 * nodes), generator=generator)
    return Data(x=torch.randn(nodes, features, generator=generator), edge_index=edges,
                y=torch.randint(0, 3, (nodes,), generator=generator))  # fmt: skip


class TestNodeClassifier(TaskContract):
    task_class = NodeClassifier
    facts = DataFacts(num_classes=3, in_channels=6)
    sizes, samples = {"nodes": 10}, 4

    def make_task(self) -> ZooTask:
        return NodeClassifier("gcn", in_channels=6, num_classes=3, backbone_kwargs={"hidden_channels": 8})

    def make_batch(self) -> Any:
        graph = _graph(10, 6, torch.Generator().manual_seed(0))
        graph.train_mask = torch.arange(10) < 4
        graph.val_mask = (torch.arange(10) >= 4) & (torch.arange(10) < 7)
        graph.test_mask = torch.arange(10) >= 7
        return graph


class TestGraphClassifier(TaskContract):
    task_class = GraphClassifier
    facts = DataFacts(num_classes=3, class_names=CLASSES, in_channels=6)
    sizes, samples = {"graphs": 3}, 3

    def make_task(self) -> ZooTask:
        return GraphClassifier("gin", in_channels=6, num_classes=3, backbone_kwargs={"hidden_channels": 8})

    def make_batch(self) -> Any:
        from torch_geometric.data import Batch

        generator = torch.Generator().manual_seed(0)
        graphs = [_graph(n, 6, generator) for n in (5, 7, 4)]
        for index, graph in enumerate(graphs):
            graph.y = torch.tensor(index)
        return Batch.from_data_list(graphs)


class TestDiffusionModel(TaskContract):
    task_class = DiffusionModel
    facts = DataFacts(3, CLASSES, 3, 16, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    sizes, samples = {"batch": 2}, 2

    def make_task(self) -> ZooTask:
        tiny = {"block_out_channels": [8, 8, 8], "norm_num_groups": 4, "attention_head_dim": 4}
        return DiffusionModel(
            "unet_tiny", image_size=16, num_classes=3, conditional=True, sample_steps=2, sample_every_n_epochs=0,
            mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), backbone_kwargs=tiny,
        )  # fmt: skip

    def make_batch(self) -> Any:
        return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1, torch.tensor([0, 2])


def test_every_task_has_a_contract_case() -> None:
    tasks = {
        cls
        for cls in (getattr(zoo.tasks, name) for name in zoo.tasks.__all__)
        if inspect.isclass(cls) and issubclass(cls, ZooTask) and hasattr(cls, "registry_task")
    }
    covered = {case.task_class for case in TaskContract.__subclasses__()}
    assert tasks - covered == set(), f"add a TaskContract case for {sorted(c.__name__ for c in tasks - covered)}"


def test_every_task_declares_the_contract() -> None:
    for case in TaskContract.__subclasses__():
        task = case().make_task()
        assert isinstance(task, ZooTask) and task.default_monitor[1] in ("min", "max")
        assert task.registry_task in zoo.model_info(task.backbone_name).tasks


@pytest.mark.parametrize("kwargs", [{"backbone_kwargs": {"widths": [4, 4, 4]}}, {"layer_decay": 0.5}])
def test_the_base_refuses_what_a_module_backbone_cannot_take(kwargs: dict[str, Any]) -> None:
    module = zoo.create_model("speedrun_net_tiny", num_classes=3)
    message = "backbone_kwargs apply to a backbone given by name" if "backbone_kwargs" in kwargs else "group_matcher"
    with pytest.raises(ValueError, match=message):
        ImageClassifier(module, **kwargs)
