import json
import os
import shutil
import zipfile
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402

from stage_runner import error_line, run_stage, run_with_keras_alone, write_params  # noqa: E402
from unetseg.shards import ShardWriter, read_manifest  # noqa: E402
from unetseg.training import ShardBatches, image_balanced_weights, learning_rate_schedule, save_model  # noqa: E402


def test_train_writes_model_summary_and_dvclive_logs(tiny_run):
    summary = json.loads((tiny_run / "reports/train.json").read_text())
    assert summary["epochs_run"] == 2 and summary["device"] == "CPU"
    assert 0 <= summary["best_val_dice"] <= 1 and summary["best_epoch"] in (1, 2)
    assert summary["kept_epoch"] in (1, 2) and summary["kept_val_dice"] <= summary["best_val_dice"]
    assert summary["patches_per_s"] > 0
    preprocessing = json.loads((tiny_run / "models/preprocessing.json").read_text())
    assert preprocessing["channels"] == 1 and preprocessing["normalization"]["mode"] == "percentile"
    plots = tiny_run / "reports/live/plots/metrics"
    for name in ("train/loss", "train/dice", "train/iou", "val/loss", "val/dice", "val/iou", "learning_rate"):
        assert len((plots / f"{name}.tsv").read_text().splitlines()) == 3, name


def test_training_warns_when_validation_dice_is_no_better_than_all_foreground():
    from unetseg.training import all_foreground_dice, collapse_warning

    baseline = all_foreground_dice(0.87)  # the inverted synthetic masks
    assert round(baseline, 3) == 0.930
    assert "Dice 0.932 is no clear gain on marking every pixel foreground (0.930)" in collapse_warning(0.932, baseline)
    assert collapse_warning(0.99, baseline) is None
    assert collapse_warning(0.2, None) is None  # several classes: no such baseline


def test_the_saved_epoch_is_the_last_unless_its_validation_dice_falls_clearly_below_the_best():
    from unetseg.training import kept_epoch

    settled = [0.5, 0.92, 0.929, 0.928, 0.9285]  # the shipped run's last epochs differ by < 0.001
    assert (kept_epoch(settled, "auto"), kept_epoch(settled, "best"), kept_epoch(settled, "last")) == (4, 2, 4)
    collapsed = [0.5, 0.92, 0.93, 0.6]
    assert (kept_epoch(collapsed, "auto"), kept_epoch(collapsed, "last")) == (2, 3)
    assert kept_epoch([0.9, 0.9, 0.85], "best") == 0 and kept_epoch([0.9, 0.9, 0.85], "auto") == 0


@pytest.mark.parametrize("keep", ["best", "last"])
def test_the_stage_saves_the_weights_of_the_epoch_train_keep_names(tiny_run, tiny_copy, keep):
    params = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    params["train"]["keep"] = keep
    write_params(tiny_copy, params)
    assert run_stage("train", tiny_copy).returncode == 0
    summary, auto = (json.loads((run / "reports/train.json").read_text()) for run in (tiny_copy, tiny_run))
    assert summary["kept_epoch"] == (summary["best_epoch"] if keep == "best" else summary["epochs_run"])
    same_epoch = summary["kept_epoch"] == auto["kept_epoch"]
    model, auto_model = ((run / "models/unet.keras").read_bytes() for run in (tiny_copy, tiny_run))
    assert (model == auto_model) == same_epoch


def test_same_params_give_identical_weights_and_model_bytes(tiny_run, tiny_copy):
    plan = json.loads((tiny_copy / "reports/plan.json").read_text())
    plan["estimate"]["train_minutes"] = 90.0  # as if plan.gflops were far above this machine's
    (tiny_copy / "reports/plan.json").write_text(json.dumps(plan))
    result = run_stage("train", tiny_copy)
    assert result.returncode == 0 and "the plan's 90 min: this machine trains at ~" in result.stderr
    assert (tiny_copy / "models/unet.keras").read_bytes() == (tiny_run / "models/unet.keras").read_bytes()


