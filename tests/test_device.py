"""--device auto|cpu|cuda and `charrnn info --devices`, without a GPU.

cuda_status is monkeypatched where a test needs a fixed answer, so the messages are the same on
every machine; the CUDA paths themselves run in numba-cuda's simulator (tests/test_cuda_sim.py).
"""

import json
import re

import pytest
from typer.testing import CliRunner

import charrnn.cli
from charrnn import cuda_probe
from charrnn.checkpoint import load_checkpoint
from charrnn.device import describe_devices, resolve_device
from charrnn.errors import UsageError

NO_DRIVER = (False, "no CUDA driver found")
runner = CliRunner(env={"FORCE_COLOR": None, "TTY_COMPATIBLE": None, "TTY_INTERACTIVE": None, "COLUMNS": "200"})
CORPUS = "the cat sat on the mat. " * 40
TINY = ["--hidden", "8", "--seq", "4", "--batch", "2", "--steps", "3", "--eval-every", "2", "-q"]


def cli(*args, env=None):
    result = runner.invoke(charrnn.cli.app, [str(a) for a in args], env=env)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.stderr
    return result


def assert_error(result, code, message):
    assert result.stderr == f"charrnn: error: {message}\n"
    assert result.exit_code == code and result.stdout == ""


@pytest.fixture
def cuda_says(monkeypatch):
    """cuda_says(usable, reason, simulated=False): what charrnn finds about CUDA."""

    def set_status(usable, reason, simulated=False):
        monkeypatch.setattr(cuda_probe, "cuda_status", lambda: (usable, reason))
        monkeypatch.setattr(cuda_probe, "simulated", lambda: simulated)

    return set_status


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text(CORPUS)
    return tmp_path


@pytest.fixture
def trained(work):
    result = cli("train", "corpus.txt", *TINY, "--device", "cpu")
    assert result.exit_code == 0, result.stderr
    return work / "charrnn.npz"


# ------------------------------------------------------------------ resolve_device


def test_cpu_never_asks_about_cuda(monkeypatch):
    def boom():
        raise AssertionError("cuda_status was called")

    monkeypatch.setattr(cuda_probe, "cuda_status", boom)
    assert resolve_device("cpu") == "cpu"


def test_auto_picks_a_usable_gpu(cuda_says):
    cuda_says(True, "a CUDA GPU was found")
    assert resolve_device("auto") == "cuda" and resolve_device("cuda") == "cuda"


def test_auto_falls_back_to_the_cpu(cuda_says):
    cuda_says(*NO_DRIVER)
    assert resolve_device("auto") == "cpu"


def test_auto_never_picks_the_simulator(cuda_says):
    cuda_says(True, "numba-cuda's CUDA simulator", simulated=True)
    assert resolve_device("auto") == "cpu" and resolve_device("cuda") == "cuda"


def test_cuda_where_none_is_usable(cuda_says):
    cuda_says(*NO_DRIVER)
    with pytest.raises(UsageError, match=r"^--device cuda: no CUDA driver found$"):
        resolve_device("cuda")


def test_unknown_device():
    with pytest.raises(UsageError, match=r"^--device must be one of auto, cpu, cuda \(got 'gpu'\)$"):
        resolve_device("gpu")


def test_real_status_is_consistent():
    """Unpatched: whatever this machine has, auto agrees with cuda_status."""
    usable, reason = cuda_probe.cuda_status()
    assert isinstance(reason, str) and reason
    assert resolve_device("auto") == ("cuda" if usable and not cuda_probe.simulated() else "cpu")


# ------------------------------------------------------------------ the commands


