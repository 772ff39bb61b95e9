"""The training settings are declared once, on TrainConfig's fields (charrnn.config.setting), and
everything else follows from them: the options of `charrnn train`, the keywords of charrnn.train
and resume, what a resume takes from the checkpoint, the checks, the docs' lists. A setting added
in one place and not another fails here."""

import re
from dataclasses import fields
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import typer

import charrnn
import charrnn.cli
from charrnn.cells import CELLS
from charrnn.config import FROM_CHECKPOINT, RUN_SETTINGS, SETTINGS, STOPS, TrainConfig, flag, one_of
from charrnn.errors import UsageError
from charrnn.resuming import resume_config

DOCS = Path(__file__).resolve().parents[1] / "docs"
NAMES = [f.name for f in fields(TrainConfig)]
# The options of `charrnn train` that are not training settings: how the run is driven and shown.
RUN_OPTIONS = {"--out", "--resume", "--force", "--encoding-errors", "--sample-every", "--sample-length", "--sample-prime",
               "--log", "--log-every", "--quiet", "--json", "--device", "--help"}  # fmt: skip


def train_command():
    return typer.main.get_command(charrnn.cli.app).commands["train"]


def test_every_field_is_declared_as_a_setting():
    assert [s.name for s in SETTINGS] == NAMES
    for f in fields(TrainConfig):
        assert set(f.metadata) == {"help", "from_checkpoint", "option", "choices", "default_text"}, f.name
    for s in SETTINGS:
        assert s.type in (int, float, str, bool), s.name
        assert isinstance(s.from_checkpoint, bool), s.name
        assert s.help.endswith("."), s.name
        assert s.optional == (s.default is None), s.name  # None is a value only where it is the default
        assert s.default is None or s.default_text is None, s.name  # one default shown, not two
        assert flag(s.name) == s.flag == "--" + s.option.replace("_", "-")
    assert len({s.option for s in SETTINGS}) == len(SETTINGS)


def test_a_resume_takes_the_model_and_data_settings_from_the_checkpoint_and_the_rest_from_now():
    assert set(FROM_CHECKPOINT) | set(RUN_SETTINGS) == set(NAMES) and not set(FROM_CHECKPOINT) & set(RUN_SETTINGS)
    assert RUN_SETTINGS == ("steps", "epochs", "time_limit", "threads")  # a change here changes what --resume keeps
    assert set(STOPS) <= set(RUN_SETTINGS)


def test_the_train_command_has_an_option_for_every_setting_and_no_other_copy():
    options = {p.opts[0]: p for p in train_command().params if p.param_type_name == "option"}
    assert set(options) - RUN_OPTIONS == {s.flag for s in SETTINGS}
    parsed = {int: ("3", 3), float: ("0.5", 0.5), str: ("x", "x")}  # what the parser makes of a value given
    for s in SETTINGS:
        option = options[s.flag]
        assert option.name == s.option and option.default is None  # None: not given
        assert option.help.startswith(s.help)
        assert option.is_flag == (s.type is bool), s.name
        if not option.is_flag:
            text, value = parsed[s.type]
            assert type(option.type.convert(text, option, None)) is type(value), s.name
        if s.default_text is not None:
            assert f"[default: {s.default_text}]" in option.help
    in_order = [p.opts[0] for p in train_command().params if p.opts[0] in {s.flag for s in SETTINGS}]
    assert in_order == [s.flag for s in SETTINGS]


def test_choices_are_named_in_the_help_and_the_cells_come_from_the_registry():
    for s in SETTINGS:
        for choice in s.choices or ():
            assert choice in s.help, (s.name, choice)
    cell = next(s for s in SETTINGS if s.name == "cell")
    assert cell.choices == CELLS and one_of(CELLS) in cell.help
    source = Path(charrnn.cli.__file__).read_text(encoding="utf-8")
    assert not re.search(r"\b(%s)\b" % "|".join(CELLS), source)  # no cell named in cli.py


