"""Print the tables of docs/experiments.md's "Results on real data: every run" section (pixels, then
objects) from benchmarks/results/quality_*.json.

    python scripts/results_table.py

It prints to stdout; the two tables there are its output. README.md's "Results on real data" keeps
only a few headline rows, copied from them.
"""

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"
NAMES = {"synthetic": "synthetic (shipped default)",
         "synthetic_target-weighted": "synthetic, `data.target: weighted`",
         "synthetic_boundary_width-3": "synthetic, `data.boundary_width: 3`",
         "synthetic_target-weighted_boundary_width-1": "synthetic, weighted, `boundary_width: 1`",
         "synthetic_learning_rate-0.002": "synthetic, `train.learning_rate: 0.002`",
         "synthetic_learning_rate-0.003": "synthetic, `train.learning_rate: 0.003`",
         "synthetic_batchnorm-false": "synthetic, no batch norm (equal steps)",
         "synthetic_seed-7": "synthetic, `base.seed: 7`",
         "synthetic_seed-11": "synthetic, `base.seed: 11`",
         "synthetic_background-in-dice": "synthetic, background in the loss's Dice (the release before), same day",
         "synthetic_background-in-dice_seed-7": "synthetic, background in the Dice, seed 7, same day",
         "synthetic_background-in-dice_seed-11": "synthetic, background in the Dice, seed 11, same day",
         "synthetic_pixel-visits-200": "synthetic, 200 pixel visits (`PIXEL_VISITS` in unetseg/plan.py)",
         "synthetic_pixel-visits-200_seed-7": "synthetic, 200 pixel visits, seed 7",
         "synthetic_pixel-visits-200_seed-11": "synthetic, 200 pixel visits, seed 11",
         "synthetic_copies-5": "synthetic, `augment.copies: 5`",
         "synthetic_copies-5_seed-7": "synthetic, `augment.copies: 5`, seed 7",
         "synthetic_copies-5_seed-11": "synthetic, `augment.copies: 5`, seed 11",
         "synthetic_contact_weight-10": "synthetic, `data.contact_weight: 10`",
         "synthetic_batch_size-8": "synthetic, batches of 8 (as many patches)",
         "synthetic_batch_size-8_seed-7": "synthetic, batches of 8, seed 7",
         "synthetic_batch_size-8_seed-11": "synthetic, batches of 8, seed 11",
         "synthetic_batch-8-same-time": "synthetic, batches of 8 for the same time (78 % of the patches)",
         "synthetic_batch-8-same-time_seed-7": "synthetic, batches of 8 for the same time, seed 7",
         "synthetic_weights-ema-0.99": "synthetic, moving average of the weights (momentum 0.99)",
         "synthetic_lr_schedule-poly": "synthetic, `train.lr_schedule: poly`",
         "synthetic_lr_schedule-poly_seed-7": "synthetic, `lr_schedule: poly`, seed 7",
         "synthetic_lr_schedule-poly_seed-11": "synthetic, `lr_schedule: poly`, seed 11",
         "synthetic_upsampling-bilinear": "synthetic, `model.upsampling: bilinear`",
         "synthetic_upsampling-bilinear_seed-7": "synthetic, `upsampling: bilinear`, seed 7",
         "synthetic_upsampling-bilinear_seed-11": "synthetic, `upsampling: bilinear`, seed 11",
         "synthetic_keep-best": "synthetic, `train.keep: best` (epoch 10 of 12)",
         "synthetic_keep-last": "synthetic, `train.keep: last` (the same day)",
         "synthetic_deep_supervision-2": "synthetic, deep supervision, 2 extra heads (commit 0ee6dd2)",
         "synthetic_seed-7_contact_weight-10": "synthetic, `contact_weight: 10`, seed 7",
         "inverted": "synthetic, masks inverted",
         "inverted_batchnorm-false": "synthetic, masks inverted, no batch norm",
         "sparse": "synthetic, 1–2 nuclei per image",
         "stained": "synthetic, two-channel TIFFs: nuclei and a marker; the marked half are the objects",
         "sparse_batchnorm-false": "synthetic, 1–2 nuclei, no batch norm",
         "membranes": "confluent cells, thin membranes (`benchmarks/membranes.py`), binary masks",
         "membranes_instances": "confluent cells, thin membranes, instance labels",
         "membranes_instances_seed-7": "confluent cells, instance labels, `base.seed: 7`",
         "membranes_instances_avx512": "confluent cells, instance labels, an AVX-512 CPU without AMX (float32), seed depths to 0.6",
         "membranes_membranes": "confluent cells, the membranes as foreground",
         "rods": "packed rod-shaped bacteria (`benchmarks/rods.py`), binary masks",
         "rods_instances": "packed rod-shaped bacteria, instance labels",
         "rods_instances_depths-to-0.1": "packed rods, instance labels, seed depths 0.02–0.1 (the release before)",
         "rods_instances_steps_per_epoch-176": "packed rods, instance labels, twice the planned steps (16×176)",
         "dsb2018": "DSB2018 nuclei",
         "dsb2018_avx2": "DSB2018 nuclei, an AVX2-only CPU (float32, oneDNN)",
         "dsb2018_avx512": "DSB2018 nuclei, an AVX-512 CPU without AMX (float32, oneDNN)",
         "dsb2018_learning_rate-0.003": "DSB2018 nuclei, `train.learning_rate: 0.003`",
         "dsb2018_patch-256": "DSB2018 nuclei, patch 256 (the previous plan)",
         "dsb2018_batchnorm-false": "DSB2018 nuclei, no batch norm (1.75× the steps, same time)",
         "dsb2018_target-boundary": "DSB2018 nuclei, `data.target: boundary` on the binary masks",
         "dsb2018_instances": "DSB2018 nuclei, instance labels",
         "dsb2018_instances_keep-best": "DSB2018 nuclei, instance labels, the release before (the best epoch, 5 of 8)",
         "dsb2018_instances_keep-last": "DSB2018 nuclei, instance labels, `train.keep: last` (a repeat of the training)",
         "dsb2018_instances_steps-6896": "DSB2018 nuclei, instance labels, the release before (8×862 steps: 0.8 % fewer)",
         "dsb2018_instances_steps-6896_seed-7": "DSB2018 nuclei, instance labels, seed 7, the release before (8×862 steps)",
         "dsb2018_instances_seed-7": "DSB2018 nuclei, instance labels, `base.seed: 7` (another split and draws)",
         "dsb2018_instances_seed-11": "DSB2018 nuclei, instance labels, `base.seed: 11`",
         "dsb2018_instances_avx2": "DSB2018 nuclei, instance labels, an AVX2-only CPU (float32, oneDNN)",
         "dsb2018_instances_avx512": "DSB2018 nuclei, instance labels, an AVX-512 CPU without AMX (float32, oneDNN)",
         "dsb2018_instances_contact_weight-10": "DSB2018 nuclei, instance labels, `data.contact_weight: 10`",
         "dsb2018_instances_contact_weight-10_seed-7": "DSB2018 nuclei, instance labels, `contact_weight: 10`, seed 7",
         "dsb2018_instances_steps-6224": "DSB2018 nuclei, instance labels, 3 % more steps",
         "dsb2018_instances_base-16": "DSB2018 nuclei, instance labels, base 16 (same training time)",
         "dsb2018_instances_boundary_width-1": "DSB2018 nuclei, instance labels, `data.boundary_width: 1`",
         "dsb2018_instances_patch-96": "DSB2018 nuclei, instance labels, patch 96",
         "dsb2018_instances_patch-256": "DSB2018 nuclei, instance labels, patch 256 (the previous plan)",
         "dsb2018_instances_target-weighted_boundary_width-1": "DSB2018 nuclei, instance labels, weighted, `boundary_width: 1`",
         "dsb2018_instances_invert-bright_background": "DSB2018 nuclei, instance labels, `invert: bright_background`",
         "dsb2018_instances_invert-bright_background_seed-7": "DSB2018 nuclei, instance labels, inverted, seed 7",
         "dsb2018_instances_copies-0": "DSB2018 nuclei, instance labels, `augment.copies: 0`",
         "dsb2018_instances_sampling-patch": "DSB2018 nuclei, instance labels, `train.sampling: patch`",
         "dsb2018_instances_colour": "DSB2018's stained-tissue images alone (107, 256×320), instance labels",
         "dsb2018_instances_brightfield": "DSB2018's brightfield images alone (16, 1024²), instance labels",
         "dsb2018_instances_train_minutes-40": "DSB2018 nuclei, instance labels, `plan.train_minutes: 40`",
         "dsb2018_instances_gflops-264": "DSB2018 nuclei, instance labels, `plan.gflops: 264` (calibrate on a faster machine)",
         "dsb2018_instances_gflops-264_seed-7": "DSB2018 nuclei, instance labels, `plan.gflops: 264`, seed 7",
         "synthetic_min_size-768_max_size-768_nuclei_per_image-110-360_train_minutes-3":
             "synthetic, 768 × 768 images, `plan.train_minutes: 3` (grid without overlap, planned)",
         "synthetic_min_size-768_max_size-768_nuclei_per_image-110-360_train_minutes-3_stride-64_copies-2_grid_fraction-1":
             "synthetic, 768 × 768, 3 min, the half-overlapping grid pinned",
         "enlarged_train_minutes-5": "synthetic enlarged 4x (nuclei ~170 px), 5 min budget (scale 0.5, planned)",
         "enlarged_train_minutes-5_scale-1": "synthetic enlarged 4x, 5 min budget, `extract.scale: 1` pinned",
         "shrunk": "synthetic shrunk 3x (nuclei ~11 px), instance labels (scale 2, planned)",
         "shrunk_scale-1": "synthetic shrunk 3x, `extract.scale: 1` pinned",
         "shrunk_scale-1_epochs-10_steps_per_epoch-545": "synthetic shrunk 3x, scale 1, the steps of scale 2",
         "shrunk_scale-1_boundary_width-1": "synthetic shrunk 3x, scale 1, `data.boundary_width: 1`",
         "shrunk_by-2_scale-2": "synthetic shrunk 2x (nuclei ~16 px), `extract.scale: 2` pinned (the plan's choice)",
         "shrunk_by-2_scale-1": "synthetic shrunk 2x, `extract.scale: 1` pinned",
         "dsb2018_instances_by-2": "DSB2018 at half size (nuclei ~19 px), instance labels (scale 2, planned)",
         "dsb2018_instances_by-2_scale-1": "DSB2018 at half size, instance labels, `extract.scale: 1` pinned",
         "dsb2018_instances_scale-2": "DSB2018 nuclei (~36 px), instance labels, `extract.scale: 2` pinned",
         "one_instances": "one DSB2018 image (fluorescence, 206 nuclei apart) in 4×4 regions (`prepare.regions` auto)",
         "one_instances_epochs-40_steps_per_epoch-30": "the same one image, 40×30 steps pinned",
         "one_instances_epochs-40_steps_per_epoch-60": "the same one image, 40×60 steps pinned",
         "one_instances_07fb37aa": "one DSB2018 image (fluorescence, 313 crowded dim nuclei) in 4×4 regions",
         "one_instances_07fb37aa_epochs-40_steps_per_epoch-30": "the same crowded image, 40×30 steps pinned",
         "one_instances_07fb37aa_epochs-40_steps_per_epoch-60": "the same crowded image, 40×60 steps pinned",
         "one_instances_4e07a653": "one DSB2018 image (Pap smear, brightfield, 136 nuclei) in 4×4 regions",
         "one_instances_a102535b": "one DSB2018 image (fly embryo, 375 packed nuclei) in 4×4 regions"}