def test_tensorflow_runs_onednn_kernels_on_x86_unless_the_environment_says_otherwise(monkeypatch):
    import platform

    from unetseg.backend import use_onednn

    if platform.machine().lower() in ("x86_64", "amd64"):  # conftest asked, as start_keras does in a stage
        from tensorflow.python.util import _pywrap_util_port

        assert _pywrap_util_port.IsMklEnabled()
    monkeypatch.setattr(platform, "machine", lambda: "x86_64")
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    use_onednn()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    use_onednn()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    use_onednn()
    assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ


def test_the_pace_warning_names_the_plan_gflops_that_this_machine_reaches():
    from unetseg.training import pace_note

    plan = {"estimate": {"train_minutes": 21.0}, "budget": {"gflops": 180}}
    assert pace_note(plan, 28.0) is None  # within 1.5x
    assert pace_note({**plan, "estimate": {"train_minutes": 0.2}}, 0.9) is None  # under a minute off
    note = pace_note(plan, 67.2)
    assert note.startswith("training will take ~67 min, 3.2x the plan's 21 min: this machine trains at ~56.2 GFLOP/s")
    assert "Set plan.gflops: 56.2 in params.yaml (or measure it: python -m unetseg.calibrate)" in note
    assert "~360 GFLOP/s" in pace_note(plan, 10.5)  # faster than planned: room for more training


