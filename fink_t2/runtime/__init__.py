"""fink_t2.runtime: which model file runs and the runners that execute it: LiteRT on CPU, and the GPU backends."""
