"""Training of the t2 classifier: data sets (:mod:`.datasets`), network (:mod:`.architecture`)
and the train → quantized TFLite → evaluate pipeline (:mod:`.train`). Needs the ``train`` extra."""