def test_epoch_times_project_the_training_from_the_second_epoch(monkeypatch):
    from unetseg import training

    clock, projections = iter([0.0, 50.0, 50.0, 60.0, 60.0, 70.0]), []
    monkeypatch.setattr(training, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    times = training.EpochTimes(epochs=5, on_projection=projections.append)
    for epoch in range(3):
        times.on_epoch_begin(epoch)
        times.on_epoch_end(epoch)
    assert times.seconds == [50.0, 10.0, 10.0] and projections == [(50 + 4 * 10) / 60]


def test_model_loads_and_predicts_without_this_project(tiny_run, tmp_path):
    import keras

    model_path = tiny_run / "models/unet.keras"
    x = np.random.default_rng(0).random((1, 32, 48, 1)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    expected = keras.saving.load_model(model_path, compile=False).predict_on_batch(x)
    code = ("model = keras.saving.load_model(sys.argv[1], compile=False)\n"
            "assert 'unetseg' not in sys.modules\n"
            "np.save(sys.argv[3], model.predict_on_batch(np.load(sys.argv[2])))")
    run_with_keras_alone(code, str(model_path), str(tmp_path / "x.npy"), str(tmp_path / "y.npy"), cwd=tmp_path)
    assert np.allclose(np.load(tmp_path / "y.npy"), expected, atol=1e-6)


def test_reloaded_model_predicts_what_the_trained_one_did(tmp_path):
    import keras

    from unetseg.unet import build_unet

    model = build_unet(1, 1, depth=1, base_filters=2)
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)
    model.fit(x, (x > 0.5).astype(np.float32), epochs=1, verbose=0)
    save_model(model, tmp_path / "m.keras")
    reloaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert np.allclose(reloaded.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)


def test_a_nan_loss_stops_with_a_clear_error_and_no_model(tiny_copy):
    params = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    params["train"]["learning_rate"] = 1e12
    write_params(tiny_copy, params)
    for stale in ("models", "reports/live"):
        shutil.rmtree(tiny_copy / stale)
    line = error_line(run_stage("train", tiny_copy))
    assert "train.learning_rate: the loss became NaN/infinite" in line
    assert not (tiny_copy / "models").exists() and not (tiny_copy / "reports/live").exists()


def test_shard_batches_cover_every_patch_once_per_epoch_in_a_seeded_order(tiny_run):
    directory = tiny_run / "data/augmented"
    count = read_manifest(directory)["count"]
    batches = ShardBatches(directory, batch_size=5, seed=3)
    epoch1 = [b for b in batches]
    epoch2 = [b for b in batches]
    assert sum(len(x) for x, _ in epoch1) == count and len(epoch1) == len(batches)
    assert all(len(x) == 5 for x, _ in epoch1[:-1])
    firsts1 = np.concatenate([x[:, 0, 0, 0] for x, _ in epoch1])
    assert not np.array_equal(firsts1, np.concatenate([x[:, 0, 0, 0] for x, _ in epoch2]))
    again = ShardBatches(directory, batch_size=5, seed=3)
    assert np.array_equal(firsts1, np.concatenate([x[:, 0, 0, 0] for x, _ in again]))
    assert epoch1[0][1].shape[-1] == 1 and epoch1[0][1].dtype == np.float32


def test_batches_mix_patches_from_every_shard(tmp_path):
    writer = ShardWriter(tmp_path, patch_size=2, channels=1, shard_size=8)
    values = np.arange(32, dtype=np.float32)
    writer.add(values[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32), np.zeros((32, 2, 2), np.uint8), 0)
    writer.close()
    batches = [images[:, 0, 0, 0] for images, _ in ShardBatches(tmp_path, batch_size=8, seed=0)]
    assert sorted(np.concatenate(batches).tolist()) == values.tolist()
    assert all(len(set((batch // 8).tolist())) > 1 for batch in batches), "each batch spans several shards"


def test_per_image_sampling_gives_every_image_the_same_share(tmp_path):
    """Image 0 gave 30 patches, image 1 gave 2: per image, each is drawn about half the time."""
    writer = ShardWriter(tmp_path, patch_size=2, channels=1, shard_size=8)
    for source, count in ((0, 30), (1, 2)):
        writer.add(np.full((count, 2, 2, 1), source, np.float32), np.zeros((count, 2, 2), np.uint8), source)
    writer.close()
    assert np.allclose(image_balanced_weights(np.array([0, 0, 0, 1])), [1 / 6, 1 / 6, 1 / 6, 1 / 2])
    batches = ShardBatches(tmp_path, batch_size=8, seed=0, per_image=True, steps_per_epoch=100)
    drawn = np.concatenate([images[:, 0, 0, 0] for images, _ in batches])
    assert len(drawn) == 800 and 0.4 < drawn.mean() < 0.6
    plain = np.concatenate([images[:, 0, 0, 0] for images, _ in ShardBatches(tmp_path, batch_size=8, seed=0)])
    assert plain.mean() == 2 / 32
    again = ShardBatches(tmp_path, batch_size=8, seed=0, per_image=True, steps_per_epoch=100)
    assert np.array_equal(drawn, np.concatenate([images[:, 0, 0, 0] for images, _ in again]))


def test_short_epochs_carry_on_where_the_last_one_stopped(tmp_path):
    writer = ShardWriter(tmp_path, patch_size=2, channels=1, shard_size=8)
    writer.add(np.arange(12, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32),
               np.zeros((12, 2, 2), np.uint8), 0)
    writer.close()
    short = ShardBatches(tmp_path, batch_size=4, seed=1, steps_per_epoch=2)
    two_epochs = [images[:, 0, 0, 0] for _ in range(2) for images, _ in short]
    full = ShardBatches(tmp_path, batch_size=4, seed=1)
    passes = [images[:, 0, 0, 0] for _ in range(2) for images, _ in full]
    assert len(short) == 2 and len(two_epochs) == 4
    assert all(np.array_equal(a, b) for a, b in zip(two_epochs, passes))


def test_learning_rate_warms_up_then_decays_over_the_planned_steps():
    import keras

    cosine = learning_rate_schedule("cosine", 1e-3, 100, 0.1)
    rates = [float(keras.ops.convert_to_numpy(cosine(step))) for step in (0, 5, 10, 55, 100, 200)]
    assert rates[0] == 0 and np.isclose(rates[1], 5e-4) and np.isclose(rates[2], 1e-3)
    assert rates[2] > rates[3] > rates[4] and np.isclose(rates[4], 1e-5) and rates[5] == rates[4]
    poly = learning_rate_schedule("poly", 1e-3, 100, 0.1)
    assert np.isclose(float(keras.ops.convert_to_numpy(poly(0))), 1e-3) and float(keras.ops.convert_to_numpy(poly(100))) == 0
    assert learning_rate_schedule("plateau", 1e-3, 100, 0.1) == 1e-3


def test_random_flips_move_image_and_mask_together(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.random((16, 6, 6, 1)).astype(np.float32)
    masks = (images[..., 0] > 0.5).astype(np.uint8)
    writer = ShardWriter(tmp_path, patch_size=6, channels=1, shard_size=5)
    writer.add(images, masks, 0)
    writer.close()
    flipped, flipped_masks = next(iter(ShardBatches(tmp_path, batch_size=16, seed=0, shuffle=False, flips=True)))
    assert np.array_equal((flipped > 0.5).astype(np.float32), flipped_masks)
    variants = [{patch[::rows, ::columns].tobytes() for rows in (1, -1) for columns in (1, -1)} for patch in images]
    assert all(patch.tobytes() in variants[i] for i, patch in enumerate(flipped))
    assert 0 < sum(not np.array_equal(a, b) for a, b in zip(flipped, images)) < 16


def test_loss_weights_come_as_a_second_target_channel_flipped_with_the_mask(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((10, 6, 6, 1)).astype(np.float32)
    masks = (images[..., 0] > 0.5).astype(np.uint8)
    writer = ShardWriter(tmp_path, patch_size=6, channels=1, shard_size=4, weights=True)
    writer.add(images, masks, 0, weights=(1 + 8 * masks).astype(np.float16))
    assert writer.close()["weights"] is True
    flipped, targets = ShardBatches(tmp_path, batch_size=10, seed=0, flips=True).batch(0)
    assert targets.shape == (10, 6, 6, 2) and targets.dtype == np.float32
    assert np.array_equal(targets[..., 0], (flipped[..., 0] > 0.5).astype(np.float32))
    assert np.array_equal(targets[..., 1], 1 + 8 * targets[..., 0])


def test_any_batch_can_be_read_directly_and_again(tmp_path):
    """What parallel readers and a restarted reader rely on: batch(step) is batch `step` of the
    stream, however often and in whatever order it is asked for."""
    writer = ShardWriter(tmp_path, patch_size=2, channels=1, shard_size=4)
    writer.add(np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32),
               np.zeros((10, 2, 2), np.uint8), 0)
    writer.close()
    batches = ShardBatches(tmp_path, batch_size=4, seed=2, flips=True)
    streamed = [images for _ in range(3) for images, _ in batches]
    direct = ShardBatches(tmp_path, batch_size=4, seed=2, flips=True)
    for step in (7, 0, 3, 8, 1, 7):
        assert np.array_equal(direct.batch(step)[0], streamed[step]), step


def test_strategy_follows_the_devices_and_only_the_chief_writes():
    from unetseg.tf_training import choose_strategy, is_chief

    assert choose_strategy(0, None) == "default"
    assert choose_strategy(1, None) == "default"
    assert choose_strategy(4, None) == "mirrored"
    assert choose_strategy(2, '{"cluster": {}}') == "multi_worker_mirrored"
    workers = '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": %d}}'
    assert is_chief(None) and is_chief(workers % 0) and not is_chief(workers % 1)
    with_chief = '{"cluster": {"chief": ["a:1"], "worker": ["b:2"]}, "task": {"type": "%s", "index": 0}}'
    assert is_chief(with_chief % "chief") and not is_chief(with_chief % "worker")


def test_auto_precision_is_bfloat16_only_on_a_cpu_with_amx():
    from unetseg.tf_training import cpu_flags, resolve_precision

    assert resolve_precision("auto", 0, {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}) == "mixed_bfloat16"
    assert resolve_precision("auto", 0, {"avx2", "avx512f", "avx512_bf16"}) == "float32"  # slower there
    assert resolve_precision("auto", 0, {"avx2", "avx512f"}) == "float32"
    assert resolve_precision("auto", 1, {"avx512_bf16"}) == "float32"
    assert resolve_precision("float32", 0, {"avx512_bf16"}) == "float32"
    assert resolve_precision("mixed_float16", 2, set()) == "mixed_float16"
    assert isinstance(cpu_flags(), set)


def test_a_model_trained_in_mixed_precision_is_saved_to_compute_in_float32(tmp_path):
    import json
    import zipfile

    from unetseg.backend import start_keras

    keras = start_keras()
    from unetseg.training import computing_in_float32
    from unetseg.unet import build_unet

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = build_unet(1, 1, depth=2, base_filters=4)
    image = np.random.default_rng(0).random((1, 32, 32, 1)).astype(np.float32)
    in_bfloat16 = keras.ops.convert_to_numpy(model(image))
    save_model(computing_in_float32(model), tmp_path / "m.keras")
    assert keras.mixed_precision.global_policy().name == "float32"
    config = json.loads(zipfile.ZipFile(tmp_path / "m.keras").read("config.json"))
    assert all("bfloat16" not in json.dumps(layer["config"].get("dtype")) for layer in config["config"]["layers"])
    loaded = keras.saving.load_model(tmp_path / "m.keras", compile=False)
    assert {layer.compute_dtype for layer in loaded.layers} == {"float32"}
    assert np.abs(keras.ops.convert_to_numpy(loaded(image)) - in_bfloat16).max() < 0.01


def test_the_loss_is_a_param(tiny_run, tiny_copy):
    params = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    params["train"]["loss"] = "dice"  # planned: bce_dice
    write_params(tiny_copy, params)
    assert run_stage("plan", tiny_copy).returncode == 0
    result = run_stage("train", tiny_copy)
    assert result.returncode == 0, result.stderr
    assert first_train_loss(tiny_copy) != first_train_loss(tiny_run), "the logged loss is the chosen one"


@pytest.mark.parametrize("train", [{"lr_schedule": "plateau", "learning_rate": 0.002, "reduce_lr_patience": 1},
                                   {"jit_compile": True}])
def test_the_stage_trains_with_the_other_schedule_and_with_xla(tiny_run, tiny_copy, train):
    """Settings the default run never takes: ReduceLROnPlateau beside the dvclive logger; XLA with the
    fused batch norm."""
    params = yaml.safe_load((tiny_copy / "params.yaml").read_text())
    params["train"].update(train)
    write_params(tiny_copy, params)
    result = run_stage("train", tiny_copy)
    assert result.returncode == 0, result.stderr
    rates = [float(row.split("\t")[-1])
             for row in (tiny_copy / "reports/live/plots/metrics/learning_rate.tsv").read_text().splitlines()[1:]]
    if "lr_schedule" in train:
        assert rates[0] == pytest.approx(0.002) and rates == sorted(rates, reverse=True)
    assert json.loads((tiny_copy / "reports/train.json").read_text())["best_val_dice"] >= 0


def first_train_loss(run) -> float:
    rows = (run / "reports/live/plots/metrics/train/loss.tsv").read_text().splitlines()
    return float(rows[1].split("\t")[-1])


def test_tf_data_readers_serve_the_stream_in_order_and_epochs_restart(tmp_path):
    from unetseg.backend import start_keras

    start_keras()
    from unetseg.tf_training import as_dataset

    writer = ShardWriter(tmp_path, patch_size=2, channels=1, shard_size=4)
    writer.add(np.arange(10, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 1), np.float32),
               np.zeros((10, 2, 2), np.uint8), 0)
    writer.close()
    expected = [ShardBatches(tmp_path, batch_size=4, seed=2, flips=True).batch(step)[0] for step in range(7)]
    for readers in (1, 3):
        stream = as_dataset(ShardBatches(tmp_path, batch_size=4, seed=2, flips=True), endless=True, readers=readers)
        assert all(np.array_equal(images.numpy(), want) for (images, _), want in zip(stream.take(7), expected))
    epoch = as_dataset(ShardBatches(tmp_path, batch_size=4, seed=2, flips=True), readers=2)
    for _ in range(2):  # Keras reads the validation set once per epoch: the same batches each time
        assert all(np.array_equal(images.numpy(), want) for (images, _), want in zip(epoch, expected[:3]))
        assert len(list(epoch)) == 3
    assert epoch.options().autotune.enabled is False  # no wait for the autotuner when fit ends its input


@pytest.mark.parametrize("precision", ["float32", "mixed_bfloat16"])
def test_fused_batchnorm_trains_as_keras_layer_does(precision):
    import keras
    import tensorflow as tf

    from unetseg.tf_training import FusedBatchNorm

    keras.mixed_precision.set_global_policy(precision)
    try:
        x = tf.constant(np.random.default_rng(0).normal(2, 3, (4, 6, 5, 3)), "float32")
        layers = [kind(momentum=0.5) for kind in (keras.layers.BatchNormalization, FusedBatchNorm)]
        results = []
        for layer in layers:
            layer.build(x.shape)
            layer.gamma.assign([1.0, 2.0, 0.5])
            layer.beta.assign([0.0, -1.0, 3.0])
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.cast(layer(tf.cast(x, layer.compute_dtype), training=True), "float32")
                loss = tf.reduce_sum(y * tf.range(y.shape[-1], dtype="float32") * x)
            results.append([y, *tape.gradient(loss, [x, layer.gamma, layer.beta])])
        tolerance = 1e-5 if precision == "float32" else 2e-2
        for keras_value, fused_value in zip(*results):
            assert np.allclose(fused_value, keras_value, rtol=tolerance, atol=tolerance)
        keras_layer, fused = layers
        n = 4 * 6 * 5
        assert np.allclose(fused.moving_mean, keras_layer.moving_mean, atol=1e-3 if precision != "float32" else 1e-6)
        batch_variance = 2 * np.asarray(keras_layer.moving_variance) - 1  # momentum 0.5 from 1
        assert np.allclose(2 * np.asarray(fused.moving_variance) - 1, batch_variance * n / (n - 1), rtol=tolerance)
        fused.set_weights(keras_layer.get_weights())
        inference = [np.asarray(layer(x[:1], training=False), "float32") for layer in layers]
        assert np.array_equal(*inference)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_a_model_trained_with_fused_batchnorm_is_saved_with_keras_layers(tiny_run, tmp_path):
    import keras

    from unetseg.tf_training import FusedBatchNorm, with_keras_batchnorm
    from unetseg.unet import build_unet

    model = build_unet(1, 1, depth=1, base_filters=2, batchnorm=True, batchnorm_layer=FusedBatchNorm)
    model.compile("adam", "binary_crossentropy")
    x = np.random.default_rng(1).random((2, 8, 8, 1)).astype(np.float32)
    model.fit(x, (x > 0.5).astype(np.float32), epochs=2, verbose=0)
    saved = with_keras_batchnorm(model)
    assert {type(layer) for layer in saved.layers if "_bn" in layer.name} == {keras.layers.BatchNormalization}
    assert [layer.name for layer in saved.layers] == [layer.name for layer in model.layers]
    assert np.allclose(saved.predict_on_batch(x), model.predict_on_batch(x), atol=1e-6)
    config = json.loads(zipfile.ZipFile(tiny_run / "models/unet.keras").read("config.json"))
    classes = {layer["class_name"] for layer in config["config"]["layers"]}
    assert "BatchNormalization" in classes and "FusedBatchNorm" not in classes
