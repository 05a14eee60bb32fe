"""Model definitions: Hugging Face classes built from our configs or loaded from checkpoints."""
