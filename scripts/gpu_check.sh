#!/usr/bin/env bash
# t2 on this machine's NVIDIA GPU, in ONE JSON file: OUT_DIR/gpu_check.json (and gpu_check.log beside it).
#
#   bash scripts/gpu_check.sh [OUT_DIR] [-- gpu_check.py options, e.g. --quick]
#
# 1. installs the project from this working tree with its gpu extra (pip install -e ".[gpu]"); where nothing
#    can be installed (FINK_T2_NO_INSTALL=1, or pip fails: a machine without network) it runs the tree as it is,
#    on PYTHONPATH; 2. prints nvidia-smi and the Vulkan loader / ICD status; 3. runs scripts/gpu_check.py (LiteRT
#    GPU probe with its whole native log, every GPU route, agreement with the CPU interpreter on real alerts,
#    alerts/s at batch sizes 1 to 65,536 on one core and on each usable GPU backend, the non-Spark pipeline);
#    4. replays the sample night with Spark GPU resource scheduling (local-cluster, discovery script,
#    spark.{worker,executor}.resource.gpu.amount=1, spark.task.resource.gpu.amount=1) and records the backend
#    of each Python worker, or "skipped: <why>" where Java or pyspark is missing.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$here/build/gpu_check}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
mkdir -p "$out"
json=$out/gpu_check.json
log=$out/gpu_check.log
py=${PYTHON:-python3}
exec > >(tee -a "$log") 2>&1

if [ "${FINK_T2_NO_INSTALL:-0}" != 1 ]; then
    "$py" -m pip install -q -e "$here[gpu]" || echo "gpu_check: pip install failed: running the tree in place"
fi
export PYTHONPATH=$here${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$icd" ]; then export VK_DRIVER_FILES=$icd; fi

echo "== nvidia-smi"; nvidia-smi || echo "nvidia-smi: not available"
echo "== Vulkan loader"; ldconfig -p | grep -i libvulkan || echo "libvulkan.so.1: not in the loader cache"
echo "== Vulkan ICD files"; ls -l /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
echo "== OpenCL (LiteRT's GPU accelerator also looks for it)"; ldconfig -p | grep -i -E "libOpenCL|nvidia-opencl" || echo "no OpenCL library"
ls -l /etc/OpenCL/vendors 2>&1
if [ ! -e /etc/OpenCL/vendors/nvidia.icd ] && [ -z "${OCL_ICD_VENDORS:-}" ] && ldconfig -p | grep -q libnvidia-opencl.so.1; then
    mkdir -p "$out/opencl_vendors" && echo libnvidia-opencl.so.1 >"$out/opencl_vendors/nvidia.icd"
    export OCL_ICD_VENDORS=$out/opencl_vendors  # the ICD loader's vendor folder, without writing to /etc
fi

echo "== gpu_check.py"
"$py" "$here/scripts/gpu_check.py" --out "$json" "$@" || echo "gpu_check.py failed (status $?)"

echo "== Spark replay with GPU resource scheduling"
replay=$out/replay
spark_result=$out/spark_replay.json
if ! command -v java >/dev/null; then
    echo '{"skipped": "no Java on this machine (Spark needs a JVM)"}' >"$spark_result"
elif ! spark_pkg=$("$py" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null); then
    echo '{"skipped": "pyspark is not installed"}' >"$spark_result"
else
    # local-cluster needs a SPARK_HOME with bin/, sbin/, jars/: the pip wheel's, seen through links
    home=$out/spark_home; mkdir -p "$home"
    for part in bin sbin jars; do ln -sfn "$spark_pkg/$part" "$home/$part"; done
    rm -rf "$replay"
    SPARK_HOME=$home SPARK_LOCAL_IP=127.0.0.1 PYSPARK_PYTHON=$(command -v "$py") timeout 600 \
        "$home/bin/spark-submit" --master "local-cluster[1,1,2048]" \
        --conf spark.worker.resource.gpu.amount=1 \
        --conf "spark.worker.resource.gpu.discoveryScript=$here/scripts/get_gpus_resources.sh" \
        --conf spark.executor.resource.gpu.amount=1 \
        --conf "spark.executor.resource.gpu.discoveryScript=$here/scripts/get_gpus_resources.sh" \
        --conf spark.task.resource.gpu.amount=1 --conf "spark.executorEnv.PYTHONPATH=$PYTHONPATH" \
        --conf spark.ui.enabled=false \
        "$here/scripts/replay_job.py" "$here/data/night_20211122_fink_science" --output "$replay" --device auto \
        >"$out/spark_replay.stdout" 2>"$out/spark_replay.stderr"
    status=$?
    "$py" - "$out/spark_replay.stdout" "$out/spark_replay.stderr" "$status" >"$spark_result" <<'PY'
import json, sys
stdout, stderr, status = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
start = stdout.find("{")
try:
    summary = json.loads(stdout[start:]) if start >= 0 else None
except ValueError:
    summary = None
print(json.dumps({"exit_status": status, "summary": summary, "stderr_tail": stderr[-4000:]}))
PY
fi
"$py" - "$json" "$spark_result" <<'PY'
import json, os, sys
path, spark = sys.argv[1], sys.argv[2]
report = json.load(open(path)) if os.path.isfile(path) else {"error": "gpu_check.py wrote nothing"}
report["spark_replay"] = json.load(open(spark))
json.dump(report, open(path, "w"), indent=1)
print("gpu_check: wrote", path)
PY