COMMANDS = {
    "train": ("train", "corpus.txt", *TINY),
    "sample": ("sample", "-l", "5"),
    "eval": ("eval", "corpus.txt"),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_device_cuda_without_cuda_is_one_line(command, cuda_says, trained):
    cuda_says(*NO_DRIVER)
    before = trained.read_bytes()
    assert_error(cli(*command, "--device", "cuda"), 2, "--device cuda: no CUDA driver found")
    assert trained.read_bytes() == before  # nothing trained or written


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_unknown_device_is_one_line(command, trained):
    assert_error(cli(*command, "--device", "gpu"), 2, "--device must be one of auto, cpu, cuda (got 'gpu')")


def test_device_from_the_environment(cuda_says, trained):
    cuda_says(*NO_DRIVER)
    assert_error(cli("sample", env={"CHARRNN_DEVICE": "cuda"}), 2, "--device cuda: no CUDA driver found")
    assert cli("sample", "-l", "5", "--device", "cpu", env={"CHARRNN_DEVICE": "cuda"}).exit_code == 0  # the flag wins


def test_auto_without_cuda_trains_samples_and_evaluates_on_the_cpu(cuda_says, work):
    cuda_says(*NO_DRIVER)
    assert cli("train", "corpus.txt", *TINY, "--device", "auto").exit_code == 0
    assert load_checkpoint(work / "charrnn.npz").meta["device"] == "cpu"
    assert re.search(r"^\s*trained on\s+cpu\s*$", cli("info").stdout, re.M)
    assert json.loads(cli("info", "--json").stdout)["device"] == "cpu"
    assert cli("sample", "-l", "5", "--device", "auto").exit_code == 0
    assert cli("eval", "corpus.txt", "--device", "auto").exit_code == 0


# ------------------------------------------------------------------ info --devices


def test_info_devices_without_cuda(cuda_says):
    cuda_says(*NO_DRIVER)
    result = cli("info", "--devices")
    assert result.exit_code == 0 and result.stderr == ""
    out = result.stdout
    assert re.search(r"^\s*CPU\s+\d+ cores \(\d+ usable\)\s*$", out, re.M)
    assert re.search(r"^\s*numba-cuda\s+(\S+|not installed)\s*$", out, re.M)
    assert re.search(r"^\s*CUDA\s+not usable: no CUDA driver found\s*$", out, re.M)
    assert re.search(r"^\s*--device auto\s+cpu\s*$", out, re.M)
    assert "GPU " not in out


def test_info_devices_json(cuda_says):
    cuda_says(*NO_DRIVER)
    data = json.loads(cli("info", "--devices", "--json").stdout)
    assert data["cuda_usable"] is False and data["cuda_reason"] == "no CUDA driver found"
    assert data["gpu"] is None and data["auto"] == "cpu" and data["cpu_cores"] >= 1


def test_info_devices_names_the_gpu(cuda_says, monkeypatch):
    cuda_says(True, "a CUDA GPU was found")
    monkeypatch.setattr(cuda_probe, "current_gpu", lambda: ("NVIDIA H100 80GB HBM3", "9.0"))
    out = cli("info", "--devices").stdout
    assert re.search(r"^\s*CUDA\s+usable: a CUDA GPU was found\s*$", out, re.M)
    assert re.search(r"^\s*GPU\s+NVIDIA H100 80GB HBM3 \(compute capability 9\.0\)\s*$", out, re.M)
    assert re.search(r"^\s*--device auto\s+cuda\s*$", out, re.M)


def test_info_devices_on_this_machine():
    """Unpatched: the CUDA line says what cuda_status says."""
    usable, reason = cuda_probe.cuda_status()
    found = describe_devices()
    assert found["cuda_usable"] == usable and found["cuda_reason"] == reason
    out = cli("info", "--devices").stdout
    assert ("usable: " if usable else "not usable: ") + reason[:30] in " ".join(out.split())


def test_info_devices_prints_brackets_as_text(cuda_says):
    """Reasons name extras such as charrnn[cuda12]: rich must not read them as markup."""
    cuda_says(False, "install 'charrnn[cuda12]' or 'charrnn[cuda13]'")
    result = cli("info", "--devices")
    assert result.exit_code == 0
    assert "'charrnn[cuda12]' or 'charrnn[cuda13]'" in " ".join(result.stdout.split())
