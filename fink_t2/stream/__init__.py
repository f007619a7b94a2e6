"""fink_t2.stream: the Spark side: session, structured-streaming replay, output folder, progress."""