def test_the_api_takes_every_setting_by_its_option_name(tmp_path):
    listed = ", ".join(sorted(s.option for s in SETTINGS))
    for call in (lambda: charrnn.train(tmp_path / "x.txt", bogus=1), lambda: charrnn.resume(tmp_path / "x.npz", bogus=1)):
        with pytest.raises(UsageError) as err:
            call()
        assert str(err.value) == f"unknown setting 'bogus'; the settings are {listed}"


# A value each setting refuses, with the start of its message: a new field needs a line here.
BAD = dict(
    cell="elman", layers=0, hidden=1 << 15, dropout=1.0, seq=0, batch=0, optimizer="rmsprop", lr=0.0, lr_decay=2.0,
    lr_schedule="step", warmup=-1, min_lr=-1.0, weight_decay=11.0, clip=-1.0, steps=0, epochs=0.0, time_limit=-1.0,
    seed=-1, val_frac=0.5, val_split="middle", eval_every=0, save_every=0, threads=257, lines="yes", min_count=0,
)  # fmt: skip


def test_every_setting_is_checked():
    assert sorted(BAD) == sorted(NAMES)
    for name, value in BAD.items():
        with pytest.raises(UsageError) as err:
            TrainConfig(**{name: value})
        assert str(err.value).startswith(f"{flag(name)} must be "), str(err.value)
        assert "\n" not in str(err.value)


def test_values_of_the_wrong_type_are_one_line_usage_errors():
    cases = [
        (dict(eval_every="5"), "--eval-every must be an integer (got '5')"),
        (dict(steps=2.0), "--steps must be an integer (got 2.0)"),
        (dict(hidden=True), "--hidden must be an integer (got True)"),
        (dict(hidden=None), "--hidden must be an integer (got None)"),
        (dict(lr="fast"), "--lr must be a number (got 'fast')"),
        (dict(time_limit=[1]), "--time must be a number (got [1])"),
        (dict(lines=1), "--lines must be true or false (got 1)"),
        (dict(cell=3), "--cell must be one of rnn, lstm, gru (got 3)"),
    ]
    for given, message in cases:
        with pytest.raises(UsageError) as err:
            TrainConfig(**given)
        assert str(err.value) == message
    cfg = TrainConfig(hidden=np.int64(8), dropout=np.float32(0.5), steps=np.int32(3))
    assert (type(cfg.hidden), type(cfg.dropout), type(cfg.steps)) == (int, float, int)  # as JSON and the kernels take them


def test_resume_refuses_another_value_of_every_model_and_data_setting_and_takes_this_runs():
    saved = TrainConfig(steps=10)
    resumed = SimpleNamespace(settings=saved, path="m.npz", encoding_errors="strict", workers=None)
    for s in SETTINGS:
        if not s.from_checkpoint:
            continue
        if s.choices:
            other = next(c for c in s.choices if c != s.default)
        elif s.type is bool:
            other = not s.default
        else:
            other = s.type((s.default or 0.01) / 2 if s.type is float else (s.default or 0) + 1)
        with pytest.raises(UsageError) as err:
            resume_config(resumed, {s.name: other})
        assert str(err.value).startswith(f"{s.flag} {other}" if s.type is not bool else s.flag), str(err.value)
        assert resume_config(resumed, {s.name: saved.learning_rate if s.name == "lr" else getattr(saved, s.name)},
                             steps=1).steps == 1  # fmt: skip
    cfg = resume_config(resumed, {"threads": 2, "epochs": 0.5})
    assert (cfg.threads, cfg.epochs, cfg.steps) == (2, 0.5, None)


def test_the_docs_name_every_setting():
    usage = (DOCS / "usage.md").read_text(encoding="utf-8")
    table = usage[usage.index("## Every flag of `train`") : usage.index("\n## ", usage.index("## Every flag of `train`"))]
    for option in train_command().params:
        if option.opts[0] != "--help" and option.opts[0].startswith("--"):
            assert f"`{option.opts[0]}" in table, option.opts[0]
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    for s in SETTINGS:
        assert f"`{s.option}`" in api, s.option
