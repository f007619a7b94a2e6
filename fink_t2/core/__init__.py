"""fink_t2.core: the numpy core: preprocessing, cuts, classification, calibration and the model contract (no Spark, no TensorFlow)."""
