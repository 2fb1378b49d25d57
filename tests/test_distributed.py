"""Data-parallel pre-training (DistributedDataParallel over gloo on CPU processes).

Each call of ``train_autoencoder_distributed`` spawns fresh interpreters (a few
seconds on a small machine), so the runs are shared through module-scoped
fixtures and the number of calls is kept small.
"""

import copy
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

import skdeepcluster
from skdeepcluster._networks import MLPAutoencoder
from skdeepcluster.training import _distributed, encode_array, make_optimizer, train_autoencoder
from skdeepcluster.training._distributed import resolve_devices, train_autoencoder_distributed
from skdeepcluster.training._inference import to_tensor

from ._trained import check_trained
from .conftest import TRAIN_SEED

pytestmark = pytest.mark.skipif(
    not dist.is_available() or not dist.is_gloo_available(),
    reason="torch.distributed with the gloo backend is not available",
)

TRAIN = dict(epochs=15, batch_size=32)
OPTIM = dict(optimizer="adam", learning_rate=1e-2, weight_decay=0.0)


class FailOnRank1(MLPAutoencoder):
    """Autoencoder whose forward fails on rank 1 only (rank 0 then waits in a collective)."""

    def forward(self, x):
        if dist.is_initialized() and dist.get_rank() == 1:
            raise RuntimeError("deliberate failure on rank 1")
        return super().forward(x)


def _new_module(cls=MLPAutoencoder):
    torch.manual_seed(TRAIN_SEED)
    return cls(8, (32, 16), 3)


@pytest.fixture(scope="module")
def data():
    X, y = make_blobs(n_samples=400, centers=3, n_features=8, random_state=0)
    X = ((X - X.mean(axis=0)) / X.std(axis=0)).astype(np.float32)
    return X[:320], y[:320], X[320:]


@pytest.fixture(scope="module")
def ddp_run(data):
    X, _, X_val = data
    module = _new_module()
    initial = copy.deepcopy(module.state_dict())
    history = train_autoencoder_distributed(
        module, X, X_val=X_val, devices=["cpu", "cpu"], seed=TRAIN_SEED, **OPTIM, **TRAIN
    )
    return module, initial, history


@pytest.fixture(scope="module")
def single_run(data):
    X, _, X_val = data
    module = _new_module()
    history = train_autoencoder(
        module,
        to_tensor(X, torch.device("cpu")),
        X_val=to_tensor(X_val, torch.device("cpu")),
        optimizer=make_optimizer(
            OPTIM["optimizer"], module.parameters(), learning_rate=OPTIM["learning_rate"]
        ),
        generator=torch.Generator().manual_seed(TRAIN_SEED),
        **TRAIN,
    )
    return module, history


def _mse(module, X):
    with torch.no_grad():
        X_t = torch.from_numpy(X)
        return float(torch.nn.functional.mse_loss(module(X_t), X_t))


def _ari(module, X, y):
    codes = encode_array(module, X, device=torch.device("cpu"))
    labels = KMeans(3, n_init=10, random_state=0).fit_predict(codes)
    return adjusted_rand_score(y, labels)


# ------------------------------------------------------------ resolve_devices
def test_resolve_devices_cpu():
    assert resolve_devices(["cpu", "cpu"]) == [torch.device("cpu")] * 2
    assert resolve_devices((torch.device("cpu"),)) == [torch.device("cpu")]


@pytest.mark.parametrize(
    "devices, match",
    [
        ("cpu", "list or tuple"),
        (torch.device("cpu"), "list or tuple"),
        ([], "empty"),
        (["cpu", 0], "string or a torch.device"),
        (["cpu", "gpu"], "not a valid torch device"),
    ],
)
def test_resolve_devices_errors(devices, match):
    with pytest.raises(ValueError, match=match):
        resolve_devices(devices)


@pytest.mark.parametrize(
    "devices, match",
    [
        (["cpu", "cuda:0"], "single type"),
        (["cuda:0", "cuda:0"], "only once"),
        (["mps", "mps"], "CPU and CUDA devices only"),
    ],
)
def test_resolve_devices_errors_without_hardware(monkeypatch, devices, match):
    # Accept any device name, so the checks run on machines without GPUs.
    monkeypatch.setattr(_distributed, "resolve_device", torch.device)
    with pytest.raises(ValueError, match=match):
        resolve_devices(devices)


def test_resolve_devices_unavailable_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_devices(["cuda:0", "cuda:1"])


# ------------------------------------------------- checks before any spawning
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(loss="nope"), ValueError, "Unknown loss"),
        (dict(epochs=-1), ValueError, "epochs"),
        (dict(batch_size=0), ValueError, "batch_size"),
        (dict(generator=None), TypeError, "unexpected keyword"),
        (dict(devices=["cpu"] * 5), ValueError, "fewer than the 5 processes"),
        (dict(timeout=0), ValueError, "timeout"),
    ],
)
def test_invalid_arguments_fail_in_parent(kwargs, error, match):
    params = dict(devices=["cpu", "cpu"], seed=0, **OPTIM, **TRAIN)
    params.update(kwargs)
    start = time.perf_counter()
    with pytest.raises(error, match=match):
        train_autoencoder_distributed(_new_module(), np.zeros((4, 8)), **params)
    assert time.perf_counter() - start < 1.0  # no process was started


