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
#    of each Python worker, or "skipped: <why>" where Java or pyspark is missing; then the same for the real Rubin
#    sample alerts (../shared/data/lsst_alerts, the Rubin model: rubin.spark_replay). gpu_check.py's section
#    "rubin" (scripts/gpu_check_rubin.py) checks the Rubin model's routes, agreement and throughput.
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

# spark_replay INPUT NAME: fink-t2 replay of INPUT (the survey is told from the data) with Spark's GPU scheduling;
# its summary, exit status and stderr tail go to OUT_DIR/NAME.json
spark_replay() {
    local input=$1 name=$2 result=$out/$2.json replay=$out/$2
    if ! command -v java >/dev/null; then
        echo '{"skipped": "no Java on this machine (Spark needs a JVM)"}' >"$result"; return
    elif ! spark_pkg=$("$py" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))' 2>/dev/null); then
        echo '{"skipped": "pyspark is not installed"}' >"$result"; return
    elif [ ! -e "$input" ]; then
        echo "{\"skipped\": \"no input $input on this machine\"}" >"$result"; return
    fi
    # local-cluster needs a SPARK_HOME with bin/, sbin/, jars/: the pip wheel's, seen through links
    local home=$out/spark_home; mkdir -p "$home"
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
        "$here/scripts/replay_job.py" "$input" --output "$replay" --device auto \
        >"$out/$name.stdout" 2>"$out/$name.stderr"
    local status=$?
    "$py" - "$out/$name.stdout" "$out/$name.stderr" "$status" >"$result" <<'PY'
import json, sys
stdout, stderr, status = open(sys.argv[1]).read(), open(sys.argv[2]).read(), int(sys.argv[3])
start = stdout.find("{")
try:
    summary = json.loads(stdout[start:]) if start >= 0 else None
except ValueError:
    summary = None
print(json.dumps({"exit_status": status, "summary": summary, "stderr_tail": stderr[-4000:]}))
PY
}

echo "== Spark replay with GPU resource scheduling (ZTF sample night)"
spark_replay "$here/data/night_20211122_fink_science" spark_replay
echo "== Spark replay with GPU resource scheduling (real Rubin lsst.v10_0 alerts: the Rubin model)"
rubin_alerts=$("$py" -c 'from fink_t2.paths import shared_data_dir; print(shared_data_dir() / "lsst_alerts" / "rubin_sample_data_10_0.parquet")')
spark_replay "$rubin_alerts" spark_replay_rubin
"$py" - "$json" "$out/spark_replay.json" "$out/spark_replay_rubin.json" <<'PY'
import json, os, sys
path, spark, spark_rubin = sys.argv[1:4]
report = json.load(open(path)) if os.path.isfile(path) else {"error": "gpu_check.py wrote nothing"}
report["spark_replay"] = json.load(open(spark))
report.setdefault("rubin", {})["spark_replay"] = json.load(open(spark_rubin))
json.dump(report, open(path, "w"), indent=1)
print("gpu_check: wrote", path)
PY
