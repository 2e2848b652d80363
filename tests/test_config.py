import subprocess
import sys
from pathlib import Path

import pytest

from xasr.config import XASRConfig, load_config_file

RECIPE_CONFIG = Path(__file__).resolve().parents[1] / "egs/tts_en/asr/conf/cformer.yaml"


def test_configs_and_the_yaml_loader_import_without_torch():
    code = ("import sys, xasr.config; xasr.config.load_config_file(sys.argv[1], 2); "
            "sys.exit('torch' in sys.modules and 'torch imported')")
    result = subprocess.run([sys.executable, "-c", code, str(RECIPE_CONFIG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_model_config_survives_its_dict_and_unknown_settings_are_named():
    config, _ = load_config_file(RECIPE_CONFIG, 1, ["model.vision.source=tiny", "model.loss.token_negatives=7"])
    again = XASRConfig.from_dict(config.to_dict())
    assert again == config and again.vision.source == "tiny" and again.loss.token_negatives == 7
    with pytest.raises(ValueError, match="unknown CFormerConfig settings: d_modle"):
        XASRConfig.from_dict({"cformer": {"d_modle": 4}})


def test_config_file_with_overrides(tmp_path):
    path = tmp_path / "conf.yaml"
    path.write_text("model:\n  adapter: projector\ntrain:\n  lr: 0.01\nstage2:\n  num_epochs: 4\n")
    model_config, train_config = load_config_file(path, 2, ["stage2.lr=0.5", "model.loss.ctc=0.2"])
    assert model_config.adapter == "projector" and model_config.loss.ctc == 0.2
    assert (train_config.stage, train_config.lr, train_config.num_epochs) == (2, 0.5, 4)
    with pytest.raises(ValueError, match="unknown training settings"):
        load_config_file(path, 1, ["train.learning_rate=1"])


def test_numbers_in_exponent_form_are_floats_in_files_and_overrides(tmp_path):
    path = tmp_path / "conf.yaml"  # PyYAML alone reads 1e-4 as the string "1e-4"
    path.write_text("train:\n  lr: 1e-4\nstage1:\n  min_lr_ratio: 5E-2\n")
    model_config, train_config = load_config_file(path, 1, ["stage1.weight_decay=2e-3"])
    assert (train_config.lr, train_config.min_lr_ratio, train_config.weight_decay) == (1e-4, 0.05, 2e-3)
    assert isinstance(train_config.lr, float)


def test_training_stages_go_by_name_or_number_in_the_cli_the_yaml_and_overrides(tmp_path):
    from xasr.config import training_stage

    assert [training_stage(s) for s in ("convert", "Align", "integrate", 1, "2", 3)] == [1, 2, 3, 1, 2, 3]
    with pytest.raises(ValueError, match="use convert \\(1\\), align \\(2\\) or integrate \\(3\\)"):
        training_stage("stage1")
    path = tmp_path / "conf.yaml"
    path.write_text("train:\n  lr: 0.01\nalign:\n  num_epochs: 4\n")
    for stage in ("align", 2):
        _, train_config = load_config_file(path, stage, ["align.lr=0.5"])
        assert (train_config.stage, train_config.lr, train_config.num_epochs) == (2, 0.5, 4)
    _, by_number = load_config_file(path, 2, ["stage2.lr=0.25"])
    assert by_number.lr == 0.25
    path.write_text("stage2:\n  lr: 0.1\nalign:\n  lr: 0.2\n")
    with pytest.raises(ValueError, match="stage2: and align: are the same stage"):
        load_config_file(path, 2)
    path.write_text("train:\n  lr: 0.1\n")
    with pytest.raises(ValueError, match="unknown config sections trian"):
        load_config_file(path, 1, ["trian.lr=1"])
    with pytest.raises(ValueError, match="not of the form section.key=value"):
        load_config_file(path, 1, ["lr=1"])
