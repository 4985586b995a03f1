#!/bin/bash
# gpu_quality.py run on the device machine (JAX, no TensorFlow), its model, predictions and logs into $OUT.
# Here first: `python benchmarks/gpu_quality.py pack --out .gpudata/dsb2018`, and the wheels the machine lacks
# into .whl (keras, namex, optree, pydantic, pydantic_core, annotated_types, typing_inspection,
# typing_extensions: /work/.library/device/README.md says how). Then, carrying .whl and .gpudata:
#     bash benchmarks/gpu_quality_device.sh RUN_SECONDS STEPS [--set KEY=VALUE ...]
# and, here, on what comes back: cat model.part.* > unet.keras; cp pred.part.aa predictions.tar.gz;
# tar xzf logs.tar.gz; python benchmarks/gpu_quality.py evaluate --out THAT_FOLDER
started=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site KERAS_BACKEND=jax PYTHONUNBUFFERED=1
nvidia-smi -L; nproc
python3 -c "import keras, jax, pydantic; print(keras.__version__, jax.__version__, jax.devices())" || exit 1
timeout "$1" python3 benchmarks/gpu_quality.py run --data .gpudata/dsb2018 --out /tmp/gq --steps "$2" \
    --deadline-s 9999 "${@:3}" 2>&1 | tee "$OUT/run.log"
echo "run exit status ${PIPESTATUS[0]} after $(( $(date +%s) - started )) s"
cd /tmp/gq || exit 1
# Files come back at most 16 MiB each.
[ -f unet.keras ] && split -b 15M unet.keras "$OUT/model.part."
[ -f predictions.tar.gz ] && split -b 15M predictions.tar.gz "$OUT/pred.part."
tar czf "$OUT/logs.tar.gz" ./*.json ./*.log
ls -la "$OUT"
