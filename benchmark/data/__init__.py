"""Audio in: loading a folder, the built-in corpus, the split by file, training windows."""
