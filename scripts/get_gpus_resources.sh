#!/usr/bin/env bash
# Spark GPU discovery script (spark.{worker,executor,driver}.resource.gpu.discoveryScript):
# prints the ResourceInformation JSON of the NVIDIA GPUs this container sees, e.g.
#   {"name": "gpu", "addresses": ["0", "1"]}
# Same contract as examples/src/main/scripts/getGpusResources.sh of the Spark distribution.
set -euo pipefail
mapfile -t indices < <(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ')
addresses=""
for index in "${indices[@]}"; do
    [ -n "$index" ] && addresses="${addresses:+$addresses, }\"$index\""
done
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