# --------------------------------------------------------------- training
def test_ddp_training_runs_and_learns(ddp_run, train_seed):
    module, initial, history = ddp_run
    losses = history["train_loss"]
    assert len(losses) == TRAIN["epochs"]
    assert len(history["val_loss"]) == TRAIN["epochs"]
    assert history["best_epoch"] is not None
    assert all(np.isfinite(losses))
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.0546, max 0.0867, mean 0.0655 ± 0.0092
    check_trained(losses[-1] / losses[0], "<", 0.5)
    # Mostly decreasing: no epoch much worse than the one before.
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.981, max 1.01, mean 0.989 ± 0.0079
    check_trained(max(b / a for a, b in zip(losses, losses[1:], strict=False)), "<", 1.1)
    # The weights were loaded into the module, in place, and are finite.
    state = module.state_dict()
    assert state.keys() == initial.keys()
    assert any(not torch.equal(state[k], initial[k]) for k in state)
    assert all(torch.isfinite(v).all() for v in state.values())
    assert not module.training
    assert next(module.parameters()).device.type == "cpu"


def test_ddp_matches_single_process_quality(data, ddp_run, single_run, train_seed):
    X, y, X_val = data
    ddp_module, _, ddp_history = ddp_run
    single_module, single_history = single_run
    # Same global batch size and epochs: reconstruction of the same order.
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.873, max 1.15, mean 1.01 ± 0.092
    check_trained(_mse(ddp_module, X) / _mse(single_module, X), "<", 1.5)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0.888, max 1.11, mean 1.01 ± 0.076
    check_trained(ddp_history["val_loss"][-1] / single_history["val_loss"][-1], "<", 1.5)
    # And codes that cluster the blobs as well.
    ari_single = _ari(single_module, X, y)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 1, max 1, mean 1 ± 0
    check_trained(ari_single, ">", 0.9)
    # trained, seeds 0-9 x default/COMPATIBLE numerics: min 0, max 0, mean 0 ± 0
    check_trained(_ari(ddp_module, X, y) - ari_single, ">", -0.1)


def test_child_failure_raises_quickly(data):
    X, _, _ = data
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="deliberate failure on rank 1") as excinfo:
        train_autoencoder_distributed(
            _new_module(FailOnRank1),
            X,
            devices=["cpu", "cpu"],
            seed=0,
            timeout=600,
            **OPTIM,
            **TRAIN,
        )
    # The waiting rank 0 is stopped by the parent, not by the 600 s timeout.
    assert time.perf_counter() - start < 60
    assert "process 1" in str(excinfo.value)


def test_single_process_from_unguarded_script_matches_train_autoencoder(tmp_path):
    """A script without a ``__main__`` guard works, and one rank is plain training."""
    script = tmp_path / "train_script.py"
    script.write_text(
        textwrap.dedent(
            """
            import numpy as np
            import torch

            from skdeepcluster._networks import MLPAutoencoder
            from skdeepcluster.training import make_optimizer, train_autoencoder
            from skdeepcluster.training._distributed import train_autoencoder_distributed
            from skdeepcluster.training._inference import to_tensor

            X = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
            torch.manual_seed(0)
            ddp = MLPAutoencoder(8, (16,), 2)
            single = MLPAutoencoder(8, (16,), 2)
            single.load_state_dict(ddp.state_dict())
            # Rank 0 of 1 draws its batches and noise from the first child of
            # SeedSequence(seed), as the second of its two words.
            rank0 = np.random.SeedSequence(3).spawn(1)[0]
            batch_seed = int(rank0.generate_state(2, np.uint64)[1])
            h_ddp = train_autoencoder_distributed(
                ddp, X, devices=["cpu"], optimizer="adam", learning_rate=1e-2, seed=3,
                epochs=4, batch_size=16, noise=0.1,
            )
            h_single = train_autoencoder(
                single, to_tensor(X, torch.device("cpu")), epochs=4, batch_size=16,
                noise=0.1, optimizer=make_optimizer("adam", single.parameters(),
                learning_rate=1e-2), generator=torch.Generator().manual_seed(batch_seed),
            )
            diff = max(
                float((a - b).abs().max())
                for a, b in zip(ddp.state_dict().values(), single.state_dict().values())
            )
            print("RESULT", diff, max(abs(a - b) for a, b in zip(
                h_ddp["train_loss"], h_single["train_loss"])))
            """
        )
    )
    package_root = str(Path(skdeepcluster.__file__).resolve().parent.parent)
    env = dict(os.environ, PYTHONPATH=package_root)
    proc = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT"))
    weight_diff, loss_diff = (float(v) for v in line.split()[1:])
    assert weight_diff < 1e-5
    assert loss_diff < 1e-5


def test_a_failure_names_every_rank_that_raised(tmp_path):
    import pickle
    from types import SimpleNamespace

    from skdeepcluster.training._distributed import _other_failures

    paths = []
    for rank, trace in enumerate(["gloo: connection closed", "deliberate failure on rank 1"]):
        path = tmp_path / f"error{rank}"
        path.write_bytes(pickle.dumps(trace))
        paths.append(str(path))
    context = SimpleNamespace(error_files=[*paths, str(tmp_path / "no-error"), None])
    text = _other_failures(context, reported=0)  # rank 0 reported, rank 1 the cause
    assert "process 1 failed too" in text and "deliberate failure on rank 1" in text
    assert "process 0" not in text and "process 2" not in text
    assert _other_failures(SimpleNamespace(error_files=[paths[0]]), reported=0) == ""
