"""The weight cards zoo ships, as code: a new card is a reviewed diff (``zoo weights publish`` prints one).

Each card's figures were measured on the weights' own file (``zoo evaluate`` on the checkpoint the file was
written from); ``tests/pretrained/test_cards.py`` checks every card's file, checksum, loading and parameter
count, and reproduces its headline metric. The first card of a model is its default (``pretrained=True``).
"""

from __future__ import annotations

from zoo.pretrained.card import CardMetric, WeightCard

__all__ = ["CARDS"]

CARDS: tuple[WeightCard, ...] = (
    WeightCard(
        model="speedrun_net_tiny",
        tag="cifar10",
        filename="speedrun_net_tiny.cifar10.safetensors",
        sha256="b3ea396bd1fff87bb332bfcabd4182378879d3eaa26d5b32c567c1d361710606",
        size_bytes=1179248,
        urls=(
            "https://github.com/lightning-zoo/zoo/releases/download/weights-v1/speedrun_net_tiny.cifar10.safetensors",
        ),
        model_kwargs={"in_chans": 3},
        signature={
            "task_kind": "image_classification",
            "inputs": [
                {
                    "name": "images",
                    "shape": ["batch", 3, 32, 32],
                    "dtype": "float32",
                    "description": "normalised images",
                    "max": {},
                }
            ],
            "outputs": [
                {
                    "name": "logits",
                    "shape": ["batch", 10],
                    "dtype": "float32",
                    "description": "class scores; their softmax is the probabilities",
                    "max": {},
                }
            ],
            "preprocessing": {
                "kind": "image",
                "image_size": 32,
                "in_chans": 3,
                "mean": [0.4914, 0.4822, 0.4465],
                "std": [0.247, 0.2435, 0.2616],
            },
            "labels": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
            "sizes": {
                "example": {"batch": 2},
                "check": [{"batch": 1}, {"batch": 5}],
                "limits": {},
                "limits_reason": "",
            },
        },
        metrics=(
            CardMetric(
                name="acc1",
                value=0.8511,
                dataset="CIFAR-10 test set (the JPEG copy, quality 75, zoo's data; the original PNG set scores differ)",
                split="test, 10,000 examples",
                interval=(0.844, 0.85771),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=True,
            ),
            CardMetric(
                name="acc5",
                value=0.9925,
                dataset="CIFAR-10 test set (the JPEG copy, quality 75, zoo's data; the original PNG set scores differ)",
                split="test, 10,000 examples",
                interval=(0.990698, 0.9941),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=True,
            ),
            CardMetric(
                name="ece",
                value=0.177553,
                dataset="CIFAR-10 test set (the JPEG copy, quality 75, zoo's data; the original PNG set scores differ)",
                split="test, 10,000 examples",
                interval=(0.170853, 0.183518),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=False,
            ),
            CardMetric(
                name="nll",
                value=0.603046,
                dataset="CIFAR-10 test set (the JPEG copy, quality 75, zoo's data; the original PNG set scores differ)",
                split="test, 10,000 examples",
                interval=(0.590994, 0.616361),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=False,
            ),
        ),
        num_params=292944,
        flops=43354624,
        weights="ema",
        recipe="recipes/cifar10/speedrun_net_tiny.yaml",
        recipe_sha256="6feacda7bd5616d49b79a3945da8b6edad09060248c80a14affa5eddf6d8da66",
        commit="4ba9cc87f36933e6b4b45b0f25cdffb472a6b3b8",
        command="zoo fit --config recipes/cifar10/speedrun_net_tiny.yaml",
        training=(
            "12 epochs on the full 45,000-image training split, EMA weights; 668 s on a quiet 2-core x86-64 CPU (this "
            "run: 908 s while other work shared the cores)"
        ),
        leaderboard_rows=(),
        data_license="CIFAR-10 (Krizhevsky, 2009): no formal license; free for research use, cite the report",
        notes=(
            "The small quickstart CNN trained on all of CIFAR-10. These weights are also the feature network of zoo's "
            "offline FID (fid_zoo_classifier): a rerun of the recipe reproduced the earlier feature network bit for bit."
        ),
    ),
    WeightCard(
        model="gcn",
        tag="cora",
        filename="gcn.cora.safetensors",
        sha256="33af6300853586da43b37726bb45ad3decc203cf7752e682cfa2e75389016931",
        size_bytes=92564,
        urls=("https://github.com/lightning-zoo/zoo/releases/download/weights-v1/gcn.cora.safetensors",),
        model_kwargs={},
        signature={
            "task_kind": "node_classification",
            "inputs": [
                {"name": "x", "shape": ["nodes", 1433], "dtype": "float32", "description": "node features", "max": {}},
                {
                    "name": "edge_index",
                    "shape": [2, "edges"],
                    "dtype": "int64",
                    "description": "source and target node of each edge",
                    "max": {},
                },
            ],
            "outputs": [
                {
                    "name": "logits",
                    "shape": ["nodes", 7],
                    "dtype": "float32",
                    "description": "class scores; their softmax is the probabilities",
                    "max": {},
                }
            ],
            "preprocessing": {"kind": "graph", "in_channels": 1433},
            "labels": None,
            "sizes": {
                "example": {"nodes": 12, "edges": 40},
                "check": [{"nodes": 7, "edges": 15}, {"nodes": 30, "edges": 120}],
                "limits": {},
                "limits_reason": "",
            },
        },
        metrics=(
            CardMetric(
                name="acc1",
                value=0.825,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.803, 0.848),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=True,
            ),
            CardMetric(
                name="acc5",
                value=0.99,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.983, 0.996),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=True,
            ),
            CardMetric(
                name="ece",
                value=0.265743,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.24355, 0.287049),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=False,
            ),
            CardMetric(
                name="nll",
                value=0.790209,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.752879, 0.826805),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=False,
            ),
        ),
        num_params=23063,
        flops=None,
        weights="trained",
        recipe="recipes/cora/gcn.yaml",
        recipe_sha256="30c6641ed0d684c362205aa5e3cfc30c27f6af783368bad85c8379d187111f18",
        commit="6aee3131a8b0995806ac8b6e79eaf51956b6ecf4",
        command="zoo fit --config recipes/cora/gcn.yaml",
        training=(
            "200 epochs of full-batch training, weights of epoch 190 (best validation loss); 13 s wall for the whole run "
            "on a 2-core x86-64 CPU"
        ),
        leaderboard_rows=("cora/gcn/gpu/seed0@3669bead", "cora/gcn/gpu/seed1@3669bead", "cora/gcn/gpu/seed2@3669bead"),
        data_license="Planetoid citation graphs (Sen et al., 2008; Yang et al., 2016): research use, cite them",
        notes="",
    ),
    WeightCard(
        model="gat",
        tag="cora",
        filename="gat.cora.safetensors",
        sha256="6a24b50b7f4064f299e8841fb73c6f7556fc73e604d7f4a939b9c965e3324054",
        size_bytes=370124,
        urls=("https://github.com/lightning-zoo/zoo/releases/download/weights-v1/gat.cora.safetensors",),
        model_kwargs={},
        signature={
            "task_kind": "node_classification",
            "inputs": [
                {"name": "x", "shape": ["nodes", 1433], "dtype": "float32", "description": "node features", "max": {}},
                {
                    "name": "edge_index",
                    "shape": [2, "edges"],
                    "dtype": "int64",
                    "description": "source and target node of each edge",
                    "max": {},
                },
            ],
            "outputs": [
                {
                    "name": "logits",
                    "shape": ["nodes", 7],
                    "dtype": "float32",
                    "description": "class scores; their softmax is the probabilities",
                    "max": {},
                }
            ],
            "preprocessing": {"kind": "graph", "in_channels": 1433},
            "labels": None,
            "sizes": {
                "example": {"nodes": 12, "edges": 40},
                "check": [{"nodes": 7, "edges": 15}, {"nodes": 30, "edges": 120}],
                "limits": {},
                "limits_reason": "",
            },
        },
        metrics=(
            CardMetric(
                name="acc1",
                value=0.827,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.806, 0.85),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=True,
            ),
            CardMetric(
                name="acc5",
                value=0.996,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.992, 0.999),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=True,
            ),
            CardMetric(
                name="ece",
                value=0.21699,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.197401, 0.23827),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=False,
            ),
            CardMetric(
                name="nll",
                value=0.709902,
                dataset="Cora (Planetoid public split)",
                split="test, 1,000 examples",
                interval=(0.671041, 0.746698),
                interval_method="bootstrap over examples, 1000 resamples",
                higher_is_better=False,
            ),
        ),
        num_params=92373,
        flops=None,
        weights="trained",
        recipe="recipes/cora/gat.yaml",
        recipe_sha256="2a06b677619b19c8f2ef1100317e11605ab96e1f3a1703ae2efbaf8a87fe7342",
        commit="6aee3131a8b0995806ac8b6e79eaf51956b6ecf4",
        command="zoo fit --config recipes/cora/gat.yaml",
        training=(
            "300 epochs of full-batch training, weights of epoch 281 (best validation loss); 17 s wall for the whole run "
            "on a 2-core x86-64 CPU"
        ),
        leaderboard_rows=("cora/gat/gpu/seed0@3669bead", "cora/gat/gpu/seed1@3669bead", "cora/gat/gpu/seed2@3669bead"),
        data_license="Planetoid citation graphs (Sen et al., 2008; Yang et al., 2016): research use, cite them",
        notes="",
    ),
    WeightCard(
        model="gpt_nano",
        tag="shakespeare",
        filename="gpt_nano.shakespeare.safetensors",
        sha256="9bb97dd71db1727e044058c6ded804e18cf80288a4906e1eadb7a5d67ac36f15",
        size_bytes=3243984,
        urls=("https://github.com/lightning-zoo/zoo/releases/download/weights-v1/gpt_nano.shakespeare.safetensors",),
        model_kwargs={"dropout": 0.0},
        signature={
            "task_kind": "language_modeling",
            "inputs": [
                {
                    "name": "input_ids",
                    "shape": ["batch", "tokens"],
                    "dtype": "int64",
                    "description": "token ids in [0, 65)",
                    "max": {"tokens": 64},
                }
            ],
            "outputs": [
                {
                    "name": "logits",
                    "shape": ["batch", "tokens", 65],
                    "dtype": "float32",
                    "description": "next-token scores per position",
                    "max": {},
                }
            ],
            "preprocessing": {
                "kind": "tokens",
                "tokenizer": {
                    "kind": "zoo",
                    "config": {
                        "type": "char",
                        "vocab": "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                    },
                },
                "block_size": 64,
            },
            "labels": None,
            "sizes": {
                "example": {"batch": 2, "tokens": 16},
                "check": [{"batch": 1, "tokens": 5}, {"batch": 3, "tokens": 64}],
                "limits": {},
                "limits_reason": "",
            },
        },
        metrics=(
            CardMetric(
                name="loss",
                value=1.890988,
                dataset="Tiny Shakespeare, characters (last 10% of the text)",
                split="val, 111,424 tokens in 1,741 blocks",
                interval=(1.880318, 1.901107),
                interval_method="bootstrap over blocks, 1000 resamples",
                higher_is_better=False,
            ),
            CardMetric(
                name="perplexity",
                value=6.625912,
                dataset="Tiny Shakespeare, characters (last 10% of the text)",
                split="val, 111,424 tokens in 1,741 blocks",
                interval=(6.555592, 6.693297),
                interval_method="bootstrap over blocks, 1000 resamples",
                higher_is_better=False,
            ),
            CardMetric(
                name="bits_per_token",
                value=2.728119,
                dataset="Tiny Shakespeare, characters (last 10% of the text)",
                split="val, 111,424 tokens in 1,741 blocks",
                interval=(2.712726, 2.742717),
                interval_method="bootstrap over blocks, 1000 resamples",
                higher_is_better=False,
            ),
        ),
        num_params=809856,
        flops=101728256,
        weights="trained",
        recipe="recipes/shakespeare/gpt_nano.yaml",
        recipe_sha256="331851b26a651d2a58741ed19f08b859b855f5fd561001a82c316f11122b5ce6",
        commit="4ba9cc87f36933e6b4b45b0f25cdffb472a6b3b8",
        command="zoo fit --config recipes/shakespeare/gpt_nano.yaml",
        training="2,000 steps of 12 x 64 characters (about 1.5M tokens); 95 s wall for the whole run on a 2-core x86-64 CPU",
        leaderboard_rows=(
            "shakespeare/gpt_nano/cpu/seed0@eeaa5b08",
            "shakespeare/gpt_nano/cpu/seed1@eeaa5b08",
            "shakespeare/gpt_nano/cpu/seed2@dd5d72c8",
        ),
        data_license="Tiny Shakespeare (Karpathy's char-rnn): Shakespeare's works, public domain",
        notes=(
            "A small model on a small budget: it writes Shakespeare-like character soup, not verse. gpt_mini "
            "(recipes/shakespeare/gpt_mini.yaml) reaches val loss 1.46 on a GPU."
        ),
    ),
    WeightCard(
        model="unet_tiny",
        tag="shapes",
        filename="unet_tiny.shapes.safetensors",
        sha256="39d872181a9753dfbea0123d423a936bd0804d0005f722edf5d78bcc3646f5a1",
        size_bytes=4477292,
        urls=("https://github.com/lightning-zoo/zoo/releases/download/weights-v1/unet_tiny.shapes.safetensors",),
        model_kwargs={"image_size": 16, "num_classes": 3},
        signature={
            "task_kind": "diffusion",
            "inputs": [
                {
                    "name": "noisy_images",
                    "shape": ["batch", 3, 16, 16],
                    "dtype": "float32",
                    "description": "images in [-1, 1] with noise",
                    "max": {},
                },
                {
                    "name": "timesteps",
                    "shape": ["batch"],
                    "dtype": "int64",
                    "description": "noise level, in [0, 1000)",
                    "max": {},
                },
                {
                    "name": "class_labels",
                    "shape": ["batch"],
                    "dtype": "int64",
                    "description": "class of each image; 3 is no class",
                    "max": {},
                },
            ],
            "outputs": [
                {
                    "name": "prediction",
                    "shape": ["batch", 3, 16, 16],
                    "dtype": "float32",
                    "description": "predicted epsilon",
                    "max": {},
                }
            ],
            "preprocessing": {
                "kind": "noise",
                "image_size": 16,
                "in_chans": 3,
                "noise_schedule": {
                    "num_train_timesteps": 1000,
                    "beta_start": 0.0001,
                    "beta_end": 0.02,
                    "beta_schedule": "linear",
                    "trained_betas": None,
                    "variance_type": "fixed_small",
                    "clip_sample": True,
                    "prediction_type": "epsilon",
                    "thresholding": False,
                    "dynamic_thresholding_ratio": 0.995,
                    "clip_sample_range": 1.0,
                    "sample_max_value": 1.0,
                    "timestep_spacing": "leading",
                    "steps_offset": 0,
                    "rescale_betas_zero_snr": False,
                    "_use_default_values": [
                        "variance_type",
                        "timestep_spacing",
                        "dynamic_thresholding_ratio",
                        "trained_betas",
                        "beta_start",
                        "clip_sample_range",
                        "sample_max_value",
                        "steps_offset",
                        "thresholding",
                        "rescale_betas_zero_snr",
                        "beta_end",
                    ],
                },
                "mean": [0.5, 0.5, 0.5],
                "std": [0.5, 0.5, 0.5],
                "output": "prediction in the [-1, 1] image space of the noise schedule below",
            },
            "labels": ["disc", "square", "triangle"],
            "sizes": {
                "example": {"batch": 2},
                "check": [{"batch": 1}, {"batch": 3}],
                "limits": {"batch": 63},
                "limits_reason": "diffusers' Upsample2D calls .contiguous() when the batch is 64 or more; "
                "torch.export must pick one side of that branch. Sample in batches of up to 63 "
                "with the ExportedProgram (ONNX and TorchScript take any batch).",
            },
        },
        metrics=(
            CardMetric(
                name="shape_accuracy",
                value=0.9833,
                dataset="shapes (zoo.data.ShapesDataModule: discs, squares, triangles)",
                split="300 samples, 100 per class (seed 0, DDIM 50 steps), classified by the majority vote of 5 speedrun_net_tiny judges trained on real shapes (seeds 0-4, test accuracy 99.0-99.9%; alone they score 96.0-98.3%); benchmarks/shapes_sample_accuracy.py",
                interval=(0.9615, 0.9928),
                interval_method="Wilson score interval over the 300 samples (judge-to-judge spread not included)",
                higher_is_better=True,
            ),
        ),
        num_params=1114467,
        flops=124026880,
        weights="ema",
        recipe="recipes/shapes/ddpm_tiny.yaml",
        recipe_sha256="cd4c69f3681ff24441e1cb34fd5b09027c5246b318456500016b3ad30f158f8b",
        commit="4ba9cc87f36933e6b4b45b0f25cdffb472a6b3b8",
        command="zoo fit --config recipes/shapes/ddpm_tiny.yaml",
        training=(
            "15 epochs (2,340 steps of 64 images), EMA weights; 386 s on a quiet 2-core x86-64 CPU (this run: 625 s while "
            "other work shared the cores)"
        ),
        leaderboard_rows=(),
        data_license="shapes drawn by zoo at run time: no third-party data, Apache-2.0 like zoo",
        notes=(
            "Class-conditional: class_label 0 disc, 1 square, 2 triangle. Sample with zoo sample or DiffusionModel(..., "
            "pretrained='shapes')."
        ),
    ),
)
