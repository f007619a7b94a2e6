"""``fink-t2 replay`` as a spark-submit application (standalone, YARN or Kubernetes master).

    spark-submit --master spark://HOST:7077 --files /path/to/t2.tflite \
        scripts/replay_job.py NIGHT --output OUTPUT [--model /path/to/t2.tflite] [other replay options]

The arguments are those of ``fink-t2 replay``. The session is created first from spark-submit's
settings (``--master``, ``--conf``, ``--files``) and its master is handed to the replay, which would
otherwise build a ``local[*]`` session of its own. Executors that cannot read the driver's model path
load the copy shipped with ``--files`` (same file name; see ``fink_t2.runtime.inference.resolve_model_path``).
"""

import sys

from pyspark.sql import SparkSession

from fink_t2.cli import main


def run(argv: list[str]) -> int:
    spark = SparkSession.builder.appName("fink-t2").getOrCreate()
    if "--master" not in argv:
        argv = [*argv, "--master", spark.sparkContext.master]
    return main(["replay", *argv])


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
