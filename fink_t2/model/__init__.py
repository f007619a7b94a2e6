"""Training of the t2 classifier: data sets (:mod:`.datasets`), network (:mod:`.architecture`)
and the train → quantized TFLite → evaluate pipeline (:mod:`.train`). Needs the ``train`` extra.

Importing any of it selects tf-keras (Keras 2), the one Keras that tfmot and the TFLite converter support:
the one place ``TF_USE_LEGACY_KERAS`` is set, before TensorFlow is imported by a submodule."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
