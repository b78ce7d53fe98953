"""The book layer: what the chapters call (experiment objects, published-run readers, tables,
plots, claims, readings, widgets), built on the experiments and the library."""
