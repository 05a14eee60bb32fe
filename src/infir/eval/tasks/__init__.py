"""One module per benchmark; importing a module registers its tasks (see `infir.eval.registry`)."""