ORDER = list(NAMES)


def row(result: dict) -> str:
    test, plan, fingerprint = result["test"], result["plan"], result["fingerprint"]
    baselines = {name: scores["dice"] for name, scores in result["baselines"].items() if scores["dice"] is not None}
    best = max(baselines, key=baselines.get)
    minutes, seconds = divmod(round(result["dvc_repro_wall_s"]), 60)
    scale = plan.get("extract.scale", 1)
    planned = (f"{f'scale {scale:g}, ' if scale != 1 else ''}patch {plan['extract.patch_size']}, base {plan['model.base_filters']}, "
               f"{plan['train.epochs']}×{plan['train.steps_per_epoch']} steps of {plan['train.batch_size']}")
    return (f"| {NAMES[result['name']]} | {test['n_images']} | {fingerprint['foreground_fraction']:.1%} | "
            f"**{test['dice']:.3f}** | {test['iou']:.3f} | {baselines['all_foreground']:.3f} | "
            f"{best} {baselines[best]:.3f} | {planned} | {minutes} min {seconds:02d} s |")


def object_row(result: dict) -> str:
    objects = result["instances"]
    chosen = "min_object_size" in objects  # the watershed's knobs, chosen on the validation images
    target = result["params_set"].get("data.target") or ("boundary" if chosen else "binary")
    seeds = (f"seeds at peaks σ {objects['seed_sigma']} px, depth {objects['seed_depth']}" if "seed_sigma" in objects
             else f"seeds ≥ {objects.get('seed_threshold')}")
    seed = f", {seeds}, objects ≥ {objects['min_object_size']} px" if chosen else ""
    return (f"| {NAMES[result['name']]} | {objects['truth_objects']} | {target}{seed} | {objects['objects_true']} | "
            f"**{objects['ap_50']:.3f}** | {objects['f1_50']:.3f} | {objects['mean_ap']:.3f} | {objects['pq_50']:.3f} | "
            f"{objects['merges']} / {objects['splits']} | {objects['otsu_components_ap_50']:.3f} |")


def main() -> None:
    results = [{"name": name, **json.loads((RESULTS / f"quality_{name}.json").read_text())}
               for name in ORDER if (RESULTS / f"quality_{name}.json").is_file()]
    print("| dataset | test images | foreground | Dice | IoU | all-foreground Dice | best baseline | plan | "
          "`dvc repro` |")
    print("|---|---|---|---|---|---|---|---|---|")
    for result in results:
        print(row(result))
    print()
    print("| dataset | true objects from | target | true objects | AP@0.5 | F1@0.5 | mean AP 0.5–0.95 | PQ@0.5 | "
          "merges / splits | Otsu components AP@0.5 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for result in results:
        if result.get("instances"):
            print(object_row(result))


if __name__ == "__main__":
    main()
